"""The records that flow through Isnad: articles in, chunks stored, hits retrieved, answers out."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# The one citation marker, "[n]" with n the 1-based number of a Citation in Answer.citations. Every
# module that writes, parses, strips or links markers uses this (group 1 is the number).
CITATION_MARKER = re.compile(r"\[(\d{1,2})\]")


@dataclass(frozen=True)
class Article:
    """One news article after loading and cleaning. `text` is what citations quote and offsets index."""

    id: str
    title: str
    text: str
    source: str = ""
    url: str = ""
    date: str = ""  # YYYY-MM-DD when known
    author: str = ""
    origin: str = ""  # where it was read from: "path" or "path:line"


@dataclass(frozen=True)
class Copy:
    """One printing of an article's text: agency copy appears in several papers under its own id and url."""

    id: str
    title: str
    source: str = ""
    url: str = ""
    date: str = ""
    author: str = ""
    text_key: str = ""  # content hash of this copy's own text (a near copy differs from the stored one)


@dataclass
class Hit:
    """A retrieved passage with everything needed to cite it."""

    chunk_id: str
    article_id: str
    title: str
    text: str
    start: int
    end: int
    score: float
    sources: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    article_ids: list[str] = field(default_factory=list)  # every copy's id, the primary first
    date: str = ""
    author: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Citation:
    """The exact span of an article an answer relies on; `quote == article text[start:end]`."""

    n: int
    article_id: str
    title: str
    quote: str
    start: int
    end: int
    sources: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    date: str = ""
    score: float = 0.0
    passage: str = ""  # the retrieved passage the quote sits in, for display
    passage_start: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """What `Assistant.ask` returns. `has_answer` is False when the articles do not say."""

    text: str
    has_answer: bool
    language: Literal["ar", "en"]
    mode: Literal["extractive", "llm"]
    citations: list[Citation] = field(default_factory=list)
    question: str = ""
    standalone_question: str = ""  # the question after resolving a follow-up against the history
    short_answer: str = ""  # the reader's short answer (a name, number, date) inside the first quote
    notice: str = ""  # e.g. why an LLM answer fell back to the extractive one
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
