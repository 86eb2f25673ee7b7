"""Sentence choice of the extractive answerer on XQuAD: a held-out check of its scoring weights.

    python bench/select_xquad.py [--data-dir isnad-data] [--limit 400]

The Q&A set of eval/ has 44 answerable questions per language, too few to choose weights on without
fitting them to it. XQuAD has 1,190 questions per language over 240 Arabic paragraphs, each with its
answer span; a sentence is a correct choice when it lies in the gold paragraph and contains the answer
text. For every question the real pipeline runs up to the answer choice (hybrid retrieval of k passages,
sentence vectors stored at ingest) and each sentence's score components are kept (bench/calibrate.py
does the same on the Q&A set); then the weight grid is swept without re-embedding anything. The index is
the one `isnad eval-xquad` builds in DATA_DIR/xquad (built here when missing: a few minutes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BENCH = Path(__file__).resolve().parent

from calibrate import CURRENT, GRID, WEIGHTS, Question, Sentence, _scores
from isnad_eval import build_xquad_index
from shared_data import XQUAD

from assistant import Assistant
from assistant.settings import Settings
from assistant.text import fold


def answers_by_id(path: Path) -> dict[str, str]:
    """Question id -> answer text in the Arabic paragraph (the English questions share the ids)."""
    data = json.loads((path / "xquad.ar.json").read_text(encoding="utf-8"))["data"]
    return {qa["id"]: qa["answers"][0]["text"] for topic in data for p in topic["paragraphs"] for qa in p["qas"]}


def collect(assistant: Assistant, questions, answers: dict[str, str]) -> list[Question]:
    embedder, k = assistant.embedder, assistant.settings.k
    collected = []
    for number, item in enumerate(questions, start=1):
        vector = embedder.embed_query(item.question)
        hits = assistant.retriever.retrieve(item.question, k, query_vector=vector)
        stored = assistant.store.sentence_vectors([hit.chunk_id for hit in hits])
        dense = _scores(item.question, vector, hits, embedder, stored, {})
        parts = {name: _scores(item.question, vector, hits, embedder, stored, {name: 1.0}) for name in WEIGHTS}
        answer = fold(answers[item.id])
        sentences = [
            Sentence(similarity, {name: round(parts[name][key][0] - similarity, 6) for name in WEIGHTS},
                     article == item.article_id and answer in fold(text), text)
            for key, (similarity, text, article) in dense.items()
        ]
        collected.append(Question(item.id, item.language, "answerable", sentences))
        if number % 200 == 0:
            print(f"  {number}/{len(questions)}", flush=True)
    return collected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("isnad-data"))
    parser.add_argument("--path", type=Path, default=XQUAD, help="folder with xquad.ar.json, xquad.en.json")
    parser.add_argument("--limit", type=int, default=0, help="questions per language (0 = all 1,190)")
    args = parser.parse_args()

    settings = Settings.load(data_dir=args.data_dir / "xquad")
    questions = build_xquad_index(settings, args.path)
    if args.limit:
        by_language = {lang: [q for q in questions if q.language == lang] for lang in ("ar", "en")}
        questions = [q for group in by_language.values() for q in group[: args.limit]]
    assistant = Assistant(settings)
    clock = time.perf_counter()
    collected = collect(assistant, questions, answers_by_id(args.path))
    print(f"{len(collected)} questions scored in {time.perf_counter() - clock:.0f} s")

    languages = ("ar", "en")
    reachable = {lang: sum(any(s.correct for s in q.sentences) for q in collected if q.language == lang)
                 / max(1, sum(q.language == lang for q in collected)) for lang in languages}
    print("a correct sentence among the candidates: "
          + ", ".join(f"{lang} {reachable[lang]:.3f}" for lang in languages))
    print("top-1 sentence correct, per weight setting (current marked *):")
    print("  " + "".join(f"{name.split('_')[0].lower():>10}" for name in WEIGHTS) + "     top1 ar   top1 en")
    grid = [dict(zip(WEIGHTS, values, strict=True)) for values in itertools.product(*(GRID[n] for n in WEIGHTS))]
    for weights in grid:
        share = {}
        for lang in languages:
            mine = [q for q in collected if q.language == lang]
            share[lang] = sum(q.best(weights)[1] for q in mine) / max(1, len(mine))
        mark = "*" if weights == CURRENT else " "
        print(f"{mark} " + "".join(f"{weights[n]:>10.2f}" for n in WEIGHTS)
              + f"     {share['ar']:.3f}     {share['en']:.3f}")


if __name__ == "__main__":
    main()
