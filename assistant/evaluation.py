"""The eval suite: ask every question of `eval/qa.jsonl`, score retrieval, citations, answers and abstention
separately, write reports, and fail below the thresholds of `eval/thresholds.toml`.

    isnad eval --sample                 # build the sample index, run the extractive eval, check thresholds
    isnad eval-xquad --limit 200        # cross-lingual retrieval on XQuAD's 240 Arabic paragraphs

What is measured (see eval/README.md for the exact rules and the current numbers):
- retrieval: the 1-based position of the first of the top-10 hits whose article ids meet the gold ones
  (hit@1/3/5/10, MRR), answerable questions only; follow-ups are retrieved with their standalone question;
- citations: a citation is correct when its article is a gold article and its quote overlaps a gold
  evidence span (compared after `fold()`); precision over all citations of answerable questions, recall =
  answerable questions with at least one correct citation;
- follow-ups: each turn of a conversation is asked with the whole conversation before it; a follow-up that
  has a `standalone` form is also asked alone in that form, with no history, and both are scored against
  the same gold (`follow_up_*` in conversation, `standalone_*` alone), so what the conversation costs is
  visible; `follow_up_repeated` = follow-ups whose answer is the answer given to the turn before;
- answers: token F1 and containment on `words()` tokens (folded letters, unified digits) against the gold
  answer, and against the Arabic evidence, because the extractive answer to an English question quotes
  Arabic; `answer_correct` = either containment is at least one half;
- abstention: unanswerable questions declined, answerable questions wrongly declined;
- latency: p50/p95 of `ask` and `retrieve`, wall-clock seconds.

Like the CLI, this module is an adapter over both `assistant` and `ingest`: it imports `ingest` lazily.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputError
from .text import fold, words
from .types import CITATION_MARKER

CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_QA = CHECKOUT / "eval" / "qa.jsonl"
DEFAULT_THRESHOLDS = CHECKOUT / "eval" / "thresholds.toml"
DEFAULT_XQUAD = CHECKOUT.parent / "shared" / "data" / "xquad"
RETRIEVE_K = 10
HIT_AT = (1, 3, 5, 10)
MIN_OVERLAP_CHARS = 15  # folded characters two spans must share (fewer when a span is shorter)
CORRECT_CONTAINMENT = 0.5  # share of gold tokens an answer must contain to count as correct
JUDGE_GRADES = {"CORRECT": 1.0, "PARTIAL": 0.5, "WRONG": 0.0}

__all__ = [
    "EvalResult",
    "ItemResult",
    "QAItem",
    "check_thresholds",
    "citation_correct",
    "compute_metrics",
    "load_qa",
    "load_thresholds",
    "main_eval",
    "main_xquad",
    "run_eval",
    "run_xquad",
    "write_reports",
]


# --- the Q&A set ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QAItem:
    id: str
    language: str
    kind: str
    question: str
    answer: str
    answerable: bool
    article_ids: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    follows: str | None = None
    standalone: str | None = None  # a follow-up rewritten to stand alone (optional; for checking condensation)


def load_qa(path: str | Path = DEFAULT_QA) -> list[QAItem]:
    """The items of a Q&A JSONL file (format: eval/QA.md), in file order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"Q&A file not found: {path} (the bundled set is {DEFAULT_QA})") from None
    items: list[QAItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            item = QAItem(
                id=str(raw["id"]),
                language=raw["language"],
                kind=raw["kind"],
                question=raw["question"],
                answer=raw["answer"],
                answerable=bool(raw["answerable"]),
                article_ids=tuple(raw.get("article_ids") or ()),
                evidence=tuple(raw.get("evidence") or ()),
                follows=raw.get("follows") or None,
                standalone=raw.get("standalone") or None,
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number}: not a Q&A item ({type(exc).__name__}: {exc})") from None
        if item.language not in ("ar", "en"):
            raise InputError(f"{path}:{number}: language must be 'ar' or 'en', got {item.language!r}")
        if item.follows and item.follows not in seen:
            raise InputError(f"{path}:{number}: follows {item.follows!r}, which is not an earlier item")
        if item.standalone is not None and not isinstance(item.standalone, str):
            raise InputError(f"{path}:{number}: standalone must be a string or null, got {item.standalone!r}")
        if item.answerable and not item.article_ids:
            raise InputError(f"{path}:{number}: answerable item {item.id} lists no article_ids")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise InputError(f"Q&A file {path} holds no items")
    return items


# --- metric functions (pure; unit-tested in tests/test_eval.py) -----------------------------------


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


# --- running ----------------------------------------------------------------------------------------


@dataclass
class ItemResult:
    """What one question got, and its scores."""

    id: str
    language: str
    kind: str
    question: str
    answerable: bool
    gold_answer: str
    answer: str
    has_answer: bool
    standalone_question: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)  # n, article_id, quote, score, correct
    retrieved: list[list[str]] = field(default_factory=list)  # article ids of each of the top-10 hits
    rank: int | None = None
    answer_f1: float = 0.0
    answer_containment: float = 0.0
    evidence_f1: float = 0.0
    evidence_containment: float = 0.0
    answer_correct: bool = False
    judge: float | None = None
    judge_reply: str = ""
    ask_seconds: float = 0.0
    retrieve_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notice: str = ""
    follows: str | None = None
    # A follow-up asked alone in its gold standalone form (None when not asked: no standalone form).
    standalone_form: str = ""
    standalone_answer: str = ""
    standalone_has_answer: bool | None = None
    standalone_answer_correct: bool | None = None
    standalone_cited: bool | None = None  # at least one correct citation
    repeats_previous: bool = False  # answered with the very answer of the turn it follows

    @property
    def correct_citations(self) -> int:
        return sum(1 for c in self.citations if c["correct"])


