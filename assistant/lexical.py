"""The Arabic BM25 index, persisted beside the store and brought up to date by difference.

Chunk ids are content-addressed (the article text's hash and the passage number, store.chunk_id), so the
ids added to and removed from the store since the saved index are exactly what changed: only new chunks
are read from Chroma and turned into search terms; the rest keep the terms saved for them. Opening an
index the store has not changed since is loading a few arrays (the BM25 matrix memory-mapped), never
reading every chunk's text: nothing of the corpus's text is held in memory.

On disk, in `data_dir/lexical/<collection>[-<server hash>]/` (a cache: deleting it costs one rebuild):
- state.json: the store generation it matches, the normalisation version, the chunk count;
- chunks.npz: per chunk its id, date and papers (the filters), and its search terms as ids into a vocab;
- bm25/: bm25s's own files for the scores.
A new state is written to a temporary directory and renamed into place, so a reader never sees half of
one and two processes refreshing at once both leave a valid index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .text import NORMALISATION_VERSION, search_terms

if TYPE_CHECKING:
    from .store import Store

EMPTY = "\u2205"  # the term of a chunk with none (bm25s needs one per document)
FETCH = 500  # chunks read from Chroma per request when updating


def lexical_dir(store: Store) -> Path:
    """Where the index of this store lives (a Chroma server's collections get their own directory)."""
    settings = store.settings
    name = settings.collection
    if settings.chroma_url:
        name += "-" + hashlib.sha256(settings.chroma_url.encode()).hexdigest()[:8]
    return Path(settings.data_dir) / "lexical" / name


class LexicalIndex:
    """BM25 over every stored chunk's `search_terms`, and each chunk's date and papers for the filters."""

    def __init__(self, ids: list[str], dates: np.ndarray, sources: list[list[str]], generation: int,
                 bm25: Any = None) -> None:
        self.ids, self.dates, self.sources, self.generation = ids, dates, sources, generation
        self._bm25 = bm25

    @classmethod
    def open(cls, store: Store, progress: Callable[[str], None] | None = None) -> LexicalIndex:
        """The saved index when the store has not changed since, else the saved one updated by the ids
        added and removed, and saved again (a read-only data directory only loses the saving)."""
        generation = store.generation()  # read first: a write after it only makes the saved label older
        path = lexical_dir(store)
        state = _read_state(path)
        if state is not None and state["generation"] == generation:
            loaded = cls._load(path, generation)
            if loaded is not None:
                return loaded
        saved = _Saved.load(path) if state is not None else _Saved.empty()
        index, changed = saved.updated(store, generation, progress)
        if index.ids:
            try:
                if changed:
                    saved.write(path, generation, index)
                else:  # only other collections were written: the same chunks, a newer label
                    _write_state(path, generation, len(index.ids))
            except OSError:
                pass  # the answer does not depend on the cache; the next open tries again
        return index

    @classmethod
    def _load(cls, path: Path, generation: int) -> LexicalIndex | None:
        try:
            with np.load(path / "chunks.npz") as arrays:
                ids = arrays["ids"].tolist()
                dates = arrays["dates"]
                sources = json.loads(str(arrays["sources"]))
            # Loaded now, not on the first search: a refresh may rename a newer index into `path` later.
            bm25 = _load_bm25(path)
        except (OSError, KeyError, ValueError):
            return None
        if int(bm25.scores["num_docs"]) != len(ids):  # the two read across another process's refresh
            return None
        return cls(ids, dates, sources, generation, bm25)

    def search(self, terms: list[str], n: int, keep: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The `n` best chunk ids for the search terms, with their BM25 scores (> 0 only); `keep`: a mask
        over `ids` (the filters, from this index's `dates` and `sources`)."""
        if not self.ids or not terms:
            return []
        scores = self._bm25.get_scores(terms)
        if keep is not None:
            scores = np.where(keep, scores, 0.0)
        top = np.argsort(-scores)[:n]
        return [(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]


class _Saved:
    """The saved per-chunk state (ids, dates, papers, term ids, vocab) an update starts from."""

    def __init__(self, ids: list[str], dates: np.ndarray, sources: list[list[str]], vocab: list[str],
                 terms: list[np.ndarray], path: Path | None = None) -> None:
        self.ids, self.dates, self.sources, self.vocab, self.terms = ids, dates, sources, vocab, terms
        self.path = path  # where it was loaded from (its bm25/ is reused when nothing changed)

    @classmethod
    def empty(cls) -> _Saved:
        return cls([], np.zeros(0, dtype=np.int64), [], [], [])

    @classmethod
    def load(cls, path: Path) -> _Saved:
        try:
            with np.load(path / "chunks.npz") as arrays:
                offsets = arrays["offsets"]
                flat = arrays["terms"]
                return cls(arrays["ids"].tolist(), arrays["dates"], json.loads(str(arrays["sources"])),
                           arrays["vocab"].tolist(),
                           [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)], path)
        except (OSError, KeyError, ValueError):
            return cls.empty()  # unreadable: rebuilt from the store

    def updated(self, store: Store, generation: int, progress) -> tuple[LexicalIndex, bool]:
        """This state with the store's added chunks read and its removed ones dropped, as an index."""
        current = store.chunk_ids()
        wanted = set(current)
        keep = [i for i, chunk_id in enumerate(self.ids) if chunk_id in wanted]
        known = {self.ids[i] for i in keep}
        added = [chunk_id for chunk_id in current if chunk_id not in known]
        changed = bool(added) or len(keep) != len(self.ids)
        ids = [self.ids[i] for i in keep]
        dates = [int(self.dates[i]) for i in keep]
        sources = [self.sources[i] for i in keep]
        terms = [self.terms[i] for i in keep]
        position = {term: i for i, term in enumerate(self.vocab)}
        for at in range(0, len(added), FETCH):
            if progress is not None and len(added) > FETCH:
                progress(f"search terms: {at:,}/{len(added):,} new passages")
            for chunk_id, (text, metadata) in store.get_chunks(added[at : at + FETCH]).items():
                ids.append(chunk_id)
                dates.append(int(metadata.get("date_int", 0)))
                sources.append(list(metadata.get("sources") or []))
                terms.append(np.array([position.setdefault(t, len(position)) for t in search_terms(text) or [EMPTY]],
                                      dtype=np.int32))
        self.ids, self.dates, self.sources, self.terms = ids, np.array(dates, dtype=np.int64), sources, terms
        self.vocab = list(position)
        index = LexicalIndex(ids, self.dates, sources, generation)
        if ids:
            index._bm25 = self.bm25() if changed or self.path is None else _load_bm25(self.path)
        return index, changed

    def bm25(self) -> Any:
        import bm25s
        from bm25s.tokenization import Tokenized

        bm25 = bm25s.BM25()
        vocab = {term: i for i, term in enumerate(self.vocab)}
        bm25.index(Tokenized(ids=[t.tolist() for t in self.terms], vocab=vocab), show_progress=False)
        return bm25

    def write(self, path: Path, generation: int, index: LexicalIndex) -> None:
        """Save this state and its BM25 as the index of `generation` (atomically: a rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
        old = path.with_name(f".{path.name}-old-{os.getpid()}")
        try:
            lengths = np.array([len(t) for t in self.terms], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            flat = np.concatenate(self.terms).astype(np.int32) if self.terms else np.zeros(0, dtype=np.int32)
            np.savez(scratch / "chunks.npz", ids=np.array(self.ids, dtype=str), dates=self.dates,
                     sources=np.array(json.dumps(self.sources, ensure_ascii=False)),
                     vocab=np.array(self.vocab, dtype=str), terms=flat, offsets=offsets)
            index._bm25.save(str(scratch / "bm25"), show_progress=False)
            _write_state(scratch, generation, len(self.ids))
            if path.exists():
                os.replace(path, old)
            os.replace(scratch, path)  # fails (and is left to the next open) if another process won the race
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)


def _load_bm25(path: Path) -> Any:
    import bm25s

    return bm25s.BM25.load(str(path / "bm25"), mmap=True, show_progress=False)


def _write_state(path: Path, generation: int, chunks: int) -> None:
    text = json.dumps({"generation": generation, "normalisation": NORMALISATION_VERSION, "chunks": chunks})
    scratch = path / f".state-{os.getpid()}.json"
    scratch.write_text(text)
    os.replace(scratch, path / "state.json")


def _read_state(path: Path) -> dict | None:
    """The saved state, or None when there is none usable (missing, unreadable, older normalisation)."""
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, ValueError):
        return None
    if state.get("normalisation") != NORMALISATION_VERSION or not (path / "bm25").is_dir():
        return None
    return state
