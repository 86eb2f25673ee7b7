"""The trained reader: the shipped weights over the real embedder, on passages it never saw in training."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from assistant.errors import EmbedderError
from assistant.reader import WEIGHTS, Reader, load_reader

# An on-topic passage whose lead sentence does not answer: the answer sits in the last sentence.
PASSAGE = (
    "أعلنت وزارة الصحة اليوم عن خطة جديدة لتطوير المستشفيات الحكومية في المنطقة الشرقية. "
    "وقال المتحدث باسم الوزارة إن الخطة تهدف إلى تحسين الخدمات المقدمة للمرضى. "
    "وأوضح أن تنفيذ الخطة سيبدأ في شهر مارس المقبل بتكلفة تبلغ 300 مليون ريال."
)
LAST = 2


@pytest.fixture(scope="module")
def reader(embedder):
    return load_reader(embedder)


def _read(reader, question):
    vector = reader.embedder.embed_query(question)
    return reader.read(question, vector, [(PASSAGE, None)])[0]


@pytest.mark.parametrize("question", [
    "متى سيبدأ تنفيذ خطة وزارة الصحة؟",
    "When will the health ministry's plan start?",
    "كم تبلغ تكلفة خطة تطوير المستشفيات؟",
    "How much will the hospitals plan cost?",
])
def test_the_answering_sentence_beats_the_lead(reader, question):
    reading = _read(reader, question)
    assert [PASSAGE[s:e] for s, e in reading.sentences][LAST].startswith("وأوضح")
    assert int(np.argmax(reading.scores)) == LAST, reading.scores
    assert reading.best >= reader.threshold("en" if question.isascii() else "ar")


def test_the_short_answer_is_inside_the_answering_sentence(reader):
    reading = _read(reader, "كم تبلغ تكلفة خطة تطوير المستشفيات؟")
    start, end = reading.answer
    sentence_start, sentence_end = reading.sentences[LAST]
    assert sentence_start <= start < end <= sentence_end
    assert "300" in PASSAGE[start:end] or "مليون" in PASSAGE[start:end]


@pytest.mark.parametrize("question", ["Who won the 2022 World Cup?", "من فاز بكأس العالم 2022؟"])
def test_an_unrelated_question_is_below_the_threshold(reader, question):
    assert _read(reader, question).best < reader.threshold("en" if question.isascii() else "ar")


def test_weights_for_another_embedder_are_refused(embedder, tmp_path):
    other = tmp_path / "reader.safetensors"
    save_file(load_file(str(WEIGHTS)), str(other), metadata={"embedder": "someone-else@0000", "threshold": "0"})
    with pytest.raises(EmbedderError, match=r"trained over embedder someone-else@0000.*train_reader\.py"):
        Reader(embedder, other)


def test_missing_weights_say_how_to_make_them(embedder, tmp_path):
    with pytest.raises(EmbedderError, match=r"missing: train them with eval/train_reader\.py"):
        Reader(embedder, tmp_path / "none.safetensors")


def test_retrieve_returns_the_reader_order(sample_assistant):
    question = "What did the chief of staff order about unregistered vehicles?"
    hits = sample_assistant.retrieve(question, k=5)
    vector = sample_assistant.embedder.embed_query(question)
    unranked = sample_assistant.retriever.retrieve(question, 5, query_vector=vector)
    readings = sample_assistant.reader.read(question, vector, [(h.text, None) for h in unranked])
    scores = sample_assistant.reader.rerank_scores(readings)
    expected = [unranked[i].chunk_id for i in sorted(range(len(unranked)), key=lambda i: -scores[i])]
    assert [h.chunk_id for h in hits] == expected
    assert hits[0].article_id == "benghazi-security-meeting.txt"


def test_english_answer_leads_with_the_short_answer_in_western_digits():
    from assistant.extractive import compose
    from assistant.types import Citation

    quote = "وأوضح أن تنفيذ الخطة سيبدأ في شهر مارس المقبل بتكلفة تبلغ ٣٠٠ مليون ريال."
    citation = Citation(1, "a1", "t", quote, 0, len(quote), sources=["okaz"], date="2015-08-01")
    text = compose("en", [citation], "٣٠٠ مليون ريال")
    assert text.startswith("In short: 300 مليون ريال [1]. According to okaz (2015-08-01), quoted in Arabic: «")
    assert text.endswith(f"«{quote}» [1]")  # the quote itself stays verbatim
    assert compose("ar", [citation], "٣٠٠ مليون ريال") == f"«{quote}» [1]"


def test_onnxruntime_and_torch_readers_agree(reader):
    """The reader's layers run on onnxruntime (the default); on torch they must read the same."""
    from assistant.reader import _OnnxRunner, _TorchRunner

    assert isinstance(reader._runner, _OnnxRunner)
    question = "How much will the hospitals plan cost?"
    vector = reader.embedder.embed_query(question)
    passages = [(PASSAGE, None), (PASSAGE[:120], None)]
    on_onnx = reader.read(question, vector, passages)
    onnx_runner, reader._runner = reader._runner, _TorchRunner(reader)
    try:
        on_torch = reader.read(question, vector, passages)
    finally:
        reader._runner = onnx_runner
    for a, b in zip(on_onnx, on_torch, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)
        assert a.answer == b.answer


