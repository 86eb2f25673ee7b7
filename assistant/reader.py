"""The reader: which sentence of a passage answers the question, the short answer in it, and whether the
passage answers at all.

A small cross-encoder trained here (eval/train_reader.py) on top of the embedder we already build:
the embedder's lower `LOWER` layers run over the question and the passage separately (frozen, so training
can cache them); copies of its top layers, fine-tuned, run over both together, so every passage token
attends to the question. Two heads read the result:

- the sentence head scores each sentence from its mean token state, the question's first state and three
  features the bi-encoder already has (the sentence's cosine to the question, the best cosine in the
  passage, the share of the question's search terms in the sentence): a logit for "this sentence answers";
- the span head marks the short answer (start and end token) inside the best sentence.

Only the trained parts ship (assistant/reader.safetensors, fp16, ~15 MB); they are applied over the base
model the embedder build makes, and refuse to load over any other (the fingerprint in their metadata).
The threshold for "the articles do not say" is chosen by the training script on its dev articles and
stored with the weights.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .bert_folder import pad
from .errors import EmbedderError
from .text import search_terms, split_sentences

if TYPE_CHECKING:
    import torch

    from .embedder import Embedder

WEIGHTS = Path(__file__).with_name("reader.safetensors")
LOWER = 8  # default frozen layers of the 12 (the rest are fine-tuned copies); the weights record theirs
MAX_QUESTION_TOKENS = 64
MAX_PASSAGE_TOKENS = 256  # chunks are 160 embedder tokens; the prompt and specials add a few
MAX_ANSWER_TOKENS = 24
FEATURES = 3
HEAD_HIDDEN = 256
# onnxruntime threads for reading the passages: a cold `isnad ask` 3.1-3.3 s on one, 2.8-3.1 s on two
# (idle 2-core machine, alternated runs); torch's reader stays on one thread (embedder._one_torch_thread).
ONNX_THREADS = 2


@dataclass
class PassageReading:
    """The reader's view of one passage: a logit per sentence (higher = answers), the best one's short answer."""

    sentences: list[tuple[int, int]]  # offsets in the passage text
    scores: np.ndarray
    answer: tuple[int, int] | None  # the short answer's offsets in the passage text, inside the best sentence
    answer_score: float
    rerank: float = 0.0  # the passage's reranking score (Reader.rerank_scores), set when reranked

    @property
    def best(self) -> float:
        return float(self.scores.max()) if len(self.scores) else float("-inf")


def sentence_features(question_terms: set[str], cosines: np.ndarray, texts: list[str]) -> np.ndarray:
    """(n, FEATURES): the bi-encoder's cosine, the passage's best cosine (scaled around 0.8, where e5
    cosines live) and the share of the question's search terms the sentence holds."""
    best = float(cosines.max()) if len(cosines) else 0.0
    overlap = [len(question_terms & set(search_terms(t))) / len(question_terms) if question_terms else 0.0
               for t in texts]
    return np.stack([10 * (cosines - 0.8), np.full(len(texts), 10 * (best - 0.8)), np.asarray(overlap)],
                    axis=1).astype(np.float32).reshape(-1, FEATURES)