@dataclass
class EvalResult:
    mode: str
    items: list[ItemResult]
    metrics: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)  # when, index, embedder, Q&A file
    failures: list[str] = field(default_factory=list)  # threshold failures, filled by main_eval

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "info": self.info,
            "metrics": self.metrics,
            "threshold_failures": self.failures,
            "items": [asdict(item) for item in self.items],
        }


def history_for(item: QAItem, asked: dict[str, tuple[QAItem, str]]) -> list[dict[str, str]]:
    """A follow-up's history: the whole conversation before it, oldest first (the turn it follows, the one
    that turn follows, ... back to the conversation's first question), each question with the answer the
    system gave to it."""
    turns: list[dict[str, str]] = []
    seen: set[str] = set()
    previous_id = item.follows
    while previous_id and previous_id in asked and previous_id not in seen:
        seen.add(previous_id)
        previous, answer_text = asked[previous_id]
        turns[:0] = [{"role": "user", "content": previous.question}, {"role": "assistant", "content": answer_text}]
        previous_id = previous.follows
    return turns


def score_item(item: QAItem, answer, hits_ids: list[list[str]]) -> ItemResult:
    """Score one answer (an `Answer`) and its retrieval against the gold item."""
    text = answer.text if answer.has_answer else ""
    citations = [
        {
            "n": c.n,
            "article_id": c.article_id,
            "quote": c.quote,
            "start": c.start,
            "end": c.end,
            "score": c.score,
            "correct": item.answerable and citation_correct(c.article_id, c.quote, item.article_ids, item.evidence),
        }
        for c in answer.citations
    ]
    result = ItemResult(
        id=item.id,
        language=item.language,
        kind=item.kind,
        question=item.question,
        answerable=item.answerable,
        gold_answer=item.answer,
        answer=answer.text,
        has_answer=answer.has_answer,
        standalone_question=answer.standalone_question,
        citations=citations,
        retrieved=hits_ids,
        rank=retrieval_rank(hits_ids, item.article_ids) if item.answerable else None,
        timings=dict(answer.timings),
        notice=answer.notice,
        follows=item.follows,
    )
    if item.answerable and text:
        result.answer_f1 = token_f1(text, item.answer)
        result.answer_containment = containment(text, item.answer)
        if item.evidence:
            result.evidence_f1 = max(token_f1(text, e) for e in item.evidence)
            result.evidence_containment = max(containment(text, e) for e in item.evidence)
        result.answer_correct = max(result.answer_containment, result.evidence_containment) >= CORRECT_CONTAINMENT
    return result


def run_eval(
    assistant,
    items: Sequence[QAItem],
    mode: str = "extractive",
    judge: bool = False,
    progress: Callable[[int, int, ItemResult], None] | None = None,
) -> EvalResult:
    """Ask every question (follow-ups with their history), retrieve the top 10, score everything."""
    if mode == "llm" and not assistant.settings.llm_configured:
        raise ConfigError("--mode llm needs an LLM endpoint: set ISNAD_LLM_BASE_URL (and ISNAD_LLM_MODEL)")
    asked: dict[str, tuple[QAItem, str]] = {}
    results: list[ItemResult] = []
    for number, item in enumerate(items, start=1):
        clock = time.perf_counter()
        answer = assistant.ask(item.question, history=history_for(item, asked) or None, mode=mode)
        ask_seconds = time.perf_counter() - clock
        clock = time.perf_counter()
        hits = assistant.retrieve(answer.standalone_question or item.question, k=RETRIEVE_K)
        retrieve_seconds = time.perf_counter() - clock
        result = score_item(item, answer, [list(h.article_ids or [h.article_id]) for h in hits])
        result.ask_seconds, result.retrieve_seconds = round(ask_seconds, 4), round(retrieve_seconds, 4)
        if item.follows and item.follows in asked:
            result.repeats_previous = answer.has_answer and answer.text == asked[item.follows][1]
        asked[item.id] = (item, answer.text)
        if item.follows and item.standalone:
            score_standalone(result, item, assistant.ask(item.standalone, mode=mode))
        if judge and item.answerable:
            result.judge, result.judge_reply = judge_answer(assistant.settings, item, answer)
        results.append(result)
        if progress:
            progress(number, len(items), result)
    return EvalResult(mode, results, compute_metrics(results), info=_run_info(assistant, mode))


