"""XQuAD: cross-lingual retrieval over its 240 Arabic paragraphs (Arabic and English questions)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import InputError

from .metrics import hit_at, mean_reciprocal_rank, percentile, retrieval_rank


@dataclass(frozen=True)
class XQuADQuestion:
    id: str
    language: str
    question: str
    article_id: str  # "xquad-<n>", the paragraph that answers it


def load_xquad(path: str | Path) -> tuple[list[dict[str, str]], list[XQuADQuestion]]:
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


def build_xquad_index(settings, path: str | Path, log: Callable[[str], None] = print):
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
                nearest = [chunk_id for chunk_id, _ in assistant.store.nearest_chunks(np.asarray(vector), 30)]
                seconds["dense"].append(time.perf_counter() - clock)
                chunks = assistant.store.get_chunks(nearest)
                ranking = article_ranking(chunks[c][1]["article_id"] for c in nearest if c in chunks)
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