def build_network(backbone: Any, lower: int = LOWER):
    """The trainable part over a frozen `backbone` (a transformers BertModel): copies of its layers from
    `lower` up, and the heads."""
    import torch
    from torch import nn

    from .bert import additive_mask

    class ReaderNetwork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            hidden = backbone.config.hidden_size
            self._base = [backbone]  # a list, so the frozen base stays out of state_dict() and parameters()
            self.top = nn.ModuleList(copy.deepcopy(layer) for layer in backbone.encoder.layer[lower:])
            self.segment = nn.Parameter(torch.zeros(2, hidden))
            self.sentence_head = nn.Sequential(
                nn.Linear(2 * hidden + FEATURES, HEAD_HIDDEN), nn.GELU(), nn.Linear(HEAD_HIDDEN, 1)
            )
            self.span_head = nn.Linear(hidden, 2)

        def lower(self, batch: list[list[int]]) -> list[torch.Tensor]:
            """The frozen lower layers over each token list: one (tokens, hidden) tensor each."""
            base = self._base[0]
            ids, mask = (torch.from_numpy(x) for x in pad(batch, base.config.pad_token_id or 0))
            with torch.no_grad():
                states = base.embeddings(input_ids=ids)
                additive = additive_mask(mask, states.dtype)
                for layer in base.encoder.layer[:lower]:
                    states = layer(states, additive)
            return [states[i, : len(tokens)] for i, tokens in enumerate(batch)]

        def forward(self, questions: list[torch.Tensor], passages: list[torch.Tensor]):
            """Top layers over each (question, passage) pair; returns the passage token states and the
            question's first state, per pair."""
            joined = [torch.cat([q + self.segment[0], p + self.segment[1]])
                      for q, p in zip(questions, passages, strict=True)]
            width = max(len(j) for j in joined)
            states = torch.zeros(len(joined), width, joined[0].shape[-1], dtype=joined[0].dtype)
            mask = torch.zeros(len(joined), width, dtype=torch.long)
            for i, j in enumerate(joined):
                states[i, : len(j)] = j
                mask[i, : len(j)] = 1
            additive = additive_mask(mask, states.dtype)
            for layer in self.top:
                states = layer(states, additive)
            return [
                (states[i, len(q) : len(q) + len(p)], states[i, 0])
                for i, (q, p) in enumerate(zip(questions, passages, strict=True))
            ]

        def sentence_logits(self, token_states, question_state, members: torch.Tensor, features: torch.Tensor):
            """members: (sentences, tokens) 0/1 weights; features: (sentences, FEATURES)."""
            counts = members.sum(dim=1, keepdim=True).clamp(min=1)
            means = members @ token_states / counts
            q = question_state.expand(len(means), -1)
            return self.sentence_head(torch.cat([means, q, features], dim=1)).squeeze(1)

        def span_logits(self, token_states):
            start, end = self.span_head(token_states).unbind(dim=1)
            return start, end

    return ReaderNetwork()


def sentence_members(offsets: list[tuple[int, int]], sentences: list[tuple[int, int]]) -> np.ndarray:
    """(sentences, tokens) 0/1: which passage tokens lie inside each sentence."""
    members = np.zeros((len(sentences), len(offsets)), dtype=np.float32)
    for t, (start, end) in enumerate(offsets):
        if end <= 0:
            continue
        for s, (a, b) in enumerate(sentences):
            if start < b and end > a:
                members[s, t] = 1.0
    return members


def weights_fingerprint(weights: Path = WEIGHTS) -> str:
    """"reader@<hash>" of a weights file, or "" when there is none (recorded in the index build info)."""
    path = Path(weights)
    return "reader@" + hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else ""


