"""Attention: score functions, soft/global, local (Luong local-p) and hard (Gumbel-softmax) attention,
`scaled_dot_product_attention` and PyTorch-compatible `MultiheadAttention`.

General form: score every key against the query, softmax the scores, take the weighted sum of values:
    α = softmax(score(q, k_1..S)),   c = Σ_s α_s v_s.

Masks. The attention modules here take `mask` as a bool array, True = blocked (the convention of
PyTorch's `key_padding_mask`/bool `attn_mask`); `scaled_dot_product_attention` follows
`torch.nn.functional.scaled_dot_product_attention`, where a bool mask is True = may attend.
A row whose keys are all blocked gets all-zero weights and a zero context (and zero gradients) here;
PyTorch returns NaN for such rows.
"""
from __future__ import annotations

import math
import numpy as np

import tinygrad_seq as tg
from tinygrad_seq.nn import Linear, Module, Parameter
from tinygrad_seq.nn import functional as F
from tinygrad_seq.tensor import Tensor

__all__ = ["masked_softmax", "gumbel_softmax", "scaled_dot_product_attention", "DotScore", "ScaledDotScore",
           "GeneralScore", "AdditiveScore", "make_score", "SoftAttention", "GlobalAttention", "LocalAttention",
           "HardAttention", "MultiheadAttention", "set_split_heads", "attention"]


def _as_tensor(mask) -> Tensor | None:
    """A mask as a Tensor (no value read: under tg.compile a mask Tensor is an input replayed per call)."""
    if mask is None or isinstance(mask, Tensor):
        return mask
    return Tensor(np.asarray(mask))


def _mask_tensor(mask, name: str = "mask") -> Tensor | None:
    m = _as_tensor(mask)
    if m is not None and m.dtype != bool:
        raise TypeError(f"{name} must be a bool array (True = blocked), got dtype {m.dtype}")
    return m


def masked_softmax(scores: Tensor, mask=None, dim: int = -1) -> Tensor:
    """α_i = exp(s_i) / Σ_{j not blocked} exp(s_j) for unblocked i, 0 for blocked i (mask True or
    s_i = -inf); a fully blocked row gives all zeros, never NaN, forward and backward."""
    m = _mask_tensor(mask)
    if m is None:
        return scores.masked_softmax(dim=dim)
    try:
        np.broadcast_shapes(m.shape, scores.shape)
    except ValueError:
        raise ValueError(f"masked_softmax: mask shape {m.shape} does not broadcast to scores "
                         f"{scores.shape}") from None
    return scores.masked_softmax(m, dim=dim)


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, dim: int = -1, mask=None) -> Tensor:
    """y = softmax((logits + g) / τ), g = -log(-log u), u ~ U(0,1) from tg.rng(). hard=True: the
    straight-through estimator y_hard - sg(y) + y (one-hot forward, the soft gradient backward)."""
    if tau <= 0:
        raise ValueError(f"gumbel_softmax: tau must be > 0, got {tau}")
    u = tg.rng().random(logits.shape)
    g = -np.log(-np.log(np.clip(u, 1e-20, 1 - 1e-12)))
    y = masked_softmax((logits + g.astype(logits.dtype)) / tau, mask, dim)
    if not hard:
        return y
    return _one_hot_argmax(y, dim) - y.detach() + y


def _one_hot_argmax(y: Tensor, dim: int) -> Tensor:
    """one-hot of argmax along dim (all zeros where the row is all zeros: a fully blocked row)"""
    idx = np.expand_dims(np.argmax(y.numpy(), axis=dim), dim)
    out = np.zeros_like(y.numpy())
    np.put_along_axis(out, idx, 1, axis=dim)
    out *= y.numpy().sum(axis=dim, keepdims=True) > 0
    return Tensor(out)


# ---------------------------------------------------------------- score functions
# Each takes query (B, T, Dq) and keys (B, S, Dk) and returns scores (B, T, S). The key-side work is in
# `prepare(keys)`, so a decoder that scores the same keys at every step can prepare them once and pass
# `prepared=` (see SoftAttention.forward).

