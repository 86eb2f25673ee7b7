"""The Chroma store: the single source of truth for chunks, their vectors and the articles they come from.

Three collections, so a Chroma server can serve several app instances with nothing else shared:
- `<name>-chunks`: one record per passage (document = passage text, our own embedding function,
  metadata = article key, offsets, date, sources). The lexical index is rebuilt from these documents.
- `<name>-sentences`: one vector per sentence of each passage, pooled from the passage's own forward pass
  at ingest, so answers can rank sentences without running the model again (metadata: chunk, offsets).
- `<name>-articles`: one record per distinct text (id = content key, document = full cleaned text,
  embedding = mean of its chunk vectors, metadata = every printed copy's id/source/url, chunk count,
  near-duplicate signature). An article is "present" only once this record exists, and it is written
  after its chunks, so a crash leaves at worst orphan chunks that the next ingest removes (`ingest.index.repair`).

The chunks collection's metadata records what built the index (embedder fingerprint, normalisation
version, chunking settings); opening it with another embedder is an IndexMismatch, not silent garbage.

This module is the only one that talks to Chroma: the collections are private to `Store`, and record
ids (`chunk_id`, `sentence_id`) and metadata are made here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from .errors import IndexMismatch, IndexNotFound, StoreError
from .settings import Settings
from .types import Copy

PAGE = 2000  # records per `get` page when scanning a collection


@dataclass
class ArticleRecord:
    """One distinct article text and every copy of it that was printed."""

    key: str
    text: str
    copies: list[Copy]
    n_chunks: int
    content_hash: str
    signature: str = ""  # near-duplicate MinHash signature, base64

    @property
    def primary(self) -> Copy:
        return self.copies[0]

    @property
    def sources(self) -> list[str]:
        return _unique(c.source for c in self.copies if c.source)

    @property
    def urls(self) -> list[str]:
        return _unique(c.url for c in self.copies if c.url)

    @property
    def article_ids(self) -> list[str]:
        return [c.id for c in self.copies]

    def metadata(self) -> dict[str, Any]:
        primary = self.primary
        return {
            "article_id": primary.id,
            "title": primary.title,
            "date": primary.date,
            "date_int": date_int(primary.date),
            "author": primary.author,
            "copies": json.dumps([c.__dict__ for c in self.copies], ensure_ascii=False),
            "n_chunks": self.n_chunks,
            "content_hash": self.content_hash,
            "signature": self.signature,
        }

    @classmethod
    def from_chroma(cls, key: str, document: str | None, metadata: dict[str, Any]) -> ArticleRecord:
        return cls(
            key=key,
            text=document or "",
            copies=[Copy(**c) for c in json.loads(metadata["copies"])],
            n_chunks=int(metadata["n_chunks"]),
            content_hash=metadata["content_hash"],
            signature=metadata.get("signature", ""),
        )


def chunk_id(key: str, index: int) -> str:
    """The id of passage `index` of the article text `key`: made here and parsed by `parse_chunk_id` only."""
    return f"{key}:{index}"


def parse_chunk_id(chunk_id: str) -> tuple[str, int]:
    """(article key, passage index) of a chunk id made by `chunk_id`."""
    key, _, index = chunk_id.rpartition(":")
    return key, int(index)


SENTENCES_LOOKED_UP = 64  # sentence ids asked for per passage; a passage holding more is looked up by filter


def sentence_id(chunk_id: str, index: int) -> str:
    """The id of sentence `index` of the passage `chunk_id`."""
    return f"{chunk_id}/{index}"


def sentence_metadata(chunk_id: str, chunk: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """What a sentence carries: its article and passage, and its offsets (`start`, `end` within the passage,
    stored as offsets in the article)."""
    return {
        "article_key": chunk["article_key"], "chunk_id": chunk_id,
        "start": chunk["start"] + start, "end": chunk["start"] + end,
    }


def chunk_metadata(record: ArticleRecord, index: int, start: int, end: int) -> dict[str, Any]:
    """What a passage carries so filters run inside Chroma: its article, offsets, date and papers."""
    primary = record.primary
    return {
        "article_key": record.key,
        "article_id": primary.id,
        "index": index,
        "start": start,
        "end": end,
        "date_int": date_int(primary.date),
        "sources": record.sources or [""],
    }


def date_int(date: str) -> int:
    """'2015-08-01' -> 20150801 (Chroma range filters take numbers only); 0 when unknown."""
    digits = date[:10].replace("-", "")
    return int(digits) if len(digits) == 8 and digits.isdigit() else 0


def _unique(values) -> list[str]:
    return list(dict.fromkeys(values))


def _chroma_settings():
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def _embedding_function_class():
    """Our embedding function, registered with Chroma so it is rebuilt when a collection is reopened
    (a collection without one falls back to Chroma's English ONNX model, which it tries to download)."""
    global _EmbeddingFunction
    if _EmbeddingFunction is not None:
        return _EmbeddingFunction
    from chromadb.api.types import EmbeddingFunction
    from chromadb.utils.embedding_functions import register_embedding_function

    @register_embedding_function
    class IsnadEmbeddingFunction(EmbeddingFunction):
        def __init__(self, model: str) -> None:
            self.model = model

        def _embedder(self):
            from .embedder import load_embedder

            return load_embedder(self.model)

        def __call__(self, input):  # noqa: A002 - Chroma's protocol names it so
            return list(self._embedder().embed_passages(list(input)))

        def embed_query(self, input):  # noqa: A002
            return list(self._embedder().embed_queries(list(input)))

        @staticmethod
        def name() -> str:
            return "isnad"

        def default_space(self):
            return "cosine"

        def get_config(self) -> dict[str, Any]:
            return {"model": self.model}

        @staticmethod
        def build_from_config(config: dict[str, Any]):
            return IsnadEmbeddingFunction(config["model"])

    _EmbeddingFunction = IsnadEmbeddingFunction
    return IsnadEmbeddingFunction


_EmbeddingFunction = None
_GENERATION = "generation"


@dataclass
class StoreStats:
    """What `isnad stats` shows: counts, the generation and what built the index."""

    articles: int  # printed copies
    distinct_texts: int
    chunks: int
    sentences: int
    generation: int
    location: str
    build_info: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """Flat, for printing: the counts, then the build information's own keys."""
        flat = asdict(self)
        info = flat.pop("build_info")
        return {**flat, **info}


class Store:
    """Open with `Store.open(settings)`; ingest opens with `create=True` and holds `locking.writer_lock()`."""

    def __init__(self, settings: Settings, client, chunks, articles, sentences, meta) -> None:
        self.settings = settings
        self._client = client
        self._chunks = chunks
        self._articles = articles
        self._sentences = sentences
        self._meta = meta

    # --- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, *, create: bool = False, build_info: dict[str, Any] | None = None):
        """Open the index; with `create`, make it (recording `build_info`) when it does not exist yet."""
        client = connect(settings)
        names = {settings.collection + "-chunks", settings.collection + "-articles"}
        existing = {c if isinstance(c, str) else c.name for c in client.list_collections()}
        function = _embedding_function_class()(settings.embed_model)
        if not names <= existing:
            if not create:
                raise IndexNotFound(
                    f"no index in {describe_location(settings)}: run `isnad ingest PATH` first "
                    "(for the bundled sample: `isnad ingest --sample`)"
                )
            metadata = {"hnsw:space": "cosine", **(build_info or {})}
            chunks = client.get_or_create_collection(
                settings.collection + "-chunks", metadata=metadata, embedding_function=function
            )
            articles = client.get_or_create_collection(
                settings.collection + "-articles",
                metadata={"hnsw:space": "cosine"},
                embedding_function=function,
            )
        else:
            chunks = client.get_collection(settings.collection + "-chunks", embedding_function=function)
            articles = client.get_collection(settings.collection + "-articles", embedding_function=function)
        sentences = client.get_or_create_collection(
            settings.collection + "-sentences", metadata={"hnsw:space": "cosine"}, embedding_function=function
        )
        # One record, the generation: every write bumps it, so a reader's caches can tell that the
        # content changed even when the counts did not (a re-ingested article with as many chunks).
        meta = client.get_or_create_collection(settings.collection + "-meta", embedding_function=function)
        store = cls(settings, client, chunks, articles, sentences, meta)
        store.check_model_name()
        return store

    def reopen(self) -> Store:
        """The same index opened afresh, seeing what other processes wrote since this one was opened."""
        from chromadb.api.shared_system_client import SharedSystemClient

        # Chroma caches one client system per path in this process: without clearing it, opening again
        # hands back the same system, with the view of the files it had.
        SharedSystemClient.clear_system_cache()
        return type(self).open(self.settings)

    @property
    def build_info(self) -> dict[str, Any]:
        return {k: v for k, v in (self._chunks.metadata or {}).items() if not k.startswith("hnsw:")}

    def check_model_name(self) -> None:
        """Cheap check before any model is loaded: the index names the model that built it."""
        built_with = self.build_info.get("embed_model")
        if built_with and built_with != self.settings.embed_model:
            raise IndexMismatch(
                f"the index in {describe_location(self.settings)} was built with embedding model "
                f"{built_with!r}, not {self.settings.embed_model!r}: set ISNAD_EMBED_MODEL={built_with} "
                "or use another data directory / collection"
            )

    def check_build(self, expected: dict[str, Any], keys: Sequence[str]) -> None:
        """Raise IndexMismatch when any of `keys` differs between the index and `expected`."""
        info = self.build_info
        for key in keys:
            if key in info and info[key] != expected[key]:
                raise IndexMismatch(
                    f"the index in {describe_location(self.settings)} was built with {key}={info[key]!r}, "
                    f"but the current setting is {expected[key]!r}: use the same settings, or ingest "
                    "into a new data directory / collection"
                )

    # --- reading -------------------------------------------------------------------------------

    def generation(self) -> int:
        """A number that every write to this index increases (0 for an index never written since)."""
        got = self._meta.get(ids=[_GENERATION], include=["metadatas"])
        return int(got["metadatas"][0]["value"]) if got["ids"] else 0

    def _bump(self) -> None:
        self._meta.upsert(ids=[_GENERATION], embeddings=[[1.0]], metadatas=[{"value": self.generation() + 1}])

    def count(self) -> tuple[int, int]:
        """(distinct article texts, chunks)."""
        return self._articles.count(), self._chunks.count()

    def stats(self) -> StoreStats:
        """Counts (reading every article record's metadata for the copies), generation and build information."""
        settings = self.settings
        distinct_texts, chunks = self.count()
        return StoreStats(
            articles=sum(len(record.copies) for record in self.iter_records()),
            distinct_texts=distinct_texts,
            chunks=chunks,
            sentences=self._sentences.count(),
            generation=self.generation(),
            location=str(settings.chroma_url or settings.data_dir),
            build_info=self.build_info,
        )

    def nearest_chunks(
        self, vector: np.ndarray, n: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        """The `n` chunks nearest to `vector` (matching the Chroma filter `where`), as (chunk id, cosine
        similarity), nearest first; [] for an empty store."""
        total = self._chunks.count()
        if total == 0:
            return []
        result = self._chunks.query(
            query_embeddings=[vector], n_results=min(n, total), where=where, include=["distances"]
        )
        return [(cid, 1.0 - dist) for cid, dist in zip(result["ids"][0], result["distances"][0], strict=True)]

    def iter_records(self, include_text: bool = False) -> Iterator[ArticleRecord]:
        include = ["metadatas", "documents"] if include_text else ["metadatas"]
        for ids, documents, metadatas in _pages(self._articles, include):
            for i, key in enumerate(ids):
                yield ArticleRecord.from_chroma(key, documents[i] if documents else None, metadatas[i])

    def get_records(self, keys: Sequence[str], include_text: bool = True) -> dict[str, ArticleRecord]:
        if not keys:
            return {}
        include = ["metadatas", "documents"] if include_text else ["metadatas"]
        result = self._articles.get(ids=list(dict.fromkeys(keys)), include=include)
        documents = result.get("documents")
        return {
            key: ArticleRecord.from_chroma(key, documents[i] if documents else None, result["metadatas"][i])
            for i, key in enumerate(result["ids"])
        }

    def iter_chunks(self, include: Sequence[str] = ("metadatas", "documents")):
        """Yield (ids, documents, metadatas) pages of the chunk collection."""
        yield from _pages(self._chunks, list(include))

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """Each found chunk's (text, metadata), by id."""
        if not chunk_ids:
            return {}
        got = self._chunks.get(ids=list(dict.fromkeys(chunk_ids)), include=["documents", "metadatas"])
        return {chunk_id: (got["documents"][i], got["metadatas"][i]) for i, chunk_id in enumerate(got["ids"])}

    def sentence_vectors(self, chunk_ids: Sequence[str]) -> dict[str, list[tuple[int, int, np.ndarray]]]:
        """For each chunk, its sentences' (start, end, vector), offsets in the article, in text order."""
        if not chunk_ids:
            return {}
        chunk_ids = list(dict.fromkeys(chunk_ids))
        # By id (a key lookup) rather than by a chunk_id filter, which scans the metadata: over 75,000
        # passages (370,000 sentences) 3 ms against 30 ms, and 0.7 s on the first question of a process.
        wanted = [sentence_id(chunk_id, j) for chunk_id in chunk_ids for j in range(SENTENCES_LOOKED_UP)]
        found = self._sentence_rows(self._sentences.get(ids=wanted, include=["embeddings", "metadatas"]))
        crowded = [chunk_id for chunk_id, rows in found.items() if len(rows) >= SENTENCES_LOOKED_UP]
        if crowded:  # a passage of very many short sentences: the filter finds them all
            found.update(self._sentence_rows(self._sentences.get(
                where={"chunk_id": {"$in": crowded}}, include=["embeddings", "metadatas"])))
        return {chunk_id: sorted(spans, key=lambda s: s[0]) for chunk_id, spans in found.items()}

    @staticmethod
    def _sentence_rows(got: dict) -> dict[str, list[tuple[int, int, np.ndarray]]]:
        found: dict[str, list[tuple[int, int, np.ndarray]]] = {}
        for metadata, vector in zip(got["metadatas"], got["embeddings"], strict=True):
            found.setdefault(metadata["chunk_id"], []).append(
                (int(metadata["start"]), int(metadata["end"]), np.asarray(vector, dtype=np.float32))
            )
        return found

    def chunk_ids(self) -> list[str]:
        return [i for ids, _, _ in _pages(self._chunks, []) for i in ids]

    # --- writing (one writer at a time: hold locking.writer_lock()) ----------------------------

    def add_chunks(self, ids: list[str], texts: list[str], vectors: np.ndarray, metadatas: list[dict]) -> None:
        batch = self._client.get_max_batch_size()
        for at in range(0, len(ids), batch):
            end = at + batch
            self._chunks.upsert(
                ids=ids[at:end], documents=texts[at:end], embeddings=vectors[at:end], metadatas=metadatas[at:end]
            )
        self._bump()

    def add_sentences(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict]) -> None:
        batch = self._client.get_max_batch_size()
        for at in range(0, len(ids), batch):
            end = at + batch
            self._sentences.upsert(ids=ids[at:end], embeddings=vectors[at:end], metadatas=metadatas[at:end])
        self._bump()

    def add_records(self, records: list[ArticleRecord], vectors: np.ndarray) -> None:
        """Write new article records in one call per batch (each is written after all its chunks)."""
        batch = self._client.get_max_batch_size()
        for at in range(0, len(records), batch):
            part = records[at : at + batch]
            self._articles.upsert(
                ids=[r.key for r in part],
                documents=[r.text for r in part],
                embeddings=vectors[at : at + batch],
                metadatas=[r.metadata() for r in part],
            )
        self._bump()

    def put_record(self, record: ArticleRecord, vector: np.ndarray | None = None) -> None:
        """Write (or rewrite) an article record; `vector` is needed the first time only."""
        if vector is None:
            self._articles.update(ids=[record.key], metadatas=[record.metadata()])
        else:
            self._articles.upsert(
                ids=[record.key], documents=[record.text], embeddings=[vector], metadatas=[record.metadata()]
            )
        self._bump()

    def set_chunk_copies(self, record: ArticleRecord) -> None:
        """After the copies of a text change, refresh what its chunks carry for filtering."""
        ids = [chunk_id(record.key, i) for i in range(record.n_chunks)]
        got = self._chunks.get(ids=ids, include=["metadatas"])
        metadatas = [
            chunk_metadata(record, m["index"], m["start"], m["end"]) for m in got["metadatas"]
        ]
        if got["ids"]:
            self._chunks.update(ids=got["ids"], metadatas=metadatas)
        self._bump()

    def delete_record(self, key: str) -> None:
        """Remove an article text: its record first (so it stops being "present"), then what it owns."""
        self._articles.delete(ids=[key])
        self.delete_chunks_of(key)
        self._bump()

    def delete_chunks_of(self, key: str) -> None:
        self.delete_sentences_of(key)  # sentences first: a kill in between leaves chunks, which repair finds
        self._chunks.delete(where={"article_key": key})
        self._bump()

    def delete_sentences_of(self, key: str) -> None:
        self._sentences.delete(where={"article_key": key})
        self._bump()

    def delete_chunks(self, ids: list[str]) -> None:
        batch = self._client.get_max_batch_size()
        for at in range(0, len(ids), batch):
            self._chunks.delete(ids=ids[at : at + batch])
        self._bump()


def _pages(collection, include: list[str]) -> Iterator[tuple[list[str], list | None, list | None]]:
    offset = 0
    while True:
        result = collection.get(include=include, limit=PAGE, offset=offset)
        ids = result["ids"]
        if not ids:
            return
        yield ids, result.get("documents"), result.get("metadatas")
        offset += len(ids)
        if len(ids) < PAGE:
            return


@contextlib.contextmanager
def server_errors(settings: Settings, doing: str) -> Iterator[None]:
    """A Chroma server that goes away mid-work becomes one StoreError naming it, not a traceback."""
    import httpx

    try:
        yield
    except httpx.TransportError as exc:
        raise StoreError(
            f"lost the Chroma server at {settings.chroma_url} while {doing} ({type(exc).__name__}): "
            "check that `chroma run` is up, then run the same command again"
        ) from None


def describe_location(settings: Settings) -> str:
    if settings.chroma_url:
        return f"the Chroma server at {settings.chroma_url} (collection {settings.collection!r})"
    return str(settings.data_dir)


def connect(settings: Settings):
    """A Chroma client: the server at `chroma_url`, or an embedded store in `data_dir/chroma`."""
    import chromadb

    if settings.chroma_url:
        url = urlparse(settings.chroma_url if "://" in settings.chroma_url else "http://" + settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise StoreError(f"ISNAD_CHROMA_URL {settings.chroma_url!r} is not an http(s) URL")
        try:
            client = chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=_chroma_settings(),
            )
            client.heartbeat()
        except Exception as exc:  # the client raises several types for the same "cannot connect"
            raise StoreError(
                f"cannot reach the Chroma server at {settings.chroma_url}: {type(exc).__name__}. Start it "
                "with `chroma run --path DIR --port N`, or unset ISNAD_CHROMA_URL to use the embedded store"
            ) from None
        return client
    path = Path(settings.data_dir) / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
