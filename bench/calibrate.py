"""Calibrate the bi-encoder answerer (`reader = false`) on the Q&A set: where should it decline, and how
should it score?

Since the trained reader became the default answerer, this tunes only the fallback, and it tunes it on
eval/qa.jsonl, so its numbers there are not held-out. The reader's threshold and rank weight are chosen
by eval/train_reader.py on its XQuAD/ARCD dev articles and never on eval/qa.jsonl, which stays held out for
the reader; bench/reader_xquad.py reports both on XQuAD articles neither was tuned on.

    python bench/calibrate.py --data-dir /tmp/isnad-sample --sample [--cache calib.json]

For every question it runs the real pipeline up to the answer choice (follow-up condensing, hybrid
retrieval of `k` passages, sentence splitting, embedding), keeps each sentence's three score components
(dense similarity plus each weighted term of the formula in assistant/extractive.py: share of the
question's Arabic search terms, passage rank, answer type), and then sweeps, without re-embedding anything:
- ABSTAIN_BELOW, per question language: answerable questions wrongly declined against unanswerable
  questions declined. Two kinds of unanswerable question: the 16 "near misses" of eval/qa.jsonl (the
  article is on topic, the detail is missing) and 20 off-topic questions below (no article is about it);
- LEXICAL_WEIGHT, RANK_WEIGHT, ANSWER_TYPE_WEIGHT: how often the best sentence is a correct citation.

The operating point: among thresholds that wrongly decline at most MAX_WRONGLY_DECLINED of the answerable
questions, the one that declines the most unanswerable questions, in the middle of its tied range; so what
the threshold buys (declined unanswerable questions) is paid for with a bounded loss of real answers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from isnad_eval import (
    DEFAULT_QA,
    QAItem,
    build_sample_index,
    citation_correct,
    history_for,
    load_qa,
)

from assistant import extractive
from assistant.conversation import condense_heuristically
from assistant.text import split_sentences

THRESHOLDS = [round(0.70 + 0.005 * i, 3) for i in range(71)]  # 0.700 ... 1.050
MAX_WRONGLY_DECLINED = 0.05
# The answerer's score is dense similarity + sum of weight * component; the weights it has, and the
# values swept for each. A component is measured as (score with that weight at 1, others 0) - similarity,
# so this script follows the formula in assistant/extractive.py without copying it.
GRID = {
    "LEXICAL_WEIGHT": (0.0, 0.06, 0.12, 0.2),
    "RANK_WEIGHT": (0.0, 0.02, 0.05),
    "ANSWER_TYPE_WEIGHT": (0.0, 0.03, 0.06, 0.1),
}
WEIGHTS = [name for name in GRID if hasattr(extractive, name)]
CURRENT = {name: getattr(extractive, name) for name in WEIGHTS}

# Questions no article of the sample is about (the Q&A set's own unanswerable questions are near misses).
OFF_TOPIC = {
    "en": [
        "Who won the 2022 FIFA World Cup final?",
        "What is the boiling point of water at the top of Mount Everest?",
        "How many moons does Jupiter have?",
        "Which company makes the PlayStation 5?",
        "What is the recipe for Italian tiramisu?",
        "When was the Eiffel Tower built?",
        "Who wrote the novel One Hundred Years of Solitude?",
        "What is the capital of Australia?",
        "How do I reset my home Wi-Fi router?",
        "What is the population of Brazil?",
    ],
    "ar": [
        "من فاز بكأس العالم لكرة القدم عام 2022؟",
        "كم قمرا يدور حول كوكب المشتري؟",
        "ما هي عاصمة أستراليا؟",
        "كيف أحضر كعكة الشوكولاتة في المنزل؟",
        "من كتب رواية مئة عام من العزلة؟",
        "متى بني برج إيفل في باريس؟",
        "ما عدد سكان البرازيل؟",
        "ما درجة غليان الماء على قمة جبل إيفرست؟",
        "كيف أعيد ضبط جهاز الراوتر في المنزل؟",
        "ما الشركة التي تصنع جهاز بلايستيشن 5؟",
    ],
}


@dataclass
class Sentence:
    dense: float
    components: dict[str, float]  # weight name -> value the weight multiplies
    correct: bool
    text: str = ""

    def score(self, weights: dict[str, float]) -> float:
        return self.dense + sum(w * self.components.get(name, 0.0) for name, w in weights.items())


@dataclass
class Question:
    id: str
    language: str
    group: str  # "answerable", "near_miss" or "off_topic"
    sentences: list[Sentence]

    def best(self, weights: dict[str, float] | None = None) -> tuple[float, bool]:
        weights = CURRENT if weights is None else weights
        if not self.sentences:
            return float("-inf"), False
        top = max(self.sentences, key=lambda s: s.score(weights))
        return top.score(weights), top.correct


def off_topic_items() -> list[QAItem]:
    return [
        QAItem(f"off-{language}-{n:02d}", language, "off_topic", question, "", False)
        for language, questions in OFF_TOPIC.items()
        for n, question in enumerate(questions, start=1)
    ]


def _scores(question, vector, hits, embedder, stored, weights: dict[str, float]) -> dict[tuple, tuple]:
    """Candidate sentence -> (score, text) under `weights`, keyed by (chunk id, start, end)."""
    saved = {name: getattr(extractive, name) for name in WEIGHTS}
    try:
        for name in WEIGHTS:
            setattr(extractive, name, weights.get(name, 0.0))
        found = extractive.score_sentences(question, vector, hits, embedder, stored)
    finally:
        for name, value in saved.items():
            setattr(extractive, name, value)
    return {(c.hit.chunk_id, c.start, c.end): (c.score, c.text, c.hit.article_id) for c in found}


def embed_sentences(hits, embedder) -> dict[str, list[tuple[int, int, object]]]:
    """Sentence vectors in the index's format, each sentence embedded on its own (the pre-ingest way)."""
    stored = {}
    for hit in hits:
        spans = split_sentences(hit.text)
        vectors = embedder.embed_passages([hit.text[a:b] for a, b in spans]) if spans else []
        stored[hit.chunk_id] = [(hit.start + a, hit.start + b, v) for (a, b), v in zip(spans, vectors, strict=True)]
    return stored