def test_answering_a_question_never_imports_torch(sample_settings, reader):
    """The cold `isnad ask` path: onnxruntime graphs (exported once, here by the `reader` fixture's
    process), no torch import."""
    import subprocess
    import sys

    from .conftest import REPO

    program = f"""
import sys
from assistant import Assistant
from assistant.settings import Settings
answer = Assistant(Settings(data_dir={str(sample_settings.data_dir)!r})).ask(
    "What did the chief of staff order about unregistered vehicles?")
print(answer.has_answer, "torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["True", "False"], done.stderr[-2000:]


# The same plan with its cost left out: on topic, the same names, the detail asked for missing.
WITHOUT_COST = PASSAGE.replace("بتكلفة تبلغ 300 مليون ريال", "وأن تكلفتها ستغطيها ميزانية الوزارة")


@pytest.mark.parametrize("question", ["كم تبلغ تكلفة خطة تطوير المستشفيات؟", "How much will the hospitals plan cost?"])
def test_a_question_for_an_amount_of_money_is_answered_only_by_a_sentence_with_one(reader, question):
    from assistant.extractive import answer_from_readings, checked_kind
    from assistant.types import Hit

    language = "en" if question.isascii() else "ar"
    assert checked_kind(question) == "money"
    vector = reader.embedder.embed_query(question)
    answers = {}
    for name, text in (("with", PASSAGE), ("without", WITHOUT_COST)):
        reading = reader.read(question, vector, [(text, None)])[0]
        hit = Hit("a:0", "a", "t", text, 0, len(text), 0.9, sources=["okaz"])
        answers[name] = answer_from_readings(question, language, [hit], [reading], reader)
        if name == "without" and language == "en":  # the reader alone would quote this near miss in English
            assert reading.best >= reader.threshold(language), reading.scores
    assert answers["with"].has_answer and "300 مليون ريال" in answers["with"].citations[0].quote
    assert not answers["without"].has_answer and answers["without"].citations == []


@pytest.mark.parametrize("question, kind", [
    ("كم مرة أكثر اضطرت الدول إلى دفع ثمن النفط؟", None),  # how many times, not an amount (dev XQuAD)
    ("ما الوضع المالي للشركة؟", None),
    ("بكم بيعت اللوحة؟", "money"),
    ("What was the prize money?", "money"),
    ("كم نسبة التذاكر المباعة؟", "share"),
    ("How many people died?", None),
])
def test_which_questions_ask_for_money_or_a_share(question, kind):
    from assistant.extractive import checked_kind, holds_kind

    assert checked_kind(question) == kind
    assert holds_kind("money", "بقيمة ١٢٠ مليون يوان") and holds_kind("money", "بتكلفة تبلغ 500 مليون")
    assert not holds_kind("money", "وتم تمويلُه بمَبالغَ مالية لشراءِ قاربٍ") and holds_kind("share", "70 بالمئة")


def test_graphs_of_earlier_shipped_weights_are_removed(embedder, reader):
    if embedder.onnx is None:
        pytest.skip("the embedder runs on torch here")
    folder = embedder.onnx.graphs_dir
    stale = folder / "reader-000000000000-lower8-top.onnx"
    stale.write_bytes(b"an earlier retrain's graph")
    Reader(embedder)  # the shipped weights, loaded again
    assert not stale.exists()
    current = reader.fingerprint.replace("@", "-")
    assert sorted(p.name for p in folder.glob("reader-*.onnx")) == [
        f"{current}-lower{reader.lower_layers}-lower.onnx", f"{current}-lower{reader.lower_layers}-top.onnx"]


def test_a_short_answer_keeps_the_currency_and_the_more_than_of_its_amount():
    from assistant.extractive import Candidate, short_answer
    from assistant.reader import PassageReading
    from assistant.types import Hit

    text = "ضبطت السلطات الفرنسية لوحة لبيكاسو تقدر قيمتها بأكثر من 25 مليون يورو، على سفينة في كورسيكا."
    hit = Hit("a:0", "a", "t", text, 100, 100 + len(text), 0.9)
    chosen = Candidate(hit, 100, 100 + len(text), text, 3.0)
    span = (text.index("من 25"), text.index(" يورو"))  # where the span head stops
    reading = PassageReading([(0, len(text))], np.array([3.0]), span, 1.0)
    assert short_answer(chosen, reading) == "أكثر من 25 مليون يورو"
