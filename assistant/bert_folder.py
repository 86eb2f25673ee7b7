"""What both BERT runtimes (bert.py on torch, onnx_bert.py on onnxruntime) read from an embedder folder
that `_e5_build` makes: its config, tokenizer, prompts and the padded token batch. No torch here, so the
onnxruntime path never imports it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

_POOLING = {  # the only pooling these backends reproduce; any other folder goes through sentence-transformers
    "pooling_mode_mean_tokens": True,
    "pooling_mode_cls_token": False,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
    "pooling_mode_weightedmean_tokens": False,
    "pooling_mode_lasttoken": False,
    "include_prompt": True,
}
WORDS = "embeddings.word_embeddings.weight"  # the word-vector table, kept in its stored fp16 by both runtimes
_MODULES = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]


def is_plain_bert_folder(folder: Path) -> bool:
    """Whether `folder` is a sentence-transformers folder these backends reproduce exactly: a BertModel with
    absolute positions, mean pooling over all tokens, then Normalize, and a tokenizer.json."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        config.get("model_type") == "bert"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and config.get("hidden_act") == "gelu"
        and [m.get("type") for m in modules] == _MODULES
        and modules[0].get("path") == ""
        and all(pooling.get(k, v if k == "include_prompt" else False) == v for k, v in _POOLING.items())
        and (folder / "tokenizer.json").is_file()
        and (folder / "model.safetensors").is_file()
    )


class BertFolder:
    """A folder `is_plain_bert_folder` accepts: `config`, `tokenizer` (never truncating or padding: the
    embedder counts tokens with it too), `prompts`, `max_tokens`, `dimension`, and `batch`."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        raw = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        self.config = SimpleNamespace(**{"layer_norm_eps": 1e-12, "type_vocab_size": 2, "hidden_dropout_prob": 0.1,
                                         "attention_probs_dropout_prob": 0.1, "pad_token_id": 0, **raw})
        st_config = read_json(self.folder / "sentence_bert_config.json")
        self.max_tokens = int(st_config.get("max_seq_length") or self.config.max_position_embeddings)
        self.dimension = int(self.config.hidden_size)
        prompts = read_json(self.folder / "config_sentence_transformers.json").get("prompts") or {}
        self.prompts: dict[str, str] = {k: v for k, v in prompts.items() if isinstance(v, str)}
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.pad_id = int(self.config.pad_token_id)

    def batch(self, texts: list[str], prompt: str) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (batch, tokens) int64, padded, and the 0/1 attention mask."""
        rows = []
        for encoding in self.tokenizer.encode_batch([prompt + text for text in texts]):
            ids = encoding.ids
            # As the tokenizer's own truncation: the text is cut, the closing special token kept.
            rows.append(ids[: self.max_tokens - 1] + ids[-1:] if len(ids) > self.max_tokens else ids)
        return pad(rows, self.pad_id)


class PooledBackend:
    """What both runtimes' backends share over a `BertFolder`: a subclass gives `forward(texts, prompt)`
    -> (token states (batch, tokens, hidden), 0/1 mask (batch, tokens)), as numpy arrays."""

    folder: BertFolder

    @property
    def max_tokens(self) -> int:
        return self.folder.max_tokens

    @property
    def dimension(self) -> int:
        return self.folder.dimension

    @property
    def prompts(self) -> dict[str, str]:
        return self.folder.prompts

    @property
    def counter(self) -> Any:
        return self.folder.tokenizer

    def forward(self, texts: list[str], prompt: str) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def encode(self, texts: list[str], prompt: str) -> np.ndarray:
        """Unit-length mean-pooled vectors (len(texts), dimension)."""
        states, mask = self.forward(texts, prompt)
        return mean_unit(states, mask)

    def encode_tokens(self, texts: list[str], prompt: str) -> list[dict[str, np.ndarray]]:
        """Per text: its pooled unit vector and its token states (padding dropped)."""
        states, mask = self.forward(texts, prompt)
        pooled = mean_unit(states, mask)
        return [{"sentence_embedding": pooled[i], "token_embeddings": states[i][mask[i].astype(bool)]}
                for i in range(len(texts))]


def pad(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(row) for row in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def mean_unit(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the unmasked tokens, then unit length: the folder's pooling and Normalize."""
    weights = mask[..., None].astype(states.dtype)
    means = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
