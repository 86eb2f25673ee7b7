"""Metric functions, pure and unit-tested (tests/test_eval.py): tokens, spans, ranks, summaries."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from assistant.text import fold, words
from assistant.types import CITATION_MARKER

if TYPE_CHECKING:
    from .results import ItemResult

RETRIEVE_K = 10  # hits each question retrieves; retrieval ranks look at these
HIT_AT = (1, 3, 5, 10)
MIN_OVERLAP_CHARS = 15  # folded characters two spans must share (fewer when a span is shorter)
CORRECT_CONTAINMENT = 0.5  # share of gold tokens an answer must contain to count as correct


def answer_tokens(text: str) -> list[str]:
    """`words()` of an answer with its citation markers [n] removed (their digits are not content)."""
    return words(CITATION_MARKER.sub(" ", text))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 on `answer_tokens` (Arabic letters folded, digits unified)."""
    predicted, gold = answer_tokens(prediction), answer_tokens(reference)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def containment(prediction: str, reference: str) -> float:
    """Share of the reference's tokens (with multiplicity) that the prediction contains."""
    predicted, gold = Counter(answer_tokens(prediction)), Counter(answer_tokens(reference))
    total = sum(gold.values())
    return sum((predicted & gold).values()) / total if total else 0.0


def retrieval_rank(hit_article_ids: Sequence[Iterable[str]], gold: Iterable[str]) -> int | None:
    """1-based position of the first hit any of whose article ids is gold; None when none is."""
    wanted = set(gold)
    for position, ids in enumerate(hit_article_ids, start=1):
        if wanted & set(ids):
            return position
    return None


def hit_at(ranks: Sequence[int | None], k: int) -> float | None:
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else None


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float | None:
    return sum(1 / r for r in ranks if r) / len(ranks) if ranks else None


def _span_text(text: str) -> str:
    return " ".join(fold(unicodedata.normalize("NFC", text)).split())


def _overlap_chars(a: str, b: str) -> int:
    """Characters shared by two spans of one text as intervals: containment, or a suffix of one that is a
    prefix of the other. (A phrase shared in the middle of two different sentences does not count.)"""
    if not a or not b:
        return 0
    if b in a:
        return len(b)
    if a in b:
        return len(a)
    for size in range(min(len(a), len(b)) - 1, 0, -1):
        if a.endswith(b[:size]) or b.endswith(a[:size]):
            return size
    return 0


def spans_overlap(quote: str, evidence: str) -> bool:
    """Whether a quoted span and an evidence span overlap in the article (compared on folded text)."""
    a, b = _span_text(quote), _span_text(evidence)
    need = min(MIN_OVERLAP_CHARS, len(a), len(b))
    return need > 0 and _overlap_chars(a, b) >= need


def citation_correct(article_id: str, quote: str, gold_ids: Iterable[str], evidence: Iterable[str]) -> bool:
    """A citation is correct when it cites a gold article and its quote overlaps a gold evidence span."""
    return article_id in set(gold_ids) and any(spans_overlap(quote, e) for e in evidence)


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(results: Sequence[ItemResult]) -> dict[str, Any]:
    """The metrics of one group of results (all, one language, one kind)."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    ranks = [r.rank for r in answerable]
    citations = [c for r in answerable for c in r.citations]
    metrics: dict[str, Any] = {
        "n": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
    }
    for k in HIT_AT:
        metrics[f"hit_at_{k}"] = hit_at(ranks, k)
    metrics["mrr"] = mean_reciprocal_rank(ranks)
    metrics["citations"] = len(citations)
    metrics["citation_precision"] = (
        sum(1 for c in citations if c["correct"]) / len(citations) if citations else None
    )
    metrics["citation_recall"] = _mean([1.0 if r.correct_citations else 0.0 for r in answerable])
    for name in ("answer_f1", "answer_containment", "evidence_f1", "evidence_containment"):
        metrics[name] = _mean([getattr(r, name) for r in answerable])
    metrics["answer_correct"] = _mean([1.0 if r.answer_correct else 0.0 for r in answerable])
    metrics["unanswerable_declined"] = _mean([0.0 if r.has_answer else 1.0 for r in unanswerable])
    metrics["answerable_declined"] = _mean([0.0 if r.has_answer else 1.0 for r in answerable])
    metrics["abstention_accuracy"] = _mean([1.0 if r.has_answer == r.answerable else 0.0 for r in results])
    judged = [r.judge for r in answerable if r.judge is not None]
    metrics["judge"] = _mean(judged)
    metrics.update(follow_up_metrics(results))
    asks = [r.ask_seconds for r in results]
    retrieves = [r.retrieve_seconds for r in results]
    metrics["ask_p50"], metrics["ask_p95"] = percentile(asks, 50), percentile(asks, 95)
    metrics["retrieve_p50"], metrics["retrieve_p95"] = percentile(retrieves, 50), percentile(retrieves, 95)
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in metrics.items()}


def follow_up_metrics(results: Sequence[ItemResult]) -> dict[str, Any]:
    """Answerable follow-ups asked in conversation against the same turns asked alone in their standalone
    form (only follow-ups that have one, so both columns count the same questions)."""
    paired = [r for r in results if r.follows and r.answerable and r.standalone_has_answer is not None]
    follow_ups = [r for r in results if r.follows]
    return {
        "follow_ups": len(paired),
        "follow_up_answer_correct": _mean([1.0 if r.answer_correct else 0.0 for r in paired]),
        "follow_up_citation_recall": _mean([1.0 if r.correct_citations else 0.0 for r in paired]),
        "follow_up_declined": _mean([0.0 if r.has_answer else 1.0 for r in paired]),
        "standalone_answer_correct": _mean([1.0 if r.standalone_answer_correct else 0.0 for r in paired]),
        "standalone_citation_recall": _mean([1.0 if r.standalone_cited else 0.0 for r in paired]),
        "standalone_declined": _mean([0.0 if r.standalone_has_answer else 1.0 for r in paired]),
        "follow_up_repeated": _mean([1.0 if r.repeats_previous else 0.0 for r in follow_ups]),
    }


def compute_metrics(results: Sequence[ItemResult]) -> dict[str, Any]:
    """{"overall": ..., "by_language": {"ar": ..., "en": ...}, "by_kind": {...}}."""
    def grouped(key: str) -> dict[str, Any]:
        names = sorted({getattr(r, key) for r in results})
        return {name: summarise([r for r in results if getattr(r, key) == name]) for name in names}

    return {"overall": summarise(results), "by_language": grouped("language"), "by_kind": grouped("kind")}