class _Score(Module):
    def prepare(self, keys: Tensor) -> Tensor:
        """the query-independent part of the score (keys themselves for dot products)"""
        return keys

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, prepared: Tensor | None = None) -> Tensor:
        _check_dims(type(self).__name__, query, keys, same=isinstance(self, DotScore),
                    dq=getattr(self, "query_dim", None), dk=getattr(self, "key_dim", None))
        return self.score(query, self.prepare(keys) if prepared is None else prepared)


class DotScore(_Score):
    """score(q, k) = qᵀk (Luong "dot"; needs Dq = Dk)"""

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        return query @ prepared.transpose(-1, -2)


class ScaledDotScore(DotScore):
    """score(q, k) = qᵀk / √d_k (Vaswani et al.)"""

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        return query @ prepared.transpose(-1, -2) / math.sqrt(prepared.shape[-1])


class GeneralScore(_Score):
    """score(q, k) = qᵀ W k (Luong "general", bilinear); W: (query_dim, key_dim); prepare(k) = W k"""

    def __init__(self, query_dim: int, key_dim: int | None = None):
        super().__init__()
        key_dim = query_dim if key_dim is None else key_dim
        self.query_dim, self.key_dim = query_dim, key_dim
        # W k as a bias-free Linear(key_dim -> query_dim): its weight is exactly W
        self.W = Linear(key_dim, query_dim, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        return self.W(keys)

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        return query @ prepared.transpose(-1, -2)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}"


class AdditiveScore(_Score):
    """score(q, k) = vᵀ tanh(W [q; k] + b) (Bahdanau "concat"), computed as vᵀ tanh(W_q q + W_k k + b)
    with W = [W_q, W_k] split by columns so the (T × S) pairs are never concatenated; prepare(k) = W_k k + b."""

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int | None = None):
        super().__init__()
        attn_dim = attn_dim or key_dim
        self.query_dim, self.key_dim, self.attn_dim = query_dim, key_dim, attn_dim
        self.W_q = Linear(query_dim, attn_dim, bias=False)
        self.W_k = Linear(key_dim, attn_dim)
        self.v = Linear(attn_dim, 1, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        return self.W_k(keys)

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        h = (self.W_q(query).unsqueeze(2) + prepared.unsqueeze(1)).tanh()  # (B, T, S, A)
        return self.v(h).squeeze(-1)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, attn_dim={self.attn_dim}"


def _check_dims(name: str, query: Tensor, keys: Tensor, same: bool = False, dq=None, dk=None) -> None:
    if query.ndim != 3 or keys.ndim != 3 or query.shape[0] != keys.shape[0]:
        raise ValueError(f"{name}: expected query (B, T, Dq) and keys (B, S, Dk), got {query.shape} and {keys.shape}")
    if same and query.shape[-1] != keys.shape[-1]:
        raise ValueError(f"{name}: query dim {query.shape[-1]} != key dim {keys.shape[-1]} "
                         "(use 'general' or 'additive')")
    if dq is not None and query.shape[-1] != dq:
        raise ValueError(f"{name}: query shape {query.shape} does not end with query_dim={dq}")
    if dk is not None and keys.shape[-1] != dk:
        raise ValueError(f"{name}: keys shape {keys.shape} does not end with key_dim={dk}")


_SCORES = {"dot": DotScore, "scaled_dot": ScaledDotScore, "general": GeneralScore, "bilinear": GeneralScore,
           "additive": AdditiveScore, "concat": AdditiveScore}


def make_score(score: str | Module, query_dim: int | None = None, key_dim: int | None = None,
               attn_dim: int | None = None) -> Module:
    """A score module by name: dot | scaled_dot | general (= bilinear) | additive (= concat), or a Module."""
    if isinstance(score, Module):
        return score
    if score not in _SCORES:
        raise ValueError(f"unknown score {score!r}: expected one of {sorted(_SCORES)} or a Module")
    cls = _SCORES[score]
    if cls is GeneralScore:
        if query_dim is None:
            raise ValueError("score='general' needs query_dim")
        return GeneralScore(query_dim, key_dim)
    if cls is AdditiveScore:
        if query_dim is None or key_dim is None:
            raise ValueError("score='additive' needs query_dim and key_dim")
        return AdditiveScore(query_dim, key_dim, attn_dim)
    return cls()


# ---------------------------------------------------------------- attention by area

class _Attention(Module):
    """Shared plumbing: a (B, Dq) query is one step (T = 1, squeezed back); mask is (B, S) or
    broadcastable to (B, T, S), True = blocked; values default to the keys."""

    def __init__(self, score: str | Module = "dot", query_dim: int | None = None, key_dim: int | None = None,
                 attn_dim: int | None = None):
        super().__init__()
        self.score = make_score(score, query_dim, key_dim, attn_dim)

    def _prepare(self, query: Tensor, keys: Tensor, values: Tensor | None, mask):
        single = query.ndim == 2
        q = query.unsqueeze(1) if single else query
        values = keys if values is None else values
        if keys.ndim != 3 or values.ndim != 3 or keys.shape[:2] != values.shape[:2]:
            raise ValueError(f"{type(self).__name__}: keys (B, S, Dk) and values (B, S, Dv) must agree, "
                             f"got {keys.shape} and {values.shape}")
        m = _mask_tensor(mask)
        if m is not None:
            shape = m.shape
            if m.ndim == 2:
                m = m[:, None, :]
            try:
                full = (q.shape[0], q.shape[1], keys.shape[1])
                if np.broadcast_shapes(m.shape, full) != full:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{type(self).__name__}: mask shape {shape} does not fit (B, S) = "
                                 f"{(keys.shape[0], keys.shape[1])} or (B, T, S)") from None
        return single, q, values, m

    @staticmethod
    def _finish(single: bool, context: Tensor, weights: Tensor):
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights


