"""Clean an article before it is stored: the cleaned text is what citations quote, so cleaning is
deliberately light (no letters changed, inner spacing kept) and only removes what is never content:
control characters, invisible bidi overrides that can disguise text, stray HTML entities, ragged
line ends and blank runs.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import replace
from datetime import datetime

from assistant.text import strip_invisible
from assistant.types import Article

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TRAILING_SPACE = re.compile(r"[ \t\u00a0]+\n")
_BLANK_RUNS = re.compile(r"\n{3,}")
_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]{2,8});")


def clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _ENTITY.search(text):
        text = html.unescape(text)
    text = strip_invisible(text)  # bidi controls could disguise text
    text = _CONTROL.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


def clean_line(text: str) -> str:
    """Titles, sources, authors: one line, cleaned."""
    return " ".join(clean_text(text).split())


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%d-%m-%Y", "%Y%m%d", "%d.%m.%Y")


def normalise_date(value: str) -> str:
    """Best effort YYYY-MM-DD from the common forms (ISO timestamps, d/m/Y, RFC 2822); '' if unknown."""
    value = value.strip().translate(str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789"))
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        pass
    head = value.split()[0].split("T")[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(head, fmt).date().isoformat()
        except ValueError:
            continue
    try:
        from email.utils import parsedate_to_datetime

        return parsedate_to_datetime(value).date().isoformat()
    except (TypeError, ValueError, IndexError):
        return ""


def clean_article(article: Article) -> Article:
    text = clean_text(article.text)
    title = clean_line(article.title) or clean_line(text.split("\n", 1)[0])[:200]
    return replace(
        article,
        text=text,
        title=title,
        source=clean_line(article.source),
        url=article.url.strip(),
        date=normalise_date(article.date),
        author=clean_line(article.author),
    )
