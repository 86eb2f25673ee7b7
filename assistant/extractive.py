"""The extractive answerer (default, offline, no LLM): quote the sentence(s) that answer the question.

`answer_from_readings` is the default: the trained reader (reader.py) has scored every sentence of the
top passages; the best sentence (reader and bi-encoder scores blended) is quoted, an English answer led by
the reader's short answer when the question asks for a number or a date and the span holds one, and when
no sentence reaches the reader's calibrated threshold the answer says plainly that the articles do not say.

`answer_extractively` is the bi-encoder answerer the reader replaced, kept for `reader = false` (another
embedding model, which the reader was not trained over) and as the baseline the benchmarks compare with:
each sentence of the retrieved passages is scored by the multilingual embedder against the question
(works across languages), plus the share of the question's Arabic search terms it contains (sharpens
Arabic questions), plus a small bonus for the passage's rank, plus a bonus when the sentence holds the kind
of answer the question asks for (a number for "how many / كم", a date or time for "when / متى"). When even
the best sentence scores below the calibrated threshold, the answer says plainly that the articles do not say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .embedder import Embedder
from .reader import PassageReading, Reader
from .text import ascii_digits, clean_for_matching, detect_language, search_terms, split_sentences
from .types import Answer, Citation, Hit

# Per question language: a cross-lingual match (English question, Arabic sentence) scores lower.
# Calibrated on eval/qa.jsonl with bench/calibrate.py (answerable vs unanswerable questions), so the
# bi-encoder's eval numbers are not held-out; the reader's threshold is chosen elsewhere (train_reader.py).
ABSTAIN_BELOW = {"ar": 0.89, "en": 0.80}
SECOND_QUOTE_WITHIN = 0.015  # a second quote only when it scores almost as well (0.03: recall +5, precision -5)
LEXICAL_WEIGHT = 0.12
RANK_WEIGHT = 0.02
MAX_QUOTES = 2
# The reader's second quote: only a sentence whose reranked logit is within this of the first one's.
READER_SECOND_QUOTE_WITHIN = 0.5
# The bi-encoder's sentence score (score_sentences) blended into the reader's choice of sentence: the two
# err differently. Chosen on the reader's dev XQuAD articles (bench/reader_xquad.py --split dev: sentence
# top-1 ar 0.701 -> 0.716, en 0.448 -> 0.478 for 0 -> 120); never on eval/qa.jsonl.
PRIOR_WEIGHT = 120.0
SHORT_ANSWER_MAX_SHARE = 0.7  # a "short answer" nearly as long as its sentence adds nothing
SHORT_ANSWER_MAX_WORDS = 6
ANSWER_TYPE_WEIGHT = 0.03

# What a question asks for, and what a sentence holding such an answer contains.
_ASKS = {
    "number": re.compile(r"\bhow (many|much|long|old|far|big|large)\b|\bwhat (number|percentage|share)\b|"
                         r"(^|\s)(كم|بكم|عدد|مقدار|نسبة|قيمة|مبلغ)(\s|$)", re.IGNORECASE),
    "time": re.compile(r"\bwhen\b|\bwhat (time|date|day|year|month)\b|(^|\s)(متى|ومتى|موعد|تاريخ)(\s|$)",
                       re.IGNORECASE),
}
_HOLDS = {
    "number": re.compile(r"[0-9٠-٩]|\b(ألف|آلاف|مليون|ملايين|مليار|مئة|مائة|عشر\w*|ثلاث\w*|أربع\w*|خمس\w*|"
                         r"ست\w*|سبع\w*|ثماني\w*|تسع\w*|اثن\w*|نصف|ربع)\b"),
    "time": re.compile(r"[0-9٠-٩]|(يناير|فبراير|مارس|أبريل|ابريل|مايو|يونيو|يوليو|أغسطس|اغسطس|سبتمبر|أكتوبر|"
                       r"نوفمبر|ديسمبر|محرم|صفر|ربيع|جمادى|رجب|شعبان|رمضان|شوال|القعدة|الحجة|السبت|الأحد|"
                       r"الاثنين|الإثنين|الثلاثاء|الأربعاء|الخميس|الجمعة|أمس|اليوم|غدا|الساعة|صباح|مساء|فجر|عام|"
                       r"العام|الأسبوع|الشهر)"),
}

# Kinds of answer whose presence a sentence shows plainly: a question asking for an amount of money is
# answered only by a sentence that names a currency (or a number right after a money word), a question
# asking for a percentage only by one that holds a percentage. Without such a sentence among the ones read,
# the articles do not say, however on-topic they are: the near miss the reader's score cannot tell from an
# answer ("how much did it cost?" over "it was funded with sums of money"). In Arabic the money word must
# follow the question word closely ("كم مرة ... دفع ثمن" asks how many times; dev XQuAD). Measured in
# eval/README.md (bench/answer_kinds.py).
_MONEY_WORDS = (r"(سعر|أسعار|اسعار|تكلف|تكاليف|كلفة|رسوم|تعويض|مبلغ|مبالغ|قيمة|قيمت|راتب|رواتب|أجر|ميزاني|"
                r"غرامة|غرامات|ثمن|تمويل)")
_CURRENCY = (r"ريال|دولار|يورو|جنيه|درهم|دراهم|دينار|دنانير|يوان|روبي|ليرة|ليرات|فرنك|استرليني|إسترليني|"
             r"[$€£¥]|\b(SAR|SR|USD|EUR|riyals?|dollars?|euros?|pounds?|yuan)\b")
_PERCENT = r"[%٪]|بالمئة|بالمائة|في المئة|في المائة"
_NUMBER = r"([0-9٠-٩]|ألف|آلاف|مليون|ملايين|مليار|مليارات)"
CHECKED_KINDS = {
    "money": (
        re.compile(r"\bhow much\b.*\b(money|cost(s|ing)?|pa(y|ys|id|ying)|receiv(e|es|ed|ing)|spen(d|ds|t|ding)|"
                   r"earn(s|ed|ing)?|rais(e|es|ed|ing)|worth|charg(e|es|ed|ing)|allocated|fined?)\b|"
                   r"\b(what|which|how much)\b.*\b(price|prices|cost|fee|fees|salary|salaries|wages?|compensation|"
                   r"budget|fine|prize money)\b|"
                   r"(^|\s)بكم\s|(^|\s)و?كم\s+(\S+\s+){0,2}?(ال|بال|وال|ب|و|ل)?(" + _MONEY_WORDS + r"|مالي)|"
                   r"(^|\s)(ما|وما|ماذا)\s+(هو\s+|هي\s+)?(ال|بال)?" + _MONEY_WORDS, re.IGNORECASE),
        re.compile(_CURRENCY + r"|" + _MONEY_WORDS + r"\w*\s+(\S+\s+){0,3}?\S*" + _NUMBER, re.IGNORECASE),
    ),
    "share": (
        re.compile(r"\bwhat (percentage|percent|proportion)\b|\bhow many percent\b|(^|\s)(كم|ما)\s+(هي\s+)?"
                   r"(نسبة|النسبة)", re.IGNORECASE),
        re.compile(_PERCENT + r"|\bpercent\b", re.IGNORECASE),
    ),
}

NO_ANSWER = {
    "ar": "لا تذكر المقالات المتاحة ما يجيب عن هذا السؤال.",
    "en": "The articles do not say.",
}


@dataclass
class Candidate:
    hit: Hit
    start: int  # offsets in the article
    end: int
    text: str
    score: float


def score_sentences(
    question: str,
    query_vector: np.ndarray,
    hits: list[Hit],
    embedder: Embedder,
    stored: dict[str, list[tuple[int, int, np.ndarray]]] | None = None,
) -> list[Candidate]:
    """Every sentence of every hit, scored, best first. `stored` holds the sentence vectors the index
    computed at ingest (see Store.sentence_vectors); sentences without one are embedded now."""
    stored = stored or {}
    candidates: list[Candidate] = []
    ranks: list[int] = []
    vectors: list[np.ndarray | None] = []
    for rank, hit in enumerate(hits):
        known = stored.get(hit.chunk_id)
        spans = [(s - hit.start, e - hit.start, v) for s, e, v in known] if known else [
            (s, e, None) for s, e in split_sentences(hit.text)
        ]
        for start, end, vector in spans:
            candidates.append(Candidate(hit, hit.start + start, hit.start + end, hit.text[start:end], 0.0))
            ranks.append(rank)
            vectors.append(vector)
    if not candidates:
        return []
    missing = [i for i, vector in enumerate(vectors) if vector is None]
    if missing:
        for i, vector in zip(missing, embedder.embed_passages([candidates[i].text for i in missing]), strict=True):
            vectors[i] = vector
    dense = np.stack(vectors) @ query_vector
    question_terms = set(search_terms(question))
    arabic_question = detect_language(question) == "ar"
    asks = [kind for kind, pattern in _ASKS.items() if pattern.search(question)]
    for candidate, similarity, rank in zip(candidates, dense, ranks, strict=True):
        overlap = 0.0
        if arabic_question and question_terms:
            overlap = len(question_terms & set(search_terms(candidate.text))) / len(question_terms)
        typed = any(_HOLDS[kind].search(candidate.text) for kind in asks)
        candidate.score = (
            float(similarity) + LEXICAL_WEIGHT * overlap + RANK_WEIGHT / (1 + rank) + ANSWER_TYPE_WEIGHT * typed
        )
    candidates.sort(key=lambda c: c.score, reverse=True)
    return candidates


def answer_extractively(
    question: str,
    query_vector: np.ndarray,
    hits: list[Hit],
    embedder: Embedder,
    language: str | None = None,
    threshold: float | None = None,
    stored: dict[str, list[tuple[int, int, np.ndarray]]] | None = None,
) -> Answer:
    language = language or detect_language(question)
    threshold = ABSTAIN_BELOW[language] if threshold is None else threshold
    candidates = score_sentences(question, query_vector, hits, embedder, stored)
    if not candidates or candidates[0].score < threshold:
        return Answer(NO_ANSWER[language], has_answer=False, language=language, mode="extractive", question=question)
    chosen = [candidates[0]]
    for candidate in candidates[1:]:
        if len(chosen) == MAX_QUOTES or candidate.score < candidates[0].score - SECOND_QUOTE_WITHIN:
            break
        if all(_distinct(candidate, other) for other in chosen):
            chosen.append(candidate)
    citations = [citation_for(n, c.hit, c.start, c.end, c.score) for n, c in enumerate(chosen, start=1)]
    return Answer(
        compose(language, citations), has_answer=True, language=language, mode="extractive",
        citations=citations, question=question,
    )


def answer_from_readings(
    question: str,
    language: str,
    hits: list[Hit],
    readings: list[PassageReading],
    reader: Reader,
    prior: list[Candidate] | None = None,
    support: float | None = None,
) -> Answer:
    """Quote the sentence(s) the reader ranks best over `hits` (readings[i] reads hits[i], both in the
    reranked order, each reading's `rerank` set), or decline when none reaches its threshold. `prior` is
    score_sentences() over the same hits: its score, weighted by PRIOR_WEIGHT, is added to the reader's.
    `support`: for a follow-up, the reader's best logit for the question with its context (whether the
    articles answer is judged with the context; which sentence answers, on the turn's own question)."""
    candidates, best = checked_candidates(question, hits, readings, prior, support)
    threshold = reader.threshold(language)
    if best is None or best < threshold:
        return Answer(NO_ANSWER[language], has_answer=False, language=language, mode="extractive", question=question)
    top_reranked, _, top = candidates[0]
    chosen = [top]
    for reranked, raw, candidate in candidates[1:]:
        if len(chosen) == MAX_QUOTES or reranked < top_reranked - READER_SECOND_QUOTE_WITHIN:
            break
        if raw >= min(threshold, top.score) and all(_distinct(candidate, other) for other in chosen):
            chosen.append(candidate)
    citations = [citation_for(n, c.hit, c.start, c.end, c.score) for n, c in enumerate(chosen, start=1)]
    reading = readings[hits.index(top.hit)]
    # The short answer leads only where its kind can be checked: a number or a date the question asks for
    # and the span holds. The span head's names and places were too often fragments to lead with.
    kind = asks_for_a_fact(question)
    short = short_answer(top, reading) if kind else ""
    if short and not _HOLDS[kind].search(short):
        short = ""
    return Answer(
        compose(language, citations, short), has_answer=True, language=language, mode="extractive",
        citations=citations, question=question, short_answer=short,
    )


def checked_candidates(
    question: str,
    hits: list[Hit],
    readings: list[PassageReading],
    prior: list[Candidate] | None = None,
    support: float | None = None,
) -> tuple[list[tuple[float, float, Candidate]], float | None]:
    """(rank_sentences() kept to the sentences holding the kind the question asks for, the score the
    abstention threshold is compared with: the best reader logit left, or a follow-up's `support` while
    some sentence is left), None when nothing is."""
    candidates = rank_sentences(hits, readings, prior)
    kind = checked_kind(question)
    if kind is not None:
        candidates = [c for c in candidates if holds_kind(kind, c[2].text)]
        support = support if candidates else None
    best = max([raw for _, raw, _ in candidates] + ([support] if support is not None else []), default=None)
    return candidates, best


def rank_sentences(
    hits: list[Hit], readings: list[PassageReading], prior: list[Candidate] | None = None
) -> list[tuple[float, float, Candidate]]:
    """Every sentence the reader read as (choice score, reader logit, candidate), best choice first."""
    known = {(c.hit.chunk_id, c.start): c.score for c in prior or []}
    floor = min(known.values(), default=0.0)
    candidates: list[tuple[float, float, Candidate]] = []  # (reranked, raw logit, candidate)
    for hit, reading in zip(hits, readings, strict=True):
        for (start, end), logit in zip(reading.sentences, reading.scores, strict=True):
            reranked = float(logit) - reading.best + reading.rerank
            reranked += PRIOR_WEIGHT * known.get((hit.chunk_id, hit.start + start), floor)
            candidates.append((reranked, float(logit), Candidate(hit, hit.start + start, hit.start + end,
                                                                 hit.text[start:end], float(logit))))
    candidates.sort(key=lambda c: c[0], reverse=True)
    return candidates


def asks_for_a_fact(question: str) -> str | None:
    """"number" or "time" when the question asks for one (how many / when / كم / متى ...), else None."""
    return next((kind for kind, pattern in _ASKS.items() if pattern.search(question)), None)


def checked_kind(question: str) -> str | None:
    """The CHECKED_KINDS kind the question asks for ("money", "share"), else None."""
    question = clean_for_matching(question)
    return next((kind for kind, (asks, _) in CHECKED_KINDS.items() if asks.search(question)), None)


def holds_kind(kind: str, text: str) -> bool:
    """`text` holds an answer of that kind (diacritics and digit forms aside)."""
    return bool(CHECKED_KINDS[kind][1].search(clean_for_matching(text)))


def short_answer(chosen: Candidate, reading: PassageReading) -> str:
    """The reader's answer span when it lies in the quoted sentence and is clearly shorter, widened to
    whole words (the model's tokens are word pieces)."""
    if reading.answer is None:
        return ""
    text, offset = chosen.hit.text, chosen.hit.start
    start, end = reading.answer
    if start < chosen.start - offset or end > chosen.end - offset or end <= start:
        return ""
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    start, end = _whole_amount(text, start, end, chosen.end - offset)
    span = text[start:end].strip(" \t\n،,.:;؛«»\"'()")
    if not span or len(span) > SHORT_ANSWER_MAX_SHARE * len(chosen.text) or len(span.split()) > SHORT_ANSWER_MAX_WORDS:
        return ""
    return span


_UNIT_AFTER = re.compile(r"\s+(" + _CURRENCY + r"|" + _PERCENT + r")\w*")
_MORE_OR_LESS = re.compile(r"(أكثر|اكثر|أقل|اقل)\s+$")


def _whole_amount(text: str, start: int, end: int, limit: int) -> tuple[int, int]:
    """An amount's span with the currency or percent word after it and the "more / less" before its من:
    the span head often stops at the number ("من 25 مليون" for "أكثر من 25 مليون يورو")."""
    after = _UNIT_AFTER.match(text, end)
    if after and after.end() <= limit:
        end = after.end()
    if text.startswith("من ", start) and (before := _MORE_OR_LESS.search(text, max(0, start - 8), start)):
        start = before.start()
    return start, end


def _distinct(a: Candidate, b: Candidate) -> bool:
    same_article = a.hit.article_id == b.hit.article_id
    return not (same_article and a.start < b.end and b.start < a.end) and a.text != b.text


def citation_for(n: int, hit: Hit, start: int, end: int, score: float) -> Citation:
    return Citation(
        n=n,
        article_id=hit.article_id,
        title=hit.title,
        quote=hit.text[start - hit.start : end - hit.start],
        start=start,
        end=end,
        sources=list(hit.sources),
        urls=list(hit.urls),
        date=hit.date,
        score=round(score, 4),
        passage=hit.text,
        passage_start=hit.start,
    )


def compose(language: str, citations: list[Citation], short: str = "") -> str:
    """The answer text: the quotes verbatim, each followed by its [n]. English gets a framing sentence,
    led by the short answer (Western digits) when there is one."""
    quotes = " ".join(f"«{c.quote}» [{c.n}]" for c in citations)
    if language == "ar":
        return quotes
    first = citations[0]
    papers = first.sources
    where = " and ".join([", ".join(papers[:-1]), papers[-1]] if len(papers) > 1 else papers) or "the article"
    when = f" ({first.date})" if first.date else ""
    lead = f"In short: {ascii_digits(short)} [1]. " if short else ""
    return f"{lead}According to {where}{when}, quoted in Arabic: {quotes}"
