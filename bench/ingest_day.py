"""Ingest throughput: one SaudiNewsNet day into a fresh data directory, against the bare embedder.

    python bench/ingest_day.py [--day 2015-08-01] [--limit N] [--data-dir DIR]

Prints articles/s, chunks/s, peak RSS, the time the bare embedder takes on the very chunks that were
stored (same run, same machine state), the ratio ingest/bare-embedding (1.0 = the pipeline costs nothing
beyond the model), and the time of a second ingest of the same day (should embed nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]

from assistant.embedder import load_embedder
from assistant.settings import Settings
from assistant.store import Store
from ingest import ingest

SHARED = REPO.parent / "shared" / "data" / "saudinewsnet"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="2015-08-01")
    parser.add_argument("--limit", type=int, default=0, help="only the first N articles of the day")
    parser.add_argument("--data-dir", type=Path, help="default: a temporary directory, removed afterwards")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="isnad-bench-"))
    source = SHARED / f"{args.day}.zip"
    if args.limit:
        with zipfile.ZipFile(source) as archive:
            articles = json.loads(archive.read(archive.namelist()[0]))[: args.limit]
        source = work / f"{args.day}.json"
        source.write_text(json.dumps(articles, ensure_ascii=False), encoding="utf-8")
    data_dir = args.data_dir or work / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir)

    clock = time.perf_counter()
    embedder = load_embedder(settings.embed_model, settings.cache_dir)
    embedder.embed_passages(["تسخين"])  # warm-up outside the timed runs
    load_seconds = time.perf_counter() - clock

    first = ingest([source], settings, embedder=embedder)
    texts = [t for _, documents, _ in Store.open(settings).iter_chunks(("documents",)) for t in documents]
    clock = time.perf_counter()
    embedder.embed_passages(texts)
    bare = time.perf_counter() - clock
    second = ingest([source], settings, embedder=embedder)

    read_articles = first.articles_new + first.duplicates + first.articles_updated + first.articles_unchanged
    rows = [
        ("day", args.day + (f" (first {args.limit})" if args.limit else "")),
        ("articles read", read_articles),
        ("distinct texts indexed", first.articles_new),
        ("duplicates (not embedded again)", first.duplicates),
        ("skipped", len(first.skipped)),
        ("chunks", first.chunks_added),
        ("model load + warm-up, s", f"{load_seconds:.1f}"),
        ("ingest, s", f"{first.seconds:.1f}"),
        ("  of which embedding, s", f"{first.embed_seconds:.1f}"),
        ("articles/s", f"{read_articles / first.seconds:.2f}"),
        ("chunks/s", f"{first.chunks_added / first.seconds:.2f}"),
        ("bare embedder on the same chunks, s", f"{bare:.1f}"),
        ("ratio ingest / bare embedding", f"{first.seconds / bare:.2f}"),
        ("second ingest of the same day, s", f"{second.seconds:.1f}"),
        ("second / first", f"{second.seconds / first.seconds:.3f}"),
        ("second ingest chunks embedded", second.chunks_added),
        ("peak RSS, MB", f"{peak_rss_mb():.0f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if not args.data_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
