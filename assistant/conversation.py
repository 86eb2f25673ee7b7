"""Follow-up questions ("and what about the minister?") resolved against the conversation history."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .text import detect_language, fold, words

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

# Words an earlier question does not pass on to a follow-up: question words, pronouns, auxiliaries and
# other function words (compared after `fold()`), in both languages. What is left is the topic: names,
# places, things ("chief of staff", "unregistered vehicles", "رئيس الأركان", "السيارات غير المسجلة").
_NOT_TOPIC_EN = frozenset(
    "a an the of in on at to for from by with and or but so is are was were be been being am it its this that "
    "these those as do does did done has have had what which who whom whose when where why how many much "
    "about into than then there their they them he she his her him we you i me my our your us according "
    "will would shall should can could may might must also just only any some all each other another same "
    "more most less least very not no yes one ones say said says tell told ask asked give gave given get got "
    "make made take took happen happened".split()
)
_NOT_TOPIC_AR = frozenset(
    fold(word) for word in (
        "في من على إلى الى عن أن ان إن او أو ثم حتى مع هذا هذه ذلك تلك التي الذي الذين اللذين اللتين هو هي هم "
        "هما هن كان كانت يكون تكون قد لقد و ف ب ل ك ما ماذا متى أين اين كم كيف لماذا لم لمن هل أي اي أيّ "
        "إذا اذا كل بين عند منذ لدى أيضا ايضا حيث بعد قبل كما فيه فيها منه منها عليه عليها إليه اليه له لها "
        "به بها بشأن حول وفق وفقا بحسب عما مما ممن فيما بما لما وما وماذا ومن ومتى وأين واين وكم وكيف ولماذا "
        "وهل وأي فما فماذا فمن فهل فكم ثمة الذى التى هل لا نعم قال قالت ذكر ذكرت"
    ).split()
)
MAX_TOPIC_WORDS = 12  # carried from the earlier questions, nearest first


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
    return bool(pattern.search(question.strip()))


def topic_terms(question: str) -> list[str]:
    """The words of a question that name its topic, as written and in order: what is left when question
    words, pronouns and function words are dropped (a clitic و/ف/ب/ل before an Arabic one too)."""
    kept = []
    for token in re.findall(r"\w+", question):
        folded = fold(token)
        if folded in _NOT_TOPIC_EN or folded in _NOT_TOPIC_AR or folded.isdigit() and len(folded) < 2:
            continue
        if len(folded) > 2 and folded[0] in "وفبل" and folded[1:] in _NOT_TOPIC_AR:
            continue
        if len(folded) < 2:
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
    chain = []
    for earlier in reversed(previous):
        chain.append(earlier)
        if not looks_like_follow_up(earlier):
            break
    language = detect_language(question)
    same = [q for q in chain if detect_language(q) == language]
    other = [q for q in chain if detect_language(q) != language]
    # The chain's opening question in the other language may have a twin in the follow-up's language
    # just before it (a user who asked the same thing in both languages): take that one too.
    if not same and len(previous) > len(chain):
        before = previous[len(previous) - len(chain) - 1]
        if detect_language(before) == language and not looks_like_follow_up(before):
            same = [before]
    have = {fold(token) for token in re.findall(r"\w+", question)}
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