class SoftAttention(_Attention):
    """Soft/global attention: α = softmax(score(q, k_s)) over all unblocked keys, c = Σ_s α_s v_s.
    forward(query (B, Dq) or (B, T, Dq), keys (B, S, Dk), values=None, mask=None, prepared=None) ->
    (context, weights); prepared = self.score.prepare(keys), computed once, saves the key-side work
    when the same keys are attended to at every decoder step."""

    def forward(self, query: Tensor, keys: Tensor, values: Tensor | None = None, mask=None,
                prepared: Tensor | None = None):
        single, q, values, m = self._prepare(query, keys, values, mask)
        alpha = masked_softmax(self.score(q, keys, prepared), m)
        return self._finish(single, alpha @ values, alpha)


GlobalAttention = SoftAttention


class LocalAttention(_Attention):
    """Luong local-p attention. Predicted centre p_t = S · σ(v_pᵀ tanh(W_p h_t)) (S = the unblocked source
    length of each example), a window |s - p_t| <= D, and Gaussian-weighted alignment
        a_t(s) = softmax_{s in window}(score(h_t, h̄_s)) · exp(-(s - p_t)² / (2σ²)),  σ = D/2,
    c_t = Σ_s a_t(s) h̄_s (not renormalised, as in the paper). `position` (B,) or (B, T) given instead
    gives local-m (monotonic) attention with that fixed centre."""

    def __init__(self, query_dim: int, window: int, score: str | Module = "general", key_dim: int | None = None,
                 attn_dim: int | None = None):
        super().__init__(score, query_dim, key_dim if key_dim is not None else query_dim, attn_dim)
        if window < 0:
            raise ValueError(f"LocalAttention: window D must be >= 0, got {window}")
        self.D, self.query_dim = window, query_dim
        hid = attn_dim or query_dim
        self.W_p = Linear(query_dim, hid, bias=False)
        self.v_p = Linear(hid, 1, bias=False)

    def predict_position(self, q: Tensor, src_len: np.ndarray) -> Tensor:
        """p_t = S · σ(v_pᵀ tanh(W_p h_t)):  (B, T, Dq) -> (B, T)"""
        return self.v_p(self.W_p(q).tanh()).squeeze(-1).sigmoid() * src_len.astype(q.dtype)[:, None]

    def forward(self, query: Tensor, keys: Tensor, values: Tensor | None = None, mask=None, position=None):
        single, q, values, m = self._prepare(query, keys, values, mask)
        B, T, S = q.shape[0], q.shape[1], keys.shape[1]
        # S of each example: its keys that some query may attend to (a padding mask leaves the real length)
        m = None if m is None else m.numpy()  # the window below is chosen from values anyway
        src_len = np.full(B, S) if m is None else (~np.broadcast_to(m, (B, T, S)).all(1)).sum(1)
        if position is None:
            p = self.predict_position(q, src_len)
        else:
            pa = position.numpy() if isinstance(position, Tensor) else np.asarray(position)
            p = Tensor(np.broadcast_to(pa.reshape(B, -1), (B, T)).astype(q.dtype))
        s_idx = np.arange(S, dtype=q.dtype)
        dist = Tensor(s_idx)[None, None, :] - p.unsqueeze(-1)  # (B, T, S)
        outside = np.abs(dist.numpy()) > self.D
        blocked = outside if m is None else (outside | m)
        align = masked_softmax(self.score(q, keys), blocked)
        sigma = self.D / 2 if self.D > 0 else 0.5
        alpha = align * (-(dist * dist) / (2 * sigma * sigma)).exp()
        ctx, w = self._finish(single, alpha @ values, alpha)
        self.last_position = p.squeeze(1) if single else p
        return ctx, w

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, window={self.D}"


