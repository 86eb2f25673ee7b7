"""Follow-up questions ("and what about the minister?") resolved against the conversation history."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .text import ARABIC_STOPWORDS, ENGLISH_STOPWORDS, clean_for_matching, detect_language, fold, words

# Openings and references that make a question lean on the previous one.
_FOLLOW_UP_EN = re.compile(
    r"^(and|but|also|so|what about|how about|and what|then)\b|\b(he|she|they|it|him|her|them|his|their|its|"
    r"this|that|these|those|there)\b",
    re.IGNORECASE,
)
_FOLLOW_UP_AR = re.compile(
    r"^(ثم|ماذا عن|وماذا|وما|وهل|وكم|ومن|واين|وأين|ومتى|ولماذا|وكيف|فماذا|فما|فهل|فكم|فمن)\b"
    # "and" before a question word or a preposition: "وإلى أي مدينة ...", "ولمن ...", "وبماذا ...", "وأي ..."
    r"|^[وف](أي|اي|إلى|الى|في|لمن|بماذا|بمن|بم|عن|على|مع|منذ|كم)\b"
    r"|\b(هو|هي|هم|هما|ذلك|هذا|هذه|تلك|منهما|منهم)\b"
)

# Words an earlier question does not pass on to a follow-up: the function words search drops, and the
# question words, pronouns and auxiliaries it keeps (compared after `fold()`), in both languages. What is
# left is the topic: names, places, things ("chief of staff", "unregistered vehicles", "رئيس الأركان",
# "السيارات غير المسجلة").
_NOT_TOPIC_EN = ENGLISH_STOPWORDS | frozenset(
    "but so being am done has have had whose many much him me my our your us according will would shall "
    "should can could may might must also just only any some all each other another same more most less "
    "least very not no yes one ones say said says tell told ask asked give gave given get got make made "
    "take took happen happened".split()
)
_NOT_TOPIC_AR = frozenset(
    fold(word) for word in ARABIC_STOPWORDS | frozenset(
        "اللذين اللتين هما هن يكون تكون ماذا متى أين اين كم كيف لماذا لم لمن هل بشأن حول وفق وفقا بحسب عما "
        "مما ممن فيما بما لما وما وماذا ومن ومتى وأين واين وكم وكيف ولماذا وهل وأي فما فماذا فمن فهل فكم ثمة "
        "لا نعم قال قالت ذكر ذكرت".split()
    )
)
MAX_TOPIC_WORDS = 12  # carried from the earlier questions, nearest first
MAX_CONTEXT_WORDS = 30  # of the earlier questions' whole text, in `follow_up_in_context`


def user_questions(history: Sequence[Any] | None) -> list[str]:
    """The user's earlier questions, from messages ({"role","content"}) or (question, answer) pairs."""
    questions = []
    for item in history or ():
        if isinstance(item, dict):
            if item.get("role") == "user" and isinstance(item.get("content"), str):
                questions.append(item["content"])
        elif isinstance(item, (tuple, list)) and item and isinstance(item[0], str):
            questions.append(item[0])
    return questions


def looks_like_follow_up(question: str) -> bool:
    if len(words(question)) <= 3:
        return True
    pattern = _FOLLOW_UP_AR if detect_language(question) == "ar" else _FOLLOW_UP_EN
    return bool(pattern.search(clean_for_matching(question).strip()))  # "وَمَاذَا" opens like "وماذا"


def topic_terms(question: str) -> list[str]:
    """The words of a question that name its topic, as written and in order: what is left when question
    words, pronouns and function words are dropped (a clitic و/ف/ب/ل before an Arabic one too). Diacritics
    are removed first: a regex word does not match them, so they would split a word."""
    kept = []
    for token in re.findall(r"\w+", clean_for_matching(question)):
        folded = fold(token)
        if len(folded) < 2 or folded in _NOT_TOPIC_EN or folded in _NOT_TOPIC_AR:
            continue
        if len(folded) > 2 and folded[0] in "وفبل" and folded[1:] in _NOT_TOPIC_AR:
            continue
        kept.append(token)
    return kept


def _conversation_topic(question: str, previous: list[str]) -> list[str]:
    """Topic terms the follow-up leaves out, from the earlier questions it leans on: the latest one, and
    when that was itself a follow-up, the ones before it back to the question that opened the topic.
    Among those, a question in the follow-up's own language comes first (of an English question and its
    Arabic twin, an Arabic follow-up carries the Arabic terms); terms the follow-up already has are not
    repeated. In whatever language they were asked: the embedder is multilingual, and an English
    follow-up about Arabic articles gains from Arabic terms in the lexical search."""
    chain = _leaned_on(previous)
    language = detect_language(question)
    same = [q for q in chain if detect_language(q) == language]
    other = [q for q in chain if detect_language(q) != language]
    # The chain's opening question in the other language may have a twin in the follow-up's language
    # just before it (a user who asked the same thing in both languages): take that one too.
    if not same and len(previous) > len(chain):
        before = previous[len(previous) - len(chain) - 1]
        if detect_language(before) == language and not looks_like_follow_up(before):
            same = [before]
    have = set(words(question))
    terms: list[str] = []
    for earlier in same + other:
        for term in topic_terms(earlier):
            if fold(term) not in have:
                have.add(fold(term))
                terms.append(term)
    return terms[:MAX_TOPIC_WORDS]


def condense_heuristically(question: str, history: Sequence[Any] | None) -> str:
    """Without an LLM: a follow-up is searched with the topic terms of the questions it leans on (names,
    places, things: "chief of staff", "unregistered vehicles"), not with their whole text: question words
    ("what", "ماذا") and function words stay behind, so the follow-up keeps its own question and its own
    language first, and the earlier answer is not asked for again. A question that does not look like a
    follow-up is returned as it is."""
    previous = user_questions(history)
    if not previous or not looks_like_follow_up(question):
        return question
    terms = _conversation_topic(question, previous)
    return f"{question} ({' '.join(terms)})" if terms else question


def _leaned_on(previous: list[str]) -> list[str]:
    """The earlier questions a follow-up leans on, nearest first: the latest, and when that was itself a
    follow-up, the ones before it back to the question that opened the topic."""
    chain = []
    for earlier in reversed(previous):
        chain.append(earlier)
        if not looks_like_follow_up(earlier):
            break
    return chain


def follow_up_in_context(question: str, history: Sequence[Any] | None) -> str:
    """A follow-up with the whole text of the questions it leans on after it (up to MAX_CONTEXT_WORDS
    words), oldest first: what the reader judges answerability on next to the topic-term form, because a
    cross-encoder trained on questions reads a real question better than a bag of terms (the topic form
    searches better: it does not ask for the earlier answer again). Not a follow-up: returned as it is."""
    previous = user_questions(history)
    if not previous or not looks_like_follow_up(question):
        return question
    context = " ".join(reversed(_leaned_on(previous))).split()[:MAX_CONTEXT_WORDS]
    return f"{question} ({' '.join(context)})"
