"""Follow-up questions ("and what about the minister?") resolved against the conversation history."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .text import detect_language, words

# Openings and references that make a question lean on the previous one.
_FOLLOW_UP_EN = re.compile(
    r"^(and|but|also|so|what about|how about|and what|then)\b|\b(he|she|they|it|him|her|them|his|their|its|"
    r"this|that|these|those|there)\b",
    re.IGNORECASE,
)
_FOLLOW_UP_AR = re.compile(
    r"^(ثم|ماذا عن|وماذا|وما|وهل|وكم|ومن|واين|وأين|ومتى|ولماذا|وكيف|فماذا|فما|فهل|فكم|فمن)\b"
    r"|\b(هو|هي|هم|ذلك|هذا|هذه|تلك)\b"
)


def user_questions(history: Sequence[Any] | None) -> list[str]:
    """The user's earlier questions, from messages ({"role","content"}) or (question, answer) pairs."""
    questions = []
    for item in history or ():
        if isinstance(item, dict):
            if item.get("role") == "user" and isinstance(item.get("content"), str):
                questions.append(item["content"])
        elif isinstance(item, (tuple, list)) and item and isinstance(item[0], str):
            questions.append(item[0])
    return questions


def looks_like_follow_up(question: str) -> bool:
    if len(words(question)) <= 3:
        return True
    pattern = _FOLLOW_UP_AR if detect_language(question) == "ar" else _FOLLOW_UP_EN
    return bool(pattern.search(question.strip()))


MAX_CONTEXT_WORDS = 30


def condense_heuristically(question: str, history: Sequence[Any] | None) -> str:
    """Without an LLM: a follow-up is searched together with the question it follows, which carries the
    topic ("the chief of staff", "unregistered vehicles") the follow-up leaves out. When that question was
    itself a follow-up, the one it followed comes too (a chain of "and where?", "and when?" keeps its
    topic), in whatever language each was asked: the embedder is multilingual."""
    previous = user_questions(history)
    if not previous or not looks_like_follow_up(question):
        return question
    context = ""
    for earlier in previous:
        context = f"{earlier} {context}" if context and looks_like_follow_up(earlier) else earlier
    kept = context.split()[:MAX_CONTEXT_WORDS]
    return f"{question} ({' '.join(kept)})"
