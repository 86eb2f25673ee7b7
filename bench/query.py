"""Query benchmark: latency of `retrieve` and `ask` over one SaudiNewsNet day, and XQuAD retrieval quality of
the project's hybrid retrieval against plain dense search, measured in the same run.

    python bench/query.py                               # both parts (first run ingests the day: 10-20 min)
    python bench/query.py --skip-latency --xquad-limit 300
    python bench/query.py --skip-xquad --questions 40

Latency: the index of one day (default ../shared/data/saudinewsnet/2015-08-01.zip, ~1,260 articles) is
built into --data-dir once and reused (ingest is incremental: a second run embeds nothing). The questions
are those of eval/qa.jsonl without follow-ups (Arabic and English in turn), so their shape is realistic;
whether this day answers them does not change the work done. Stages come from the timings the code
records: embed, search (Chroma + BM25), fusion (RRF + duplicate collapse), select (the extractive
answerer: split, embed and score the sentences of the k passages). `ask` does not time its question
embedding separately, so its embed is total minus the timed stages.

XQuAD: the 240 Arabic paragraphs are indexed as articles xquad-<n> in their own data directory; for the
Arabic and English versions of its 1,190 questions, hit@1/hit@5 is whether the paragraph that answers
it is the first / among the first five distinct paragraphs retrieved.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from isnad_eval import DEFAULT_QA, build_xquad_index, load_qa, percentile, run_xquad, xquad_table
from isnad_eval.xquad import sample_questions
from shared_data import XQUAD

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DEFAULT_DAY = SHARED / "saudinewsnet" / "2015-08-01.zip"

# docs/ENVIRONMENT.md, paragraph-level (one vector per whole paragraph, no chunking), for comparison.
REFERENCE = {
    "mE5-small dense (paragraph vectors)": {"ar": (0.861, 0.967), "en": (0.753, 0.947)},
    "RRF(BM25+stem, mE5) for Arabic, dense for English": {"ar": (0.883, 0.985), "en": (0.753, 0.947)},
}


def build_day_index(settings, day: Path) -> None:
    """Ingest one day's zip into the index named by `settings`, printing progress; reused when built."""
    from ingest import ingest

    last = [0.0]

    def progress(p) -> None:
        if p.phase == "done" or time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            eta = f", about {p.eta_seconds / 60:.0f} min left" if p.eta_seconds else ""
            print(f"  {p.phase}: {p.articles_done}/{p.articles_total} articles, {p.chunks_done} new passages, "
                  f"{p.seconds:.0f} s{eta}", flush=True)

    print(f"index of {day.name} in {settings.data_dir} (built once, then reused) ...", flush=True)
    report = ingest([day], settings, progress=progress)
    print(f"  {report.articles_total} articles ({report.duplicates} duplicates folded), {report.chunks_total} "
          f"passages; {report.articles_new} new this run, {report.seconds:.0f} s", flush=True)


def latency_questions(limit: int) -> list[str]:
    items = [item for item in load_qa(DEFAULT_QA) if not item.follows]
    arabic = [i.question for i in items if i.language == "ar"]
    english = [i.question for i in items if i.language == "en"]
    mixed = [q for pair in zip(arabic, english, strict=False) for q in pair]
    return mixed[:limit]


def measure_latency(assistant, questions: list[str]) -> dict:
    clock = time.perf_counter()
    assistant.retriever.lexical()  # the BM25 index is built on first use: timed apart
    lexical_build = time.perf_counter() - clock
    assistant.retrieve(questions[0])  # warm caches (model, Chroma segments)
    stages: dict[str, dict[str, list[float]]] = {"retrieve": {}, "ask": {}}
    k = assistant.settings.k
    for number, question in enumerate(questions, start=1):
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        assistant.retriever.retrieve(question, k, timings=timings)
        timings["total"] = time.perf_counter() - clock
        for name, value in timings.items():
            stages["retrieve"].setdefault(name, []).append(value)
        answer = assistant.ask(question, mode="extractive")
        timed = answer.timings
        asked = {name: timed.get(name, 0.0) for name in ("condense", "search", "fusion", "select", "total")}
        asked["embed"] = max(0.0, timed["total"] - sum(v for n, v in asked.items() if n != "total"))
        for name, value in asked.items():
            stages["ask"].setdefault(name, []).append(value)
        if number % 10 == 0:
            print(f"  {number}/{len(questions)}", flush=True)
    summary: dict = {"lexical_index_build_s": round(lexical_build, 3), "questions": len(questions)}
    for call, values in stages.items():
        summary[call] = {
            name: {"p50_ms": round(1000 * percentile(v, 50), 1), "p95_ms": round(1000 * percentile(v, 95), 1)}
            for name, v in values.items()
        }
    return summary