class Reader:
    """The trained reader over a loaded embedder (the same base model it was trained over). Its transformer
    layers run on onnxruntime when the embedder does (onnx_bert), else on torch; the heads run in numpy."""

    def __init__(self, embedder: Embedder, weights: Path = WEIGHTS) -> None:
        from safetensors import safe_open
        from safetensors.numpy import load_file

        if not Path(weights).is_file():
            raise EmbedderError(f"the reader's weights {weights} are missing: train them with eval/train_reader.py")
        with safe_open(str(weights), "numpy") as handle:
            metadata = handle.metadata() or {}
        trained_over = metadata.get("embedder")
        if trained_over != embedder.fingerprint:
            raise EmbedderError(
                f"the reader {weights} was trained over embedder {trained_over}, but the loaded one is "
                f"{embedder.fingerprint}: retrain it with eval/train_reader.py"
            )
        self.embedder = embedder
        # Per question language ({"ar": .., "en": ..}); older weights hold one number for both.
        chosen = json.loads(metadata["threshold"])
        self.thresholds = chosen if isinstance(chosen, dict) else {"ar": float(chosen), "en": float(chosen)}
        self.rank_weight = float(metadata.get("gamma", 0.0))
        self.info = json.loads(metadata.get("info", "{}"))
        self.fingerprint = weights_fingerprint(weights)
        self.weights = Path(weights)
        self.lower_layers = int(metadata.get("lower", LOWER))
        self.state = {name: tensor.astype(np.float32) for name, tensor in load_file(str(weights)).items()}
        self._heads = _Heads(self.state)
        self._runner = _onnx_runner(self) if embedder.onnx is not None else None
        if self._runner is None:
            self._runner = _TorchRunner(self)

    @property
    def network(self):
        """The torch network (training, export; the torch runner): built on first use."""
        if getattr(self, "_network", None) is None:
            import torch

            network = build_network(self.embedder.backbone, self.lower_layers)
            network.load_state_dict({name: torch.from_numpy(t) for name, t in self.state.items()})
            self._network = network.eval()
        return self._network

    def read(
        self,
        question: str,
        query_vector: np.ndarray,
        passages: list[tuple[str, list[tuple[int, int, np.ndarray]] | None]],
    ) -> list[PassageReading]:
        """Read each passage (text, its stored sentence (start, end, vector)s relative to the text, or None)."""
        if not passages:
            return []
        sentences, vectors = [], []
        for text, stored in passages:
            if stored:
                sentences.append([(s, e) for s, e, _ in stored])
                vectors.append(np.stack([v for _, _, v in stored]))
            else:
                sentences.append(split_sentences(text) or [(0, len(text))])
                vectors.append(None)
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            _, pieces = self.embedder.embed_passages_with_spans([passages[i][0] for i in missing],
                                                                [sentences[i] for i in missing])
            for i, piece in zip(missing, pieces, strict=True):
                vectors[i] = piece
        question_terms = set(search_terms(question))
        q_ids, _ = self.embedder.model_input(question, "query", MAX_QUESTION_TOKENS)
        prepared = [self.embedder.model_input(text, "passage", MAX_PASSAGE_TOKENS) for text, _ in passages]
        outputs = self._runner([q_ids] + [ids for ids, _ in prepared])
        readings = []
        for (text, _), (_, offsets), spans, vecs, (tokens, first) in zip(
            passages, prepared, sentences, vectors, outputs, strict=True
        ):
            features = sentence_features(question_terms, vecs @ query_vector, [text[a:b] for a, b in spans])
            members = sentence_members(offsets, spans)
            logits = self._heads.sentence_logits(tokens, first, members, features)
            # A sentence cut off by the token limit has no tokens: it keeps only its features' verdict.
            best = int(np.argmax(logits))
            start_logits, end_logits = self._heads.span_logits(tokens)
            answer, answer_score = best_span(offsets, members[best], start_logits, end_logits)
            readings.append(PassageReading(spans, logits.astype(np.float32), answer, answer_score))
        return readings

    def threshold(self, language: str) -> float:
        """The logit below which a passage does not answer a question in `language` (chosen on dev)."""
        return float(self.thresholds.get(language, max(self.thresholds.values())))

    def rerank_scores(self, readings: list[PassageReading]) -> list[float]:
        """A passage's reranking score: its best sentence logit, less a weight (chosen on the training
        script's dev articles) on its retrieval rank, which still carries evidence the reader lacks."""
        return [reading.best - self.rank_weight * float(np.log2(2 + rank)) for rank, reading in enumerate(readings)]


def best_span(offsets, inside: np.ndarray, start_logits: np.ndarray, end_logits: np.ndarray):
    """The best (start, end) character span over tokens inside the chosen sentence, and its logit sum."""
    positions = np.flatnonzero(inside > 0)
    if not len(positions):
        return None, float("-inf")
    best, where = float("-inf"), None
    for i in positions:
        for j in positions[(positions >= i) & (positions < i + MAX_ANSWER_TOKENS)]:
            score = float(start_logits[i] + end_logits[j])
            if score > best:
                best, where = score, (offsets[i][0], offsets[j][1])
    return where, best


