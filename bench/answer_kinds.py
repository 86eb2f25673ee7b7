"""What the answer-kind check (extractive.CHECKED_KINDS) costs and gives on XQuAD articles the reader
never saw: each question read once with its gold paragraph among the passages (answerable) and once with
it taken out (a near miss: the nearest other paragraphs), answered with the check off, as shipped, and
with the looser number/date kinds added (tried before and not adopted), all on the same readings.

    python bench/answer_kinds.py [--data-dir isnad-data] [--split test] [--weights A.safetensors B.safetensors]

Prints per question language and variant: answerable answered correctly (the first quote is in the gold
paragraph and holds the answer), answerable declined, near misses declined, and how many questions each
kind's question pattern caught. With --weights, each reader weights file (at the thresholds stored in it)
in turn, on the same retrieved passages.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from reader_xquad import held_out_questions, holds

from assistant import Assistant, extractive
from assistant.extractive import answer_from_readings, score_sentences
from assistant.reader import WEIGHTS, load_reader

SHIPPED = dict(extractive.CHECKED_KINDS)
VARIANTS = {
    "off": {},
    "shipped": SHIPPED,
    "+number,date": SHIPPED | {"number": (extractive._ASKS["number"], extractive._HOLDS["number"]),
                               "date": (extractive._ASKS["time"], extractive._HOLDS["time"])},
}


def main() -> None:
    def weights_option(parser):
        parser.add_argument("--weights", type=Path, nargs="+", default=[WEIGHTS], help="reader weights to compare")

    args, settings, questions, answers = held_out_questions(__doc__.splitlines()[0], weights_option)
    assistant = Assistant(settings)
    readers = {w.stem: load_reader(assistant.embedder, w) for w in args.weights}
    variants = {f"{name} {variant}" if len(readers) > 1 else variant: (name, kinds)
                for name in readers for variant, kinds in VARIANTS.items()}
    embedder, k = assistant.embedder, settings.k
    rows: dict[tuple[str, str, str], list[float]] = {}
    caught: dict[tuple[str, str], int] = {}

    def add(language: str, variant: str, name: str, value: float) -> None:
        rows.setdefault((language, variant, name), []).append(float(value))

    for number, q in enumerate(questions, start=1):
        vector = embedder.embed_query(q.question)
        hits = assistant.retriever.retrieve(q.question, k + 4, query_vector=vector)
        cases = {"answerable": hits[:k], "near miss": [h for h in hits if h.article_id != q.article_id][:k]}
        read = {}
        for name, reader in readers.items():
            assistant.reader = reader
            for case, case_hits in cases.items():
                reranked, readings, stored = assistant._read(q.question, vector, case_hits)
                head = reranked[: len(readings)]
                read[name, case] = (head, readings, score_sentences(q.question, vector, head, embedder, stored))
        for variant, (name, kinds) in variants.items():
            extractive.CHECKED_KINDS = kinds
            kind = extractive.checked_kind(q.question)
            if kind:
                caught[(q.language, f"{variant}: {kind}")] = caught.get((q.language, f"{variant}: {kind}"), 0) + 1
            for case in cases:
                head, readings, prior = read[name, case]
                answer = answer_from_readings(q.question, q.language, head, readings, readers[name], prior)
                if case == "answerable":
                    add(q.language, variant, "answerable declined", not answer.has_answer)
                    add(q.language, variant, "answerable correct", answer.has_answer and holds(
                        answer.citations[0].quote, answer.citations[0].article_id, q.article_id, answers[q.id]))
                else:
                    add(q.language, variant, "near misses declined", not answer.has_answer)
        extractive.CHECKED_KINDS = SHIPPED
        if number % 50 == 0:
            print(f"  {number}/{len(questions)}", flush=True)

    names = ("answerable correct", "answerable declined", "near misses declined")
    print(f"\nXQuAD {args.split} articles (held out from training), {len(questions)} questions, k={k}")
    width = max(len(v) for v in variants) + 4
    print(" " * width + "".join(f"{name:>24}" for name in names))
    for language in ("ar", "en"):
        for variant in variants:
            values = [rows[(language, variant, name)] for name in names]
            print(f"{language} {variant:<{width - 3}}" + "".join(f"{sum(v) / len(v):>24.3f}" for v in values))
    print("questions the kind patterns caught:", {f"{lang} {key}": n for (lang, key), n in sorted(caught.items())})


if __name__ == "__main__":
    main()
