"""`Assistant`: open an index, retrieve passages, answer with citations (extractive or LLM)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from . import smalltalk
from .conversation import condense_heuristically, follow_up_in_context, looks_like_follow_up, user_questions
from .embedder import load_embedder
from .errors import EmbedderError, IndexMismatch, IsnadError, LLMError
from .extractive import NO_ANSWER, answer_extractively, answer_from_readings, score_sentences
from .generative import condense_with_llm, messages_for, parse_answer, stream_completion
from .reader import PassageReading, load_reader
from .retrieval import Filters, Retriever
from .settings import Settings
from .store import Store, describe_location, server_errors
from .text import detect_language, strip_invisible
from .types import Answer, Hit

MAX_QUESTION_CHARS = 2000
# Passages the reader reads per question (it costs ~25 ms each on 2 cores); the rest keep their rank.
READ_PASSAGES = 6

Mode = Literal["extractive", "llm"]


class Assistant:
    """Ask questions over an existing index.

    >>> assistant = Assistant()                      # settings from isnad.toml / ISNAD_* / defaults
    >>> answer = assistant.ask("ماذا أمر رئيس الأركان بشأن السيارات غير المرخصة؟")
    >>> answer.text, [c.quote for c in answer.citations]
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        if settings is None:
            settings = Settings.load(**overrides)
        elif overrides:  # validated like any setting (a plain str key becomes a SecretStr, bad values fail)
            settings = settings.updated(**overrides)
        self.settings = settings
        # The models load in a thread while the store opens: the two are independent and most of a cold
        # `isnad ask` (the overlap saves ~0.15 s of ~3 s on 2 cores; the GIL keeps it from saving more).
        with ThreadPoolExecutor(max_workers=1) as pool:
            models = pool.submit(self._load_models)
            self.store = Store.open(self.settings)  # IndexNotFound names the directory and the fix
            self.embedder, self.reader = models.result()
        built_with = self.store.build_info.get("embed_fingerprint")
        if built_with and built_with != self.embedder.fingerprint:
            raise IndexMismatch(
                f"the index in {describe_location(self.settings)} was built by embedder {built_with}, "
                f"but the loaded one is {self.embedder.fingerprint}: re-ingest into a new data directory"
            )
        self.retriever = Retriever(self.store, self.embedder)

    def _load_models(self):
        embedder = load_embedder(self.settings.embed_model, self.settings.cache_dir)
        if not self.settings.reader:
            return embedder, None
        try:
            return embedder, load_reader(embedder)
        except EmbedderError as exc:
            raise EmbedderError(f"{exc}, or set reader = false") from None

    def refresh(self) -> None:
        """See articles another process (or the UI's ingest panel) added since this was opened."""
        self.store = self.store.reopen()
        self.retriever = Retriever(self.store, self.embedder)

    def retrieve(self, question: str, k: int | None = None, filters: Filters | dict | None = None) -> list[Hit]:
        question = _check_question(question)
        vector = self.embedder.embed_query(question)
        with server_errors(self.settings, "searching"):
            hits = self.retriever.retrieve(question, k or self.settings.k, filters, query_vector=vector)
        return self._read(question, vector, hits)[0]

    def _read(self, question: str, query_vector, hits: list[Hit]):
        """(hits, readings, stored): the hits reranked by the reader (its top READ_PASSAGES; the rest follow
        in retrieval order), its readings of the reranked head, and the head's stored sentence vectors (see
        Store.sentence_vectors); without a reader, the hits unchanged, None and {}."""
        if self.reader is None or not hits:
            return hits, None, {}
        head = hits[:READ_PASSAGES]
        stored = self.store.sentence_vectors([hit.chunk_id for hit in head])
        readings = self.reader.read(question, query_vector, _reader_passages(head, stored))
        scores = self.reader.rerank_scores(readings)
        for reading, score in zip(readings, scores, strict=True):
            reading.rerank = score
        order = sorted(range(len(head)), key=lambda i: -scores[i])
        return [head[i] for i in order] + hits[READ_PASSAGES:], [readings[i] for i in order], stored

    def ask(
        self,
        question: str,
        history: Sequence[Any] | None = None,
        filters: Filters | dict | None = None,
        mode: Mode | None = None,
        k: int | None = None,
    ) -> Answer:
        """Answer `question` (Arabic or English) from the index; `history` holds earlier messages."""
        answer = None
        for item in self.stream(question, history, filters, mode, k):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def stream(
        self,
        question: str,
        history: Sequence[Any] | None = None,
        filters: Filters | dict | None = None,
        mode: Mode | None = None,
        k: int | None = None,
    ) -> Iterator[str | Answer]:
        """Yield text pieces as they are produced, then the final `Answer`."""
        started = time.perf_counter()
        question, cut = _checked_question(question)
        mode = mode or self.settings.mode
        language = detect_language(question)
        timings: dict[str, float] = {}
        # Every notice is kept, in the order it arose (a filter that matched nothing does not hide an LLM
        # that failed): the cut question first, since it changes what every other line is about.
        notices = [_CUT[language].format(kept=MAX_QUESTION_CHARS, had=cut)] if cut else []
        if mode == "llm" and not self.settings.llm_configured:
            mode = "extractive"
            notices.append("No LLM endpoint is configured; showing the extractive answer.")
        if not user_questions(history) and (chat := smalltalk.reply(question, language)) is not None:
            # A greeting or a request no article answers: say what Isnad answers, never quote a passage.
            yield chat
            yield Answer(chat, False, language, mode, question=question, standalone_question=question,
                         timings={"total": round(time.perf_counter() - started, 4)})
            return

        clock = time.perf_counter()
        standalone = self._standalone(question, history, language, mode)
        timings["condense"] = time.perf_counter() - clock
        clock = time.perf_counter()
        query_vector = self.embedder.embed_query(standalone)
        timings["embed"] = time.perf_counter() - clock
        with server_errors(self.settings, "searching"):
            hits = self.retriever.retrieve(
                standalone, k or self.settings.k, filters, timings=timings, query_vector=query_vector
            )
        clock = time.perf_counter()
        # Retrieval searched the follow-up with its context; the reader reads what was asked in this turn
        # (the earlier question glued on would make it pick the earlier answer again).
        read_vector = query_vector if standalone == question else self.embedder.embed_query(question)
        hits, readings, stored = self._read(question, read_vector, hits)
        if readings is not None:
            timings["read"] = time.perf_counter() - clock

        answer = None
        if mode == "llm" and hits:
            clock = time.perf_counter()
            try:
                raw = []
                messages, withheld = messages_for(question, language, hits)
                for piece in stream_completion(self.settings, messages):
                    raw.append(piece)
                    yield piece
                # The reader fetched the head's sentence vectors; without it, one lookup beats re-embedding.
                sentence_vectors = stored or self.store.sentence_vectors([hit.chunk_id for hit in hits])
                text, citations, declined = parse_answer("".join(raw), hits, self.embedder, sentence_vectors)
                if declined:
                    answer = Answer(NO_ANSWER[language], False, language, "llm")
                elif citations and readings is not None and not self._supported(citations, hits, readings, language):
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
            timings["generate"] = time.perf_counter() - clock

        if answer is None:
            clock = time.perf_counter()
            if readings is not None:
                read = hits[: len(readings)]
                prior = score_sentences(question, read_vector, read, self.embedder, stored)
                support = None
                if standalone != question:
                    # Whether the articles answer is judged with the context the follow-up leans on, in
                    # both forms: the topic terms it was searched with, and the earlier questions' whole
                    # text (measured in eval/README: the terms alone declined answerable follow-ups).
                    passages = _reader_passages(read, stored)
                    whole = follow_up_in_context(question, history)
                    forms = [(standalone, query_vector), (whole, self.embedder.embed_query(whole))]
                    support = max(reading.best for form, vector in forms
                                  for reading in self.reader.read(form, vector, passages))
                answer = answer_from_readings(question, language, read, readings, self.reader, prior, support)
            else:
                stored = self.store.sentence_vectors([hit.chunk_id for hit in hits])
                answer = answer_extractively(standalone, query_vector, hits, self.embedder, language, stored=stored)
            timings["select"] = time.perf_counter() - clock
            yield answer.text

        filters = Filters.coerce(filters)
        if filters and not hits:
            notices.append(_NO_MATCH[language].format(filters=filters.describe(language)))
        timings["total"] = time.perf_counter() - started
        # The answerers say what the articles say; what this turn was about is added once, here.
        yield dataclasses.replace(
            answer, question=question, standalone_question=standalone, notice=" ".join(notices),
            timings={name: round(value, 4) for name, value in timings.items()},
        )

    def _supported(self, citations, hits: list[Hit], readings: list[PassageReading], language: str) -> bool:
        """Some cited passage holds a sentence the reader scores as answering (an LLM claim on a passage
        that does not answer the question is the confident wrong answer we refuse to show)."""
        best = {hit.chunk_id: reading.best for hit, reading in zip(hits, readings, strict=False)}
        cited = [hit.chunk_id for hit in hits if any(
            c.article_id == hit.article_id and hit.start <= c.start and c.end <= hit.end for c in citations)]
        return any(best.get(chunk_id, float("-inf")) >= self.reader.threshold(language) for chunk_id in cited)

    def _standalone(self, question: str, history, language: str, mode: Mode) -> str:
        if not user_questions(history):
            return question
        if mode == "llm" and looks_like_follow_up(question):
            try:
                return condense_with_llm(self.settings, question, history, language)
            except LLMError:
                pass
        return condense_heuristically(question, history)