def latency_table(summary: dict) -> str:
    order = ["embed", "search", "fusion", "select", "total"]
    rows = [["stage", "retrieve p50 ms", "retrieve p95 ms", "ask p50 ms", "ask p95 ms"]]
    for stage in order:
        r, a = summary["retrieve"].get(stage), summary["ask"].get(stage)
        rows.append([
            stage,
            f"{r['p50_ms']:.1f}" if r else "–",
            f"{r['p95_ms']:.1f}" if r else "–",
            f"{a['p50_ms']:.1f}" if a else "–",
            f"{a['p95_ms']:.1f}" if a else "–",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(widths[i]) if i else cell.ljust(widths[i]) for i, cell in enumerate(row))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Isnad query benchmark (latency and XQuAD retrieval).")
    parser.add_argument("--data-dir", type=Path, default=Path("isnad-data/bench-saudinewsnet"),
                        help="index of the day (built on first run, reused after)")
    parser.add_argument("--day", type=Path, default=DEFAULT_DAY, help="a SaudiNewsNet daily zip")
    parser.add_argument("--questions", type=int, default=40, help="questions timed (from eval/qa.jsonl)")
    parser.add_argument("--xquad", type=Path, default=XQUAD, help="folder with xquad.ar.json/.en.json")
    parser.add_argument("--xquad-data-dir", type=Path, default=Path("isnad-data/xquad"))
    parser.add_argument("--xquad-limit", type=int, help="only the first N XQuAD questions per language")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-xquad", action="store_true")
    parser.add_argument("--json", type=Path, help="also write all numbers to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from assistant.core import Assistant
    from assistant.settings import Settings

    results: dict = {"threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    if not args.skip_latency:
        settings = Settings.load(data_dir=args.data_dir)
        build_day_index(settings, args.day)
        assistant = Assistant(settings)
        questions = latency_questions(args.questions)
        print(f"timing retrieve and ask (extractive, k={settings.k}) on {len(questions)} questions ...", flush=True)
        results["latency"] = measure_latency(assistant, questions)
        results["latency"]["index"] = {"articles": assistant.store.count()[0], "passages": assistant.store.count()[1]}
    if not args.skip_xquad:
        settings = Settings.load(data_dir=args.xquad_data_dir, collection="xquad")
        questions = sample_questions(build_xquad_index(settings, args.xquad), args.xquad_limit)
        assistant = Assistant(settings)
        print(f"XQuAD: retrieving for {len(questions)} questions (isnad and plain dense) ...", flush=True)
        results["xquad"] = run_xquad(assistant, questions, dense_baseline=True,
                                     progress=lambda d, t: print(f"  {d}/{t}", flush=True) if d % 320 == 0 else None)

    print()
    if "latency" in results:
        lat = results["latency"]
        print(f"Latency over {args.day.name}: {lat['index']['articles']} distinct texts, {lat['index']['passages']} "
              f"passages; {lat['questions']} questions; torch threads {results['threads']}")
        print(f"(BM25 index built on first query in {lat['lexical_index_build_s']:.1f} s)")
        print(latency_table(lat))
        print()
    if "xquad" in results:
        print("XQuAD, 240 Arabic paragraphs (paragraph-level hits; dense = one Chroma query, no BM25/fusion):")
        print(xquad_table(results["xquad"]))
        print("\nreference (docs/ENVIRONMENT.md, one vector per whole paragraph, 1,190 questions):")
        for name, values in REFERENCE.items():
            (ar1, ar5), (en1, en5) = values["ar"], values["en"]
            print(f"  {name}: ar {ar1:.3f}/{ar5:.3f}, en {en1:.3f}/{en5:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
