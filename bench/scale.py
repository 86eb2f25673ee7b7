"""The whole archive (issue 11): all of SaudiNewsNet ingested into a fresh data directory, then the query path on
it, against a one-day index in the same run, so growth is a ratio.

    python bench/scale.py [--data-dir isnad-data/archive] [--days 18] [--questions 20]
    python bench/scale.py --skip-ingest            # the query part again, on the indexes already built

Ingest: the daily zips of ../shared/data/saudinewsnet one ingest per day (the way an archive grows), each
day's articles/s and chunks/s, then the peak RSS of this process, the store's size on disk, and a second
ingest of every day at once (it should embed nothing). The one-day index is the first day alone.
Query, each index in a fresh process (so open time and RSS are its own): the time `Assistant(...)` takes to
open, the first Arabic question (retrieve, then ask), then steady p50 / p95 of `retrieve` and of an
extractive `ask` for Arabic and English questions (eval/qa.jsonl's, without follow-ups), with and without a
one-day date filter, and that process's peak RSS.
Last, eval/qa.jsonl's retrieval metrics (hit@1 / hit@5 by language) on the sample alone against the sample
ingested into the archive index (the archive as ~30,000 distractors). That leaves the sample in the archive
index: a `--skip-ingest` run afterwards times an index 143 articles larger.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent

from isnad_eval import DEFAULT_QA, load_qa, percentile, run_eval
from shared_data import SHARED_DATA

from assistant.settings import Settings

DAYS = SHARED_DATA / "saudinewsnet"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_peak_rss_mb() -> float:
    """This process's own peak (VmHWM): ru_maxrss carries the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def ingest_days(data_dir: Path, days: list[Path], start: Path | None = None) -> None:
    """Each day in turn into a fresh `data_dir`; with `start` (the one-day index of days[0]), a copy of it
    stands for the first day instead of ingesting that day a second time."""
    from ingest import ingest

    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings.load(data_dir=data_dir)
    print(f"ingesting {len(days)} days into {data_dir}", flush=True)
    if start is not None:
        shutil.copytree(start, data_dir)
        print(f"{days[0].stem}: copied from the one-day index {start} (its figures above)", flush=True)
        everything, days = days, days[1:]
    else:
        everything = days
    print(f"{'day':10} {'read':>6} {'new':>6} {'chunks':>7} {'s':>7} {'art/s':>6} {'chunks/s':>8} {'RSS MB':>7}")
    total_seconds = total_read = total_chunks = 0
    for day in days:
        report = ingest([day], settings)
        read = report.articles_new + report.duplicates + report.articles_updated + report.articles_unchanged
        total_seconds += report.seconds
        total_read += read
        total_chunks += report.chunks_added
        print(f"{day.stem:10} {read:6d} {report.articles_new:6d} {report.chunks_added:7d} {report.seconds:7.1f} "
              f"{read / report.seconds:6.2f} {report.chunks_added / report.seconds:8.2f} {peak_rss_mb():7.0f}",
              flush=True)
    print(f"these days: {total_read} articles, {total_chunks} chunks in {total_seconds / 60:.1f} min "
          f"({total_read / total_seconds:.2f} articles/s, {total_chunks / total_seconds:.2f} chunks/s); "
          f"index {report.articles_total} texts, {report.chunks_total} chunks", flush=True)
    again = ingest(everything, settings)
    print(f"second ingest of every day: {again.seconds:.1f} s, {again.chunks_added} chunks embedded", flush=True)
    print(f"peak RSS of the ingesting process: {peak_rss_mb():.0f} MB; store on disk {disk_mb(data_dir):.0f} MB",
          flush=True)


