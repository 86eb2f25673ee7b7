"""int8 embedding (issue 11): the encoder graph quantized by onnxruntime against the fp32 one, same run.

    python bench/int8_embedding.py [--rounds 3]

Quantizes the exported encoder (assistant/onnx_bert.py; dynamic int8 weights, per output channel) into a
temporary file, then embeds the bundled sample's SaudiNewsNet articles (up to three 700-character pieces
of each, as passages, in batches of 32) with both graphs on every core, alternated, and prints the median
time of each, their ratio, and the lowest and mean cosine between a passage's int8 and fp32 vectors. Not
used by the product yet: vectors from int8 would need their own fingerprint and a retrieval eval first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]

from assistant.bert_folder import mean_unit
from assistant.embedder import load_embedder
from assistant.onnx_bert import Graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    backend = load_embedder().onnx
    if backend is None:
        sys.exit("the embedder is not on onnxruntime (ISNAD_RUNTIME=torch?)")
    sample = REPO / "ingest" / "sample" / "articles"
    articles = json.loads((sample / "saudinewsnet-sample.json").read_text(encoding="utf-8"))
    texts = [a["content"][start : start + 700] for a in articles for start in (0, 700, 1400) if a["content"][start:]]
    batches = [backend.folder.batch(texts[i : i + 32], "passage: ") for i in range(0, len(texts), 32)]
    with tempfile.TemporaryDirectory() as tmp:
        quantized = Path(tmp) / "encoder.int8.onnx"
        quantize_dynamic(str(backend.graphs_dir / "encoder.onnx"), str(quantized), weight_type=QuantType.QInt8,
                         per_channel=True, extra_options={"MatMulConstBOnly": True})
        graphs = {"fp32": Graph(backend.graphs_dir / "encoder.onnx", os.cpu_count() or 1),
                  "int8": Graph(quantized, os.cpu_count() or 1)}
        times: dict[str, list[float]] = {name: [] for name in graphs}
        vectors: dict[str, np.ndarray] = {}
        for _ in range(args.rounds):
            for name, graph in graphs.items():
                started = time.perf_counter()
                vectors[name] = np.concatenate([mean_unit(graph(backend.words(ids), mask), mask)
                                                for ids, mask in batches])
                times[name].append(time.perf_counter() - started)
    cosines = (vectors["fp32"] * vectors["int8"]).sum(axis=1)
    fp32, int8 = (statistics.median(times[name]) for name in graphs)
    print(f"{len(texts)} passages: fp32 {fp32:.3f} s, int8 {int8:.3f} s (median of {args.rounds}), "
          f"ratio int8 / fp32 {int8 / fp32:.2f}")
    print(f"cosine int8 vs fp32: min {cosines.min():.4f}, mean {cosines.mean():.4f}")


if __name__ == "__main__":
    main()