def score_standalone(result: ItemResult, item: QAItem, answer) -> None:
    """Record on a follow-up's result what the same turn got when asked alone in its standalone form."""
    alone = score_item(item, answer, [])
    result.standalone_form = item.standalone or ""
    result.standalone_answer = answer.text
    result.standalone_has_answer = answer.has_answer
    result.standalone_answer_correct = alone.answer_correct
    result.standalone_cited = bool(alone.correct_citations)


def judge_answer(settings, item: QAItem, answer) -> tuple[float | None, str]:
    """Grade with the LLM (prompts/judge.txt): CORRECT 1, PARTIAL 0.5, WRONG 0; None when it fails."""
    if not answer.has_answer:
        return 0.0, "(declined)"
    from .errors import LLMError
    from .generative import complete
    from .templates import render

    prompt = render("judge", question=item.question, reference=item.answer, answer=answer.text)
    try:
        reply = complete(settings, [("user", prompt)]).strip()
    except LLMError as exc:
        return None, f"(judge failed: {exc})"
    grade = next((g for g in JUDGE_GRADES if g in reply.upper()[:40]), None)
    return (JUDGE_GRADES[grade] if grade else None), reply[:200]


def _run_info(assistant, mode: str) -> dict[str, Any]:
    settings = assistant.settings
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "data_dir": str(settings.data_dir),
        "chroma_url": settings.chroma_url,
        "collection": settings.collection,
        "k": settings.k,
        "embedder": assistant.embedder.fingerprint,
        "llm_model": settings.llm_model if mode == "llm" else "",
    }


# --- metrics ----------------------------------------------------------------------------------------


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


# --- thresholds -------------------------------------------------------------------------------------


