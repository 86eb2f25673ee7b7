"""The CLI's output behaves like a Unix tool's: clean text in pipes, copyable URLs, no tracebacks."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from assistant.app.cli import print_answer
from assistant.app.display import isolate_for_terminal
from assistant.settings import Settings
from assistant.types import Answer, Citation

from .conftest import REPO

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
    print_answer(_answer())
    out = capsys.readouterr().out
    assert "حريق" in out and URL in out
    assert not BIDI_ISOLATES.search(out), repr(out)


def test_a_terminal_gets_isolates_but_never_inside_or_around_a_url(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    print_answer(_answer())
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


def _isnad(*args: str) -> list[str]:
    return [sys.executable, "-m", "assistant.app.cli", *args]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), ISNAD_DEBUG="")


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`isnad stats --json | head -c 0`: the reader is gone before the first byte; no traceback, status 141."""
    from assistant.store import Store

    Store.open(Settings(data_dir=tmp_path / "data"), create=True)  # empty, no model needed
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(_isnad("stats", "--json", "--data-dir", str(tmp_path / "data")),
                              stdout=write_end, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO, timeout=300)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def _wait_until_reading_stdin(process: subprocess.Popen, seconds: float = 60) -> None:
    """Until `process` blocks reading its stdin pipe (Linux tells in /proc/PID/wchan), or `seconds` passed."""
    wchan = Path(f"/proc/{process.pid}/wchan")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if wchan.exists() and "pipe_read" in wchan.read_text():
            return
        time.sleep(0.05)


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    # A shell starts background jobs with SIGINT ignored (`make test &`), and Python keeps an ignored
    # SIGINT ignored: give the child the default disposition, as a terminal's foreground job has.
    process = subprocess.Popen(_isnad("ask", "-", "--data-dir", str(tmp_path / "data")), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_until_reading_stdin(process)
        # stdin stays open, so the process can only end through the signal; a loaded machine may deliver
        # the first one before Python's handler is in place, hence the repeats.
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            process.send_signal(signal.SIGINT)
            time.sleep(0.5)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert (process.returncode, out, err) == (130, "", "interrupted\n")


def test_ui_on_a_busy_port_says_so_in_one_line(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        done = subprocess.run(_isnad("ui", "--port", str(port), "--data-dir", str(tmp_path / "data")),
                              capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip() == f"isnad: error: port {port} is in use: pass --port N or stop the other server"
