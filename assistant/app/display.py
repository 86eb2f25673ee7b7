"""Right-to-left display helpers for the terminal and the web UI.

Latin names, dates and numbers inside Arabic text are wrapped in bidi isolates (U+2068 FSI ... U+2069
PDI), so a bidi-aware display keeps them in their own order instead of scrambling them.

Isolates are for eyes only: the CLI adds them when it writes to a terminal, never to a pipe or a file
(where they would be invisible junk in the data), and a URL is never touched, so that it can be copied
as it is.
"""

from __future__ import annotations

import re

from ..text import detect_language

# A run of Latin letters/digits with the punctuation that belongs inside it (dates, decimals).
_LTR_RUN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .,:/\-_%+@]*[A-Za-z0-9%]|[A-Za-z0-9]")
# A URL up to the next space, without the punctuation that usually closes the sentence around it.
_URL = re.compile(r"(?:https?://|www\.)\S*[^\s.,;:!?)\]»\"'،؛؟]", re.IGNORECASE)
FSI, PDI, RLI = "\u2068", "\u2069", "\u2067"


def isolate_ltr_runs(text: str) -> str:
    """Wrap left-to-right runs of an Arabic text in first-strong isolates."""
    return _LTR_RUN.sub(lambda m: f"{FSI}{m.group(0)}{PDI}", text)


def isolate_for_terminal(line: str, language: str | None = None) -> str:
    """An Arabic line as a right-to-left isolate with its Latin runs isolated; English lines unchanged.

    URLs are left exactly as they are: no isolate inside one, and none next to one (a URL that opens or
    closes the line stays outside the line's isolate), so selecting it copies a working address."""
    if (language or detect_language(_URL.sub(" ", line))) != "ar":  # a long URL does not make it English
        return line
    text, url_spans, at = "", [], 0
    for url in _URL.finditer(line):
        text += isolate_ltr_runs(line[at:url.start()])
        url_spans.append((len(text), len(text) + len(url.group(0))))
        text += url.group(0)
        at = url.end()
    text += isolate_ltr_runs(line[at:])
    # The line's isolate spans from its first to its last character that is neither a space nor in a URL.
    inside = [i for i, ch in enumerate(text) if not ch.isspace() and not any(s <= i < e for s, e in url_spans)]
    if not inside:
        return line
    first, last = inside[0], inside[-1] + 1
    return f"{text[:first]}{RLI}{text[first:last]}{PDI}{text[last:]}"
