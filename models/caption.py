"""Image captioning (Show, Attend and Tell, Xu et al. 2015): CNN annotation vectors a_i (cnn.py) and a
GRU decoder that attends over them at every step. Trained by `tinygrad-seq caption` (demos/seq2seq.py).

    h_0 = tanh(W_init mean_i a_i)
    c_t = sum_i alpha_ti a_i,   alpha_t = softmax_i(score(h_{t-1}, a_i))      (attention over the grid)
    h_t = GRUCell([E y_{t-1}; c_t], h_{t-1}),   p(y_t) = softmax(W_out [h_t; c_t])
"""
from __future__ import annotations

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq.nn import Embedding, Linear, Module

from .attention import SoftAttention
from .cells import GRUCell
from .cnn import CNNEncoder

__all__ = ["CaptionModel"]

# attention name -> SoftAttention score: Bahdanau's additive vᵀ tanh(W_q q + W_k k), Luong's general qᵀ W k
ATTENTION_SCORES = {"bahdanau": "additive", "luong": "general"}


class CaptionModel(Module):
    """CNNEncoder features + attention GRU decoder (formulas in the module docstring). Images are
    (B, 1, H, W); `attention` is "bahdanau" (additive score) or "luong" (general score)."""

    def __init__(self, vocab_size: int, hidden: int = 64, channels: int = 16, features: int = 32,
                 emb_size: int = 16, attention: str = "bahdanau"):
        super().__init__()
        if attention not in ATTENTION_SCORES:
            raise ValueError(f"attention must be one of {sorted(ATTENTION_SCORES)}, got {attention!r}")
        self.encoder = CNNEncoder(1, channels, features)
        self.init_h = Linear(features, hidden)
        self.embedding = Embedding(vocab_size, emb_size)
        self.attention = SoftAttention(ATTENTION_SCORES[attention], query_dim=hidden, key_dim=features)
        self.cell = GRUCell(emb_size + features, hidden)
        self.out = Linear(hidden + features, vocab_size)

    def _start(self, images: tg.Tensor):
        feats, grid = self.encoder.features(images)           # (B, N, F)
        return feats, grid, self.init_h(feats.mean(1)).tanh()

    def _step(self, y_prev: np.ndarray, h: tg.Tensor, feats: tg.Tensor):
        context, weights = self.attention(h, feats)            # (B, F), (B, N)
        h = self.cell(tg.cat([self.embedding(y_prev), context], dim=-1), h)
        return self.out(tg.cat([h, context], dim=-1)), h, weights

    def forward(self, images: tg.Tensor, tgt_in: np.ndarray) -> tuple[tg.Tensor, tg.Tensor]:
        """Teacher forcing: (B, T, V) logits and (B, T, N) attention weights."""
        feats, _, h = self._start(images)
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            with tg.time_step(t):
                lo, h, w = self._step(tgt_in[:, t], h, feats)
            logits.append(lo)
            weights.append(w)
        return tg.stack(logits, dim=1), tg.stack(weights, dim=1)

    def greedy_decode(self, images: tg.Tensor, max_len: int, sos_idx: int, eos_idx: int):
        """(B, T) token ids and (B, T, h, w) attention maps over the feature grid."""
        feats, (gh, gw), h = self._start(images)
        y = np.full(images.shape[0], sos_idx, dtype=np.int64)
        ids, maps = [], []
        done = np.zeros(images.shape[0], dtype=bool)
        for _ in range(max_len):
            lo, h, w = self._step(y, h, feats)
            y = lo.numpy().argmax(-1)
            ids.append(y)
            maps.append(w.numpy().reshape(-1, gh, gw))
            done |= y == eos_idx
            if done.all():
                break
        return np.stack(ids, 1), np.stack(maps, 1)