# The notices about the question itself, in its language (the others name an endpoint or a model).
_NO_MATCH = {
    "en": "No article matches the active filters ({filters}): clear them to search every article.",
    "ar": "لا توجد مقالات تطابق عوامل التصفية المفعّلة ({filters}): أزلها للبحث في كل المقالات.",
}
_CUT = {
    "en": "The question was cut to its first {kept:,} characters (it had {had:,}).",
    "ar": "اقتُصر على أول {kept:,} حرف من السؤال (كان طوله {had:,} حرفًا).",
}


def _reader_passages(hits: list[Hit], stored: dict) -> list:
    """Each hit as Reader.read takes it: (text, its stored sentences' (start, end, vector) relative to the
    text, or None when the index holds none)."""
    return [(hit.text, [(s - hit.start, e - hit.start, v) for s, e, v in stored.get(hit.chunk_id, [])] or None)
            for hit in hits]


def _check_question(question: str) -> str:
    return _checked_question(question)[0]


def _checked_question(question: str) -> tuple[str, int]:
    """The question normalised and cut to MAX_QUESTION_CHARS, and its length when it was cut (else 0)."""
    if not isinstance(question, str) or not question.strip():
        raise IsnadError("the question is empty: type a question in Arabic or English")
    question = strip_invisible(_undo_undecodable_bytes(question))
    question = " ".join(question.split())
    length = len(question)
    if length > MAX_QUESTION_CHARS:
        question = question[:MAX_QUESTION_CHARS]
    if not any(ch.isalnum() for ch in question):
        raise IsnadError("the question has no words: type a question in Arabic or English")
    return question, length if length > MAX_QUESTION_CHARS else 0


def _undo_undecodable_bytes(question: str) -> str:
    """A question typed in a Windows-1256 terminal reaches us with its non-UTF-8 bytes as lone surrogates
    (Python's surrogateescape, e.g. in sys.argv): recover the bytes and decode them as Windows-1256."""
    if not any("\ud800" <= ch <= "\udfff" for ch in question):
        return question
    try:
        return question.encode("utf-8", "surrogateescape").decode("cp1256")
    except UnicodeError:  # surrogates that never were bytes (e.g. a JSON "\\ud83d" with no pair)
        raise IsnadError("the question is not valid text (lone surrogate characters): send it as UTF-8") from None
