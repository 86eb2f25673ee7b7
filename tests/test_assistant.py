"""The Python API over an index of the bundled sample: real embedder, real Chroma, extractive answers."""

from __future__ import annotations

import json

import pytest

import assistant
from assistant import Assistant, IsnadError
from assistant.errors import IndexNotFound
from assistant.store import Store

from .corpora import CANONICAL_AR, CANONICAL_EN, SEED


def test_public_api_is_small():
    assert sorted(assistant.__all__) == ["Answer", "Assistant", "Citation", "Hit", "IsnadError", "Settings"]


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotFound, match=r"no index in .*nothing: run `isnad ingest"):
        Assistant(data_dir=tmp_path / "nothing")


def _article_text(settings, article_id):
    store = Store.open(settings)
    return next(r.text for r in store.iter_records(include_text=True) if article_id in r.article_ids)


@pytest.mark.parametrize("question,language", [(CANONICAL_EN, "en"), (CANONICAL_AR, "ar")])
def test_canonical_question_is_answered_with_the_exact_sentence(sample_assistant, sample_settings, question,
                                                                language):
    answer = sample_assistant.ask(question)
    assert answer.has_answer and answer.language == language and answer.mode == "extractive"
    assert "[1]" in answer.text
    first = answer.citations[0]
    assert first.article_id == SEED and "السيارات غير المسجلة" in first.quote
    # The quote is an exact span of the stored article: offsets index the article text.
    assert _article_text(sample_settings, SEED)[first.start:first.end] == first.quote
    if language == "en":
        assert answer.text.startswith("According to the article, quoted in Arabic: «")


@pytest.mark.parametrize("question,expected", [
    ("Who won the 2014 FIFA World Cup final?", "The articles do not say."),
    ("من فاز بنهائي كأس العالم لكرة القدم 2014؟", "لا تذكر المقالات"),
])
def test_unanswerable_question_is_declined_in_its_language(sample_assistant, question, expected):
    answer = sample_assistant.ask(question)
    assert not answer.has_answer and answer.text.startswith(expected) and not answer.citations


def test_follow_up_uses_the_history(sample_assistant):
    first = sample_assistant.ask(CANONICAL_EN)
    history = [{"role": "user", "content": CANONICAL_EN}, {"role": "assistant", "content": first.text}]
    question = "And what did the interior minister ask for?"
    follow = sample_assistant.ask(question, history=history)
    # Issue 12: the follow-up is searched with the earlier question's topic, not its whole text.
    assert follow.standalone_question.startswith(question)
    assert "chief staff" in follow.standalone_question and "unregistered vehicles" in follow.standalone_question
    assert CANONICAL_EN not in follow.standalone_question
    assert follow.citations and follow.citations[0].article_id == SEED


def test_duplicates_are_collapsed_and_list_every_paper(sample_assistant):
    hits = sample_assistant.retrieve("حريق شقة سكنية في جدة", k=5)
    fire = [h for h in hits if "aleqt.com/2015/07/22" in " ".join(h.article_ids)]
    assert len(fire) >= 1
    assert {"aleqtisadiya", "alriyadh", "alweeam"} <= set(fire[0].sources)
    texts = [h.text for h in hits]
    assert len(texts) == len(set(texts))


def test_filters_by_source_and_date(sample_assistant):
    hits = sample_assistant.retrieve("حريق", k=5, filters={"sources": ["aljazirah"]})
    assert hits and all("aljazirah" in h.sources for h in hits)
    hits = sample_assistant.retrieve("حريق", k=5, filters={"since": "2015-08-10", "until": "2015-08-11"})
    assert hits and all("2015-08-10" <= h.date <= "2015-08-11" for h in hits)


@pytest.mark.parametrize("question", ["", "   ", "؟؟!!...", "ًٌٍَُ"])
def test_questions_without_words_get_a_clear_message(sample_assistant, question):
    with pytest.raises(IsnadError, match="question"):
        sample_assistant.ask(question)


def test_very_long_and_mixed_questions_do_not_break(sample_assistant):
    answer = sample_assistant.ask("رئيس الأركان " * 2000)
    assert answer.language == "ar"
    answer = sample_assistant.ask("What did رئيس الأركان order about السيارات غير المسجلة?")
    assert answer.citations and answer.citations[0].article_id == SEED


def test_cli_ask_json_and_retrieve(sample_settings, capsys):
    from assistant.app.cli import main

    assert main(["ask", CANONICAL_EN, "--json", "--data-dir", str(sample_settings.data_dir)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["has_answer"] and answer["citations"][0]["article_id"] == SEED
    assert main(["retrieve", CANONICAL_AR, "--json", "--k", "3", "--data-dir", str(sample_settings.data_dir)]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and hits[0]["article_id"] == SEED
    assert main(["ask", "  ", "--data-dir", str(sample_settings.data_dir)]) == 1
    assert capsys.readouterr().err.startswith("isnad: error: the question is empty")


@pytest.mark.parametrize("message,language", [("hello", "en"), ("Tell me a joke", "en"), ("مرحبا", "ar"),
                                              ("<script>alert(1)</script>", "en")])
def test_small_talk_gets_a_reply_not_a_quote(sample_assistant, message, language):
    answer = sample_assistant.ask(message)
    assert not answer.has_answer and not answer.citations and answer.language == language
    assert ("chief of staff" if language == "en" else "رئيس الأركان") in answer.text  # the example question


def test_a_cut_question_and_an_emptying_filter_say_so(sample_assistant):
    answer = sample_assistant.ask("chief of staff " * 200)
    assert answer.notice.startswith("The question was cut to its first 2,000 characters (it had 2,999).")
    answer = sample_assistant.ask("رئيس الأركان " * 300)  # in the question's language
    assert answer.notice.startswith("اقتُصر على أول 2,000 حرف من السؤال (كان طوله 3,899 حرفًا).")
    filters = {"sources": ["no-such-paper"], "since": "2015-08-01"}
    answer = sample_assistant.ask(CANONICAL_EN, filters=filters)
    assert not answer.has_answer
    assert "No article matches the active filters (newspapers no-such-paper; from 2015-08-01)" in answer.notice
    answer = sample_assistant.ask(CANONICAL_AR, filters=filters)
    assert "لا توجد مقالات تطابق عوامل التصفية المفعّلة (الصحف no-such-paper؛ من 2015-08-01)" in answer.notice
    assert sample_assistant.ask(CANONICAL_EN).notice == ""


def test_notices_are_collected_not_overwritten(sample_assistant):
    """A cut question asked in LLM mode with no endpoint, under a filter that matches nothing: all three
    are said, the cut first (one notice used to replace another)."""
    filters = {"sources": ["no-such-paper"]}
    answer = sample_assistant.ask("chief of staff " * 200, filters=filters, mode="llm")
    cut, no_llm, no_match = (answer.notice.find(part) for part in (
        "The question was cut", "No LLM endpoint is configured", "No article matches the active filters"))
    assert 0 == cut < no_llm < no_match, answer.notice
