"""A plain-torch BERT encoder for the embedder folders `_e5_build` makes, and the backend that embeds with it.

Why not sentence-transformers for these: importing it and building its model costs ~10 s of a cold
`isnad ask` (measured here: its import 6.8 s, `SentenceTransformer(...)` 5.8 s), where this module loads the
same weights in well under a second. The arithmetic is BertModel's (absolute positions, erf GELU, post-
LayerNorm), the pooling is the folder's (mean over every token, prompt included, then unit length), and
tests/test_embedder.py checks that both give the same vectors. Parameter names are BertModel's, so the
reader's fine-tuned copies of the top layers load from the same state dict either way.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .bert_folder import WORDS, BertFolder, PooledBackend


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


class BertBackend(PooledBackend):
    """Embeds with `Bert` over a folder that `bert_folder.is_plain_bert_folder` accepts."""

    def __init__(self, folder: Path) -> None:
        from safetensors.torch import load_file

        self.folder = BertFolder(folder)
        model = Bert(self.folder.config)
        state = {k: v if k == WORDS else v.float()
                 for k, v in load_file(str(Path(folder) / "model.safetensors")).items() if not k.startswith("pooler.")}
        model.load_state_dict(state, strict=True, assign=True)
        self.model = model.eval()

    def forward(self, texts: list[str], prompt: str) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = self.folder.batch(texts, prompt)
        with torch.inference_mode():
            return self.model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy(), mask

    @property
    def backbone(self) -> Bert:
        return self.model

    def weights(self) -> dict[str, Any]:
        return self.model.state_dict()
