"""The CLI's output behaves like a Unix tool's: clean text in pipes, copyable URLs, no tracebacks."""

from __future__ import annotations

import io
import re
import sys

from assistant.cli import _print_answer
from assistant.display import isolate_for_terminal
from assistant.types import Answer, Citation

BIDI_ISOLATES = re.compile("[\u2066-\u2069]")
URL = "https://www.okaz.com.sa/news/1012345?id=3&page=2"
ARABIC_URL = "https://sabq.org/مقال-عن-الحريق?x=1"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _answer() -> Answer:
    citations = [
        Citation(n=1, article_id="okaz-1", title="حريق في جدة", quote="شب حريق", start=0, end=8,
                 sources=["okaz"], urls=[URL], date="2015-08-01"),
        Citation(n=2, article_id="sabq-9", title="الدفاع المدني: 3 وفيات", quote="ثلاث", start=0, end=4,
                 sources=["sabq"], urls=[ARABIC_URL], date="2015-08-02"),
    ]
    return Answer(text="توفي 3 أشخاص في حريق جدة عام 2015 [1] (انظر " + URL + ")", has_answer=True,
                  language="ar", mode="extractive", citations=citations)


def test_piped_output_has_no_bidi_isolates(capsys):
    _print_answer(_answer())
    out = capsys.readouterr().out
    assert "حريق" in out and URL in out
    assert not BIDI_ISOLATES.search(out), repr(out)


def test_a_terminal_gets_isolates_but_never_inside_or_around_a_url(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    _print_answer(_answer())
    out = terminal.getvalue()
    assert "\u2067" in out and "\u20682015\u2069" in out  # the Arabic is isolated on a terminal...
    tokens = out.split()
    for url in (URL, ARABIC_URL):  # ...and each URL is a whole token, exactly as it is: selecting it copies it
        assert any(token.strip("()") == url for token in tokens), (url, out)


def test_isolate_for_terminal_leaves_urls_alone():
    line = f"اقرأ {ARABIC_URL} ثم {URL}"
    isolated = isolate_for_terminal(line)
    assert isolated.startswith("\u2067اقرأ ") and isolated.endswith(f"\u2069 {URL}")
    assert f" {ARABIC_URL} " in isolated
