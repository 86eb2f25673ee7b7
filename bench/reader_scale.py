"""eval/qa.jsonl at scale: the bundled sample inside several SaudiNewsNet days, reader off and on (same run).

    python bench/reader_scale.py [--data-dir isnad-data/scale] [--days 4]

The sample (whose articles the questions ask about) is ingested together with the first `--days` daily
zips of ../shared/data/saudinewsnet (2015-07-21 on: ~1,500 articles a day, distractors on the same topics
and dates); the first run ingests (~4 min a day on 2 cores), later runs reuse the index. Then the whole
Q&A set is asked twice over the same index, with the bi-encoder answerer (`reader = false`) and with the
reader, and their metrics are printed side by side, with ask latency p50 / p95 and their ratio.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent

from isnad_eval import load_qa, run_eval

from assistant import Assistant
from assistant.settings import Settings
from ingest import SAMPLE_DIR, ingest

DAYS = ROOT.parent / "shared" / "data" / "saudinewsnet"
ROWS = ["hit_at_1", "hit_at_5", "citation_precision", "citation_recall", "answer_correct",
        "unanswerable_declined", "answerable_declined", "ask_p50", "ask_p95"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("isnad-data/scale"))
    parser.add_argument("--days", type=int, default=4)
    args = parser.parse_args()

    settings = Settings.load(data_dir=args.data_dir)
    days = sorted(DAYS.glob("*.zip"))[: args.days]
    report = ingest([SAMPLE_DIR, *days], settings)
    print(f"index: sample + {', '.join(d.stem for d in days)}: {report.articles_total} articles, "
          f"{report.chunks_total} passages ({report.seconds:.0f} s this run)", flush=True)
    items = load_qa()
    metrics = {}
    for name, reader in (("bi-encoder", False), ("reader", True)):
        assistant = Assistant(settings, reader=reader)
        metrics[name] = run_eval(assistant, items, "extractive").metrics
        print(f"  {name}: done", flush=True)

    def value(m, group, key):
        if group == "all":
            return m["overall"].get(key)
        return m["by_language"].get(group, {}).get(key)

    print(f"\n{'metric':24}" + "".join(f"{g + ' before -> after':>24}" for g in ("all", "ar", "en")))
    for key in ROWS:
        cells = []
        for group in ("all", "ar", "en"):
            before, after = value(metrics["bi-encoder"], group, key), value(metrics["reader"], group, key)
            cells.append("–" if before is None or after is None else f"{before:.3f} -> {after:.3f}")
        print(f"{key:24}" + "".join(f"{c:>24}" for c in cells))
    before, after = metrics["bi-encoder"]["overall"]["ask_p50"], metrics["reader"]["overall"]["ask_p50"]
    print(f"\nask p50 ratio reader / bi-encoder: x{after / before:.1f}")


if __name__ == "__main__":
    main()
