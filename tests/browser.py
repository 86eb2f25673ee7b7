"""Debian's chromium driven by Playwright for Python (Playwright never downloads a browser here).

`make browser` installs chromium; without it the browser tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    """The chromium binary, or skip (fail under CI, where `make browser` must have installed it)."""
    import pytest

    path = chromium_path()
    if path:
        return path
    message = "Debian's chromium is not installed: run `make browser` (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def launch_chromium() -> Iterator:
    """A headless chromium `Browser` from Playwright, closed afterwards."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_ui(settings):
    """The web UI as `isnad ui` serves it, on a free loopback port: (the running app, its URL)."""
    from assistant.app.ui import serve

    port = free_port()
    demo = serve(settings, port=port, concurrency=4, block=False)
    return demo, f"http://127.0.0.1:{port}/"


def is_local(url: str) -> bool:
    """True for requests that stay on this machine (loopback, or data:/blob: urls made by the page)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in ("127.0.0.1", "localhost", "::1")