class HardAttention(_Attention):
    """Hard attention: pick one key. Training: Gumbel-softmax α = softmax((score + g)/τ) (differentiable
    relaxation); straight_through=True makes α one-hot in the forward pass with the relaxed gradient.
    Eval: α = one_hot(argmax score) (deterministic). Returns (context, weights) like the others."""

    def __init__(self, score: str | Module = "dot", query_dim: int | None = None, key_dim: int | None = None,
                 tau: float = 1.0, straight_through: bool = True, attn_dim: int | None = None):
        super().__init__(score, query_dim, key_dim, attn_dim)
        if tau <= 0:
            raise ValueError(f"HardAttention: tau must be > 0, got {tau}")
        self.tau, self.straight_through = tau, straight_through

    def forward(self, query: Tensor, keys: Tensor, values: Tensor | None = None, mask=None):
        single, q, values, m = self._prepare(query, keys, values, mask)
        scores = self.score(q, keys)
        if self.training:
            w = gumbel_softmax(scores, self.tau, self.straight_through, -1, m)
        else:
            w = _one_hot_argmax(masked_softmax(scores.detach(), m), -1)
        return self._finish(single, w @ values, w)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, straight_through={self.straight_through}"


# ---------------------------------------------------------------- scaled dot-product and multi-head

def _dropout_keep(q: Tensor, k: Tensor, dropout_p: float, training: bool) -> Tensor | None:
    """The scaled dropout mask (1/(1-p) kept, 0 dropped) for the (..., L, S) weights, or None: dropout of
    ones, so the engine's op draws it (a compiled replay draws fresh numbers) and heads can share one draw."""
    if not (dropout_p > 0 and training):
        return None
    shape = np.broadcast_shapes(q.shape[:-1] + (k.shape[-2],), k.shape[:-2] + (1, 1))
    return F.dropout(tg.ones(shape, dtype=q.dtype), dropout_p)


def attention(q: Tensor, k: Tensor, v: Tensor, scale: float, bias: Tensor | None = None,
              keep: Tensor | None = None, nan_rows: bool = False) -> tuple[Tensor, Tensor]:
    """Attention(Q, K, V) = softmax(Q Kᵀ · scale + bias) V on (..., L|S, D) tensors -> (output, weights α);
    `bias` is the additive mask (-inf = blocked, see _bias), `keep` a scaled dropout mask (from
    _dropout_keep) applied to α. A row with every key blocked gets α = 0 (torch's scaled_dot_product_attention),
    or with nan_rows=True α = NaN and NaN gradients (torch's plain softmax, as its MultiheadAttention with
    need_weights=True)."""
    scores = q @ k.transpose(-1, -2) * scale
    if bias is not None:
        scores = scores + bias
    scores = scores.named("scores")
    alpha = (scores.softmax(-1) if nan_rows else scores.masked_softmax(dim=-1)).named("alpha")
    if keep is not None:
        alpha = alpha * keep
    return (alpha @ v).named("context"), alpha