def collect(assistant, items: list[QAItem], stored_vectors: bool = True) -> list[Question]:
    """Score components of every sentence the answerer would consider, per question. With
    `stored_vectors` False, sentences are embedded on their own instead of using the index's vectors."""
    embedder, k = assistant.embedder, assistant.settings.k
    asked: dict = {}
    questions = []
    for number, item in enumerate(items, start=1):
        standalone = condense_heuristically(item.question, history_for(item, asked) or None)
        asked[item.id] = (item, "")
        vector = embedder.embed_query(standalone)
        hits = assistant.retriever.retrieve(standalone, k, query_vector=vector)
        if stored_vectors:
            stored = assistant.store.sentence_vectors([hit.chunk_id for hit in hits])
        else:
            stored = embed_sentences(hits, embedder)
        dense = _scores(standalone, vector, hits, embedder, stored, {})
        parts = {name: _scores(standalone, vector, hits, embedder, stored, {name: 1.0}) for name in WEIGHTS}
        sentences = []
        for key, (similarity, text, article) in dense.items():
            components = {name: round(parts[name][key][0] - similarity, 6) for name in WEIGHTS}
            correct = item.answerable and citation_correct(article, text, item.article_ids, item.evidence)
            sentences.append(Sentence(similarity, components, correct, text))
        group = "answerable" if item.answerable else ("off_topic" if item.kind == "off_topic" else "near_miss")
        question = Question(item.id, item.language, group, sentences)
        actual = _scores(standalone, vector, hits, embedder, stored, CURRENT)
        if actual and abs(max(score for score, _, _ in actual.values()) - question.best()[0]) > 1e-4:
            raise SystemExit(f"{item.id}: the score is not similarity + weighted components any more; "
                             "the formula in assistant/extractive.py changed: update this script")
        questions.append(question)
        if number % 20 == 0:
            print(f"  {number}/{len(items)}", flush=True)
    return questions


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def outcome(questions: list[Question], threshold: float, weights: dict[str, float]) -> dict[str, float]:
    best = {id(q): q.best(weights) for q in questions}

    def declined(group: str) -> float:
        return _share([best[id(q)][0] < threshold for q in questions if q.group == group])

    answerable = [q for q in questions if q.group == "answerable"]
    return {
        "threshold": threshold,
        "answerable_declined": declined("answerable"),
        "near_miss_declined": declined("near_miss"),
        "off_topic_declined": declined("off_topic"),
        "answered_correct": _share([best[id(q)][0] >= threshold and best[id(q)][1] for q in answerable]),
    }


