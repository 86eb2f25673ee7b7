"""Stored sentence vectors against computing them when reading (issue 11), on the bundled sample, same run.

    python bench/sentence_vectors.py [--rounds 2]

Builds the sample index twice in temporary directories, with `sentence_vectors = true` (the default) and
`false` (what an ingest through embedding endpoints gives), then asks eval/qa.jsonl's questions without
follow-ups (extractive) of both, alternated, `--rounds` times. Prints each index's ingest time and size on
disk, ask p50 / p95 and their ratio, and how many answers differ (the design says none should).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from isnad_eval import DEFAULT_QA, load_qa, percentile

from assistant import Assistant
from assistant.embedder import load_embedder
from assistant.settings import Settings
from ingest import SAMPLE_DIR, ingest


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    questions = [item.question for item in load_qa(DEFAULT_QA) if not item.follows]
    embedder = load_embedder()
    with tempfile.TemporaryDirectory() as tmp:
        kinds = {"stored": True, "computed": False}
        assistants, built = {}, {}
        for name, stored in kinds.items():
            settings = Settings.load(data_dir=Path(tmp) / name, sentence_vectors=stored)
            report = ingest([SAMPLE_DIR], settings, embedder=embedder)
            built[name] = (report.seconds, disk_mb(Path(tmp) / name))
            assistants[name] = Assistant(settings)
            assistants[name].ask(questions[0])  # warm
        seconds: dict[str, list[float]] = {name: [] for name in kinds}
        answers: dict[str, list[str]] = {name: [] for name in kinds}
        for _ in range(args.rounds):
            for question in questions:
                for name, assistant in assistants.items():
                    clock = time.perf_counter()
                    answer = assistant.ask(question, mode="extractive")
                    seconds[name].append(time.perf_counter() - clock)
                    answers[name].append(answer.text)
    print(f"sample: {len(questions)} questions x {args.rounds} rounds, alternated")
    for name in kinds:
        ingest_s, size = built[name]
        p50, p95 = percentile(seconds[name], 50), percentile(seconds[name], 95)
        print(f"{name:9} ingest {ingest_s:6.1f} s  index {size:6.1f} MB  ask p50 {1000 * p50:5.0f} ms  "
              f"p95 {1000 * p95:5.0f} ms")
    ratio = percentile(seconds["computed"], 50) / percentile(seconds["stored"], 50)
    differ = sum(a != b for a, b in zip(answers["stored"], answers["computed"], strict=True))
    print(f"ask p50 computed / stored: {ratio:.2f}; answers that differ: {differ} of {len(answers['stored'])}")


if __name__ == "__main__":
    main()
