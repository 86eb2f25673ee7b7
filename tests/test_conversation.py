"""Follow-ups without an LLM (assistant/conversation.py): what the heuristic carries from the earlier turns,
and, over the real sample index (real embedder, real Chroma, the trained reader), the conversations of
issue 12 that it used to get wrong."""

from __future__ import annotations

import pytest

from assistant.conversation import (
    MAX_CONTEXT_WORDS,
    condense_heuristically,
    follow_up_in_context,
    looks_like_follow_up,
    topic_terms,
)

from .corpora import CANONICAL_AR, CANONICAL_EN, SEED

MINISTER_AR = "وماذا طلب وزير الداخلية؟"
MINISTER_EN = "And what did the interior minister ask for?"
# The sentence that answers what the interior minister asked for, and the one that answers the canonical question.
MINISTER_SENTENCE = "وزير الداخلية طلب"
VEHICLE_SENTENCE = "حملات مرورية تستهدف السيارات غير المسجلة"


def _history(*turns: tuple[str, str]) -> list[dict[str, str]]:
    messages = []
    for question, answer in turns:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages


# --- the heuristic (no model) ------------------------------------------------------------------------


def test_topic_terms_keep_names_and_things_not_question_words():
    assert topic_terms(CANONICAL_EN) == ["chief", "staff", "order", "unregistered", "vehicles"]
    assert topic_terms(CANONICAL_AR) == ["أمر", "رئيس", "الأركان", "السيارات", "غير", "المسجلة"]
    assert topic_terms("وماذا طلب وزير الداخلية؟") == ["طلب", "وزير", "الداخلية"]  # clitic و + ماذا dropped
    assert topic_terms("How old was he?") == ["old"]


def test_diacritics_neither_split_words_nor_hide_a_follow_up():
    vocalised = "وَمَاذَا طَلَبَ وَزِيرُ الدَّاخِلِيَّةِ؟"
    assert topic_terms(vocalised) == ["طلب", "وزير", "الداخلية"]
    assert looks_like_follow_up("وَمَاذَا طَلَبَ وَزِيرُ الدَّاخِلِيَّةِ فِي الاجْتِمَاعِ؟")
    history = _history((CANONICAL_AR, "«...» [1]"))
    carried = condense_heuristically(MINISTER_AR, history)[len(MINISTER_AR):]
    assert carried and condense_heuristically(vocalised, history) == vocalised + carried


def test_a_follow_up_carries_the_topic_not_the_earlier_question():
    standalone = condense_heuristically(MINISTER_AR, _history((CANONICAL_AR, "«...» [1]")))
    assert standalone.startswith(MINISTER_AR)
    assert "رئيس الأركان" in standalone and "المسجلة" in standalone
    assert "ماذا أمر" not in standalone and CANONICAL_AR not in standalone


def test_an_arabic_follow_up_takes_the_arabic_twin_of_an_english_question():
    history = _history((CANONICAL_EN, "«...» [1]"), (CANONICAL_AR, "«...» [1]"))
    standalone = condense_heuristically(MINISTER_AR, history)
    assert standalone.startswith(MINISTER_AR) and "الأركان" in standalone
    assert not any(word in standalone for word in ("What", "chief", "vehicles"))  # one language only


def test_an_english_follow_up_after_arabic_turns_keeps_its_own_question_first():
    history = _history((CANONICAL_EN, "«...» [1]"), (CANONICAL_AR, "«...» [1]"))
    standalone = condense_heuristically(MINISTER_EN, history)
    assert standalone.startswith(MINISTER_EN)
    assert standalone.index("chief") < standalone.index("الأركان")  # its own language's terms first
    assert "ماذا" not in standalone and "What did" not in standalone


def test_a_chain_of_follow_ups_keeps_the_topic_of_its_opening_question():
    history = _history(("How many people did the Jeddah civil defence rescue from the burning flat?", "a"),
                       ("وكم طابقاً يضم المبنى؟", "b"))
    standalone = condense_heuristically("And why was it evacuated?", history)
    assert "Jeddah" in standalone and "طابقا" in standalone
    assert len(standalone.split()) <= len("And why was it evacuated?".split()) + 12


def test_a_question_that_stands_alone_is_not_changed():
    history = _history((CANONICAL_EN, "«...» [1]"))
    question = "How many counterfeit iPhones had the factory raided by Beijing police produced?"
    assert not looks_like_follow_up(question)
    assert condense_heuristically(question, history) == question
    assert condense_heuristically(MINISTER_AR, []) == MINISTER_AR


def test_the_reader_also_judges_a_follow_up_with_the_whole_questions_it_leans_on():
    opening = "How many people did the Jeddah civil defence rescue from the burning flat?"
    history = _history((CANONICAL_EN, "a"), (opening, "b"), ("وكم طابقاً يضم المبنى؟", "c"))
    in_context = follow_up_in_context("And why was it evacuated?", history)
    # the chain back to its opening question, oldest first; the unrelated first question is not carried
    assert in_context == f"And why was it evacuated? ({opening} وكم طابقاً يضم المبنى؟)"
    assert follow_up_in_context(MINISTER_AR, []) == MINISTER_AR
    assert follow_up_in_context("How many counterfeit iPhones were produced in Beijing?", history).endswith("Beijing?")
    long_opening = " ".join(["word"] * 50) + "?"
    carried = follow_up_in_context("And why?", _history((long_opening, "a")))[len("And why? ("):-1]
    assert len(carried.split()) == MAX_CONTEXT_WORDS


# --- the sample index: issue 12's conversations -----------------------------------------------------


def test_arabic_follow_up_after_an_english_question_and_its_arabic_twin_is_answered(sample_assistant):
    """Issue 12: declined although the same question asked alone is answered."""
    alone = sample_assistant.ask(MINISTER_AR)
    first = sample_assistant.ask(CANONICAL_EN)
    second = sample_assistant.ask(CANONICAL_AR, history=_history((CANONICAL_EN, first.text)))
    follow = sample_assistant.ask(MINISTER_AR, history=_history((CANONICAL_EN, first.text),
                                                                (CANONICAL_AR, second.text)))
    assert alone.has_answer and follow.has_answer, follow.text
    assert follow.language == "ar" and follow.citations[0].article_id == SEED
    assert MINISTER_SENTENCE in follow.citations[0].quote


@pytest.mark.parametrize("opening", [CANONICAL_AR, CANONICAL_EN])
def test_english_follow_up_does_not_repeat_the_earlier_answer(sample_assistant, opening):
    """Issue 12: an English follow-up after an Arabic turn repeated the earlier answer."""
    first = sample_assistant.ask(opening)
    assert VEHICLE_SENTENCE in first.citations[0].quote
    follow = sample_assistant.ask(MINISTER_EN, history=_history((opening, first.text)))
    assert follow.has_answer and follow.language == "en"
    assert follow.text != first.text
    assert follow.citations[0].article_id == SEED and MINISTER_SENTENCE in follow.citations[0].quote
