"""The embedder's and the reader's transformer layers on onnxruntime, so answering a question never imports
torch.

Why: of a cold `isnad ask` (~4.5 s on 2 cores), importing torch took ~1.0 s and building the torch modules
~0.5 s; onnxruntime imports in ~0.1 s, opens the graphs in ~0.2 s and runs the reader's passages faster
(bench/cold_start.py has the numbers). The word embeddings (96M of the model's 118M parameters) stay
outside the graphs: numpy looks them up in the model's safetensors, so the graphs hold only the layers.

The graphs are exported once, beside the model folder, named by what they were exported from (the
embedder's weights, the reader's fingerprint); exporting needs torch and the `onnx` package. Every export
is checked against torch on a probe batch before it is kept. When onnxruntime or the export is not
available, the caller stays on torch (`load_graph` returns None); ISNAD_RUNTIME=torch forces that.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .bert_folder import WORDS, BertFolder, PooledBackend

log = logging.getLogger(__name__)
EXPORT_TOLERANCE = 1e-3  # max absolute difference from torch on the probe batch (measured ~2e-6)


def wanted() -> bool:
    """Whether to run on onnxruntime: it is installed and ISNAD_RUNTIME does not say torch."""
    if os.environ.get("ISNAD_RUNTIME", "").strip().lower() == "torch":
        return False
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class Graph:
    """One exported graph: `graph(states, mask)` -> states, (batch, tokens, hidden) float32 in and out."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle threads sleep instead of spinning: on a busy machine (an ingest beside the UI) a spinning
        # pool takes the core the other process needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"states": states.astype(np.float32, copy=False),
                                       "mask": mask.astype(np.int64, copy=False)})[0]


def load_graph(path: Path, build: Callable[[], Any], threads: int) -> Graph | None:
    """The graph at `path`, exported first when missing from the torch module `build()` gives (called as
    module(states, mask)). None when it cannot be had."""
    try:
        if not path.is_file():
            with _export_lock:
                if not path.is_file():
                    if sys.stderr.isatty():  # once per model: say why this first answer takes longer
                        print(f"isnad: preparing {path.name} for fast answers (once, a few seconds) ...",
                              file=sys.stderr, flush=True)
                    _export(path, build())
        return Graph(path, threads)
    except Exception as exc:  # noqa: BLE001 - any failure here only means staying on torch
        log.warning("onnxruntime path unavailable (%s: %s); using torch", type(exc).__name__, exc)
        return None


_export_lock = threading.Lock()


def _export(path: Path, module: Any) -> None:
    import torch

    generator = torch.Generator().manual_seed(0)
    hidden = int(module.hidden_size)
    states = torch.randn(2, 37, hidden, generator=generator)
    mask = torch.ones(2, 37, dtype=torch.long)
    mask[1, 30:] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on constants we mean to be constant
            torch.onnx.export(
                module, (states, mask), str(partial), dynamo=False, opset_version=17,
                input_names=["states", "mask"], output_names=["out"],
                dynamic_axes={"states": {0: "batch", 1: "tokens"}, "mask": {0: "batch", 1: "tokens"},
                              "out": {0: "batch", 1: "tokens"}},
            )
            expected = module(states, mask).numpy()
        got = Graph(partial, 1)(states.numpy(), mask.numpy())
        difference = float(np.abs(got - expected)[mask.numpy().astype(bool)].max())
        if difference > EXPORT_TOLERANCE:
            raise ValueError(f"the exported graph differs from torch by {difference:.2e}")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def quantize_encoder(source: Path, target: Path, keep_float: Callable[[str], bool] = lambda name: False) -> Path:
    """`source`'s graph with its matrix weights quantized to int8 (onnxruntime's dynamic quantization, one
    scale per output channel; activations stay float and are quantized per batch), written to `target`.
    The MatMul nodes whose name `keep_float` accepts stay float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    kept = [node.name for node in onnx.load(str(source), load_external_data=False).graph.node
            if node.op_type == "MatMul" and keep_float(node.name)]

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=kept, extra_options={"MatMulConstBOnly": True})
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def layers_module(layers: list[Any], hidden: int, embeddings: Any = None) -> Any:
    """A torch module `(states, mask) -> states` over `layers`; with `embeddings` (a bert.Embeddings) it
    first adds the position and token-type rows and applies its LayerNorm to the looked-up word vectors."""
    import torch

    from .bert import additive_mask

    class Layers(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden_size = hidden
            self.layers = torch.nn.ModuleList(layers)
            self.embeddings = embeddings

        def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            if self.embeddings is not None:
                e = self.embeddings
                positions = torch.arange(states.shape[1])
                states = states + e.position_embeddings(positions)[None] + e.token_type_embeddings.weight[0]
                states = e.LayerNorm(states)
            additive = additive_mask(mask, states.dtype)
            for layer in self.layers:
                states = layer(states, additive)
            return states

    return Layers().eval()


class WordVectors:
    """The word-embedding table from the model's safetensors, looked up in numpy (kept in its stored fp16)."""

    def __init__(self, weights: Path) -> None:
        from safetensors import safe_open

        with safe_open(str(weights), "numpy") as handle:
            self.table = handle.get_tensor(WORDS)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return self.table[ids].astype(np.float32)


