"""A plain-torch BERT encoder for the embedder folders `_e5_build` makes, and the backend that embeds with it.

Why not sentence-transformers for these: importing it and building its model costs ~10 s of a cold
`isnad ask` (measured here: its import 6.8 s, `SentenceTransformer(...)` 5.8 s), where this module loads the
same weights in well under a second. The arithmetic is BertModel's (absolute positions, erf GELU, post-
LayerNorm), the pooling is the folder's (mean over every token, prompt included, then unit length), and
tests/test_embedder.py checks that both give the same vectors. Parameter names are BertModel's, so the
reader's fine-tuned copies of the top layers load from the same state dict either way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

_POOLING = {  # the only pooling this backend reproduces; any other folder goes through sentence-transformers
    "pooling_mode_mean_tokens": True,
    "pooling_mode_cls_token": False,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
    "pooling_mode_weightedmean_tokens": False,
    "pooling_mode_lasttoken": False,
    "include_prompt": True,
}
_WORDS = "embeddings.word_embeddings.weight"
_MODULES = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]


class Embeddings(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        # Uninitialised (`_weight`): the weights are loaded over them at once, and initialising 96M random
        # word vectors would cost more than loading them.
        def table(rows: int) -> nn.Embedding:
            return nn.Embedding(rows, config.hidden_size, _weight=torch.empty(rows, config.hidden_size))

        self.word_embeddings = table(config.vocab_size)  # kept in the stored fp16: rows are cast when looked up
        self.position_embeddings = table(config.max_position_embeddings)
        self.token_type_embeddings = table(config.type_vocab_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        states = self.word_embeddings(input_ids).float() + self.position_embeddings(positions)[None]
        states = states + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(states))


class _Linear(nn.Module):
    """A Linear whose output may be followed by a LayerNorm of (input + output): BertModel's naming."""

    def __init__(self, n_in: int, n_out: int, config: SimpleNamespace, norm: bool) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        if norm:
            self.LayerNorm = nn.LayerNorm(n_out, eps=config.layer_norm_eps)
            self.dropout = nn.Dropout(config.hidden_dropout_prob)


class _SelfAttention(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.heads = config.num_attention_heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, states: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        batch, width, hidden = states.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, width, self.heads, hidden // self.heads).transpose(1, 2)

        mixed = F.scaled_dot_product_attention(
            heads(self.query(states)), heads(self.key(states)), heads(self.value(states)),
            attn_mask=additive_mask, dropout_p=self.dropout_p if self.training else 0.0,
            scale=1.0 / math.sqrt(hidden // self.heads),
        )
        return mixed.transpose(1, 2).reshape(batch, width, hidden)


class _Attention(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.self = _SelfAttention(config)
        self.output = _Linear(config.hidden_size, config.hidden_size, config, norm=True)


class Layer(nn.Module):
    """One transformer layer: `layer(states, additive_mask)` -> states, as BertLayer is called."""

    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.attention = _Attention(config)
        self.intermediate = _Linear(config.hidden_size, config.intermediate_size, config, norm=False)
        self.output = _Linear(config.intermediate_size, config.hidden_size, config, norm=True)

    def forward(self, states: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        attention = self.attention.output
        mixed = attention.dropout(attention.dense(self.attention.self(states, additive_mask)))
        states = attention.LayerNorm(states + mixed)
        inner = F.gelu(self.intermediate.dense(states))  # exact erf GELU, as the folder's config says
        out = self.output
        return out.LayerNorm(states + out.dropout(out.dense(inner)))


class Encoder(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))


class Bert(nn.Module):
    """BertModel without its pooler (e5 mean-pools): `embeddings`, `encoder.layer`, `config`."""

    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.embeddings(input_ids)
        additive = additive_mask(attention_mask, states.dtype)
        for layer in self.encoder.layer:
            states = layer(states, additive)
        return states


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, tokens) 1/0 -> (batch, 1, 1, tokens) 0/-inf-like, added to attention scores."""
    return ((1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min).to(dtype)


def is_plain_bert_folder(folder: Path) -> bool:
    """Whether `folder` is a sentence-transformers folder this backend reproduces exactly: a BertModel with
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


class BertBackend:
    """Embeds with `Bert` over a folder that `is_plain_bert_folder` accepts."""

    def __init__(self, folder: Path) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        config = SimpleNamespace(**{"layer_norm_eps": 1e-12, "type_vocab_size": 2, "hidden_dropout_prob": 0.1,
                                    "attention_probs_dropout_prob": 0.1, "pad_token_id": 0, **raw})
        model = Bert(config)
        state = {k: v if k == _WORDS else v.float()
                 for k, v in load_file(str(folder / "model.safetensors")).items() if not k.startswith("pooler.")}
        model.load_state_dict(state, strict=True, assign=True)
        self.model = model.eval()
        st_config = _read_json(folder / "sentence_bert_config.json")
        self.max_tokens = int(st_config.get("max_seq_length") or config.max_position_embeddings)
        self.dimension = int(config.hidden_size)
        prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
        self.prompts: dict[str, str] = {k: v for k, v in prompts.items() if isinstance(v, str)}
        # Never truncating or padding (the embedder counts tokens with it too); `forward` cuts and pads.
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.pad_id = int(config.pad_token_id)

    def forward(self, texts: list[str], prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states (batch, tokens, hidden) and the 0/1 attention mask (batch, tokens)."""
        batch = []
        for encoding in self.tokenizer.encode_batch([prompt + text for text in texts]):
            ids = encoding.ids
            # As the tokenizer's own truncation: the text is cut, the closing special token kept.
            batch.append(ids[: self.max_tokens - 1] + ids[-1:] if len(ids) > self.max_tokens else ids)
        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, row in enumerate(batch):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        with torch.inference_mode():
            return self.model(ids, mask), mask

    def encode(self, texts: list[str], prompt: str) -> np.ndarray:
        """Unit-length mean-pooled vectors (len(texts), dimension)."""
        states, mask = self.forward(texts, prompt)
        return _unit(_mean(states, mask)).numpy()

    def encode_tokens(self, texts: list[str], prompt: str) -> list[dict[str, np.ndarray]]:
        """Per text: its pooled unit vector and its token states (padding dropped)."""
        states, mask = self.forward(texts, prompt)
        pooled = _unit(_mean(states, mask)).numpy()
        return [{"sentence_embedding": pooled[i], "token_embeddings": states[i][mask[i].bool()].numpy()}
                for i in range(len(texts))]

    @property
    def counter(self) -> Any:
        return self.tokenizer

    @property
    def backbone(self) -> Bert:
        return self.model

    def weights(self) -> dict[str, Any]:
        return self.model.state_dict()


def _mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return F.normalize(vectors, p=2, dim=1)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
