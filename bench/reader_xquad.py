"""The reader against the bi-encoder answerer it replaced, on XQuAD articles it never saw (same run).

    python bench/reader_xquad.py [--data-dir isnad-data] [--split test]

Questions: those of the XQuAD articles eval/train_reader.py holds out (12 of 48 articles, seeded; `--split
dev` for the 6 it tuned its threshold on), in Arabic and in English, over the index of all 240 Arabic
paragraphs that `isnad eval-xquad` builds (built here when missing). For each question, on the same query
vector and the same retrieved passages, both systems give:

- hit@1: the first passage is from the gold paragraph (retrieval order, then the reader's reranking);
- sentence top-1: the best-scored sentence is in the gold paragraph and holds the answer text (the
  bi-encoder's score, then the reader's), before any abstention;
- answered: the answerer did not decline (every question here is answerable);
- latency of `ask`: p50 / p95 of the whole extractive answer, reader on and off.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from isnad_eval import build_xquad_index
from isnad_eval.train_reader import SEED, SPLITS, split_articles
from shared_data import XQUAD

from assistant import Assistant
from assistant.extractive import rank_sentences, score_sentences
from assistant.settings import Settings
from assistant.text import fold


def held_out(path: Path, split: str) -> tuple[set[str], dict[str, str]]:
    """The paragraph ids ("xquad-<n>") of the articles in `split`, and each question id's answer text."""
    data = json.loads((path / "xquad.ar.json").read_text(encoding="utf-8"))["data"]
    splits = split_articles(len(data), SPLITS["xquad"], random.Random(SEED))  # the first draw, as training
    paragraphs, answers, n = set(), {}, 0
    for a, topic in enumerate(data):
        for paragraph in topic["paragraphs"]:
            if splits[a] == split:
                paragraphs.add(f"xquad-{n}")
            for qa in paragraph["qas"]:
                answers[qa["id"]] = qa["answers"][0]["text"]
            n += 1
    return paragraphs, answers


def holds(citation_text: str, article_id: str, gold: str, answer: str) -> bool:
    return article_id == gold and fold(answer) in fold(citation_text)


def held_out_questions(description: str, more_options=None):
    """(args, settings, questions, answers) of a benchmark over the held-out XQuAD articles: its command
    line (--data-dir, --path, --split, and what `more_options(parser)` adds), the XQuAD index (built when
    missing) and the split's questions."""
    parser = argparse.ArgumentParser(description=description)
    if more_options is not None:
        more_options(parser)
    parser.add_argument("--data-dir", type=Path, default=Path("isnad-data"))
    parser.add_argument("--path", type=Path, default=XQUAD)
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    args = parser.parse_args()
    settings = Settings.load(data_dir=args.data_dir / "xquad")
    questions = build_xquad_index(settings, args.path)
    paragraphs, answers = held_out(args.path, args.split)
    return args, settings, [q for q in questions if q.article_id in paragraphs], answers


def main() -> None:
    args, settings, questions, answers = held_out_questions(__doc__.splitlines()[0])
    with_reader = Assistant(settings)
    without = Assistant(settings, reader=False)
    embedder, k = with_reader.embedder, settings.k
    counts: dict[tuple[str, str], list[float]] = {}

    def add(language: str, name: str, value: float) -> None:
        counts.setdefault((language, name), []).append(float(value))

    for number, q in enumerate(questions, start=1):
        vector = embedder.embed_query(q.question)
        hits = with_reader.retriever.retrieve(q.question, k, query_vector=vector)
        answer = answers[q.id]
        add(q.language, "hit1 before", bool(hits) and hits[0].article_id == q.article_id)
        stored = with_reader.store.sentence_vectors([h.chunk_id for h in hits])
        best = score_sentences(q.question, vector, hits, embedder, stored)
        add(q.language, "sentence before",
            bool(best) and holds(best[0].text, best[0].hit.article_id, q.article_id, answer))
        reranked, readings, stored = with_reader._read(q.question, vector, hits)
        add(q.language, "hit1 after", bool(reranked) and reranked[0].article_id == q.article_id)
        if readings:
            # The answerer's choice: the reader's scores blended with the bi-encoder's, before abstention.
            read = reranked[: len(readings)]
            prior = score_sentences(q.question, vector, read, embedder, stored)
            _, _, top = rank_sentences(read, readings, prior)[0]
            add(q.language, "sentence after", holds(top.text, top.hit.article_id, q.article_id, answer))
        for name, assistant in (("before", without), ("after", with_reader)):
            clock = time.perf_counter()
            result = assistant.ask(q.question)
            add(q.language, f"ms {name}", 1000 * (time.perf_counter() - clock))
            add(q.language, f"answered {name}", result.has_answer)
        if number % 100 == 0:
            print(f"  {number}/{len(questions)}", flush=True)

    print(f"\nXQuAD {args.split} articles (held out from training), {len(questions)} questions, k={k}")
    print(f"{'':8}{'hit@1':>18}{'sentence top-1':>22}{'answered':>18}{'ask p50 / p95 ms':>30}")
    for language in ("ar", "en"):
        def mean(name: str, language: str = language) -> float:
            return float(np.mean(counts[(language, name)]))

        def pct(name: str, p: int, language: str = language) -> float:
            return float(np.percentile(counts[(language, name)], p))

        n = len(counts[(language, "hit1 before")])
        print(f"{language} ({n:>3}) {mean('hit1 before'):.3f} -> {mean('hit1 after'):.3f}"
              f"      {mean('sentence before'):.3f} -> {mean('sentence after'):.3f}"
              f"      {mean('answered before'):.3f} -> {mean('answered after'):.3f}"
              f"   {pct('ms before', 50):.0f}/{pct('ms before', 95):.0f} -> {pct('ms after', 50):.0f}/"
              f"{pct('ms after', 95):.0f} (x{pct('ms after', 50) / pct('ms before', 50):.1f})")


if __name__ == "__main__":
    main()