def load_thresholds(path: str | Path = DEFAULT_THRESHOLDS, mode: str = "extractive") -> dict[str, Any]:
    """The thresholds table of one mode from a TOML file (format: eval/thresholds.toml)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"thresholds file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"thresholds file {path} is not valid TOML: {exc}") from None
    if mode not in data:
        raise ConfigError(f"thresholds file {path} has no [{mode}] table (it has: {', '.join(data) or 'none'})")
    return data[mode]


def check_thresholds(metrics: dict[str, Any], thresholds: dict[str, Any]) -> list[str]:
    """Every threshold the metrics miss, as readable lines; [] when all pass.

    Keys are `min_<metric>` / `max_<metric>` on the overall metrics; sub-tables `language.<ar|en>` and
    `kind.<kind>` hold the same keys for one group. A metric that was not measured fails its threshold.
    """
    failures: list[str] = []

    def check(group: dict[str, Any] | None, table: dict[str, Any], where: str) -> None:
        for key, limit in table.items():
            if isinstance(limit, dict):
                if where != "overall" or key not in ("language", "kind"):
                    raise ConfigError(f"thresholds: unexpected table {key!r} under {where}")
                for name, sub in limit.items():
                    check(metrics[f"by_{key}"].get(name), sub, f"{key} {name}")
                continue
            bound, _, metric = key.partition("_")
            if bound not in ("min", "max") or not metric:
                raise ConfigError(f"thresholds: key {key!r} must be min_<metric> or max_<metric>")
            if group is None:
                failures.append(f"{where}: no questions in this group, so {metric} was not measured")
                continue
            if metric not in group:
                raise ConfigError(f"thresholds: unknown metric {metric!r} (known: {', '.join(sorted(group))})")
            value = group[metric]
            if value is None:
                failures.append(f"{where}: {metric} was not measured (threshold {bound} {limit})")
            elif bound == "min" and value < limit:
                failures.append(f"{where}: {metric} = {value:.3f} is below the minimum {limit}")
            elif bound == "max" and value > limit:
                failures.append(f"{where}: {metric} = {value:.3f} is above the maximum {limit}")

    check(metrics["overall"], thresholds, "overall")
    return failures


# --- reports ----------------------------------------------------------------------------------------

SUMMARY_METRICS = (
    ("hit_at_1", "hit@1"),
    ("hit_at_5", "hit@5"),
    ("hit_at_10", "hit@10"),
    ("mrr", "MRR"),
    ("citation_precision", "citation P"),
    ("citation_recall", "citation R"),
    ("answer_correct", "answer correct"),
    ("answer_f1", "answer F1"),
    ("evidence_containment", "evidence contained"),
    ("unanswerable_declined", "unanswerable declined"),
    ("answerable_declined", "answerable declined"),
    ("abstention_accuracy", "abstention accuracy"),
    ("judge", "LLM judge"),
    ("follow_up_answer_correct", "follow-up correct"),
    ("standalone_answer_correct", "same alone: correct"),
    ("follow_up_citation_recall", "follow-up citation R"),
    ("standalone_citation_recall", "same alone: citation R"),
    ("follow_up_declined", "follow-up declined"),
    ("standalone_declined", "same alone: declined"),
    ("follow_up_repeated", "follow-up repeats turn"),
    ("ask_p50", "ask p50 s"),
    ("ask_p95", "ask p95 s"),
    ("retrieve_p50", "retrieve p50 s"),
    ("retrieve_p95", "retrieve p95 s"),
)
GROUP_COLUMNS = (
    ("n", "n"),
    ("hit_at_1", "hit@1"),
    ("hit_at_5", "hit@5"),
    ("mrr", "MRR"),
    ("citation_precision", "cit P"),
    ("citation_recall", "cit R"),
    ("answer_correct", "correct"),
    ("answer_f1", "F1"),
    ("evidence_containment", "evid"),
    ("unanswerable_declined", "unans decl"),
    ("answerable_declined", "ans decl"),
)
CHART_METRICS = (
    ("hit_at_5", "hit@5"),
    ("mrr", "MRR"),
    ("citation_precision", "citation precision"),
    ("citation_recall", "citation recall"),
    ("answer_correct", "answer correct"),
    ("abstention_accuracy", "abstention accuracy"),
)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _delta(value: Any, before: Any) -> str:
    if not isinstance(value, (int, float)) or not isinstance(before, (int, float)):
        return ""
    difference = value - before
    return f"{difference:+.3f}" if abs(difference) >= 0.0005 else "="


def summary_table(metrics: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """Plain-text table of the overall and per-language metrics (what the command prints)."""
    languages = sorted(metrics["by_language"])
    header = ["metric", "all", *languages] + (["previous all"] if previous else [])
    rows = [header]
    for key, label in SUMMARY_METRICS:
        row = [label, _fmt(metrics["overall"].get(key))]
        row += [_fmt(metrics["by_language"][name].get(key)) for name in languages]
        if previous:
            row.append(_fmt(previous.get("overall", {}).get(key)))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def failures_of(result: EvalResult) -> list[tuple[ItemResult, str]]:
    """Items that went wrong, each with what went wrong."""
    found = []
    for item in result.items:
        problems = []
        if item.answerable:
            if item.rank is None:
                problems.append(f"gold article not in the top {RETRIEVE_K} passages")
            elif item.rank > 5:
                problems.append(f"gold article only at rank {item.rank}")
            if not item.has_answer:
                problems.append("wrongly declined")
            elif not item.correct_citations:
                problems.append("no correct citation")
            elif not item.answer_correct:
                problems.append("answer does not contain the gold answer")
            if item.follows and item.standalone_answer_correct and not item.answer_correct:
                problems.append("answered correctly when asked alone, not in the conversation")
        elif item.has_answer:
            problems.append("answered an unanswerable question")
        if item.repeats_previous:
            problems.append("repeats the answer to the turn before")
        if problems:
            found.append((item, "; ".join(problems)))
    return found


def render_report(result: EvalResult, previous: dict[str, Any] | None, thresholds: dict[str, Any] | None) -> str:
    metrics = result.metrics
    info = result.info
    lines = [
        f"# Isnad eval: {result.mode} mode",
        "",
        f"{info.get('when', '')} · {metrics['overall']['n']} questions "
        f"({metrics['overall']['answerable']} answerable, {metrics['overall']['unanswerable']} unanswerable) · "
        f"index `{info.get('data_dir', '')}` collection `{info.get('collection', '')}` · "
        f"embedder `{info.get('embedder', '')}` · k={info.get('k', '')}",
        "",
    ]
    if result.failures:
        lines += ["**Below thresholds:**", ""] + [f"- {f}" for f in result.failures] + [""]
    elif thresholds is not None:
        lines += ["All thresholds met.", ""]
    lines += ["## Summary", ""]
    before = (previous or {}).get("metrics", {}).get("overall", {})
    rows = []
    for key, label in SUMMARY_METRICS:
        value = metrics["overall"].get(key)
        limit = ""
        if thresholds:
            if f"min_{key}" in thresholds:
                limit = f"≥ {thresholds[f'min_{key}']}"
            elif f"max_{key}" in thresholds:
                limit = f"≤ {thresholds[f'max_{key}']}"
        rows.append([label, _fmt(value), _fmt(before.get(key)) if previous else "", _delta(value, before.get(key)),
                     limit])
    lines += _markdown_table(["metric", "value", "previous", "change", "threshold"], rows) + [""]
    for group, title in (("by_language", "By language"), ("by_kind", "By kind")):
        lines += [f"## {title}", ""]
        rows = [[name] + [_fmt(values.get(key)) for key, _ in GROUP_COLUMNS]
                for name, values in metrics[group].items()]
        lines += _markdown_table([group.removeprefix("by_")] + [label for _, label in GROUP_COLUMNS], rows) + [""]
    lines += follow_up_section(result)
    lines += ["## Charts", "", "![by language](by_language.png)", "", "![by kind](by_kind.png)", ""]
    failed = failures_of(result)
    lines += [f"## Failures ({len(failed)})", ""]
    for item, problem in failed:
        got = item.answer.replace("\n", " ")
        lines.append(f"- **{item.id}** ({item.language}, {item.kind}, rank {item.rank or '–'}): {problem}.  ")
        lines.append(f"  Q: {item.question}  ")
        lines.append(f"  Gold: {item.gold_answer}  ")
        lines.append(f"  Got: {got[:300]}{'…' if len(got) > 300 else ''}")
    lines += ["", "Metric definitions: eval/README.md."]
    return "\n".join(lines) + "\n"


FOLLOW_UP_ROWS = (
    ("answer correct", "follow_up_answer_correct", "standalone_answer_correct"),
    ("citation recall", "follow_up_citation_recall", "standalone_citation_recall"),
    ("declined", "follow_up_declined", "standalone_declined"),
)


def follow_up_section(result: EvalResult) -> list[str]:
    """Follow-ups in conversation next to the same turns asked alone, overall and by the follow-up's
    language, and the turns where the two differ."""
    metrics = result.metrics
    if not metrics["overall"].get("follow_ups"):
        return []
    groups = [("all", metrics["overall"])] + [(name, metrics["by_language"][name])
                                              for name in sorted(metrics["by_language"])]
    header = ["metric"] + [f"{name}: in conversation / alone" for name, _ in groups]
    rows = [[label] + [f"{_fmt(g.get(key))} / {_fmt(g.get(alone))}" for _, g in groups]
            for label, key, alone in FOLLOW_UP_ROWS]
    rows.append(["repeats the turn before"] + [_fmt(g.get("follow_up_repeated")) for _, g in groups])
    rows.append(["follow-ups compared"] + [str(g.get("follow_ups") or 0) for _, g in groups])
    lines = ["## Follow-ups: in conversation vs asked alone", "",
             "Each answerable follow-up is asked after the conversation before it, and again alone in its gold "
             "standalone form; both are scored against the same gold.", ""]
    lines += _markdown_table(header, rows) + [""]
    differ = [r for r in result.items if r.follows and r.answerable and r.standalone_answer_correct is not None
              and r.answer_correct != r.standalone_answer_correct]
    if differ:
        lines += [f"Turns where the two differ ({len(differ)}):", ""]
        for r in differ:
            better = "alone" if r.standalone_answer_correct else "in conversation"
            lines.append(f"- **{r.id}** (follows {r.follows}) correct only {better}: {r.question}  ")
            lines.append(f"  searched as: {r.standalone_question}  ")
            lines.append(f"  alone: {r.standalone_form}")
        lines.append("")
    return lines


def write_charts(metrics: dict[str, Any], previous: dict[str, Any] | None, out: Path) -> list[Path]:
    """by_language.png and by_kind.png: key metrics per group, this run next to the previous one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = (previous or {}).get("metrics") or {}
    paths = []
    for group, title in (("by_language", "language"), ("by_kind", "kind")):
        names = list(metrics[group])
        figure, axes = plt.subplots(2, 3, figsize=(13, 6.5), constrained_layout=True)
        for axis, (key, label) in zip(axes.flat, CHART_METRICS, strict=True):
            now = [metrics[group][n].get(key) or 0.0 for n in names]
            positions = range(len(names))
            width = 0.4 if before else 0.7
            if before:
                then = [(before.get(group, {}).get(n) or {}).get(key) or 0.0 for n in names]
                axis.bar([p - width / 2 for p in positions], then, width, label="previous", color="#bbbbbb")
                axis.bar([p + width / 2 for p in positions], now, width, label="this run", color="#2a6f97")
            else:
                axis.bar(list(positions), now, width, label="this run", color="#2a6f97")
            axis.set_xticks(list(positions), names, rotation=30 if len(names) > 3 else 0)
            axis.set_ylim(0, 1.05)
            axis.set_title(label)
            axis.grid(axis="y", alpha=0.3)
        axes.flat[0].legend(loc="lower left", fontsize=8)
        figure.suptitle(f"Isnad eval by {title}")
        path = out / f"{group}.png"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        paths.append(path)
    return paths


