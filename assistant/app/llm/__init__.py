"""A local OpenAI-compatible chat server for users without an API, and for tests that must talk to a real
server process: `gguf` assembles the model file, `server` runs llama.cpp on it (`isnad llm serve`)."""

from ...settings import default_cache_dir  # where assembled models are kept, like the embedder's
from .gguf import QWEN_GGUFS, LLMServerError, assemble_qwen_gguf, check_gguf_file
from .server import RunningServer, serve_forever, start_server

__all__ = [
    "QWEN_GGUFS",
    "LLMServerError",
    "RunningServer",
    "assemble_qwen_gguf",
    "check_gguf_file",
    "default_cache_dir",
    "serve_forever",
    "start_server",
]
