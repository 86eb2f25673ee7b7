"""The ingest pipeline: load -> clean -> dedupe -> chunk -> embed -> store, incremental and crash-safe.

Identity: an article's id is its url (else its path); the text it carries is keyed by a content hash, so
the same text printed by several papers is embedded once and remembers every copy. Re-running on the same
input embeds nothing; a changed article is detached from its old text and indexed anew; `prune` removes
articles no longer in the input.

Crash safety comes from write order, not transactions: removals are written before additions, and an
article's record is written only after all its chunks. Whatever a kill -9 leaves behind is either
invisible (orphan chunks) or incomplete (a record with missing chunks), and `repair` removes both at the
start of the next run, which then re-indexes those articles as new.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from assistant.embedder import Embedder, load_embedder
from assistant.endpoints import EmbeddingEndpoints
from assistant.lexical import LexicalIndex
from assistant.locking import writer_lock
from assistant.reader import weights_fingerprint
from assistant.settings import Settings
from assistant.store import (
    ArticleRecord,
    Store,
    chunk_id,
    chunk_metadata,
    parse_chunk_id,
    sentence_id,
    sentence_metadata,
    server_errors,
)
from assistant.text import NORMALISATION_VERSION
from assistant.types import Article, Copy

from . import dedupe
from .chunk import chunk_spans, split_sentences
from .clean import clean_article
from .load import Skipped, read_inputs

SAMPLE_DIR = Path(__file__).parent / "sample" / "articles"  # its NOTICE.md is one level up


@dataclass
class IngestReport:
    articles_new: int = 0
    articles_updated: int = 0
    articles_unchanged: int = 0
    articles_removed: int = 0
    duplicates: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    repaired: int = 0  # leftovers of an interrupted run that were cleaned up
    skipped: list[dict[str, str]] = field(default_factory=list)
    articles_total: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Progress:
    phase: str  # "waiting" (for another ingest's writer lease), "reading", "indexing", "search index", "done"
    articles_done: int
    articles_total: int
    chunks_done: int
    seconds: float
    note: str = ""  # while waiting: whose lease, since when; while building the search index: how far

    @property
    def eta_seconds(self) -> float | None:
        if not self.articles_done or self.articles_done >= self.articles_total:
            return None
        return self.seconds / self.articles_done * (self.articles_total - self.articles_done)


def build_info(settings: Settings, embedder: Embedder) -> dict:
    """What the index records about how it was built; compared whenever it is opened for writing."""
    return {
        "embed_model": settings.embed_model,
        "embed_fingerprint": embedder.fingerprint,
        "normalisation_version": NORMALISATION_VERSION,
        "chunk_max_tokens": settings.chunk_max_tokens,
        "chunk_overlap_sentences": settings.chunk_overlap_sentences,
        # Informational (not checked): the index does not depend on the reader, but an answer does.
        "reader_fingerprint": weights_fingerprint() if settings.reader else "",
    }


def ingest(
    paths: Iterable[str | Path],
    settings: Settings,
    *,
    prune: bool = False,
    progress: Callable[[Progress], None] | None = None,
    embedder: Embedder | None = None,
) -> IngestReport:
    """Index the articles under `paths` into the store named by `settings`; returns the report."""
    started = time.perf_counter()
    embedder = embedder or load_embedder(settings.embed_model, settings.cache_dir)
    # Checked before anything is written: each endpoint must serve the model the index is built with.
    endpoints = EmbeddingEndpoints(settings.embed_endpoints, embedder) if settings.embed_endpoints else None
    info = build_info(settings, embedder)
    report = IngestReport()

    def waiting(message: str) -> None:  # a Chroma server's lease is held by another ingest: we queue
        if progress:
            progress(Progress("waiting", 0, 0, 0, time.perf_counter() - started, note=message))

    asked = time.perf_counter()
    # The lock comes first: even creating a new embedded store from two processes at once collides.
    # Write order makes a resumed run clean up after a crash, or after a server lost mid-ingest.
    with writer_lock(settings, waiting), server_errors(settings, "ingesting (re-run the ingest to resume)"):
        started += time.perf_counter() - asked  # time spent queued is not this ingest's: rates and ETA
        store = Store.open(settings, create=True, build_info=info)
        store.check_build(info, ["embed_fingerprint", "chunk_max_tokens", "chunk_overlap_sentences"])
        report.repaired = repair(store)
        run = _Run(store, embedder, endpoints, settings, report, progress, started)
        articles = run.read(paths)
        for article in articles:
            run.add(article)
        run.flush()
        if prune:
            run.prune()

        def terms(message: str) -> None:
            if progress:
                progress(Progress("search index", len(articles), len(articles), report.chunks_added,
                                  time.perf_counter() - started, note=message))

        # The Arabic search index follows the store now (lexical.py, by difference), so the first question
        # after an ingest does not pay for the new passages' search terms.
        LexicalIndex.open(store, terms)
    report.articles_total, report.chunks_total = _totals(store)
    report.seconds = round(time.perf_counter() - started, 3)
    report.embed_seconds = round(report.embed_seconds, 3)
    if progress:
        progress(Progress("done", len(articles), len(articles), report.chunks_added, report.seconds))
    return report


def _totals(store: Store) -> tuple[int, int]:
    stats = store.stats()
    return stats.articles, stats.chunks


def repair(store: Store) -> int:
    """Remove what an interrupted ingest left: chunks of texts without a record, records missing chunks,
    and a copy listed under two texts. Returns how many items were removed."""
    records = {record.key: record for record in store.iter_records()}
    chunk_count: dict[str, int] = {}
    orphans = []
    for stored_id in store.chunk_ids():
        key, index = parse_chunk_id(stored_id)
        record = records.get(key)
        if record is None or index >= record.n_chunks:
            orphans.append(stored_id)
        else:
            chunk_count[key] = chunk_count.get(key, 0) + 1
    store.delete_chunks(orphans)
    for key in {parse_chunk_id(orphan)[0] for orphan in orphans}:
        store.delete_sentences_of(key)
    removed = len(orphans)
    owner: dict[str, str] = {}
    for key, record in records.items():
        if chunk_count.get(key, 0) != record.n_chunks:
            store.delete_record(key)
            removed += 1
            continue
        unique = [c for c in record.copies if owner.setdefault(c.id, key) == key]
        if len(unique) != len(record.copies):
            removed += len(record.copies) - len(unique)
            if unique:
                record.copies = unique
                store.put_record(record)
                store.set_chunk_copies(record)
            else:
                store.delete_record(key)
    return removed


def content_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class _Run:
    """The state of one ingest: what is stored (metadata only), what waits to be embedded."""

    def __init__(self, store, embedder, endpoints, settings, report, progress, started) -> None:
        self.store, self.embedder, self.endpoints, self.settings = store, embedder, endpoints, settings
        self.report, self.progress, self.started = report, progress, started
        self.records: dict[str, ArticleRecord] = {}
        self.key_of: dict[str, str] = {}  # article id -> content key
        self.near = dedupe.NearDuplicateIndex(settings.near_duplicate_threshold)
        for record in store.iter_records():
            self.records[record.key] = record
            for copy in record.copies:
                self.key_of[copy.id] = record.key
            if (sig := dedupe.decode(record.signature)) is not None:
                self.near.add(record.key, sig)
        self.pending: dict[str, list[tuple[int, int]]] = {}  # new keys -> chunk spans
        self.dirty: set[str] = set()  # stored records whose copies changed
        self.seen: set[str] = set()
        self.done = 0
        self.total = 0

    def read(self, paths) -> list[Article]:
        articles = []
        for item in read_inputs(paths):
            if isinstance(item, Skipped):
                self.skip(item.path, item.reason)
            else:
                articles.append(item)
        self.total = len(articles)
        self._tick("reading")
        return articles

    def skip(self, path: str, reason: str) -> None:
        self.report.skipped.append({"path": path, "reason": reason})

    def add(self, raw: Article) -> None:
        self.done += 1
        article = clean_article(raw)
        if raw.id in self.seen:
            self.skip(raw.origin, f"the id {raw.id!r} appears twice in the input; the first one was kept")
            return
        if not article.text:
            self.skip(raw.origin, "article has no text after cleaning")
            return
        if len(article.text) > self.settings.max_article_chars:
            self.skip(
                raw.origin,
                f"article too large ({len(article.text):,} characters > max_article_chars "
                f"{self.settings.max_article_chars:,}); split it or raise ISNAD_MAX_ARTICLE_CHARS",
            )
            return
        self.seen.add(article.id)
        key = content_key(article.text)
        copy = Copy(article.id, article.title, article.source, article.url, article.date, article.author, key)
        old_key = self.key_of.get(article.id)
        if old_key is not None and self._stored_copy(article.id).text_key == key:
            self.report.articles_unchanged += 1
            self._refresh_copy(old_key, copy)
            return
        if old_key is not None:
            self.report.articles_updated += 1
            self._detach(article.id)
        sig = dedupe.signature(article.text)
        target = key if key in self.records else self.near.find(sig)
        if target is not None:
            if old_key is None:
                self.report.duplicates += 1
            self._attach(target, copy)
            return
        if old_key is None:
            self.report.articles_new += 1
        spans = chunk_spans(
            article.text,
            self.embedder.count_tokens,
            self.embedder.token_offsets,
            self.settings.chunk_max_tokens,
            self.settings.chunk_overlap_sentences,
        )
        record = ArticleRecord(key, article.text, [copy], len(spans), key, dedupe.encode(sig))
        self.records[key] = record
        self.key_of[article.id] = key
        self.near.add(key, sig)
        self.pending[key] = spans
        # Big enough batches to sort by length (less padding), small enough for steady progress.
        if sum(len(s) for s in self.pending.values()) >= self.settings.ingest_batch_chunks:
            self.flush()
        self._tick("indexing")

    def _stored_copy(self, article_id: str) -> Copy:
        return next(c for c in self.records[self.key_of[article_id]].copies if c.id == article_id)

    def _attach(self, key: str, copy: Copy) -> None:
        record = self.records[key]
        record.copies = [c for c in record.copies if c.id != copy.id] + [copy]
        self.key_of[copy.id] = key
        if key not in self.pending:
            self.dirty.add(key)

    def _refresh_copy(self, key: str, copy: Copy) -> None:
        """Same text, maybe new metadata (title, source...): keep the copy's place, update its fields."""
        record = self.records[key]
        if copy not in record.copies:
            record.copies = [copy if c.id == copy.id else c for c in record.copies]
            if key not in self.pending:
                self.dirty.add(key)

    def _detach(self, article_id: str) -> None:
        """Remove one copy from its text, written at once (removals go before additions)."""
        key = self.key_of.pop(article_id)
        record = self.records[key]
        record.copies = [c for c in record.copies if c.id != article_id]
        if record.copies:
            if key not in self.pending:
                self.store.put_record(record)
                self.store.set_chunk_copies(record)
            return
        del self.records[key]
        self.near.remove(key)
        self.dirty.discard(key)
        if self.pending.pop(key, None) is None:
            self.store.delete_record(key)
            self.report.chunks_removed += record.n_chunks

    def flush(self) -> None:
        if self.pending:
            self._write_pending()
        for key in sorted(self.dirty):
            record = self.records[key]
            self.store.put_record(record)
            self.store.set_chunk_copies(record)
        self.dirty.clear()
        self._tick("indexing")

    def _write_pending(self) -> None:
        ids, texts, metadatas, owners, sentence_spans = [], [], [], [], []
        for key, spans in self.pending.items():
            record = self.records[key]
            for index, (start, end) in enumerate(spans):
                ids.append(chunk_id(key, index))
                texts.append(record.text[start:end])
                metadatas.append(chunk_metadata(record, index, start, end))
                owners.append(key)
                sentence_spans.append(split_sentences(texts[-1]))
        began = time.perf_counter()
        if self.endpoints is not None:
            # Endpoints give passage vectors only; the reader computes sentence vectors when it reads.
            vectors, sentence_vectors = self.endpoints.embed_passages(texts), None
        elif not self.settings.sentence_vectors:
            vectors, sentence_vectors = self.embedder.embed_passages(texts), None
        else:
            vectors, sentence_vectors = self.embedder.embed_passages_with_spans(texts, sentence_spans)
        self.report.embed_seconds += time.perf_counter() - began
        self.store.add_chunks(ids, texts, vectors, metadatas)
        sentence_ids, sentence_metadatas = [], []
        for passage_id, metadata, spans in zip(ids, metadatas, sentence_spans, strict=True):
            for j, (start, end) in enumerate(spans):
                sentence_ids.append(sentence_id(passage_id, j))
                sentence_metadatas.append(sentence_metadata(passage_id, metadata, start, end))
        if sentence_ids and sentence_vectors is not None:
            self.store.add_sentences(sentence_ids, np.concatenate(sentence_vectors), sentence_metadatas)
        owner_array = np.array(owners)
        means = np.stack([vectors[owner_array == key].mean(axis=0) for key in self.pending])
        means /= np.linalg.norm(means, axis=1, keepdims=True).clip(min=1e-12)
        # Records last: an article is present only once every chunk of it is stored.
        self.store.add_records([self.records[key] for key in self.pending], means)
        self.report.chunks_added += len(ids)
        self.pending.clear()

    def prune(self) -> None:
        for article_id in sorted(set(self.key_of) - self.seen):
            self._detach(article_id)
            self.report.articles_removed += 1
        self.flush()

    def _tick(self, phase: str) -> None:
        if self.progress:
            elapsed = time.perf_counter() - self.started
            self.progress(Progress(phase, self.done, self.total, self.report.chunks_added, elapsed))
