"""The Transformer (Vaswani et al.), with torch.nn.Transformer*'s arguments, defaults and parameter names,
so a PyTorch state_dict loads and reproduces outputs and gradients.

Encoder block:  Z = LayerNorm(X + MHA(X, X, X)),  Y = LayerNorm(Z + FFN(Z)),
                FFN(Z) = act(Z W_1 + b_1) W_2 + b_2   (post-norm; norm_first=True is the pre-norm form
                X + MHA(LN(X)), ...).
Decoder block:  masked self-attention, then attention with Q from the decoder and K, V from the encoder
                output (memory), then FFN, each with Add & Norm.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq.nn import Dropout, Embedding, LayerNorm, Linear, Module, ModuleList
from tinygrad_seq.nn import functional as F
from tinygrad_seq.tensor import Tensor

from .attention import MultiheadAttention, attention

__all__ = ["PositionalEncoding", "TokenEmbedding", "TransformerEncoderLayer", "TransformerDecoderLayer",
           "TransformerEncoder", "TransformerDecoder", "Transformer", "generate_square_subsequent_mask"]


def generate_square_subsequent_mask(sz: int, dtype=np.float32) -> Tensor:
    """M[i, j] = -inf for j > i else 0: position i may attend to positions <= i (as torch)."""
    return Tensor(np.triu(np.full((sz, sz), -np.inf, dtype=np.dtype(dtype)), 1))


def _activation(activation: str | Callable) -> Callable:
    if callable(activation):
        return activation
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


class PositionalEncoding(Module):
    """x + PE[:L] (then dropout), PE(pos, 2i) = sin(pos / 10000^{2i/d}), PE(pos, 2i+1) = cos(pos / 10000^{2i/d});
    learned=True uses a trainable (max_len, d_model) table instead. x is (N, L, d) with batch_first,
    else (L, N, d)."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000, learned: bool = False,
                 batch_first: bool = True):
        super().__init__()
        self.d_model, self.max_len, self.learned, self.batch_first = d_model, max_len, learned, batch_first
        self.dropout = Dropout(dropout)
        if learned:
            self.pe = Embedding(max_len, d_model)
        else:
            self.register_buffer("pe", self.sinusoid(max_len, d_model), persistent=False)

    @staticmethod
    def sinusoid(max_len: int, d_model: int) -> np.ndarray:
        pos = np.arange(max_len, dtype=np.float64)[:, None]
        div = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
        pe = np.zeros((max_len, d_model))
        pe[:, 0::2] = np.sin(pos * div)
        pe[:, 1::2] = np.cos(pos * div[: d_model // 2])
        return pe.astype(np.float32)

    def table(self, start: int, length: int, dtype) -> Tensor:
        """PE rows start .. start+length-1, shape (length, d)"""
        if start + length > self.max_len:
            raise ValueError(f"PositionalEncoding: positions up to {start + length} exceed max_len={self.max_len}")
        if self.learned:
            return self.pe(np.arange(start, start + length))
        pe = self.pe[start:start + length]  # an engine op on the buffer: tg.compile reads it live
        return (pe if pe.dtype == dtype else pe.to(dtype)).named("PE")

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        L = x.shape[1] if self.batch_first else x.shape[0]
        pe = self.table(start, L, x.dtype)
        return self.dropout(x + (pe if self.batch_first else pe.unsqueeze(1)))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, learned={self.learned}"


class TokenEmbedding(Module):
    """E[token] · √d_model, E ~ N(0, 1/d_model) so the scaled embeddings are ~N(0, 1), the scale of the
    positional encodings (with N(0, 1) rows, as nn.Embedding's default, the positions would be drowned)."""

    def __init__(self, vocab_size: int, d_model: int, padding_idx: int | None = None):
        super().__init__()
        self.d_model = d_model
        self.embedding = Embedding(vocab_size, d_model, padding_idx=padding_idx)
        tg.nn.init.normal_(self.embedding.weight, std=d_model ** -0.5)
        if padding_idx is not None:
            self.embedding.weight.numpy()[self.embedding.padding_idx] = 0

    def forward(self, tokens) -> Tensor:
        return (self.embedding(tokens) * math.sqrt(self.d_model)).named("E[x]·√d")


class TransformerEncoderLayer(Module):
    """Self-attention + FFN with residuals and LayerNorm, as torch.nn.TransformerEncoderLayer.
    post-norm: x = norm1(x + SA(x)); x = norm2(x + FF(x)).  pre-norm: x = x + SA(norm1(x)); x = x + FF(norm2(x)).
    FF(x) = linear2(dropout(act(linear1(x))))."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable = F.relu, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)
        if dtype is not None:
            self.to(dtype)

    def _sa_block(self, x: Tensor, attn_mask, key_padding_mask, is_causal: bool) -> Tensor:
        return self.dropout1(self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                            need_weights=False, is_causal=is_causal)[0])

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))).named("ffn"))

    def forward(self, src: Tensor, src_mask=None, src_key_padding_mask=None, is_causal: bool = False) -> Tensor:
        x = src
        if self.norm_first:
            x = (x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)).named("residual")
            return (x + self._ff_block(self.norm2(x))).named("residual")
        x = self.norm1((x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal)).named("residual"))
        return self.norm2((x + self._ff_block(x)).named("residual"))


class TransformerDecoderLayer(Module):
    """Masked self-attention, cross-attention over memory, FFN; each with residual + LayerNorm, as
    torch.nn.TransformerDecoderLayer (norm_first selects pre-norm)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable = F.relu, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)
        # step(): keep the cross-attention weights (N, 1, S), averaged over heads, when asked (heatmaps)
        self.store_attention, self.last_attention = False, None
        if dtype is not None:
            self.to(dtype)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        return self.dropout1(self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                            need_weights=False, is_causal=is_causal)[0])

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal=False):
        return self.dropout2(self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                                 need_weights=False, is_causal=is_causal)[0])

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))).named("ffn"))

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False) -> Tensor:
        x = tgt
        if self.norm_first:
            x = (x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)).named("residual")
            x = (x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask,
                                     memory_is_causal)).named("residual")
            return (x + self._ff_block(self.norm3(x))).named("residual")
        x = self.norm1((x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal)).named("residual"))
        x = self.norm2((x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                            memory_is_causal)).named("residual"))
        return self.norm3((x + self._ff_block(x)).named("residual"))

    # ------------------------------------------------------------ incremental decoding
    def step(self, x: Tensor, memory: Tensor, cache: dict, memory_key_padding_mask=None) -> Tensor:
        """One new target position x (N, 1, E) (batch-first view) attending to the cached keys/values of
        the earlier positions plus its own; `cache` (a dict, filled on the first call) keeps the self-
        attention K, V of every position so far and the memory's K, V (computed once). Equals the full
        causal forward at that position."""
        sa, ca = self.self_attn, self.multihead_attn
        scale = 1.0 / math.sqrt(sa.head_dim)

        def self_attention(h):
            q, k, v = sa.project(h, h, h)
            if "k" in cache:
                k, v = tg.cat([cache["k"], k], dim=2), tg.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
            return sa.merge_heads(attention(q, k, v, scale)[0])

        def cross_attention(h):
            if "mem_k" not in cache:
                cache["mem_k"] = ca.heads(ca.in_proj(memory, 1))
                cache["mem_v"] = ca.heads(ca.in_proj(memory, 2))
                cache["mem_bias"] = ca.masks(memory.shape[0], 1, memory.shape[1], memory_key_padding_mask,
                                             None, False, memory.dtype)
            o, w = attention(ca.heads(ca.in_proj(h, 0)), cache["mem_k"], cache["mem_v"], scale, cache["mem_bias"])
            self.last_attention = w.numpy().mean(1) if self.store_attention else None
            return ca.merge_heads(o)

        if self.norm_first:
            x = x + self_attention(self.norm1(x))
            x = x + cross_attention(self.norm2(x))
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + self_attention(x))
        x = self.norm2(x + cross_attention(x))
        return self.norm3(x + self._ff_block(x))


