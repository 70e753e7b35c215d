"""Loss functions, composed from engine ops (re-exported by `tinygrad_seq.nn.functional`).

PyTorch's names, arguments and reduction semantics. Unlike PyTorch, nothing is silently broadcast:
an input/target shape mismatch is a ValueError naming both shapes, and a target of the wrong dtype a
TypeError. Every loss is finite at extreme logits (±1e4) without overflow warnings.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .errors import DtypeError, OutOfRangeError, ShapeError
from .tensor import Tensor

_REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------- argument checks and reduction

def _check_reduction(fn: str, reduction: str, allowed: tuple = _REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"{fn}: reduction must be one of {allowed}, got {reduction!r}")


def _float_input(fn: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: input must be floating point, got dtype {x.dtype}")
    return x


def _float_target(fn: str, target, x: Tensor) -> Tensor:
    """A float target with the input's shape (constant targets are cast to the input's dtype)."""
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    if t.dtype.kind != "f":
        raise TypeError(f"{fn}: target must be floating point (like the input {x.dtype}), got dtype {t.dtype}")
    if t.shape != x.shape:
        raise ShapeError(f"{fn}: input shape {x.shape} and target shape {t.shape} differ "
                         "(losses never broadcast: reshape one of them)")
    if t.dtype != x.dtype:
        t = t.to(x.dtype) if t.requires_grad else Tensor._wrap(t.numpy().astype(x.dtype))
    return t


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _weighted_mean(total: Tensor, denom: float) -> Tensor:
    """total / denom, NaN (as PyTorch, without a 0/0 warning) when every target is ignored."""
    if denom == 0:
        return total * float("nan")
    return total / float(denom)


def _class_weight(fn: str, weight, n_classes: int, x: Tensor) -> np.ndarray | None:
    if weight is None:
        return None
    w = weight.numpy() if isinstance(weight, Tensor) else np.asarray(weight)
    if w.shape != (n_classes,):
        raise ValueError(f"{fn}: weight shape {w.shape} must be (C,) = ({n_classes},) for input shape {x.shape}")
    return w.astype(x.dtype, copy=False)


# ---------------------------------------------------------------- regression

def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """ℓ = (x - y)²"""
    _check_reduction("mse_loss", reduction)
    x = _float_input("mse_loss", input)
    d = x - _float_target("mse_loss", target, x)
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """ℓ = |x - y|  (MAE)"""
    _check_reduction("l1_loss", reduction)
    x = _float_input("l1_loss", input)
    return _reduce((x - _float_target("l1_loss", target, x)).abs(), reduction)


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """ℓ = ½ d² if |d| < δ else δ (|d| - ½ δ), d = x - y; computed as ½ q² + δ (|d| - q), q = min(|d|, δ)"""
    _check_reduction("huber_loss", reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    x = _float_input("huber_loss", input)
    a = (x - _float_target("huber_loss", target, x)).abs()
    q = a.clamp(max=delta)
    return _reduce(0.5 * q * q + delta * (a - q), reduction)


def smooth_l1_loss(input: Tensor, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """ℓ = ½ d² / β if |d| < β else |d| - ½ β  (= huber_loss(δ=β) / β; l1_loss at β = 0)"""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction)
    return huber_loss(input, target, reduction, delta=beta) / beta


# ---------------------------------------------------------------- classification

def _class_input(fn: str, input: Tensor, target, prob_ok: bool, index_dtypes: tuple = (np.int64, np.uint8)):
    """Normalise (C,)/(N, C, d1, ...) inputs and their targets; returns (x, target, is_prob, unbatched).

    Integer targets have the input's shape without the class dim 1; probability targets (float, only
    where prob_ok) have the input's shape."""
    x = _float_input(fn, input)
    if x.ndim == 0:
        raise ValueError(f"{fn}: input must have a class dimension, got a scalar")
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    kind = t.dtype.kind
    if kind == "f" and prob_ok:
        if t.shape != x.shape:
            raise ShapeError(f"{fn}: probability target shape {t.shape} must equal input shape {x.shape}")
        is_prob = True
    elif kind in "iu":
        if t.dtype not in index_dtypes:  # as PyTorch: class indices are Long (or Byte, for nll/cross_entropy)
            names = " or ".join(np.dtype(d).name for d in index_dtypes)
            raise DtypeError(f"{fn}: class-index target must have dtype {names}, got dtype {t.dtype}")
        want = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
        if t.shape != want:
            raise ValueError(f"{fn}: input shape {x.shape} needs class-index target shape {want} "
                             f"(class dim 1 removed), got {t.shape}")
        is_prob = False
    else:
        expected = "integer class indices or float probabilities" if prob_ok else "integer class indices"
        raise DtypeError(f"{fn}: target must hold {expected}, got dtype {t.dtype}")
    unbatched = x.ndim == 1
    if unbatched:
        x = x.unsqueeze(0)
        t = t.unsqueeze(0) if is_prob else t.reshape(1)
    return x, t, is_prob, unbatched


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """ℓ_n = -w[y_n] x[n, y_n] (x: log-probabilities, class dim 1); 'mean' = Σ ℓ / Σ_n w[y_n] over
    non-ignored targets (PyTorch's weighted mean)"""
    _check_reduction("nll_loss", reduction)
    x, t, _, unbatched = _class_input("nll_loss", input, target, prob_ok=False)
    w = _class_weight("nll_loss", weight, x.shape[1], x)
    # the targets are the op's gradient-free input (checked there): tg.compile replays each call's targets
    out = ops.NllLoss.apply(x, t, weight=w, ignore_index=ignore_index, reduction=reduction)
    return out.reshape(()) if unbatched and reduction == "none" else out


