"""The persisted Arabic BM25 index (assistant/lexical.py) with the real embedder and a real Chroma store."""

from __future__ import annotations

import pytest

from assistant.lexical import LexicalIndex, lexical_dir
from assistant.settings import Settings
from assistant.store import Store
from ingest import ingest

from .corpora import STORIES, write_corpus

DERBY = ["الهلال", "الديربي"]


def ranked(index: LexicalIndex, terms: list[str]) -> list[str]:
    from assistant.text import search_terms

    return [chunk_id for chunk_id, _ in index.search(search_terms(" ".join(terms)), 5)]


@pytest.fixture
def indexed(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "in")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([corpus], settings, embedder=embedder)
    return corpus, settings


def test_ingest_saves_the_index_and_an_open_reads_no_chunk(indexed, monkeypatch):
    _, settings = indexed
    store = Store.open(settings)
    assert (lexical_dir(store) / "state.json").is_file(), "ingest leaves the search index up to date"
    expected = ranked(LexicalIndex.open(store), DERBY)
    assert expected and all(chunk_id in store.chunk_ids() for chunk_id in expected)

    def no_chunk_reads(*args, **kwargs):
        raise AssertionError("an unchanged store's index is loaded, not rebuilt")

    monkeypatch.setattr(Store, "chunk_ids", no_chunk_reads)
    monkeypatch.setattr(Store, "get_chunks", no_chunk_reads)
    monkeypatch.setattr(Store, "iter_chunks", no_chunk_reads)
    assert ranked(LexicalIndex.open(Store.open(settings)), DERBY) == expected


def test_the_index_follows_ingest_by_difference(indexed, embedder, monkeypatch):
    corpus, settings = indexed
    store = Store.open(settings)
    before = set(store.chunk_ids())
    LexicalIndex.open(store)
    read: list[str] = []
    get_chunks = Store.get_chunks

    def counting(self, chunk_ids):
        read.extend(chunk_ids)
        return get_chunks(self, chunk_ids)

    monkeypatch.setattr(Store, "get_chunks", counting)
    (corpus / "sport.txt").write_text(STORIES["sport.txt"].replace("بهدفين", "بثلاثة أهداف"), encoding="utf-8")
    (corpus / "economy.txt").unlink()
    ingest([corpus], settings, embedder=embedder, prune=True)
    after = set(store.chunk_ids())
    new = after - before
    assert new and set(read) == new, "only the passages the ingest added are read and tokenised"
    index = LexicalIndex.open(Store.open(settings))
    assert set(index.ids) == after, "removed passages leave the index, added ones join it"
    hits = ranked(index, ["بثلاثة", "أهداف", "الهلال"])
    assert hits and hits[0] in new
    assert not ranked(index, ["النفط", "المخزونات"]), "the pruned article is gone from the search"


def test_a_broken_saved_index_is_rebuilt_from_the_store(indexed):
    _, settings = indexed
    store = Store.open(settings)
    expected = ranked(LexicalIndex.open(store), DERBY)
    (lexical_dir(store) / "chunks.npz").write_bytes(b"not an archive")
    assert ranked(LexicalIndex.open(store), DERBY) == expected
    assert ranked(LexicalIndex.open(Store.open(settings)), DERBY) == expected, "and saved again, whole"


def test_two_processes_refreshing_at_once_both_answer_and_leave_a_whole_index(indexed):
    import json
    import subprocess
    import sys

    _, settings = indexed
    store = Store.open(settings)
    expected = ranked(LexicalIndex.open(store), DERBY)
    # A saved index one passage short and labelled older: both processes add the passage and swap in a
    # whole new directory at about the same time.
    from assistant.lexical import _Saved

    saved = _Saved.load(lexical_dir(store))
    saved.ids, saved.dates, saved.sources, saved.terms = (saved.ids[:-1], saved.dates[:-1], saved.sources[:-1],
                                                          saved.terms[:-1])
    saved.write(lexical_dir(store), -1, LexicalIndex(saved.ids, saved.dates, saved.sources, -1, saved.bm25()))
    state = lexical_dir(store) / "state.json"
    script = (
        "import sys; from assistant.lexical import LexicalIndex; from assistant.settings import Settings; "
        "from assistant.store import Store; from assistant.text import search_terms; "
        f"index = LexicalIndex.open(Store.open(Settings(data_dir={str(settings.data_dir)!r}))); "
        f"print(','.join(c for c, _ in index.search(search_terms({' '.join(DERBY)!r}), 5)))"
    )
    runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0].strip() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert outputs == [",".join(expected)] * 2
    assert ranked(LexicalIndex.open(Store.open(settings)), DERBY) == expected
    assert json.loads(state.read_text())["generation"] == store.generation()
    assert [p.name for p in lexical_dir(store).parent.iterdir()] == [lexical_dir(store).name], "no leftovers"
