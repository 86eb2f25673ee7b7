"""The extractive answerer on the news dev day, as the product answers: reader weights and the weight of
the bi-encoder's sentence score (extractive.PRIOR_WEIGHT) side by side, same index, same run.

    python eval/news_questions.py 2015-08-07 > /tmp/news-dev.jsonl
    isnad ingest ../shared/data/saudinewsnet/2015-08-07.zip --data-dir /tmp/dev-idx
    python bench/answer_dev.py --data-dir /tmp/dev-idx --qa /tmp/news-dev.jsonl \
        --weights assistant/reader.safetensors /tmp/other.safetensors --prior 0 30 120

The dev day is the one eval/train_reader.py picks its epoch and thresholds on; choosing the answerer's
own knobs here keeps eval/heldout.jsonl and the test day untouched. Prints per question language: answer
correct (answerable), citation precision, unanswerable declined, answerable declined, hit@1.

With --record DIR the reader's thresholds are set to -inf (everything is answered) and each question's
best reader score is written, with whether its answer was right, to DIR/<weights file stem>.jsonl, so
thresholds can be chosen on one set and applied to another without asking again
(bench/choose_threshold.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from isnad_eval import load_qa, run_eval

from assistant import Assistant, extractive
from assistant.reader import load_reader

COLUMNS = ("answer_correct", "citation_precision", "unanswerable_declined", "answerable_declined", "hit_at_1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--qa", type=Path, required=True, help="questions in the eval's format (news_questions.py)")
    parser.add_argument("--weights", type=Path, nargs="+", required=True, help="reader weight files to compare")
    parser.add_argument("--prior", type=float, nargs="+", default=[extractive.PRIOR_WEIGHT])
    parser.add_argument("--record", type=Path,
                        help="answer everything; each question's best score to DIR/<weights stem>.jsonl")
    args = parser.parse_args()
    bests: dict[str, float] = {}  # question text -> its best reader score when last asked
    if args.record:
        check = extractive.checked_candidates

        def recording(question, *rest):  # the answerer's own abstention score, noted on the way
            candidates, best = check(question, *rest)
            bests[question] = float("-inf") if best is None else best
            return candidates, best

        extractive.checked_candidates = recording

    items = load_qa(args.qa)
    assistant = Assistant(data_dir=str(args.data_dir))
    shipped = extractive.PRIOR_WEIGHT
    print(f"{len(items)} questions over {args.data_dir}")
    print("| weights | prior | language | " + " | ".join(COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    try:
        for weights in args.weights:
            assistant.reader = load_reader(assistant.embedder, weights)
            if args.record:
                assistant.reader.thresholds = {"ar": float("-inf"), "en": float("-inf")}
            for prior in args.prior:
                extractive.PRIOR_WEIGHT = prior
                bests.clear()
                result = run_eval(assistant, items)
                metrics = result.metrics
                if args.record:
                    rows = [{"id": r.id, "language": r.language, "answerable": r.answerable,
                             "correct": r.answer_correct, "best": bests.get(item.question, float("-inf"))}
                            for r, item in zip(result.items, items, strict=True)]
                    args.record.mkdir(parents=True, exist_ok=True)
                    suffix = f"-prior{prior:g}" if len(args.prior) > 1 else ""
                    out = args.record / f"{weights.stem}{suffix}.jsonl"
                    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
                for language, row in metrics["by_language"].items():
                    cells = " | ".join(f"{row[c]:.3f}" if row[c] is not None else "–" for c in COLUMNS)
                    print(f"| {weights.name} | {prior:g} | {language} | {cells} |", flush=True)
    finally:
        extractive.PRIOR_WEIGHT = shipped


if __name__ == "__main__":
    main()