def _head(a, i: int):
    """Head i of a (N|1, h|1, L|1, S) mask (Tensor or array); a mask broadcast over heads serves every head."""
    return None if a is None else a[:, i if a.shape[1] > 1 else 0]


def _bias(mask, dtype, name: str, allowed: bool = False) -> Tensor | None:
    """A mask as the additive bias of the scores, built by engine ops (tg.compile replays a mask Tensor):
    bool True = blocked -> -inf, False -> 0 (allowed=True: True = may attend -> 0, False -> -inf);
    a float mask is the bias itself."""
    m = _as_tensor(mask)
    if m is None:
        return None
    if m.dtype == bool:
        if allowed:
            return tg.full(m.shape, -math.inf, dtype=dtype).masked_fill(m, 0.0)
        return tg.zeros(m.shape, dtype=dtype).masked_fill(m, -math.inf)
    if m.dtype.kind != "f":
        raise TypeError(f"{name} must be bool or float, got dtype {m.dtype}")
    return m if m.dtype == dtype else m.to(dtype)


def _pad_key_axis(bias: Tensor | None) -> Tensor | None:
    """A (.., S) bias extended by one key column that nothing blocks (add_bias_kv / add_zero_attn, as torch)."""
    return None if bias is None else F.pad(bias, (0, 1))


def _merge(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return b if a is None else a if b is None else a + b


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None) -> Tensor:
    """Attention(Q, K, V) = softmax(Q Kᵀ/√d_k + M) V, as torch.nn.functional.scaled_dot_product_attention:
    q (..., L, E), k (..., S, E), v (..., S, Ev); a bool attn_mask is True = MAY attend, a float one is
    added; is_causal masks j > i. Fully masked rows give 0 and zero gradients (as PyTorch since 2.5).
    Dropout is always applied when dropout_p > 0 (as torch's functional form)."""
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: query {query.shape}, key {key.shape}, value {value.shape} "
                         "do not fit (..., L, E), (..., S, E), (..., S, Ev)")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal, not both")
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        bias = _bias(np.triu(np.ones((L, S), dtype=bool), 1), query.dtype, "attn_mask")
    else:
        bias = _bias(attn_mask, query.dtype, "attn_mask", allowed=True)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    return attention(query, key, value, scale, bias, _dropout_keep(query, key, dropout_p, True))[0]


