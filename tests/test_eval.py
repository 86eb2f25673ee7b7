"""The eval suite: its metric functions on hand-made cases (fast), and the CI gate: the whole bilingual
Q&A set asked of a real sample index (real embedder, real embedded Chroma) must meet eval/thresholds.toml.
The gate's reports are kept in test-artifacts/eval/ (results.json, report.md, charts).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from isnad_eval import (
    DEFAULT_QA,
    DEFAULT_THRESHOLDS,
    EvalResult,
    QAItem,
    check_thresholds,
    citation_correct,
    compute_metrics,
    load_qa,
    load_thresholds,
    percentile,
    run_eval,
    summary_table,
    write_reports,
)
from isnad_eval.metrics import (
    containment,
    hit_at,
    mean_reciprocal_rank,
    retrieval_rank,
    spans_overlap,
    summarise,
    token_f1,
)
from isnad_eval.report import SUMMARY_METRICS
from isnad_eval.run import history_for, score_item

from assistant.errors import ConfigError, InputError
from assistant.types import Answer, Citation

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "eval"

# A sentence of the seed article and an evidence span inside it.
SENTENCE = (
    "أعتبر السيد رئيس الإركان العامة ان المركبة غير المسجلة تشكل مشروع جريمة وعلى الجهات المختصة ضرورة "
    "القضاء على هذه الظاهرة بالبدء في حملات مرورية تستهدف السيارات غير المسجلة."
)
EVIDENCE = "بالبدء في حملات مرورية تستهدف السيارات غير المسجلة"


# --- answer tokens: Arabic normalisation, digits, markers ------------------------------------------


def test_f1_folds_arabic_letters_and_diacritics():
    assert token_f1("أحمد إبراهيم", "احمد ابراهيم") == 1.0
    assert token_f1("مُحَمَّدٌ", "محمد") == 1.0
    assert token_f1("مدرسة", "مدرسه") == 1.0  # taa marbuta folds to haa
    assert token_f1("القاهرة", "الرياض") == 0.0


def test_f1_is_partial_credit():
    # prediction 4 tokens, gold 2, 2 in common: P 0.5, R 1 -> F1 2/3
    assert token_f1("ستة أشخاص في الشقة", "ستة أشخاص") == pytest.approx(2 / 3)
    assert token_f1("Six people", "six") == pytest.approx(2 / 3)  # case folded


def test_digits_are_unified_and_markers_dropped():
    assert containment("سجل الفريق ٢٤٨ هدفا", "248") == 1.0
    assert containment("۴۳.۸ كيلوغرام", "43.8") == 1.0  # Persian digits too
    assert containment("«سبعة طوابق» [1]", "1") == 0.0  # [1] is a citation marker, not content
    assert token_f1("«ستة» [1] [2]", "ستة") == 1.0


def test_containment_counts_multiplicity():
    assert containment("غير المسجلة", "غير المسجلة غير") == pytest.approx(2 / 3)
    assert containment("anything", "") == 0.0


# --- retrieval metrics -----------------------------------------------------------------------------


def test_retrieval_rank_uses_every_copy_id():
    hits = [["a"], ["b", "c"], ["c"]]
    assert retrieval_rank(hits, ["c"]) == 2
    assert retrieval_rank(hits, ["x", "a"]) == 1
    assert retrieval_rank(hits, ["z"]) is None


def test_hit_at_k_and_mrr():
    ranks = [1, 3, None, 6]
    assert hit_at(ranks, 1) == 0.25
    assert hit_at(ranks, 3) == 0.5
    assert hit_at(ranks, 5) == 0.5
    assert hit_at(ranks, 10) == 0.75
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 3 + 1 / 6) / 4)
    assert hit_at([], 5) is None


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([0, 10], 95) == pytest.approx(9.5)
    assert percentile([], 50) is None


# --- citations -------------------------------------------------------------------------------------


def test_spans_overlap_as_intervals_on_folded_text():
    assert spans_overlap(SENTENCE, EVIDENCE)  # the quote contains the evidence
    assert spans_overlap(EVIDENCE[:30], EVIDENCE)  # the evidence contains the quote
    # the end of one span is the start of the other
    assert spans_overlap("ضرورة القضاء على هذه الظاهرة بالبدء في حملات", "بالبدء في حملات مرورية تستهدف")
    # hamza and alef forms, diacritics: compared after fold()
    assert spans_overlap("اعتبر السيد رئيس الاركان العامه", "أعتبر السيدُ رئيس الأركان العامة ان المركبة")
    # a phrase shared in the middle of two different sentences is not an overlap
    assert not spans_overlap(
        "قال رئيس الأركان العامة للقوات المسلحة أمس", "واجتمع رئيس الأركان العامة للقوات المسلحة مع"
    )
    assert not spans_overlap("", EVIDENCE)


def test_citation_correct_needs_the_gold_article_and_the_evidence():
    gold = ["benghazi-security-meeting.txt"]
    assert citation_correct("benghazi-security-meeting.txt", SENTENCE, gold, [EVIDENCE])
    assert not citation_correct("other.txt", SENTENCE, gold, [EVIDENCE])
    assert not citation_correct("benghazi-security-meeting.txt", "وأكد الوزير على أهمية التنسيق بين الأجهزة", gold,
                                [EVIDENCE])


# --- scoring one item and groups -------------------------------------------------------------------


def _item(answerable=True, language="ar", kind="what", id="ar-001", follows=None) -> QAItem:
    return QAItem(
        id=id,
        language=language,
        kind=kind,
        question="ماذا أمر رئيس الأركان بشأن السيارات غير المسجلة؟",
        answer="حملات مرورية تستهدف السيارات غير المسجلة" if answerable else "No answer in the corpus",
        answerable=answerable,
        article_ids=("benghazi-security-meeting.txt",) if answerable else (),
        evidence=(EVIDENCE,) if answerable else (),
        follows=follows,
    )


def _answer(quotes: list[tuple[str, str]], language="ar") -> Answer:
    citations = [
        Citation(n=n, article_id=article_id, title="t", quote=quote, start=0, end=len(quote))
        for n, (article_id, quote) in enumerate(quotes, start=1)
    ]
    text = " ".join(f"«{c.quote}» [{c.n}]" for c in citations) or "لا تذكر المقالات المتاحة ما يجيب عن هذا السؤال."
    return Answer(text, bool(citations), language, "extractive", citations, standalone_question="q")


def test_score_item_right_answer():
    result = score_item(_item(), _answer([("benghazi-security-meeting.txt", SENTENCE)]),
                        [["x"], ["benghazi-security-meeting.txt"]])
    assert result.rank == 2
    assert result.correct_citations == 1
    assert result.answer_containment == 1.0
    assert result.evidence_containment == 1.0
    assert result.answer_correct
    assert 0 < result.answer_f1 < 1  # the quote is longer than the gold answer


def test_score_item_wrong_citation_and_english_answer_scored_on_evidence():
    item = _item(language="en")
    item = QAItem(**{**item.__dict__, "answer": "Traffic campaigns targeting unregistered cars"})
    answer = _answer([("benghazi-security-meeting.txt", SENTENCE), ("other.txt", "جملة أخرى لا علاقة لها")], "en")
    result = score_item(item, answer, [])
    assert [c["correct"] for c in result.citations] == [True, False]
    assert result.rank is None
    assert result.answer_containment == 0.0  # English gold, Arabic quote
    assert result.evidence_containment == 1.0
    assert result.answer_correct


def test_summarise_abstention_and_citation_precision():
    seed = "benghazi-security-meeting.txt"
    right = score_item(_item(id="a"), _answer([(seed, SENTENCE)]), [[seed]])
    half = score_item(_item(id="b"), _answer([(seed, SENTENCE), ("o", "كلام آخر تماما هنا")]), [["o"], ["o"], [seed]])
    declined = score_item(_item(id="c"), _answer([]), [])
    unans_declined = score_item(_item(answerable=False, id="d"), _answer([]), [])
    unans_answered = score_item(_item(answerable=False, id="e"), _answer([("o", "كلام")]), [])
    metrics = summarise([right, half, declined, unans_declined, unans_answered])  # rounded to 4 places
    assert metrics["n"] == 5 and metrics["answerable"] == 3 and metrics["unanswerable"] == 2
    assert metrics["citation_precision"] == pytest.approx(2 / 3, abs=1e-4)  # answerable questions' citations only
    assert metrics["citation_recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["answerable_declined"] == pytest.approx(1 / 3, abs=1e-4)
    assert metrics["unanswerable_declined"] == 0.5
    assert metrics["abstention_accuracy"] == pytest.approx(3 / 5, abs=1e-4)
    assert metrics["hit_at_1"] == pytest.approx(1 / 3, abs=1e-4)
    assert metrics["hit_at_3"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)


def test_compute_metrics_groups_by_language_and_kind():
    results = [
        score_item(_item(id="a", language="ar", kind="who"), _answer([]), []),
        score_item(_item(id="b", language="en", kind="who"), _answer([]), []),
        score_item(_item(id="c", language="en", kind="why"), _answer([]), []),
    ]
    metrics = compute_metrics(results)
    assert metrics["overall"]["n"] == 3
    assert {k: v["n"] for k, v in metrics["by_language"].items()} == {"ar": 1, "en": 2}
    assert {k: v["n"] for k, v in metrics["by_kind"].items()} == {"who": 2, "why": 1}


def test_follow_up_history_holds_the_previous_question_and_answer():
    first, second = _item(id="a"), _item(id="b", follows="a")
    asked = {"a": (first, "«جواب» [1]")}
    assert history_for(second, asked) == [
        {"role": "user", "content": first.question},
        {"role": "assistant", "content": "«جواب» [1]"},
    ]
    assert history_for(first, asked) == []


def test_history_of_a_later_turn_holds_the_whole_conversation():
    first, second, third = _item(id="a"), _item(id="b", follows="a"), _item(id="c", follows="b")
    asked = {"a": (first, "«أول» [1]"), "b": (second, "«ثان» [1]")}
    assert [m["content"] for m in history_for(third, asked)] == [first.question, "«أول» [1]", second.question,
                                                                 "«ثان» [1]"]


def _follow_up(id, in_conversation, alone, repeats=False, answerable=True):
    """A scored follow-up: correct (with a correct citation) in conversation or not, and asked alone."""
    seed = "benghazi-security-meeting.txt"
    result = score_item(_item(id=id, follows="lead", answerable=answerable),
                        _answer([(seed, SENTENCE)] if in_conversation else []), [[seed]])
    result.standalone_has_answer = alone is not None
    result.standalone_answer_correct = result.standalone_cited = bool(alone)
    result.repeats_previous = repeats
    return result


def test_follow_up_metrics_compare_the_conversation_with_the_same_turns_alone():
    lead = score_item(_item(id="lead"), _answer([]), [])
    results = [lead, _follow_up("b", True, True), _follow_up("c", False, True, repeats=True),
               _follow_up("d", False, None), _follow_up("e", True, False)]
    metrics = summarise(results)
    assert metrics["follow_ups"] == 4  # the lead is no follow-up
    assert metrics["follow_up_answer_correct"] == 0.5 and metrics["follow_up_citation_recall"] == 0.5
    assert metrics["follow_up_declined"] == 0.5
    assert metrics["standalone_answer_correct"] == 0.5 and metrics["standalone_citation_recall"] == 0.5
    assert metrics["standalone_declined"] == 0.25
    assert metrics["follow_up_repeated"] == 0.25
    assert summarise([lead])["follow_ups"] == 0 and summarise([lead])["follow_up_answer_correct"] is None


def test_report_shows_follow_ups_next_to_the_same_turns_alone(tmp_path):
    items = [score_item(_item(id="lead"), _answer([]), []), _follow_up("b", False, True)]
    items[1].standalone_form = "ماذا أمر رئيس الأركان؟"
    paths = write_reports(EvalResult("extractive", items, compute_metrics(items), info={}), tmp_path)
    report = paths["report"].read_text(encoding="utf-8")
    assert "## Follow-ups: in conversation vs asked alone" in report
    assert "| answer correct | 0.000 / 1.000 |" in report
    assert "**b** (follows lead) correct only alone" in report
    assert "answered correctly when asked alone, not in the conversation" in report
    assert "same alone: correct" in summary_table(compute_metrics(items))


# --- thresholds, Q&A file, reports -----------------------------------------------------------------


def _metrics(hit5=0.9, declined=0.1, en_hit5=0.8):
    return {
        "overall": {"hit_at_5": hit5, "answerable_declined": declined, "judge": None},
        "by_language": {"en": {"hit_at_5": en_hit5}},
        "by_kind": {},
    }


def test_check_thresholds_min_max_and_groups():
    thresholds = {"min_hit_at_5": 0.85, "max_answerable_declined": 0.2, "language": {"en": {"min_hit_at_5": 0.75}}}
    assert check_thresholds(_metrics(), thresholds) == []
    failures = check_thresholds(_metrics(hit5=0.8, declined=0.3, en_hit5=0.7), thresholds)
    assert len(failures) == 3
    assert "hit_at_5 = 0.800 is below the minimum 0.85" in failures[0]
    assert "above the maximum" in failures[1]
    assert failures[2].startswith("language en:")
    assert check_thresholds(_metrics(), {"min_judge": 0.5}) == ["overall: judge was not measured (threshold min 0.5)"]
    assert "no questions" in check_thresholds(_metrics(), {"kind": {"who": {"min_hit_at_5": 0.5}}})[0]
    with pytest.raises(ConfigError, match="unknown metric"):
        check_thresholds(_metrics(), {"min_hit_at_6": 0.5})
    with pytest.raises(ConfigError, match="min_<metric>"):
        check_thresholds(_metrics(), {"hit_at_5": 0.5})


def test_thresholds_file_names_known_metrics():
    # Every key in the shipped file must name a metric the eval computes.
    fake = compute_metrics([score_item(_item(id=f"{lang}-{kind}", language=lang, kind=kind), _answer([]), [])
                            for lang in ("ar", "en") for kind in ("who", "what", "when", "where", "how_many", "why")])
    for mode in ("extractive", "llm"):
        check_thresholds(fake, load_thresholds(DEFAULT_THRESHOLDS, mode))  # raises ConfigError when unknown
    with pytest.raises(ConfigError, match="no \\[nope\\] table"):
        load_thresholds(DEFAULT_THRESHOLDS, "nope")


def test_every_summary_metric_has_a_threshold():
    # Issue 12: a metric without a floor let "All thresholds met" hide a 1-of-16 decline rate. The LLM
    # judge is the one exception: extractive mode does not measure it.
    keys = {key.split("_", 1)[1] for key, value in load_thresholds(DEFAULT_THRESHOLDS, "extractive").items()
            if not isinstance(value, dict)}
    missing = [name for name, _ in SUMMARY_METRICS if name != "judge" and name not in keys]
    assert missing == []


def test_load_qa_reads_the_bundled_set_and_rejects_bad_lines(tmp_path):
    items = load_qa(DEFAULT_QA)
    assert len(items) == 143
    assert sum(not item.answerable for item in items) == 17
    position = {item.id: n for n, item in enumerate(items)}
    assert all(item.follows is None or position[item.follows] < position[item.id] for item in items)
    assert all((item.standalone is None) == (item.follows is None) for item in items)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "language": "fr", "kind": "who", "question": "q", "answer": "a", '
                   '"answerable": false}\n', encoding="utf-8")
    with pytest.raises(InputError, match="bad.jsonl:1: language"):
        load_qa(bad)
    with pytest.raises(InputError, match="not found"):
        load_qa(tmp_path / "missing.jsonl")


def test_load_qa_reads_the_optional_standalone_field(tmp_path):
    base = ('"language": "en", "kind": "who", "answer": "a", "answerable": false')
    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"id": "a", "question": "Who met?", ' + base + '}\n'
        '{"id": "b", "question": "And then?", "follows": "a", "standalone": "What happened after they met?", '
        + base + '}\n{"id": "c", "question": "Why?", "follows": "a", "standalone": null, ' + base + '}\n',
        encoding="utf-8",
    )
    assert [item.standalone for item in load_qa(path)] == [None, "What happened after they met?", None]
    path.write_text('{"id": "a", "question": "q", "standalone": 3, ' + base + '}\n', encoding="utf-8")
    with pytest.raises(InputError, match="qa.jsonl:1: standalone must be a string or null"):
        load_qa(path)


def test_reports_compare_with_the_previous_run(tmp_path):
    def result(correct: bool) -> EvalResult:
        quotes = [("benghazi-security-meeting.txt", SENTENCE)] if correct else []
        items = [score_item(_item(id="ar-001"), _answer(quotes), [["benghazi-security-meeting.txt"]])]
        return EvalResult("extractive", items, compute_metrics(items), info={"when": "now"})

    write_reports(result(False), tmp_path)
    assert not (tmp_path / "previous.json").exists()
    paths = write_reports(result(True), tmp_path, {"min_citation_recall": 0.5})
    previous = json.loads((tmp_path / "previous.json").read_text(encoding="utf-8"))
    assert previous["metrics"]["overall"]["citation_recall"] == 0.0
    report = paths["report"].read_text(encoding="utf-8")
    assert "| citation R | 1.000 | 0.000 | +1.000 | ≥ 0.5 |" in report
    assert (tmp_path / "by_language.png").stat().st_size > 1000
    assert (tmp_path / "by_kind.png").read_bytes()[:4] == b"\x89PNG"
    assert "citation R" in summary_table(result(True).metrics)


# --- the CI gate (the sample index is the session fixture `sample_assistant` of conftest.py) ---------


def test_sample_index_holds_every_gold_article(sample_assistant):
    present = {i for record in sample_assistant.store.iter_records() for i in record.article_ids}
    gold = {i for item in load_qa(DEFAULT_QA) for i in item.article_ids}
    assert gold <= present
    assert "NOTICE.md" not in present  # the sample's licence notice is not an article


def test_eval_gate_meets_thresholds(sample_assistant):
    """The whole Q&A set in extractive mode; below any threshold of eval/thresholds.toml fails CI."""
    thresholds = load_thresholds(DEFAULT_THRESHOLDS, "extractive")
    result = run_eval(sample_assistant, load_qa(DEFAULT_QA), mode="extractive")
    result.failures = check_thresholds(result.metrics, thresholds)
    write_reports(result, ARTIFACTS, thresholds)
    print("\n" + summary_table(result.metrics))
    assert len(result.items) == 143
    assert result.metrics["overall"]["follow_ups"] == 38  # answerable follow-ups, each also asked alone
    assert result.failures == [], "below thresholds (see test-artifacts/eval/report.md):\n" + "\n".join(
        result.failures
    )


def test_eval_command_writes_reports_and_fails_below_thresholds(sample_assistant, tmp_path, capsys):
    """`isnad eval` end to end on a few questions: reports written, exit 1 under an unreachable floor."""
    from assistant.app.cli import main

    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(line + "\n" for line in DEFAULT_QA.read_text(encoding="utf-8").splitlines()[:4]),
                  encoding="utf-8")
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text("[extractive]\nmin_hit_at_5 = 0.5\nmin_citation_precision = 1.01\n", encoding="utf-8")
    settings = sample_assistant.settings
    argv = ["eval", "--qa", str(qa), "--thresholds", str(thresholds), "--out", str(tmp_path / "run"),
            "--data-dir", str(settings.data_dir), "--collection", settings.collection]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "citation_precision" in out and "below the minimum 1.01" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    assert [item["id"] for item in results["items"]] == ["en-001", "en-002", "en-003", "en-004"]
    assert results["threshold_failures"] and (tmp_path / "run" / "report.md").is_file()
    thresholds.write_text("[extractive]\nmin_hit_at_5 = 0.5\n", encoding="utf-8")
    assert main(argv) == 0
    assert (tmp_path / "run" / "previous.json").is_file()
