"""The two answerers behind one interface: `answer(query, reading)` yields text pieces, then the Answer.

`ExtractiveAnswerer` quotes the sentence(s) that answer (extractive.py); `LLMAnswerer` streams an
OpenAI-compatible model's answer (generative.py) and falls back to the extractive one, saying why in the
Answer's notice, when the model fails, cites nothing it was given, or cites passages the reader finds do
not answer. Both read the same `Reading` of the retrieved hits, made once per question by `read_hits`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import NamedTuple, Protocol

import numpy as np

from .embedder import Embedder
from .errors import LLMError
from .extractive import NO_ANSWER, answer_extractively, answer_from_readings, score_sentences
from .generative import messages_for, parse_answer, stream_completion
from .query import Query
from .reader import PassageReading, Reader
from .settings import Settings
from .store import Store
from .text import split_sentences
from .types import Answer, Citation, Hit

# Passages the reader reads per question (it costs ~25 ms each on 2 cores); the rest keep their rank.
READ_PASSAGES = 6

StoredSentences = dict[str, list[tuple[int, int, np.ndarray]]]  # chunk id -> its sentences (start, end, vector)


class Reading(NamedTuple):
    """The retrieved hits as the reader left them: reranked (its top READ_PASSAGES; the rest follow in
    retrieval order), its readings of that head, and the head's stored sentence vectors. Without a
    reader: the hits unchanged, None and {}."""

    hits: list[Hit]
    readings: list[PassageReading] | None
    stored: StoredSentences


class Answerer(Protocol):
    def answer(self, query: Query, reading: Reading) -> Iterator[str | Answer]: ...


def read_hits(reader: Reader | None, store: Store, question: str, vector: np.ndarray, hits: list[Hit]) -> Reading:
    if reader is None or not hits:
        return Reading(hits, None, {})
    head = hits[:READ_PASSAGES]
    stored = store.sentence_vectors([hit.chunk_id for hit in head])
    missing = [hit for hit in head if hit.chunk_id not in stored]
    if missing:  # passages ingested through embedding endpoints (endpoints.py) have no stored sentence vectors
        stored.update(sentence_vectors_now(reader.embedder, missing))
    readings = reader.read(question, vector, reader_passages(head, stored))
    scores = reader.rerank_scores(readings)
    for reading, score in zip(readings, scores, strict=True):
        reading.rerank = score
    order = sorted(range(len(head)), key=lambda i: -scores[i])
    return Reading([head[i] for i in order] + hits[READ_PASSAGES:], [readings[i] for i in order], stored)


def sentence_vectors_now(embedder: Embedder, hits: list[Hit]) -> StoredSentences:
    """The hits' sentence vectors as ingest stores them (same split, same late-chunking pass), computed now."""
    spans = [split_sentences(hit.text) or [(0, len(hit.text))] for hit in hits]
    _, pieces = embedder.embed_passages_with_spans([hit.text for hit in hits], spans)
    return {hit.chunk_id: [(hit.start + s, hit.start + e, v) for (s, e), v in zip(spans[i], pieces[i], strict=True)]
            for i, hit in enumerate(hits)}


def reader_passages(hits: list[Hit], stored: StoredSentences) -> list:
    """Each hit as Reader.read takes it: (text, its stored sentences' (start, end, vector) relative to the
    text, or None when the index holds none)."""
    return [(hit.text, [(s - hit.start, e - hit.start, v) for s, e, v in stored.get(hit.chunk_id, [])] or None)
            for hit in hits]


class ExtractiveAnswerer:
    def __init__(self, embedder: Embedder, reader: Reader | None, store: Store) -> None:
        self.embedder, self.reader, self.store = embedder, reader, store

    def answer(self, query: Query, reading: Reading) -> Iterator[str | Answer]:
        answer = self._choose(query, reading)
        yield answer.text
        yield answer

    def _choose(self, query: Query, reading: Reading) -> Answer:
        if reading.readings is None:  # no reader (reader = false), or nothing retrieved
            stored = self.store.sentence_vectors([hit.chunk_id for hit in reading.hits])
            return answer_extractively(query.searched, query.vector, reading.hits, self.embedder, query.language,
                                       stored=stored)
        read = reading.hits[: len(reading.readings)]
        prior = score_sentences(query.asked, query.read_vector, read, self.embedder, reading.stored)
        support = None
        if query.context:
            # Whether the articles answer a follow-up is judged with the context it leans on, in both
            # forms: the topic terms it was searched with, and the earlier questions' whole text (measured
            # in eval/README: the terms alone declined answerable follow-ups).
            passages = reader_passages(read, reading.stored)
            forms = [(query.searched, query.vector), (query.context, self.embedder.embed_query(query.context))]
            support = max(passage.best for form, vector in forms
                          for passage in self.reader.read(form, vector, passages))
        return answer_from_readings(query.asked, query.language, read, reading.readings, self.reader, prior, support)


class LLMAnswerer:
    def __init__(self, settings: Settings, embedder: Embedder, reader: Reader | None, store: Store,
                 fallback: ExtractiveAnswerer) -> None:
        self.settings, self.embedder, self.reader, self.store = settings, embedder, reader, store
        self.fallback = fallback

    def answer(self, query: Query, reading: Reading) -> Iterator[str | Answer]:
        hits, language = reading.hits, query.language
        notices: list[str] = []
        answer = None
        try:
            raw = []
            messages, withheld = messages_for(query.asked, language, hits)
            for piece in stream_completion(self.settings, messages):
                raw.append(piece)
                yield piece
            # The reader fetched the head's sentence vectors; without it, one lookup beats re-embedding.
            vectors = reading.stored or self.store.sentence_vectors([hit.chunk_id for hit in hits])
            text, citations, declined = parse_answer("".join(raw), hits, self.embedder, vectors)
            if declined:
                answer = Answer(NO_ANSWER[language], False, language, "llm")
            elif citations and reading.readings is not None and not self._supported(citations, reading, language):
                notices.append("The reader found no cited passage that answers the question; showing the "
                               "extractive answer.")
            elif citations:
                answer = Answer(text, True, language, "llm", citations)
            else:
                notices.append("The LLM answer made no claim citing a given passage; showing the extractive "
                               "answer.")
            if withheld and answer is not None:
                notices.append(f"{withheld} passage sentence(s) that read like instructions to the model "
                               "were withheld from it.")
        except LLMError as exc:
            notices.append(f"LLM unavailable ({exc}); showing the extractive answer.")
        if answer is None:
            for item in self.fallback.answer(query, reading):
                if isinstance(item, Answer):
                    answer = item
                else:
                    yield item
        yield dataclasses.replace(answer, notice=" ".join(notices))

    def _supported(self, citations: list[Citation], reading: Reading, language: str) -> bool:
        """Some cited passage holds a sentence the reader scores as answering (an LLM claim on a passage
        that does not answer the question is the confident wrong answer we refuse to show)."""
        best = {hit.chunk_id: passage.best for hit, passage in zip(reading.hits, reading.readings, strict=False)}
        cited = [hit.chunk_id for hit in reading.hits if any(
            c.article_id == hit.article_id and hit.start <= c.start and c.end <= hit.end for c in citations)]
        return any(best.get(chunk_id, float("-inf")) >= self.reader.threshold(language) for chunk_id in cited)