def cross_entropy(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """ℓ = nll_loss(log_softmax(x, dim=1), y) for class indices y; ℓ_n = -Σ_c w_c y_{n,c} log_softmax(x)_{n,c}
    for probabilities y ('mean' divides by N·d1·...). Label smoothing ε mixes in the uniform target:
    (1 - ε) ℓ + ε/C · Σ_c -w_c log p_c (indices) or y ← (1 - ε) y + ε/C (probabilities)."""
    fn = "cross_entropy"
    _check_reduction(fn, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing}")
    x, t, is_prob, unbatched = _class_input(fn, input, target, prob_ok=True)
    C = x.shape[1]
    w = _class_weight(fn, weight, C, x)
    if not is_prob:  # one fused op: log_softmax, pick, weights and smoothing
        out = ops.CrossEntropy.apply(x, t, weight=w, ignore_index=ignore_index, label_smoothing=label_smoothing,
                                     reduction=reduction)
    else:
        if t.dtype != x.dtype:
            t = t.to(x.dtype) if t.requires_grad else Tensor._wrap(t.numpy().astype(x.dtype))
        if label_smoothing > 0:
            t = t * (1 - label_smoothing) + label_smoothing / C
        logp = x.log_softmax(dim=1)
        wc = None if w is None else w.reshape((1, C) + (1,) * (x.ndim - 2))
        loss = -(logp * t if wc is None else logp * t * wc).sum(1)
        out = _weighted_mean(loss.sum(), int(np.prod(x.shape)) // C) if reduction == "mean" else _reduce(loss, reduction)
    return out.reshape(()) if unbatched and reduction == "none" else out


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean") -> Tensor:
    """ℓ = -w (y ln p + (1 - y) ln(1 - p)), logs clamped at -100 as PyTorch (p must lie in [0, 1])"""
    fn = "binary_cross_entropy"
    _check_reduction(fn, reduction)
    x = _float_input(fn, input)
    t = _float_target(fn, target, x)
    if x.numpy().size and (x.numpy().min() < 0 or x.numpy().max() > 1):
        raise ValueError(f"{fn}: all elements of input should be between 0 and 1 (got min {x.numpy().min():.4g}, "
                         f"max {x.numpy().max():.4g}); use binary_cross_entropy_with_logits for logits")
    loss = ops.BinaryCrossEntropy.apply(x, t)
    if weight is not None:
        loss = loss * _broadcastable(fn, "weight", weight, x)
    return _reduce(loss, reduction)


def _broadcastable(fn: str, name: str, v, x: Tensor) -> Tensor:
    """A constant (or Tensor) that broadcasts to x's shape without enlarging it."""
    t = v if isinstance(v, Tensor) else Tensor(np.asarray(v, dtype=x.dtype))
    try:
        ok = np.broadcast_shapes(t.shape, x.shape) == x.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{fn}: {name} shape {t.shape} does not broadcast to input shape {x.shape}")
    return t


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """ℓ = w [(1 - y) x + (1 + (p_w - 1) y) softplus(-x)] = -w [p_w y ln σ(x) + (1 - y) ln(1 - σ(x))],
    stable for any logit x (softplus never overflows)"""
    fn = "binary_cross_entropy_with_logits"
    _check_reduction(fn, reduction)
    x = _float_input(fn, input)
    t = _float_target(fn, target, x)
    sp = ops.Softplus.apply(-x)
    if pos_weight is not None:
        lw = (_broadcastable(fn, "pos_weight", pos_weight, x) - 1) * t + 1
        loss = (1 - t) * x + lw * sp
    else:
        loss = (1 - t) * x + sp
    if weight is not None:
        loss = loss * _broadcastable(fn, "weight", weight, x)
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """ℓ = y (ln y - x) (x: log-probabilities; 0 where y = 0), or e^y (y - x) if log_target.
    'batchmean' = Σ ℓ / N (the true KL divergence per sample); 'mean' averages over every element."""
    fn = "kl_div"
    _check_reduction(fn, reduction, _REDUCTIONS + ("batchmean",))
    x = _float_input(fn, input)
    t = _float_target(fn, target, x)
    if log_target:
        loss = t.exp() * (t - x)
    else:  # y ln y with ln clamped at the smallest normal number: exactly 0 at y = 0, no log(0) warning
        loss = t * (t.clamp(min=float(np.finfo(x.dtype).tiny)).log() - x)
    if reduction == "batchmean":
        return loss.sum() / (x.shape[0] if x.ndim else 1)
    return _reduce(loss, reduction)


def multi_margin_loss(input: Tensor, target, p: int = 1, margin: float = 1.0, weight=None,
                      reduction: str = "mean") -> Tensor:
    """Multi-class hinge: ℓ_n = Σ_{j ≠ y_n} w[y_n] max(0, margin - x[n, y_n] + x[n, j])^p / C  (p = 1 or 2)"""
    fn = "multi_margin_loss"
    _check_reduction(fn, reduction)
    if p not in (1, 2):
        raise ValueError(f"{fn}: only p == 1 and p == 2 are supported, got {p}")
    x, t, _, unbatched = _class_input(fn, input, target, prob_ok=False, index_dtypes=(np.int64,))
    if x.ndim != 2:
        raise ValueError(f"{fn}: input must be (C,) or (N, C), got shape {input.shape}")
    N, C = x.shape
    ti = t.numpy()
    if ti.size and (ti.min() < 0 or ti.max() >= C):
        raise OutOfRangeError(f"{fn}: target out of bounds for {C} classes (min {ti.min()}, max {ti.max()})")
    w = _class_weight(fn, weight, C, x)
    xy = x.gather(1, ti[:, None])
    h = (x - xy + margin).relu()
    if p == 2:
        h = h * h
    mask = np.ones((N, C), x.dtype)
    mask[np.arange(N), ti] = 0
    if w is not None:
        mask *= w[ti][:, None]
    loss = (h * mask).sum(1) / C
    if unbatched and reduction == "none":
        return loss.reshape(())
    return _reduce(loss, reduction)
