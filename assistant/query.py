"""One turn's question, prepared once: what was asked, what is searched, its language, terms and vectors.

A follow-up is searched with the context it leans on (conversation.py) but read as asked: the earlier
question glued on would make the reader pick the earlier answer again. Everything downstream (retrieval,
the reader, both answerers) takes the same Query instead of re-detecting the language or re-embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .embedder import Embedder
from .text import detect_language, search_terms


@dataclass(frozen=True)
class Query:
    asked: str  # this turn's question, as the user typed it (normalised)
    searched: str  # what retrieval searches: `asked`, or a follow-up with the topic it leans on
    language: str  # of `asked`: the answer's language
    terms: tuple[str, ...]  # BM25 terms of `searched`; empty unless it is Arabic (see retrieval.py)
    vector: np.ndarray  # `searched` embedded as a query
    read_vector: np.ndarray  # `asked` embedded (the same array when nothing was added)
    context: str = ""  # a follow-up with the earlier questions' whole text; "" for a first question

    @classmethod
    def alone(cls, question: str, vector: np.ndarray) -> Query:
        """A question asked with no conversation before it, already embedded."""
        language = detect_language(question)
        return cls(question, question, language, _terms(question, language), vector, vector)

    @classmethod
    def prepare(cls, asked: str, searched: str, language: str, embedder: Embedder, context: str = "") -> Query:
        vector = embedder.embed_query(searched)
        read_vector = vector if searched == asked else embedder.embed_query(asked)
        terms = _terms(searched, language if searched == asked else detect_language(searched))
        return cls(asked, searched, language, terms, vector, read_vector, context)


def _terms(text: str, language: str) -> tuple[str, ...]:
    # Routing by script: for an English question BM25 over Arabic text only adds noise (retrieval.py).
    return tuple(search_terms(text)) if language == "ar" else ()