def _clones(module: Module, n: int) -> ModuleList:
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


class TransformerEncoder(Module):
    """N deep copies of `encoder_layer` (layers.0 .. layers.N-1) and an optional final `norm`."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src: Tensor, mask=None, src_key_padding_mask=None, is_causal: bool | None = None) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(x) if self.norm is not None else x


class TransformerDecoder(Module):
    """N deep copies of `decoder_layer` and an optional final `norm`; `step` decodes one position with a
    key/value cache."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=bool(tgt_is_causal),
                      memory_is_causal=memory_is_causal)
        return self.norm(x) if self.norm is not None else x

    def step(self, x: Tensor, memory: Tensor, cache: list | None = None, memory_key_padding_mask=None):
        """x (N, 1, E), memory (N, S, E), both batch-first views -> (output (N, 1, E), cache). Start with
        cache=None; pass the returned cache back for the next position."""
        cache = [{} for _ in self.layers] if cache is None else cache
        for layer, c in zip(self.layers, cache):
            x = layer.step(x, memory, c, memory_key_padding_mask)
        return (self.norm(x) if self.norm is not None else x), cache


class Transformer(Module):
    """Encoder-decoder Transformer as torch.nn.Transformer (same defaults: d_model=512, nhead=8, 6+6 layers,
    dim_feedforward=2048, dropout=0.1, final LayerNorms encoder.norm / decoder.norm, xavier_uniform_
    init of every matrix)."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1, activation: str | Callable = F.relu,
                 custom_encoder: Module | None = None, custom_decoder: Module | None = None,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        kw = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                  layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first, bias=bias,
                  dtype=dtype)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(d_model, nhead, **kw), num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(d_model, nhead, **kw), num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        for p in self.parameters():
            if p.ndim > 1:
                tg.nn.init.xavier_uniform_(p)
        if dtype is not None:
            self.to(dtype)

    def forward(self, src: Tensor, tgt: Tensor, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        bdim = 0 if self.batch_first else 1
        if src.ndim == 3 and src.shape[bdim] != tgt.shape[bdim]:
            raise RuntimeError(f"Transformer: the batch number of src {src.shape} and tgt {tgt.shape} must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError(f"Transformer: the feature number of src {src.shape} and tgt {tgt.shape} "
                               f"must be equal to d_model={self.d_model}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> Tensor:
        """float (sz, sz) mask, -inf above the diagonal, 0 elsewhere (as torch)"""
        return generate_square_subsequent_mask(sz, dtype or np.float32)
