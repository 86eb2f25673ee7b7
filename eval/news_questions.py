"""Write one day of the reader's news questions (eval/reader_news.jsonl) in the eval's Q&A format
(eval/QA.md), so the whole product can be measured on the dev day without touching the held-out sets.

    python eval/news_questions.py 2015-08-07 > /tmp/news-dev.jsonl
    isnad ingest ../shared/data/saudinewsnet/2015-08-07.zip --data-dir /tmp/dev-idx
    isnad eval --qa /tmp/news-dev.jsonl --data-dir /tmp/dev-idx --out /tmp/news-dev-run --no-judge

The dev day (train_reader.NEWS_SPLIT_OF_DAY) is where the answerer's own choices may be tuned; the test
day and eval/heldout.jsonl are not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NEWS = Path(__file__).with_name("reader_news.jsonl")


def as_qa(item: dict) -> dict:
    return {"id": item["id"], "language": item["language"], "kind": "news", "question": item["question"],
            "answer": item["answer"], "answerable": item["answerable"], "article_ids": [item["url"]],
            "evidence": [item["evidence"]] if item["answerable"] else [], "follows": None, "standalone": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("day", help="a day of eval/reader_news.jsonl, e.g. 2015-08-07 (the dev day)")
    args = parser.parse_args()
    items = [json.loads(line) for line in NEWS.read_text(encoding="utf-8").splitlines() if line.strip()]
    mine = [as_qa(item) for item in items if item["day"] == args.day]
    if not mine:
        raise SystemExit(f"no questions for day {args.day} in {NEWS}")
    for item in mine:
        print(json.dumps(item, ensure_ascii=False))


if __name__ == "__main__":
    main()
