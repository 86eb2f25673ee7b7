"""Choose the reader's abstention threshold per question language on dev records, and apply it unchanged
to other records (bench/answer_dev.py --record writes them: every question answered, its best reader
score and whether the answer was right).

    python bench/choose_threshold.py --dev /tmp/rec-0807/w.jsonl /tmp/rec-0808/w.jsonl \
        --apply /tmp/rec-heldout/w.jsonl [--max-declined 0.05]

The threshold per language is the highest that declines under --max-declined of the dev answerable
questions (the eval's ceiling on answerable_declined is 0.05). Prints, per record set and language:
answer correct (answerable, answered and right), answerable declined, unanswerable declined, and the
confident wrong answers (answered, and wrong or unanswerable), with the threshold and with none.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def load(paths: list[Path]) -> list[dict]:
    return [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines() if line]


def choose(rows: list[dict], max_declined: float) -> dict[str, float]:
    """language -> the highest threshold declining under max_declined of its answerable questions."""
    thresholds = {}
    for language in sorted({r["language"] for r in rows}):
        scores = sorted(r["best"] for r in rows if r["language"] == language and r["answerable"])
        allowed = max(0, math.ceil(max_declined * len(scores)) - 1)  # strictly under the share
        thresholds[language] = scores[allowed] if scores else float("-inf")
    return thresholds


def declined(row: dict, threshold: float) -> bool:
    # -inf: nothing was left to quote (the answer-kind check), declined whatever the threshold
    return row["best"] == float("-inf") or row["best"] < threshold


def table(rows: list[dict], threshold: float) -> dict[str, float | int]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in rows if not declined(r, threshold)]
    return {
        "answer_correct": sum(r["correct"] for r in answered if r["answerable"]) / max(1, len(answerable)),
        "answerable_declined": sum(declined(r, threshold) for r in answerable) / max(1, len(answerable)),
        "unanswerable_declined": sum(declined(r, threshold) for r in unanswerable) / max(1, len(unanswerable)),
        "confident_wrong": sum(not (r["answerable"] and r["correct"]) for r in answered),
        "questions": len(rows),
    }


def write_thresholds(weights: Path, thresholds: dict[str, float], chosen_on: list[str], share: float) -> None:
    """Replace the thresholds stored with the weights (the reader reads them from the file's metadata),
    noting in its info what they were chosen on; the tensors are kept as they are."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(weights), "numpy") as handle:
        metadata = dict(handle.metadata() or {})
    info = json.loads(metadata.get("info", "{}"))
    info["training_thresholds"] = json.loads(metadata["threshold"])
    info["thresholds_chosen_on"] = {"records": chosen_on, "max_answerable_declined": share}
    metadata.update(threshold=json.dumps({k: round(v, 4) for k, v in thresholds.items()}), info=json.dumps(info))
    save_file(load_file(str(weights)), str(weights), metadata=metadata)
    print(f"wrote the thresholds into {weights}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, nargs="+", required=True, help="records the threshold is chosen on")
    parser.add_argument("--apply", type=Path, nargs="*", default=[], help="records it is applied to, unchanged")
    parser.add_argument("--max-declined", type=float, default=0.05)
    parser.add_argument("--thresholds", type=json.loads, help='use these instead, e.g. \'{"ar": -1.7, "en": -1.1}\'')
    parser.add_argument("--write", type=Path, help="store the chosen thresholds in this reader weights file")
    args = parser.parse_args()
    dev = load(args.dev)
    thresholds = args.thresholds or choose(dev, args.max_declined)
    print("thresholds " + json.dumps({k: round(v, 3) for k, v in thresholds.items()}))
    if args.write:
        write_thresholds(args.write, thresholds, [f"{p.parent.name}/{p.name}" for p in args.dev], args.max_declined)
    columns = ("answer_correct", "answerable_declined", "unanswerable_declined", "confident_wrong", "questions")
    print("| records | language | threshold | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    for name, rows in [("dev", dev)] + [(str(path), load([path])) for path in args.apply]:
        for language, threshold in thresholds.items():
            mine = [r for r in rows if r["language"] == language]
            for label, value in (("none", float("-inf")), (f"{threshold:.3f}", threshold)):
                cells = table(mine, value)
                print(f"| {name} | {language} | {label} | " + " | ".join(
                    f"{cells[c]:.3f}" if isinstance(cells[c], float) else str(cells[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
