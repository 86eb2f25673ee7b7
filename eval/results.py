"""What a run records: each question's result (`ItemResult`) and the whole run's (`EvalResult`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ItemResult:
    """What one question got, and its scores."""

    id: str
    language: str
    kind: str
    question: str
    answerable: bool
    gold_answer: str
    answer: str
    has_answer: bool
    standalone_question: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)  # n, article_id, quote, score, correct
    retrieved: list[list[str]] = field(default_factory=list)  # article ids of each of the top-10 hits
    rank: int | None = None
    answer_f1: float = 0.0
    answer_containment: float = 0.0
    evidence_f1: float = 0.0
    evidence_containment: float = 0.0
    answer_correct: bool = False
    judge: float | None = None
    judge_reply: str = ""
    ask_seconds: float = 0.0
    retrieve_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notice: str = ""
    follows: str | None = None
    # A follow-up asked alone in its gold standalone form (None when not asked: no standalone form).
    standalone_form: str = ""
    standalone_answer: str = ""
    standalone_has_answer: bool | None = None
    standalone_answer_correct: bool | None = None
    standalone_cited: bool | None = None  # at least one correct citation
    repeats_previous: bool = False  # answered with the very answer of the turn it follows

    @property
    def correct_citations(self) -> int:
        return sum(1 for c in self.citations if c["correct"])


@dataclass
class EvalResult:
    mode: str
    items: list[ItemResult]
    metrics: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)  # when, index, embedder, Q&A file
    failures: list[str] = field(default_factory=list)  # threshold failures, filled by main_eval

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "info": self.info,
            "metrics": self.metrics,
            "threshold_failures": self.failures,
            "items": [asdict(item) for item in self.items],
        }