class OnnxBertBackend(PooledBackend):
    """Embeds as bert.BertBackend does, with the encoder on onnxruntime: one single-threaded session for
    questions (a short query is fastest on one thread, and does not stall when the other core is busy) and,
    made on first use, one on every core for batches (ingest). `torch_backend`: a bert.BertBackend over the
    same folder when one was loaded already (to export the graph)."""

    runs_on_torch = False

    def __init__(self, folder: BertFolder, graph: Graph, words: WordVectors, torch_backend: Any = None) -> None:
        self.folder = folder
        self.graphs_dir = graph_dir(folder.folder)
        self.words = words
        self._query_graph = graph
        self._batch_graph: Graph | None = None
        self._torch = torch_backend

    def forward(self, texts: list[str], prompt: str) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = self.folder.batch(texts, prompt)
        graph = self._query_graph if len(texts) == 1 else self._batch()
        return graph(self.words(ids), mask), mask

    def _batch(self) -> Graph:
        if self._batch_graph is None:
            self._batch_graph = Graph(self.graphs_dir / "encoder.onnx", os.cpu_count() or 1)
        return self._batch_graph

    @property
    def backbone(self) -> Any:
        """The torch model (for training the reader, or exporting its graphs): loaded on first use."""
        return self._torch_backend().backbone

    def weights(self) -> dict[str, Any]:
        return self._torch_backend().weights()

    def _torch_backend(self) -> Any:
        if self._torch is None:
            from .bert import BertBackend

            self._torch = BertBackend(self.folder.folder)
        return self._torch


def graph_dir(folder: Path) -> Path:
    """Beside the model folder, not in it: the build checks that folder's files to know it is complete."""
    folder = Path(folder)
    return folder.with_name(f"{folder.name}.onnx")


def load_backend(folder: Path) -> OnnxBertBackend | None:
    """The onnxruntime backend over an embedder folder, exporting its encoder first if needed; None when
    onnxruntime is not wanted or the export is not possible (the caller then uses bert.BertBackend)."""
    if not wanted():
        return None
    folder = Path(folder)
    loaded: list[Any] = []  # the torch backend, when the export needed it

    def build() -> Any:
        from .bert import BertBackend

        loaded.append(BertBackend(folder))
        bert = loaded[0].model
        return layers_module(list(bert.encoder.layer), bert.config.hidden_size, bert.embeddings)

    graph = load_graph(graph_dir(folder) / "encoder.onnx", build, threads=1)
    if graph is None:
        return None
    torch_backend = loaded[0] if loaded else None
    bert_folder = torch_backend.folder if torch_backend else BertFolder(folder)  # one tokenizer load, not two
    return OnnxBertBackend(bert_folder, graph, WordVectors(folder / "model.safetensors"), torch_backend)
