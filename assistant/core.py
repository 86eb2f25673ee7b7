"""`Assistant`: open an index, retrieve passages, answer with citations (extractive or LLM)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from . import smalltalk
from .answerers import Answerer, ExtractiveAnswerer, LLMAnswerer, Reading, read_hits
from .conversation import condense_heuristically, follow_up_in_context, looks_like_follow_up, user_questions
from .embedder import load_embedder
from .errors import EmbedderError, IndexMismatch, IsnadError, LLMError
from .generative import condense_with_llm
from .query import Query
from .reader import load_reader
from .retrieval import Filters, Retriever
from .settings import Settings
from .store import Store, describe_location, server_errors
from .text import detect_language, strip_invisible
from .types import Answer, Hit

MAX_QUESTION_CHARS = 2000

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
        self._open_answerers()

    def _open_answerers(self) -> None:
        self.retriever = Retriever(self.store, self.embedder)
        self._extractive = ExtractiveAnswerer(self.embedder, self.reader, self.store)
        self._llm = LLMAnswerer(self.settings, self.embedder, self.reader, self.store, self._extractive)

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
        self._open_answerers()

    def retrieve(self, question: str, k: int | None = None, filters: Filters | dict | None = None) -> list[Hit]:
        """The passages `ask` would answer from, in the reader's order."""
        question = _check_question(question)
        query = Query.alone(question, self.embedder.embed_query(question))
        with server_errors(self.settings, "searching"):
            hits = self.retriever.search(query, k or self.settings.k, filters)
        return self._read(question, query.vector, hits).hits

    def _read(self, question: str, query_vector, hits: list[Hit]) -> Reading:
        return read_hits(self.reader, self.store, question, query_vector, hits)

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
        searched = self._standalone(question, history, language, mode)
        timings["condense"] = time.perf_counter() - clock
        clock = time.perf_counter()
        context = follow_up_in_context(question, history) if searched != question else ""
        query = Query.prepare(question, searched, language, self.embedder, context)
        timings["embed"] = time.perf_counter() - clock
        with server_errors(self.settings, "searching"):
            hits = self.retriever.search(query, k or self.settings.k, filters, timings)
        clock = time.perf_counter()
        reading = self._read(query.asked, query.read_vector, hits)
        if reading.readings is not None:
            timings["read"] = time.perf_counter() - clock

        llm = mode == "llm" and bool(hits)
        answerer: Answerer = self._llm if llm else self._extractive
        clock = time.perf_counter()
        answer = None
        for item in answerer.answer(query, reading):
            if isinstance(item, Answer):
                answer = item
            else:
                yield item
        timings["generate" if llm else "select"] = time.perf_counter() - clock
        if answer.notice:
            notices.append(answer.notice)

        filters = Filters.coerce(filters)
        if filters and not hits:
            notices.append(_NO_MATCH[language].format(filters=filters.describe(language)))
        timings["total"] = time.perf_counter() - started
        # The answerers say what the articles say; what this turn was about is added once, here.
        yield dataclasses.replace(
            answer, question=question, standalone_question=searched, notice=" ".join(notices),
            timings={name: round(value, 4) for name, value in timings.items()},
        )

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
