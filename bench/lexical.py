"""The persisted Arabic BM25 index (assistant/lexical.py) against building it in memory at every open, as
every process did before: the first Arabic question of a fresh process, the index's open alone, an update
by difference, and each one's peak RSS, in the same run.

    python bench/lexical.py --data-dir isnad-data [--runs 3] [--added 200]

Each measurement runs in a fresh process (so peak RSS is its own), alternating the cases:
- "rebuild": the saved index removed first, so the open reads every chunk from Chroma, turns it into
  search terms and indexes it (the old cost of every open);
- "saved": the saved index as ingest leaves it;
- "update": the saved index without `--added` passages, so the open reads, tokenises and indexes those
  and saves the whole again (what follows an ingest that added that many);
- with `--before CHECKOUT` (e.g. a `git worktree` of the commit before), "before": that code's open,
  which kept every chunk's text in memory and built BM25 on its first Arabic search.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# --before runs the child over another checkout (the code before the persisted index) on the same data.
sys.path.insert(0, os.environ.get("ISNAD_BENCH_ROOT", str(ROOT)))

QUESTION = "ما الإجراءات التي اتخذتها وزارة الصحة بعد تسجيل إصابات جديدة بفيروس كورونا؟"


def child(data_dir: Path) -> None:
    import resource

    clock = time.perf_counter()
    from assistant import Assistant
    from assistant.settings import Settings

    assistant = Assistant(Settings.load(data_dir=data_dir))
    opened = time.perf_counter() - clock
    clock = time.perf_counter()
    index = assistant.retriever.lexical()
    lexical = time.perf_counter() - clock
    clock = time.perf_counter()
    hits = assistant.retrieve(QUESTION, k=5)
    first = time.perf_counter() - clock + lexical
    clock = time.perf_counter()
    for _ in range(5):
        assistant.retrieve(QUESTION, k=5)
    steady = (time.perf_counter() - clock) / 5
    print(json.dumps({"open": opened, "lexical": lexical, "first": first, "steady": steady, "hits": len(hits),
                      "chunks": len(index.ids), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def drop_latest(data_dir: Path, count: int) -> None:
    """Rewrite the saved index without its last `count` passages, labelled with an older generation."""
    import numpy as np

    from assistant.lexical import _Saved, lexical_dir
    from assistant.settings import Settings
    from assistant.store import Store

    store = Store.open(Settings.load(data_dir=data_dir))
    path = lexical_dir(store)
    saved = _Saved.load(path)
    keep = len(saved.ids) - count
    saved.ids, saved.dates = saved.ids[:keep], saved.dates[:keep]
    saved.sources, saved.terms = saved.sources[:keep], saved.terms[:keep]
    from assistant.lexical import LexicalIndex

    index = LexicalIndex(saved.ids, np.asarray(saved.dates), saved.sources, -1, saved.bm25())
    saved.write(path, -1, index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("isnad-data"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--added", type=int, default=200)
    parser.add_argument("--before", type=Path, help="a checkout of the code before, run on the same data")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.data_dir)
        return

    from assistant.lexical import lexical_dir
    from assistant.settings import Settings
    from assistant.store import Store

    path = lexical_dir(Store.open(Settings.load(data_dir=args.data_dir)))
    results: dict[str, list[dict]] = {"rebuild": [], "saved": [], "update": []}
    if args.before:
        results["before"] = []
    for run in range(args.runs):
        for case in results:
            env = dict(os.environ)
            if case == "rebuild":
                shutil.rmtree(path, ignore_errors=True)
            elif case == "update":
                drop_latest(args.data_dir, args.added)
            elif case == "before":
                env["ISNAD_BENCH_ROOT"] = str(args.before.resolve())
            out = subprocess.run([sys.executable, __file__, "--child", "--data-dir", str(args.data_dir)],
                                 capture_output=True, text=True, check=True, env=env)
            results[case].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  run {run + 1}/{args.runs}", flush=True)

    chunks = results["saved"][0]["chunks"]
    print(f"\n{args.data_dir}: {chunks:,} passages, {args.runs} fresh processes per case, alternated "
          f"(update: {args.added} new passages)")
    print(f"{'':10}{'lexical open s':>16}{'first Arabic retrieve s':>26}{'steady retrieve s':>20}{'peak RSS MB':>14}")
    medians = {}
    for case, rows in results.items():
        medians[case] = {key: statistics.median(row[key] for row in rows)
                         for key in ("lexical", "first", "steady", "rss_mb")}
        m = medians[case]
        print(f"{case:10}{m['lexical']:>16.3f}{m['first']:>26.3f}{m['steady']:>20.3f}{m['rss_mb']:>14.0f}")
    for other in [case for case in ("rebuild", "before") if case in medians]:
        print(f"saved / {other}: lexical open x{medians['saved']['lexical'] / medians[other]['lexical']:.3f}, "
              f"first Arabic retrieve x{medians['saved']['first'] / medians[other]['first']:.3f}, "
              f"peak RSS x{medians['saved']['rss_mb'] / medians[other]['rss_mb']:.2f}")


if __name__ == "__main__":
    main()
