"""Running the Q&A set: ask every question (follow-ups with their conversation), score each, summarise."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from assistant.errors import ConfigError

from .dataset import QAItem
from .metrics import (
    CORRECT_CONTAINMENT,
    RETRIEVE_K,
    citation_correct,
    compute_metrics,
    containment,
    retrieval_rank,
    token_f1,
)
from .results import EvalResult, ItemResult

JUDGE_GRADES = {"CORRECT": 1.0, "PARTIAL": 0.5, "WRONG": 0.0}


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
    from assistant.errors import LLMError
    from assistant.generative import complete
    from assistant.templates import render

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