class _Heads:
    """The sentence and span heads in numpy (the same arithmetic as ReaderNetwork's)."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.w1, self.b1 = state["sentence_head.0.weight"].T, state["sentence_head.0.bias"]
        self.w2, self.b2 = state["sentence_head.2.weight"].T, state["sentence_head.2.bias"]
        self.span_w, self.span_b = state["span_head.weight"].T, state["span_head.bias"]

    def sentence_logits(self, tokens: np.ndarray, first: np.ndarray, members: np.ndarray, features: np.ndarray):
        means = members @ tokens / np.maximum(members.sum(axis=1, keepdims=True), 1)
        joined = np.concatenate([means, np.broadcast_to(first, (len(means), len(first))), features], axis=1)
        return (_gelu(joined @ self.w1 + self.b1) @ self.w2 + self.b2)[:, 0]

    def span_logits(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        both = tokens @ self.span_w + self.span_b
        return both[:, 0], both[:, 1]


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # already loaded by bm25s

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class _TorchRunner:
    """(question ids, passage ids...) -> per passage (its token states, the question's first state)."""

    def __init__(self, reader: Reader) -> None:
        self.network = reader.network

    def __call__(self, batch: list[list[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        import torch

        from .embedder import _one_torch_thread

        with torch.inference_mode(), _one_torch_thread():
            lower = self.network.lower(batch)
            outputs = self.network([lower[0]] * (len(lower) - 1), lower[1:])
            return [(tokens.numpy(), first.numpy()) for tokens, first in outputs]


class _OnnxRunner:
    """As _TorchRunner, on the reader's two onnxruntime graphs: the base model's lower layers, then the
    fine-tuned top over each (question, passage) pair."""

    def __init__(self, words, lower, top, segment: np.ndarray, pad_id: int) -> None:
        self.words, self.lower, self.top, self.segment, self.pad_id = words, lower, top, segment, pad_id

    def __call__(self, batch: list[list[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        ids, mask = pad(batch, self.pad_id)
        states = self.lower(self.words(ids), mask)
        question = states[0, : len(batch[0])] + self.segment[0]
        passages = [states[i, : len(tokens)] + self.segment[1] for i, tokens in enumerate(batch) if i]
        width = len(question) + max(len(p) for p in passages)
        joined = np.zeros((len(passages), width, question.shape[1]), dtype=np.float32)
        joined_mask = np.zeros((len(passages), width), dtype=np.int64)
        for i, passage in enumerate(passages):
            end = len(question) + len(passage)
            joined[i, : len(question)], joined[i, len(question) : end] = question, passage
            joined_mask[i, :end] = 1
        out = self.top(joined, joined_mask)
        return [(out[i, len(question) : len(question) + len(p)], out[i, 0]) for i, p in enumerate(passages)]


def _onnx_runner(reader: Reader) -> _OnnxRunner | None:
    """The reader's graphs beside the embedder's (exported on first use, named by the reader's
    fingerprint), or None to stay on torch."""
    from .onnx_bert import layers_module, load_graph

    backend = reader.embedder.onnx
    name = f"{reader.fingerprint.replace('@', '-')}-lower{reader.lower_layers}"

    def lower():
        base = reader.embedder.backbone
        return layers_module(list(base.encoder.layer[: reader.lower_layers]), base.config.hidden_size,
                             base.embeddings)

    def top():
        return layers_module(list(reader.network.top), reader.embedder.backbone.config.hidden_size)

    graphs = [load_graph(backend.graphs_dir / f"{name}-{part}.onnx", build, threads=ONNX_THREADS)
              for part, build in (("lower", lower), ("top", top))]
    if None in graphs:
        return None
    if reader.weights.resolve() == WEIGHTS.resolve():
        _remove_stale_graphs(backend.graphs_dir, keep=name)
    return _OnnxRunner(backend.words, *graphs, reader.state["segment"], backend.folder.pad_id)


def _remove_stale_graphs(folder: Path, keep: str) -> None:
    """Delete the graphs of earlier shipped reader weights (~85 MB per retrain). Only the shipped weights
    prune, so a reader loaded from another file (a training run's output) never removes the shipped one's."""
    for path in folder.glob("reader-*.onnx"):
        if not path.name.startswith(keep + "-"):
            path.unlink(missing_ok=True)  # a process still running an old graph keeps its open copy


_readers: dict[tuple[int, str], Reader] = {}
_lock = threading.Lock()


def load_reader(embedder: Embedder, weights: Path = WEIGHTS) -> Reader:
    """One shared Reader per (embedder, weights file)."""
    key = (id(embedder), str(Path(weights).resolve()))
    with _lock:
        if key not in _readers:
            _readers[key] = Reader(embedder, weights)
        return _readers[key]
