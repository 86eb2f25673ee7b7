"""The fixed Q&A set: its items and the JSONL loader (format: eval/QA.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import InputError

# The sets ship inside the package (eval/ is installed as isnad_eval), so an installed `isnad eval` finds them.
DATA = Path(__file__).resolve().parent
DEFAULT_QA = DATA / "qa.jsonl"
HELDOUT_QA = DATA / "heldout.jsonl"


@dataclass(frozen=True)
class QAItem:
    id: str
    language: str
    kind: str
    question: str
    answer: str
    answerable: bool
    article_ids: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    follows: str | None = None
    standalone: str | None = None  # a follow-up rewritten to stand alone (optional; for checking condensation)


def load_qa(path: str | Path = DEFAULT_QA) -> list[QAItem]:
    """The items of a Q&A JSONL file (format: eval/QA.md), in file order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"Q&A file not found: {path} (the bundled set is {DEFAULT_QA})") from None
    items: list[QAItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            item = QAItem(
                id=str(raw["id"]),
                language=raw["language"],
                kind=raw["kind"],
                question=raw["question"],
                answer=raw["answer"],
                answerable=bool(raw["answerable"]),
                article_ids=tuple(raw.get("article_ids") or ()),
                evidence=tuple(raw.get("evidence") or ()),
                follows=raw.get("follows") or None,
                standalone=raw.get("standalone") or None,
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number}: not a Q&A item ({type(exc).__name__}: {exc})") from None
        if item.language not in ("ar", "en"):
            raise InputError(f"{path}:{number}: language must be 'ar' or 'en', got {item.language!r}")
        if item.follows and item.follows not in seen:
            raise InputError(f"{path}:{number}: follows {item.follows!r}, which is not an earlier item")
        if item.standalone is not None and not isinstance(item.standalone, str):
            raise InputError(f"{path}:{number}: standalone must be a string or null, got {item.standalone!r}")
        if item.answerable and not item.article_ids:
            raise InputError(f"{path}:{number}: answerable item {item.id} lists no article_ids")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise InputError(f"Q&A file {path} holds no items")
    return items