def write_reports(result: EvalResult, out: str | Path, thresholds: dict[str, Any] | None = None) -> dict[str, Path]:
    """results.json, report.md and the charts into `out`; a results.json already there becomes
    previous.json and is what this run is compared with."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path, previous_path = out / "results.json", out / "previous.json"
    if results_path.is_file():
        shutil.copyfile(results_path, previous_path)
    previous = None
    if previous_path.is_file():
        try:
            previous = json.loads(previous_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = None
    results_path.write_text(json.dumps(result.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    report_path = out / "report.md"
    report_path.write_text(render_report(result, previous, thresholds), encoding="utf-8")
    charts = write_charts(result.metrics, previous, out)
    return {"results": results_path, "report": report_path, **{p.stem: p for p in charts}}


# --- commands ---------------------------------------------------------------------------------------


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML settings file (default: $ISNAD_CONFIG or ./isnad.toml)")
    parser.add_argument("--data-dir", type=Path, help="data directory of the index")
    parser.add_argument("--chroma-url", help="Chroma server URL; empty means the embedded store")
    parser.add_argument("--collection", help="collection name prefix")


def _settings(args, **overrides: Any):
    from .settings import Settings

    values = {"data_dir": args.data_dir, "chroma_url": args.chroma_url, "collection": args.collection}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.load(args.config, **values)


def build_sample_index(settings, log: Callable[[str], None] = print, embedder=None) -> None:
    """Ingest the bundled sample corpus into the index named by `settings` (embeds nothing when present):
    the same as `isnad ingest --sample`."""
    from ingest import SAMPLE_DIR, ingest

    log(f"building the sample index in {settings.data_dir} (collection {settings.collection}) ...")
    report = ingest([SAMPLE_DIR], settings, embedder=embedder)
    log(f"  {report.articles_total} articles, {report.chunks_total} passages ({report.seconds:.0f} s)")


def check_index_holds(assistant, items: Sequence[QAItem]) -> None:
    """Fail early, with the fix, when the index does not hold the articles the Q&A set is about."""
    present = {article_id for record in assistant.store.iter_records() for article_id in record.article_ids}
    gold = {article_id for item in items for article_id in item.article_ids}
    if gold and not gold & present:
        raise ConfigError(
            f"the index in {assistant.settings.data_dir} (collection {assistant.settings.collection}) holds none "
            "of the articles the Q&A set is about: run `isnad eval --sample` to build the sample index"
        )


def main_eval(argv: Sequence[str] | None = None) -> int:
    """`isnad eval`: run the Q&A set, write the reports, exit 1 when a threshold is missed."""
    parser = argparse.ArgumentParser(prog="isnad eval", description="Score Isnad on the bilingual Q&A set.")
    parser.add_argument("--qa", type=Path, default=DEFAULT_QA, help="Q&A JSONL file (default eval/qa.jsonl)")
    parser.add_argument("--mode", choices=["extractive", "llm"], default="extractive", help="answerer")
    parser.add_argument("--out", type=Path, help="report directory (default eval/runs/MODE)")
    parser.add_argument("--sample", action="store_true", help="ingest the bundled sample corpus first")
    parser.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS, help="thresholds TOML file")
    parser.add_argument("--judge", action=argparse.BooleanOptionalAction, default=None,
                        help="grade answers with the LLM (default: when an LLM endpoint is configured)")
    parser.add_argument("--limit", type=int, help="only the first N questions (thresholds are not checked)")
    _common_arguments(parser)
    args = parser.parse_args(argv)
    settings = _settings(args)
    out = args.out or CHECKOUT / "eval" / "runs" / args.mode
    items = load_qa(args.qa)
    if args.limit:
        items = items[: args.limit]
    thresholds = load_thresholds(args.thresholds, args.mode)
    if args.sample:
        build_sample_index(settings)
    from .core import Assistant

    assistant = Assistant(settings)
    check_index_holds(assistant, items)
    judge = settings.llm_configured if args.judge is None else args.judge
    if judge and not settings.llm_configured:
        raise ConfigError("--judge needs an LLM endpoint: set ISNAD_LLM_BASE_URL (and ISNAD_LLM_MODEL)")
    print(f"asking {len(items)} questions ({args.mode} mode{', LLM judge' if judge else ''}) ...", flush=True)
    result = run_eval(assistant, items, args.mode, judge=judge, progress=_print_progress)
    result.info["qa"] = str(args.qa)
    if args.limit:
        print(f"partial run ({len(items)} questions): thresholds not checked")
    else:
        result.failures = check_thresholds(result.metrics, thresholds)
    paths = write_reports(result, out, thresholds)
    previous = _read_json(out / "previous.json")
    print()
    print(summary_table(result.metrics, (previous or {}).get("metrics")))
    print(f"\nreport: {paths['report']}  results: {paths['results']}")
    if result.failures:
        print("\nbelow thresholds:", *result.failures, sep="\n  ")
        return 1
    return 0


def _print_progress(number: int, total: int, result: ItemResult) -> None:
    if number % 10 == 0 or number == total:
        print(f"  {number}/{total}", flush=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# --- XQuAD: cross-lingual retrieval over 240 Arabic paragraphs -------------------------------------


@dataclass(frozen=True)
class XQuADQuestion:
    id: str
    language: str
    question: str
    article_id: str  # "xquad-<n>", the paragraph that answers it


def load_xquad(path: str | Path = DEFAULT_XQUAD) -> tuple[list[dict[str, str]], list[XQuADQuestion]]:
    """The Arabic paragraphs as article records ({"url": "xquad-<n>", "title", "content"}) and the Arabic
    and English questions (parallel files: the same question ids in the same paragraphs)."""
    path = Path(path)
    try:
        arabic = json.loads((path / "xquad.ar.json").read_text(encoding="utf-8"))["data"]
        english = json.loads((path / "xquad.en.json").read_text(encoding="utf-8"))["data"]
    except FileNotFoundError as exc:
        raise InputError(
            f"XQuAD not found: {exc.filename} (pass --path DIR holding xquad.ar.json and xquad.en.json)"
        ) from None
    articles: list[dict[str, str]] = []
    questions: list[XQuADQuestion] = []
    paragraph_of: dict[str, str] = {}
    for topic in arabic:
        for paragraph in topic["paragraphs"]:
            article_id = f"xquad-{len(articles)}"
            articles.append({"url": article_id, "title": topic.get("title", ""), "content": paragraph["context"]})
            for qa in paragraph["qas"]:
                paragraph_of[qa["id"]] = article_id
                questions.append(XQuADQuestion(qa["id"], "ar", qa["question"], article_id))
    for topic in english:
        for paragraph in topic["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa["id"] in paragraph_of:
                    questions.append(XQuADQuestion(qa["id"], "en", qa["question"], paragraph_of[qa["id"]]))
    return articles, questions


def build_xquad_index(settings, path: str | Path = DEFAULT_XQUAD, log: Callable[[str], None] = print):
    """Ingest the 240 Arabic paragraphs (ids xquad-<n>) into the index named by `settings`; returns the
    questions. Re-running embeds nothing."""
    from ingest import ingest

    articles, questions = load_xquad(path)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    source = Path(settings.data_dir) / "xquad-ar-paragraphs.jsonl"
    lines = "\n".join(json.dumps(a, ensure_ascii=False) for a in articles) + "\n"
    if not source.is_file() or source.read_text(encoding="utf-8") != lines:
        source.write_text(lines, encoding="utf-8")
    log(f"indexing {len(articles)} XQuAD paragraphs into {settings.data_dir} (collection {settings.collection}) ...")
    report = ingest([source], settings)
    log(f"  {report.articles_total} articles, {report.chunks_total} passages ({report.seconds:.0f} s)")
    return questions


def article_ranking(article_ids: Iterable[str]) -> list[str]:
    """Distinct article ids in first-seen order (hits are passages; several may share an article)."""
    return list(dict.fromkeys(article_ids))


def run_xquad(
    assistant,
    questions: Sequence[XQuADQuestion],
    dense_baseline: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Paragraph-level hit@1/hit@5/MRR per question language for the project's retrieval and, measured on
    the same query vectors, plain dense search (one Chroma query, no BM25, no fusion)."""
    import numpy as np

    systems = ["isnad", "dense"] if dense_baseline else ["isnad"]
    ranks: dict[tuple[str, str], list[int | None]] = {}
    seconds: dict[str, list[float]] = {name: [] for name in systems}
    batch = 64
    for start in range(0, len(questions), batch):
        group = questions[start : start + batch]
        vectors = assistant.embedder.embed_queries([q.question for q in group])
        for question, vector in zip(group, vectors, strict=True):
            clock = time.perf_counter()
            hits = assistant.retriever.retrieve(question.question, k=20, query_vector=vector)
            seconds["isnad"].append(time.perf_counter() - clock)
            ranking = article_ranking(h.article_id for h in hits)
            ranks.setdefault(("isnad", question.language), []).append(
                retrieval_rank([[a] for a in ranking], [question.article_id])
            )
            if dense_baseline:
                clock = time.perf_counter()
                found = assistant.store.chunks.query(
                    query_embeddings=[np.asarray(vector)], n_results=min(30, assistant.store.chunks.count()),
                    include=["metadatas"],
                )
                seconds["dense"].append(time.perf_counter() - clock)
                ranking = article_ranking(m["article_id"] for m in found["metadatas"][0])
                ranks.setdefault(("dense", question.language), []).append(
                    retrieval_rank([[a] for a in ranking], [question.article_id])
                )
        if progress:
            progress(min(start + batch, len(questions)), len(questions))
    table: dict[str, Any] = {}
    for (system, language), found in sorted(ranks.items()):
        table.setdefault(system, {})[language] = {
            "n": len(found),
            "hit_at_1": round(hit_at(found, 1) or 0.0, 4),
            "hit_at_5": round(hit_at(found, 5) or 0.0, 4),
            "mrr": round(mean_reciprocal_rank(found) or 0.0, 4),
        }
    for system, values in seconds.items():
        table[system]["search_p50_ms"] = round(1000 * (percentile(values, 50) or 0.0), 2)
        table[system]["search_p95_ms"] = round(1000 * (percentile(values, 95) or 0.0), 2)
    return table