def query_worker(data_dir: Path, questions: int, day: str) -> None:
    """One fresh process over one index: prints one JSON line of timings."""
    clock = time.perf_counter()
    from assistant import Assistant

    assistant = Assistant(Settings.load(data_dir=data_dir))
    opened = time.perf_counter() - clock
    items = [item for item in load_qa(DEFAULT_QA) if not item.follows]
    asked = {lang: [i.question for i in items if i.language == lang][:questions] for lang in ("ar", "en")}
    clock = time.perf_counter()
    assistant.retrieve(asked["ar"][0])
    first_retrieve = time.perf_counter() - clock
    clock = time.perf_counter()
    assistant.ask(asked["ar"][1], mode="extractive")
    first_ask = time.perf_counter() - clock
    result = {"open_s": opened, "first_ar_retrieve_s": first_retrieve, "first_ar_ask_s": first_ask}
    for filtered, filters in (("", None), (" filtered", {"since": day, "until": day})):
        for lang, texts in asked.items():
            for call in ("retrieve", "ask"):
                seconds = []
                for text in texts:
                    clock = time.perf_counter()
                    if call == "retrieve":
                        assistant.retrieve(text, filters=filters)
                    else:
                        assistant.ask(text, filters=filters, mode="extractive")
                    seconds.append(time.perf_counter() - clock)
                result[f"{call} {lang}{filtered}"] = (percentile(seconds, 50), percentile(seconds, 95))
    result["peak_rss_mb"] = own_peak_rss_mb()
    print(json.dumps(result))


def measure_queries(indexes: dict[str, Path], questions: int, day: str) -> None:
    results = {}
    # Twice in turn, the second kept: the first process after an ingest meets a cold page cache.
    for name, data_dir in [*indexes.items(), *indexes.items()]:
        output = subprocess.run([sys.executable, __file__, "--query-worker", str(data_dir), "--questions",
                                 str(questions), "--filter-day", day], capture_output=True, text=True, check=True)
        results[name] = json.loads(output.stdout.strip().splitlines()[-1])
    small, full = results["one day"], results["archive"]
    print(f"\nquery path, fresh process per index, the second of two in turn ({questions} questions per language; "
          f"filter: {day} only)")
    print(f"{'':30} {'one day':>14} {'archive':>14} {'ratio':>6}")
    for key in ("open_s", "first_ar_retrieve_s", "first_ar_ask_s", "peak_rss_mb"):
        print(f"{key:30} {small[key]:14.2f} {full[key]:14.2f} {full[key] / small[key]:6.2f}")
    for key in small:
        if isinstance(small[key], list):
            (s50, s95), (f50, f95) = small[key], full[key]
            print(f"{key + ' p50 / p95 ms':30} {1000 * s50:6.0f} / {1000 * s95:5.0f} {1000 * f50:6.0f} / "
                  f"{1000 * f95:5.0f} {f50 / s50:6.2f}")


def qa_retrieval_at_scale(archive: Path) -> None:
    from assistant import Assistant
    from ingest import SAMPLE_DIR, ingest

    items = load_qa(DEFAULT_QA)
    rows = {}
    with tempfile.TemporaryDirectory() as sample_only:
        for name, data_dir in (("sample alone", Path(sample_only)), ("sample + archive", archive)):
            settings = Settings.load(data_dir=data_dir)
            ingest([SAMPLE_DIR], settings)
            metrics = run_eval(Assistant(settings), items).metrics
            rows[name] = metrics
    print("\neval/qa.jsonl retrieval (the sample alone, then inside the archive)")
    for name, metrics in rows.items():
        by = metrics["by_language"]
        print(f"{name:18} hit@1 ar {by['ar']['hit_at_1']:.3f} en {by['en']['hit_at_1']:.3f}; "
              f"hit@5 ar {by['ar']['hit_at_5']:.3f} en {by['en']['hit_at_5']:.3f}; "
              f"answer correct {metrics['overall']['answer_correct']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("isnad-data/archive"))
    parser.add_argument("--days", type=int, default=0, help="only the first N daily zips (default: all)")
    parser.add_argument("--questions", type=int, default=20, help="timed questions per language")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-qa", action="store_true", help="skip eval/qa.jsonl inside the archive")
    parser.add_argument("--reuse-one-day", action="store_true", help="keep a one-day index built before")
    parser.add_argument("--query-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--filter-day", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    days = sorted(DAYS.glob("*.zip"))
    days = days[: args.days] if args.days else days
    if args.query_worker:
        return query_worker(args.query_worker, args.questions, args.filter_day)
    one_day = args.data_dir.with_name(args.data_dir.name + "-one-day")
    if not args.skip_ingest:
        if (one_day / "chroma").is_dir() and args.reuse_one_day:
            print(f"one-day index {one_day} reused", flush=True)
        else:
            ingest_days(one_day, days[:1])
        ingest_days(args.data_dir, days, start=one_day)
    measure_queries({"one day": one_day, "archive": args.data_dir}, args.questions, days[0].stem)
    if not args.skip_qa:
        qa_retrieval_at_scale(args.data_dir)


if __name__ == "__main__":
    main()