def operating_point(questions: list[Question], weights: dict[str, float]) -> dict[str, float]:
    """Among thresholds wrongly declining at most MAX_WRONGLY_DECLINED of the answerable questions, the one
    declining the most unanswerable ones (near misses and off-topic, averaged); ties go to fewer answerable
    questions declined, then to the middle of the tied range (the least fragile choice)."""
    rows = [outcome(questions, t, weights) for t in THRESHOLDS]
    allowed = [r for r in rows if r["answerable_declined"] <= MAX_WRONGLY_DECLINED] or rows[:1]

    def key(r: dict[str, float]) -> tuple[float, float]:
        return (round((r["near_miss_declined"] + r["off_topic_declined"]) / 2, 9), -r["answerable_declined"])

    best = max(key(r) for r in allowed)
    tied = [r for r in allowed if key(r) == best]
    return tied[len(tied) // 2]


def auc(positive: list[float], negative: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positive or not negative:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


HEADER = "threshold  ans decl  near-miss decl  off-topic decl  answered correct"


def _row(r: dict[str, float]) -> str:
    return (f"{r['threshold']:>9.3f}  {r['answerable_declined']:>8.3f}  {r['near_miss_declined']:>14.3f}  "
            f"{r['off_topic_declined']:>14.3f}  {r['answered_correct']:>16.3f}")


def current_threshold(language: str) -> float:
    value = extractive.ABSTAIN_BELOW
    return value[language] if isinstance(value, dict) else value


def _weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{name.removesuffix('_WEIGHT').lower()} {value}" for name, value in weights.items())


def report(questions: list[Question]) -> dict:
    result: dict = {"current_threshold": extractive.ABSTAIN_BELOW, "weights": CURRENT}
    print(f"\nbest-sentence scores (current weights: {_weights(CURRENT)}):")
    for language in ("ar", "en"):
        for group in ("answerable", "near_miss", "off_topic"):
            scores = sorted(q.best()[0] for q in questions if q.language == language and q.group == group)
            if scores:
                print(f"  {language} {group:10} n={len(scores):3}  min {scores[0]:.3f}  "
                      f"median {scores[len(scores) // 2]:.3f}  max {scores[-1]:.3f}")

    result["by_language"] = {}
    for language in ("ar", "en"):
        group = [q for q in questions if q.language == language]
        print(f"\n{language} questions: ABSTAIN_BELOW sweep\n{HEADER}")
        for t in THRESHOLDS[::2]:
            print(_row(outcome(group, t, CURRENT)))
        point = operating_point(group, CURRENT)
        current = outcome(group, current_threshold(language), CURRENT)
        print(f"current  {_row(current)}\nproposed {_row(point)}  (ans decl <= {MAX_WRONGLY_DECLINED})")
        result["by_language"][language] = {"current": current, "proposed": point}

    single = operating_point(questions, CURRENT)
    print(f"\none threshold for both languages:\n{HEADER}\n{_row(single)}")
    result["single"] = single

    print("\nweights: top-1 sentence is a correct citation (answerable questions); how well the best score")
    print("separates answerable from near-miss / off-topic questions (AUC); proposed thresholds ar / en")
    print("  ".join(f"{name.removesuffix('_WEIGHT').lower():>11}" for name in WEIGHTS)
          + "  top1 ar  top1 en  AUC near-miss ar/en  AUC off-topic ar/en  threshold ar / en")
    result["grid"] = []
    for values in itertools.product(*(GRID[name] for name in WEIGHTS)):
        weights = dict(zip(WEIGHTS, values, strict=True))
        row: dict = {"weights": weights}
        for language in ("ar", "en"):
            group = [q for q in questions if q.language == language]
            answerable = [q.best(weights)[0] for q in group if q.group == "answerable"]
            row[f"top1_{language}"] = _share([q.best(weights)[1] for q in group if q.group == "answerable"])
            for other in ("near_miss", "off_topic"):
                row[f"auc_{other}_{language}"] = auc(answerable, [q.best(weights)[0] for q in group
                                                                  if q.group == other])
            row[f"threshold_{language}"] = operating_point(group, weights)["threshold"]
        result["grid"].append(row)
        print("  ".join(f"{v:>11.2f}" for v in values)
              + f"  {row['top1_ar']:>7.3f}  {row['top1_en']:>7.3f}  "
              f"{row['auc_near_miss_ar']:>11.3f} / {row['auc_near_miss_en']:.3f}  "
              f"{row['auc_off_topic_ar']:>11.3f} / {row['auc_off_topic_en']:.3f}  "
              f"{row['threshold_ar']:>12.3f} / {row['threshold_en']:.3f}")
    return result


def collect_all(args) -> list[Question]:
    from assistant.core import Assistant
    from assistant.settings import Settings

    settings = Settings.load(data_dir=args.data_dir, collection=args.collection)
    if args.sample:
        build_sample_index(settings)
    assistant = Assistant(settings)
    items = load_qa(args.qa) + off_topic_items()
    clock = time.perf_counter()
    print(f"scoring the candidate sentences of {len(items)} questions (k={settings.k}) ...", flush=True)
    questions = collect(assistant, items, stored_vectors=not args.embed_sentences)
    print(f"done in {time.perf_counter() - clock:.0f} s")
    return questions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("isnad-data/eval-sample"), help="index directory")
    parser.add_argument("--collection", default=None, help="collection name prefix")
    parser.add_argument("--qa", type=Path, default=DEFAULT_QA)
    parser.add_argument("--sample", action="store_true", help="ingest the bundled sample first")
    parser.add_argument("--out", type=Path, help="write the sweep as JSON here")
    parser.add_argument("--embed-sentences", action="store_true",
                        help="embed each sentence on its own instead of the index's stored sentence vectors")
    parser.add_argument("--cache", type=Path, help="score components: read from this JSON file when it exists "
                        "(no model, no index needed), else computed and written there")
    args = parser.parse_args(argv)
    if args.cache and args.cache.is_file():
        questions = [
            Question(q["id"], q["language"], q["group"], [Sentence(**s) for s in q["sentences"]])
            for q in json.loads(args.cache.read_text(encoding="utf-8"))
        ]
        print(f"score components of {len(questions)} questions read from {args.cache}")
    else:
        questions = collect_all(args)
        if args.cache:
            args.cache.write_text(json.dumps([asdict(q) for q in questions], ensure_ascii=False), encoding="utf-8")
    result = report(questions)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