def xquad_table(table: dict[str, Any]) -> str:
    rows = [["system", "language", "n", "hit@1", "hit@5", "MRR", "search p50 ms"]]
    for system, values in table.items():
        for language in ("ar", "en"):
            if language in values:
                v = values[language]
                rows.append([system, language, str(v["n"]), f"{v['hit_at_1']:.3f}", f"{v['hit_at_5']:.3f}",
                             f"{v['mrr']:.3f}", f"{values['search_p50_ms']:.1f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def sample_questions(questions: Sequence[XQuADQuestion], limit: int | None) -> list[XQuADQuestion]:
    """The first `limit` questions of each language (all when None), Arabic and English in parallel."""
    if not limit:
        return list(questions)
    chosen: list[XQuADQuestion] = []
    for language in ("ar", "en"):
        chosen += [q for q in questions if q.language == language][:limit]
    return chosen


def main_xquad(argv: Sequence[str] | None = None) -> int:
    """`isnad eval-xquad`: hit@1/hit@5 of Arabic and English XQuAD questions over the Arabic paragraphs."""
    parser = argparse.ArgumentParser(
        prog="isnad eval-xquad", description="Cross-lingual retrieval on XQuAD's 240 Arabic paragraphs."
    )
    parser.add_argument("--path", type=Path, default=DEFAULT_XQUAD, help="folder with xquad.ar.json, xquad.en.json")
    parser.add_argument("--limit", type=int, help="only the first N questions of each language")
    parser.add_argument("--no-dense", action="store_true", help="skip the plain dense-search baseline")
    parser.add_argument("--out", type=Path, help="also write the table as JSON to this file")
    _common_arguments(parser)
    args = parser.parse_args(argv)
    # A separate index: never mix XQuAD paragraphs into the news index.
    settings = _settings(args)
    if args.data_dir is None:
        settings = settings.model_copy(update={"data_dir": Path(settings.data_dir) / "xquad"})
    if args.collection is None:
        settings = settings.model_copy(update={"collection": "xquad"})
    questions = sample_questions(build_xquad_index(settings, args.path), args.limit)
    from .core import Assistant

    assistant = Assistant(settings)
    print(f"retrieving for {len(questions)} questions ...", flush=True)
    table = run_xquad(assistant, questions, dense_baseline=not args.no_dense,
                      progress=lambda done, total: print(f"  {done}/{total}", flush=True) if done % 320 == 0 else None)
    print()
    print(xquad_table(table))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(table, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":  # python -m assistant.evaluation [eval arguments]
    from .errors import IsnadError

    try:
        sys.exit(main_eval(sys.argv[1:]))
    except IsnadError as exc:
        print(f"isnad eval: error: {exc}", file=sys.stderr)
        sys.exit(1)
