"""False alarms of the prompt-injection guard on real news, and its cost.

    python bench/guard.py                      # every SaudiNewsNet day in ../shared/data/saudinewsnet
    python bench/guard.py --days 3 --show 20

Every sentence of every article goes through `assistant.generative.instruction_like`, the check that
keeps orders to the model out of the LLM's passages. News never addresses the model, so each flagged
sentence is a false alarm (a sentence the LLM would not see); they are printed for review.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
from pathlib import Path

from assistant.generative import instruction_like
from assistant.text import split_sentences

DEFAULT_DAYS = Path(__file__).resolve().parents[2] / "shared" / "data" / "saudinewsnet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DAYS, help="folder of SaudiNewsNet daily zips")
    parser.add_argument("--days", type=int, default=0, help="only the first N days (0 = all)")
    parser.add_argument("--show", type=int, default=50, help="flagged sentences to print")
    args = parser.parse_args()

    days = sorted(args.data.glob("*.zip"))[: args.days or None]
    if not days:
        sys.exit(f"no SaudiNewsNet zips in {args.data}")
    articles = sentences = 0
    flagged: list[tuple[str, str]] = []
    checking = 0.0
    for day in days:
        with zipfile.ZipFile(day) as archive:
            for name in archive.namelist():
                for article in json.loads(archive.read(name)):
                    text = article.get("content") or ""
                    articles += 1
                    spans = split_sentences(text)
                    sentences += len(spans)
                    began = time.perf_counter()
                    hits = [text[s:e] for s, e in spans if instruction_like(text[s:e])]
                    checking += time.perf_counter() - began
                    flagged += [(article.get("url", "?"), sentence) for sentence in hits]
    flagged_articles = len({url for url, _ in flagged})
    print(f"days {len(days)}  articles {articles:,}  sentences {sentences:,}")
    print(f"flagged sentences {len(flagged)} ({len(flagged) / max(sentences, 1):.5%}), "
          f"articles with one {flagged_articles} ({flagged_articles / max(articles, 1):.4%})")
    print(f"check time {checking:.1f} s = {checking / max(sentences, 1) * 1e6:.1f} µs per sentence")
    for url, sentence in flagged[: args.show]:
        print(f"  {url}: {sentence[:200]}")


if __name__ == "__main__":
    main()