class MultiheadAttention(Module):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O,  head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V),
    as torch.nn.MultiheadAttention (same arguments, parameter names, init and masks). forward(query,
    key, value, key_padding_mask=None, need_weights=True, attn_mask=None, average_attn_weights=True,
    is_causal=False) -> (attn_output, attn_weights | None). Shapes (L, N, E) or with batch_first
    (N, L, E), or unbatched (L, E). Masks: bool True = blocked, float = added; attn_mask (L, S) or
    (N·num_heads, L, S); key_padding_mask (N, S). A query whose every key is blocked gets, as in torch, NaN
    output, weights and gradients with need_weights=True (its softmax path), and zero attention (the output
    is the out_proj bias) with need_weights=False (its scaled_dot_product_attention path, the one the
    Transformer layers take).
    is_causal with no attn_mask builds the causal mask (torch requires attn_mask then).

    split_heads=True (an attribute too; `set_split_heads(model)` flips it in every MultiheadAttention of a
    model) computes each head with its own ops inside `name_scope(f"head{i}")`, so `draw_graph` shows one
    cluster per head; same values and gradients as the default batched path, which is faster."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None, *,
                 split_heads: bool = False):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be > 0, got {embed_dim} and "
                             f"{num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.split_heads = bool(split_heads)
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        dt = np.dtype(dtype or np.float32)
        xavier = tg.nn.init.xavier_uniform_
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * embed_dim, embed_dim), dt))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
            xavier(self.in_proj_weight)
        else:
            self.q_proj_weight = Parameter(np.empty((embed_dim, embed_dim), dt))
            self.k_proj_weight = Parameter(np.empty((embed_dim, self.kdim), dt))
            self.v_proj_weight = Parameter(np.empty((embed_dim, self.vdim), dt))
            self.register_parameter("in_proj_weight", None)
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                xavier(w)
        if bias:
            self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dt)
        if bias:
            self.out_proj.bias.numpy()[...] = 0
        if add_bias_kv:  # one learned extra key and value (1, 1, E), appended to every sequence, as torch
            self.bias_k = tg.nn.init.xavier_normal_(Parameter(np.empty((1, 1, embed_dim), dt)))
            self.bias_v = tg.nn.init.xavier_normal_(Parameter(np.empty((1, 1, embed_dim), dt)))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn

    # ------------------------------------------------------------ projections
    def _bias(self, i: int):
        b = self.in_proj_bias
        if b is None:
            return None
        E = self.embed_dim
        return b[i * E:(i + 1) * E]

    def in_proj(self, x: Tensor, i: int) -> Tensor:
        """x W_iᵀ + b_i for i = 0 (q), 1 (k), 2 (v)"""
        if self._qkv_same_embed_dim:
            E = self.embed_dim
            w = self.in_proj_weight[i * E:(i + 1) * E]
        else:
            w = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
        return F.linear(x, w, self._bias(i))

    def project(self, query: Tensor, key: Tensor, value: Tensor):
        """(q, k, v) projections split into heads, each (N, h, L|S, E/h), from batch-first inputs. When key
        is value, k and v (and q too for self-attention) come from one matmul and one reshape/permute."""
        if self._qkv_same_embed_dim and key is value:  # (self- or cross-) attention over one memory
            N, S, E = key.shape[0], key.shape[1], self.embed_dim
            self_attn = query is key
            w, b = self.in_proj_weight, self.in_proj_bias
            if not self_attn:
                w, b = w[E:], (None if b is None else b[E:])
            n = 3 if self_attn else 2
            proj = F.linear(key, w, b).named("x W_qkvᵀ + b" if self_attn else "m W_kvᵀ + b")
            proj = proj.reshape(N, S, n, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q = None if self_attn else self.heads(self.in_proj(query, 0))
            q, k, v = proj.unbind(0) if self_attn else (q, *proj.unbind(0))
        else:
            q, k, v = (self.heads(self.in_proj(x, i)) for i, x in enumerate((query, key, value)))
        return q.named("q"), k.named("k"), v.named("v")

    def heads(self, x: Tensor) -> Tensor:
        """(N, L, E) -> (N, h, L, E/h)"""
        N, L = x.shape[0], x.shape[1]
        return x.reshape(N, L, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def merge_heads(self, o: Tensor) -> Tensor:
        """(N, h, L, E/h) -> (N, L, E) -> out_proj"""
        N, _, L, _ = o.shape
        return self.out_proj(o.permute(0, 2, 1, 3).reshape(N, L, self.embed_dim))

    def attend_heads(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scale: float,
                     nan_rows: bool = False):
        """The split_heads path: head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V) = softmax(q_i k_iᵀ·scale + M_i) v_i,
        each head from its own ops inside name_scope(f"head{i}") (graph path ".../head{i}").
        q, k, v: (N, h, L|S, E/h) -> (Concat(head_1..head_h) (N, L, E), weights (N, h, L, S)).
        One dropout draw for all heads, sliced per head: the same numbers as the batched path."""
        keep = _dropout_keep(q, k, self.dropout, self.training)
        outs, ws = [], []
        for i in range(self.num_heads):
            with tg.name_scope(f"head{i}"):
                o, w = attention(q[:, i], k[:, i], v[:, i], scale, _head(bias, i), _head(keep, i), nan_rows)
            outs.append(o)
            ws.append(w)
        return tg.cat(outs, -1), tg.stack(ws, 1)

    # ------------------------------------------------------------ masks
    def masks(self, N: int, L: int, S: int, key_padding_mask, attn_mask, is_causal: bool, dtype) -> Tensor | None:
        """-> the additive bias (N|1, h|1, L|1, S) of both masks (bool True = blocked -> -inf, float added)
        or None, validated; built by engine ops, so a compiled call replays each call's masks."""
        h = self.num_heads
        if is_causal and attn_mask is None:
            attn_mask = np.triu(np.ones((L, S), dtype=bool), 1)
        a = _bias(attn_mask, dtype, "attn_mask")
        if a is not None:
            if a.ndim == 2:
                if a.shape != (L, S):
                    raise RuntimeError(f"MultiheadAttention: the shape of the 2D attn_mask is {a.shape}, "
                                       f"but should be {(L, S)}")
                a = a.reshape(1, 1, L, S)
            elif a.ndim == 3:
                if a.shape != (N * h, L, S):
                    raise RuntimeError(f"MultiheadAttention: the shape of the 3D attn_mask is {a.shape}, "
                                       f"but should be {(N * h, L, S)}")
                a = a.reshape(N, h, L, S)
            else:
                raise RuntimeError(f"MultiheadAttention: attn_mask must be 2-D or 3-D, got shape {a.shape}")
        k = _bias(key_padding_mask, dtype, "key_padding_mask")
        if k is not None:
            if k.shape != (N, S):
                raise RuntimeError(f"MultiheadAttention: expected key_padding_mask of shape {(N, S)}, got {k.shape}")
            k = k.reshape(N, 1, 1, S)
        return _merge(a, k)

    # ------------------------------------------------------------ forward
    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        unbatched = query.ndim == 2
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key, value must all be 3-D (batched) or 2-D (unbatched), "
                             f"got {query.shape}, {key.shape}, {value.shape}")
        same_qk, same_kv = query is key, key is value

        def to_batch_first(x: Tensor) -> Tensor:  # (L, N, E) or unbatched (L, E) -> (N, L, E)
            return x.unsqueeze(0) if unbatched else (x if self.batch_first else x.transpose(0, 1))

        query = to_batch_first(query)
        key = query if same_qk else to_batch_first(key)
        value = key if same_kv else to_batch_first(value)
        if unbatched and key_padding_mask is not None:
            key_padding_mask = _as_tensor(key_padding_mask).unsqueeze(0)
        E = self.embed_dim
        if query.shape[-1] != E or key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ValueError(f"MultiheadAttention: expected query/key/value feature sizes {E}/{self.kdim}/{self.vdim}, "
                             f"got {query.shape[-1]}/{key.shape[-1]}/{value.shape[-1]}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"MultiheadAttention: batch/source sizes disagree: query {query.shape}, key {key.shape}, "
                             f"value {value.shape} (batch-first view)")
        N, L, S = query.shape[0], query.shape[1], key.shape[1]
        bias = self.masks(N, L, S, key_padding_mask, attn_mask, is_causal, query.dtype)
        q, k, v = self.project(query, key, value)
        if self.bias_k is not None:
            k, v = self._append_key(k, self.bias_k), self._append_key(v, self.bias_v)
            bias = _pad_key_axis(bias)
        if self.add_zero_attn:
            zero = tg.zeros(*k.shape[:2], 1, self.head_dim, dtype=k.dtype)
            k, v = tg.cat([k, zero], 2), tg.cat([v, zero], 2)
            bias = _pad_key_axis(bias)
        scale = 1.0 / math.sqrt(self.head_dim)
        if self.split_heads:
            o, w = self.attend_heads(q, k, v, bias, scale, need_weights)
            out = self.out_proj(o)
        else:
            o, w = attention(q, k, v, scale, bias, _dropout_keep(q, k, self.dropout, self.training), need_weights)
            out = self.merge_heads(o)
        w = w if need_weights else None
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if w is not None:
            if average_attn_weights:
                w = w.mean(1)
            if unbatched:
                w = w.squeeze(0)
        return out, w

    def _append_key(self, x: Tensor, extra: Parameter) -> Tensor:
        """x (N, h, S, E/h) with the projected-space row `extra` (1, 1, E) appended as key/value S + 1."""
        N, h, _, d = x.shape
        return tg.cat([x, extra.reshape(1, h, 1, d).expand(N, h, 1, d)], 2)

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"kdim={self.kdim}, vdim={self.vdim}, batch_first={self.batch_first}"
                + (", split_heads=True" if self.split_heads else ""))


def set_split_heads(module: Module, enabled: bool = True) -> Module:
    """Set `split_heads` on every MultiheadAttention in `module` (itself included): each head then runs in its
    own name scope and `draw_graph` shows heads as clusters. Returns `module`."""
    for m in module.modules():
        if isinstance(m, MultiheadAttention):
            m.split_heads = bool(enabled)
    return module
