"""Right-to-left display helpers for the terminal and the web UI.

Latin names, dates and numbers inside Arabic text are wrapped in bidi isolates (U+2068 FSI ... U+2069
PDI), so a bidi-aware display keeps them in their own order instead of scrambling them.
"""

from __future__ import annotations

import re

from .text import detect_language

# A run of Latin letters/digits with the punctuation that belongs inside it (dates, decimals, urls).
_LTR_RUN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .,:/\-_%+@]*[A-Za-z0-9%]|[A-Za-z0-9]")
FSI, PDI, RLI = "\u2068", "\u2069", "\u2067"


def isolate_ltr_runs(text: str) -> str:
    """Wrap left-to-right runs of an Arabic text in first-strong isolates."""
    return _LTR_RUN.sub(lambda m: f"{FSI}{m.group(0)}{PDI}", text)


def isolate_for_terminal(line: str, language: str | None = None) -> str:
    """An Arabic line as a right-to-left isolate with its Latin runs isolated; English lines unchanged."""
    if (language or detect_language(line)) != "ar":
        return line
    return f"{RLI}{isolate_ltr_runs(line)}{PDI}"
