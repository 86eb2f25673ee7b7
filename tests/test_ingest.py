"""The ingest pipeline with the real embedder and a real persistent Chroma."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.errors import IndexLocked, IndexMismatch, StoreError
from assistant.locking import file_lock, writer_lock
from assistant.settings import Settings
from assistant.store import Store
from ingest import ingest
from ingest.index import repair

from .browser import free_port
from .chroma_server import start_chroma
from .conftest import REPO, SHARED_DATA
from .corpora import STORIES, consistent, write_corpus


def test_ingest_is_incremental_and_keeps_every_copy(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "in")
    settings = Settings(data_dir=tmp_path / "data")

    first = ingest([corpus], settings, embedder=embedder)
    assert (first.articles_new, first.duplicates, first.skipped) == (4, 2, [])
    assert first.chunks_added >= 4 and first.articles_total == 6

    store = Store.open(settings)
    agency = next(r for r in store.iter_records() if "http://okaz/1" in r.article_ids)
    assert agency.sources == ["okaz", "sabq", "alyaum"] and len(agency.urls) == 3

    again = ingest([corpus], settings, embedder=embedder)
    assert (again.articles_unchanged, again.chunks_added, again.embed_seconds) == (6, 0, 0)

    (corpus / "sport.txt").write_text(STORIES["sport.txt"].replace("بهدفين", "بثلاثة أهداف"), encoding="utf-8")
    changed = ingest([corpus], settings, embedder=embedder)
    assert (changed.articles_updated, changed.articles_unchanged) == (1, 5)
    assert changed.chunks_added >= 1 and changed.chunks_removed >= 1
    texts = [r.text for r in Store.open(settings).iter_records(include_text=True)]
    assert any("بثلاثة أهداف" in t for t in texts) and not any("بهدفين مقابل" in t for t in texts)

    (corpus / "economy.txt").unlink()
    pruned = ingest([corpus], settings, prune=True, embedder=embedder)
    assert pruned.articles_removed == 1
    ids, _ = consistent(settings)
    assert "economy.txt" not in ids and "http://sabq/9" in ids


def test_bad_input_is_skipped_and_nothing_stored_is_lost(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "in")
    settings = Settings(data_dir=tmp_path / "data", max_article_chars=5000)
    ingest([corpus], settings, embedder=embedder)
    before = consistent(settings)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "huge.txt").write_text("عنوان\n" + "كلمة " * 3000, encoding="utf-8")
    (bad / "feed.jsonl").write_text('{"url": "x", "content": ""}\n{oops\n', encoding="utf-8")
    (bad / "image.png").write_bytes(b"\x89PNG\r\n")
    report = ingest([bad], settings, embedder=embedder)
    reasons = " | ".join(f"{s['path']}: {s['reason']}" for s in report.skipped)
    assert "too large" in reasons and "no text" in reasons and "feed.jsonl:2" in reasons and ".png" in reasons
    assert consistent(settings) == before


def test_ingest_exits_3_when_something_was_skipped(tmp_path, embedder, capsys):
    """A script must see that input went missing: 3 with a skipped file (the good one still indexed), 0 without."""
    from assistant.app.cli import main

    corpus = tmp_path / "in"
    corpus.mkdir()
    (corpus / "security.txt").write_text(STORIES["security.txt"], encoding="utf-8")
    (corpus / "image.png").write_bytes(b"\x89PNG\r\n")
    command = ["ingest", str(corpus), "--data-dir", str(tmp_path / "data"), "--json"]
    assert main(command) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["articles_new"] == 1 and [Path(s["path"]).name for s in report["skipped"]] == ["image.png"]

    (corpus / "image.png").unlink()
    assert main(command) == 0
    assert json.loads(capsys.readouterr().out)["articles_unchanged"] == 1


def test_index_records_its_build_and_refuses_another(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "in")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([corpus], settings, embedder=embedder)
    info = Store.open(settings).build_info
    assert info["embed_fingerprint"] == embedder.fingerprint and info["chunk_max_tokens"] == 160
    with pytest.raises(IndexMismatch, match="chunk_max_tokens"):
        ingest([corpus], settings.model_copy(update={"chunk_max_tokens": 100}), embedder=embedder)
    with pytest.raises(IndexMismatch, match="BAAI/bge-m3"):
        Store.open(settings.model_copy(update={"embed_model": "BAAI/bge-m3"}))


def test_store_answers_through_its_own_methods(tmp_path, embedder):
    """Issue 10: callers ask the store (stats, nearest chunks) instead of reaching into its collections."""
    empty = Store.open(Settings(data_dir=tmp_path / "empty"), create=True)
    assert empty.nearest_chunks(embedder.embed_query("النفط"), 5) == []
    assert (empty.stats().articles, empty.stats().chunks, empty.stats().generation) == (0, 0, 0)

    settings = Settings(data_dir=tmp_path / "data")
    report = ingest([write_corpus(tmp_path / "in")], settings, embedder=embedder)
    stats = Store.open(settings).stats()
    assert (stats.articles, stats.distinct_texts, stats.chunks) == (6, 4, report.chunks_total)
    assert stats.sentences >= stats.chunks and stats.generation > 0
    assert stats.as_dict()["embed_fingerprint"] == embedder.fingerprint
    nearest = Store.open(settings).nearest_chunks(embedder.embed_query("أسعار النفط الخام"), 2)
    assert len(nearest) == 2 and nearest[0][1] >= nearest[1][1]
    text, _ = Store.open(settings).get_chunks([nearest[0][0]])[nearest[0][0]]
    assert "النفط" in text


def test_open_assistant_sees_an_article_reingested_with_as_many_chunks(tmp_path, embedder):
    """Issue 10: the retriever's chunk snapshot followed the chunk count, so an article rewritten into the
    same number of chunks vanished from the results of an Assistant opened before the ingest."""
    from assistant import Assistant

    corpus = write_corpus(tmp_path / "in")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([corpus], settings, embedder=embedder)
    assistant = Assistant(settings)
    question = "كم هدفا سجل الهلال في مباراة الديربي؟"
    before = assistant.retrieve(question, k=3)
    assert any("بهدفين مقابل" in hit.text for hit in before), [hit.text for hit in before]
    _, chunks_before = consistent(settings)
    generation = assistant.store.generation()

    (corpus / "sport.txt").write_text(STORIES["sport.txt"].replace("بهدفين", "بثلاثة أهداف"), encoding="utf-8")
    changed = ingest([corpus], settings, embedder=embedder)
    assert changed.articles_updated == 1
    assert consistent(settings)[1] == chunks_before, "the test needs a re-ingest that keeps the chunk count"
    assert assistant.store.generation() > generation

    after = assistant.retrieve(question, k=3)
    texts = [hit.text for hit in after]
    assert any("بثلاثة أهداف" in text for text in texts), texts
    assert not any("بهدفين مقابل" in text for text in texts), texts


def test_chunk_ids_are_made_and_parsed_in_one_place():
    from assistant.store import chunk_id, parse_chunk_id

    assert parse_chunk_id(chunk_id("a:b", 12)) == ("a:b", 12)
    assert chunk_id("k", 0) != chunk_id("k", 1)


def test_second_writer_is_refused(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "in")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([corpus], settings, embedder=embedder)
    with writer_lock(settings):
        with pytest.raises(IndexLocked, match="another ingest"):
            ingest([corpus], settings, embedder=embedder)
    assert ingest([corpus], settings, embedder=embedder).articles_unchanged == 6  # lock released


def test_the_writer_lock_names_its_holder_even_after_a_killed_one(tmp_path):
    """One flock helper for every lock (the ingest's, the GGUF assembly's): it refuses at once when asked
    not to wait, and the writer lock replaces the pid a killed holder left in the file."""
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "ingest.lock").write_text("pid 999999 left behind", encoding="utf-8")
    with writer_lock(settings):
        assert (settings.data_dir / "ingest.lock").read_text(encoding="utf-8") == f"pid {os.getpid()}"
        with pytest.raises(IndexLocked, match=f"another ingest \\(pid {os.getpid()}\\)"):
            with writer_lock(settings):
                pass
    with file_lock(tmp_path / "x.lock"):
        with pytest.raises(BlockingIOError):
            with file_lock(tmp_path / "x.lock", wait=False):
                pass
    assert (settings.data_dir / "ingest.lock").read_text(encoding="utf-8") == ""  # released, and says so


def test_stats_json(tmp_path, embedder, capsys):
    from assistant.app.cli import main

    corpus = write_corpus(tmp_path / "in")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([corpus], settings, embedder=embedder)
    assert main(["stats", "--json", "--data-dir", str(settings.data_dir)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["articles"] == 6 and stats["distinct_texts"] == 4 and stats["chunks"] >= 4
    assert stats["embed_fingerprint"] == embedder.fingerprint
    assert main(["stats", "--data-dir", str(tmp_path / "nothing")]) == 1
    assert "no index in" in capsys.readouterr().err


def _day_sample(folder: Path, n: int) -> Path:
    import zipfile

    with zipfile.ZipFile(SHARED_DATA / "saudinewsnet" / "2015-08-02.zip") as archive:
        articles = json.loads(archive.read(archive.namelist()[0]))
    folder.mkdir(parents=True, exist_ok=True)
    chosen = [a for a in articles if 500 < len(a["content"]) < 2500][:n]
    (folder / "day.json").write_text(json.dumps(chosen, ensure_ascii=False), encoding="utf-8")
    return folder


def _ingest_command(corpus: Path, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "assistant.app.cli", "ingest", str(corpus), "--data-dir", str(data_dir), "--json"]


def _kill_once_grown_to(process: subprocess.Popen, store_file: Path, size: int) -> bool:
    """SIGKILL `process` as soon as `store_file` reaches `size` bytes; False if it finished first.

    Kill points are set by how much has been written, not by time: a fast machine loads the model and
    finishes a small ingest before any fixed delay runs out (that made this test prove nothing on CI)."""
    deadline = time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline:
        if store_file.exists() and store_file.stat().st_size >= size:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.005)
    process.kill()
    return process.wait() == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "saudinewsnet").is_dir(), reason="needs ../shared/data/saudinewsnet")
def test_kill_9_at_random_points_then_rerun_gives_the_same_index(tmp_path, embedder):
    corpus = _day_sample(tmp_path / "in", 40)
    reference = Settings(data_dir=tmp_path / "reference")
    ingest([corpus], reference, embedder=embedder)
    expected = consistent(reference)
    full_size = (tmp_path / "reference" / "chroma" / "chroma.sqlite3").stat().st_size

    # Small write batches, so that there are many points between "nothing written" and "done".
    env = dict(os.environ, ISNAD_INGEST_BATCH_CHUNKS="8", PYTHONPATH=str(REPO))
    data_dir = tmp_path / "killed"
    store_file = data_dir / "chroma" / "chroma.sqlite3"
    rng = random.Random(7)
    kills = 0
    # Three kills while writing, each at a random share of the way from where the store stands to the full size;
    # the second run's kill often lands in the repair of the first run's leftovers.
    for share in (rng.uniform(0.1, 0.5), rng.uniform(0.0, 0.2), rng.uniform(0.2, 0.8)):
        now = store_file.stat().st_size if store_file.exists() else 0
        process = subprocess.Popen(_ingest_command(corpus, data_dir), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, cwd=REPO)
        kills += _kill_once_grown_to(process, store_file, max(now + 1, int(now + share * (full_size - now))))
    assert kills >= 2, f"only {kills} of 3 runs were killed while writing: the test proved too little"
    final = subprocess.run(_ingest_command(corpus, data_dir), env=env, capture_output=True, text=True, cwd=REPO,
                           timeout=600)
    assert final.returncode == 0, final.stderr
    settings = Settings(data_dir=data_dir)
    assert consistent(settings) == expected
    assert repair(Store.open(settings)) == 0


@pytest.fixture
def chroma_server(tmp_path):
    port = free_port()
    process = start_chroma(tmp_path / "server", port)
    yield f"http://127.0.0.1:{port}", process
    process.kill()
    process.wait()


@pytest.mark.slow
def test_chroma_server_mode(tmp_path, embedder, chroma_server):
    from assistant import Assistant

    url, process = chroma_server
    corpus = write_corpus(tmp_path / "in")
    settings = Settings(data_dir=tmp_path / "data", chroma_url=url)
    report = ingest([corpus], settings, embedder=embedder)
    assert report.articles_new == 4 and not (tmp_path / "data" / "chroma").exists()
    hits = Assistant(settings).retrieve("ماذا أمر رئيس الأركان بشأن السيارات؟", k=2)
    assert hits[0].article_id == "security.txt"
    process.kill()
    process.wait()
    with pytest.raises(StoreError, match=f"cannot reach the Chroma server at {url}"):
        Store.open(settings)


@pytest.mark.slow
def test_chroma_server_killed_mid_ingest_gives_a_clear_error_then_a_clean_resume(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "in")
    reference = Settings(data_dir=tmp_path / "reference")
    ingest([corpus], reference, embedder=embedder)
    port = free_port()
    server = start_chroma(tmp_path / "server", port)
    settings = Settings(data_dir=tmp_path / "data", chroma_url=f"http://127.0.0.1:{port}", ingest_batch_chunks=1)

    def kill_after_first_write(progress):
        if progress.chunks_done and server.poll() is None:
            server.send_signal(signal.SIGKILL)
            server.wait()

    try:
        with pytest.raises(StoreError, match=f"lost the Chroma server at http://127.0.0.1:{port}"):
            ingest([corpus], settings, embedder=embedder, progress=kill_after_first_write)
        server = start_chroma(tmp_path / "server", port)
        resumed = ingest([corpus], settings, embedder=embedder)
        assert resumed.articles_total == 6
        assert consistent(settings) == consistent(reference)
    finally:
        server.kill()
        server.wait()


def test_sentence_vectors_by_id_find_every_sentence_even_of_a_crowded_passage(tmp_path, embedder):
    from assistant.store import SENTENCES_LOOKED_UP

    folder = tmp_path / "in"
    folder.mkdir()
    crowded = "نعم. " * (SENTENCES_LOOKED_UP + 36)  # more short sentences than are looked up by id
    (folder / "crowded.txt").write_text("عنوان\n" + crowded.strip(), encoding="utf-8")
    (folder / "plain.txt").write_text("خبر\n" + STORIES["security.txt"], encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", chunk_max_tokens=480)
    ingest([folder], settings, embedder=embedder)
    store = Store.open(settings)
    ids = store.chunk_ids()
    by_filter = store._sentence_rows(store._sentences.get(where={"chunk_id": {"$in": ids}},
                                                          include=["embeddings", "metadatas"]))
    found = store.sentence_vectors(ids)
    assert max(len(rows) for rows in found.values()) > SENTENCES_LOOKED_UP
    assert {c: [(s, e) for s, e, _ in rows] for c, rows in found.items()} == \
           {c: sorted((s, e) for s, e, _ in rows) for c, rows in by_filter.items()}
