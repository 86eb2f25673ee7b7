"""The local OpenAI-compatible chat server: llama.cpp (from the `xllamacpp` wheel) serving a GGUF.

`start_server()` runs `isnad llm serve ...` (`serve_forever` below) as a separate process and waits until
`/health` answers 200. The server speaks `/v1/chat/completions` (with streaming), `/v1/models`, `/health`.

    with start_server(path) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .gguf import LLMServerError, check_gguf_file, last_lines

# More threads do not pay on these 2-core machines: measured here, with 2 threads any other busy
# process makes generation about ten times slower.
DEFAULT_THREADS = 1
DEFAULT_CTX_SIZE = 4096
DEFAULT_START_TIMEOUT = 120.0
_BASE_URL_LINE = re.compile(r"ISNAD_LLM_BASE_URL=(\S+)")  # what serve_forever prints


@dataclass
class RunningServer:
    """A llama.cpp server process. `base_url` is what an OpenAI client (and ISNAD_LLM_BASE_URL) takes."""

    base_url: str
    model: str
    model_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def health_url(self) -> str:
        return self.base_url.removesuffix("/v1") + "/health"

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server process (SIGTERM, then SIGKILL after `timeout` seconds) and wait for it."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server(
    model_path: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    threads: int = DEFAULT_THREADS,
    ctx_size: int = DEFAULT_CTX_SIZE,
    timeout: float = DEFAULT_START_TIMEOUT,
    model_name: str | None = None,
) -> RunningServer:
    """Start `isnad llm serve` (as `python -m assistant.app.cli`) on `model_path` and wait until `/health` answers 200.

    `port=0` lets the server pick a free port (no race: the child reports the port it bound).
    `model_name` is the id /v1/models reports (default: the file name without `.gguf`).
    The process exits by itself if this one dies. Raises LLMServerError with the server's last log lines
    if it exits or is not healthy within `timeout` seconds.
    """
    model_path = Path(model_path).expanduser().resolve()
    check_gguf_file(model_path)
    log_fd, log_name = tempfile.mkstemp(prefix="isnad-llm-server-", suffix=".log")
    cmd = [
        sys.executable, "-m", "assistant.app.cli", "llm", "serve",
        "--model", str(model_path), "--host", host, "--port", str(port),
        "--threads", str(threads), "--ctx-size", str(ctx_size),
        "--parent-pid", str(os.getpid()),
    ]  # fmt: skip
    if model_name:
        cmd += ["--model-name", model_name]
    env = dict(os.environ)
    # The child must import this package even when it runs from a checkout that is not installed.
    package_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    with os.fdopen(log_fd, "wb") as log:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    log_path = Path(log_name)
    try:
        base_url = _wait_until_healthy(process, log_path, timeout, model_path)
    except BaseException:
        process.kill()
        process.wait()
        log_path.unlink(missing_ok=True)  # its last lines are in the error
        raise
    served = model_name or model_path.name.removesuffix(".gguf")
    return RunningServer(base_url=base_url, model=served, model_path=model_path, process=process, log_path=log_path)



def _wait_until_healthy(process: subprocess.Popen[bytes], log_path: Path, timeout: float, model_path: Path) -> str:
    deadline = time.monotonic() + timeout
    base_url: str | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LLMServerError(
                f"the LLM server for {model_path} exited with code {process.returncode} while starting: "
                f"{last_lines(_read_log(log_path), lines=8)}"
            )
        if base_url is None:
            found = _BASE_URL_LINE.search(_read_log(log_path))
            base_url = found.group(1) if found else None
        # llama.cpp answers 503 while the model loads, 200 once it can serve.
        if base_url is not None and _health_status(base_url.removesuffix("/v1") + "/health") == 200:
            return base_url
        time.sleep(0.1)
    where = base_url or "its port was not announced yet"
    raise LLMServerError(
        f"the LLM server for {model_path} was not healthy within {timeout:.0f}s ({where}); last log lines: "
        f"{last_lines(_read_log(log_path), lines=8)}"
    )


def _health_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _read_log(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def serve_forever(
    model_path: Path,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = DEFAULT_THREADS,
    ctx_size: int = DEFAULT_CTX_SIZE,
    verbose: bool = False,
    parent_pid: int | None = None,
) -> None:
    """Serve `model_path` in this process until Ctrl-C, SIGTERM, or (with `parent_pid`) that process is gone."""
    check_gguf_file(model_path)
    import xllamacpp  # imported here: 100 MB of native code that only the serving process needs

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.model_alias = {model_name}
    params.hostnames = [host]
    params.port = port
    params.n_ctx = ctx_size
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.offline = True
    params.verbosity = 3 if verbose else 1  # 1 = errors only, which still explain a failed load
    try:
        server = xllamacpp.Server(params)  # returns once the model is loaded and the port is bound
    except RuntimeError as exc:
        raise LLMServerError(f"llama.cpp could not serve {model_path}: {exc} (see the lines above)") from None

    base_url = server.listening_address.rstrip("/") + "/v1"
    print(
        f"Serving {model_name} from {model_path}\n"
        f"on {base_url} ({threads} thread(s), context {ctx_size} tokens). Ctrl-C stops it.\n"
        "Use these settings (the API key is not checked):\n"
        "  ISNAD_MODE=llm\n"
        f"  ISNAD_LLM_BASE_URL={base_url}\n"
        f"  ISNAD_LLM_MODEL={model_name}\n"
        "  ISNAD_LLM_API_KEY=local",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while parent_pid is None or os.getppid() == parent_pid:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        del server  # stops the HTTP threads and frees the model
