"""REINFORCE (the score-function estimator) for hard attention, composed from engine ops.

Hard attention samples one key k ~ α = softmax(scores) and uses only v_k: the sample is not
differentiable in the scores. The score-function identity gives an unbiased gradient anyway:

    ∇_θ E_{k~α}[L(k)] = E_{k~α}[(L(k) - b) ∇_θ log α_k]

for any baseline b that does not depend on k (E[∇ log α_k] = Σ_k ∇α_k = ∇ 1 = 0, so b adds no bias,
but a b close to E[L] removes most of the variance). An entropy bonus -β H(α), H = -Σ α log α, keeps
the policy from collapsing too early.

`reinforce_loss` returns the surrogate whose gradient is that estimate (plus the bonus):

    S = mean_n[(L_n - b_n) · log α_{n,k_n}] - β · mean_n H(α_n)

with L_n and b_n treated as constants. Add it to the pathwise loss (e.g. the classifier's cross-entropy
on the attended value, which trains the rest of the model by ordinary backprop).
Baselines: `MovingAverageBaseline` (b ← d·b + (1-d)·mean L) and `LearnedBaseline` (b = wᵀf + c, fitted
by MSE to L).
"""
from __future__ import annotations

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq.nn import Linear, Module
from tinygrad_seq.tensor import Tensor

__all__ = ["sample_categorical", "log_prob", "entropy", "reinforce_loss", "MovingAverageBaseline", "LearnedBaseline"]


def _log_probs(logits: Tensor, mask=None) -> Tensor:
    if mask is not None:
        logits = logits.masked_fill(np.asarray(mask, bool), -1e9)  # blocked keys: probability 0
    return logits.log_softmax(-1)


def sample_categorical(logits: Tensor, mask=None, rng: np.random.Generator | None = None) -> np.ndarray:
    """k ~ softmax(logits) along the last dim (blocked keys never drawn), by the inverse CDF of one
    uniform per row from `rng` (default tg.rng()); returns int64 indices of shape logits.shape[:-1]."""
    p = np.exp(_log_probs(logits.detach(), mask).numpy().astype(np.float64))
    c = np.cumsum(p, axis=-1)
    u = (rng or tg.rng()).random(p.shape[:-1] + (1,)) * c[..., -1:]
    return np.minimum((c < u).sum(-1), p.shape[-1] - 1).astype(np.int64)


def log_prob(logits: Tensor, k: np.ndarray, mask=None) -> Tensor:
    """log α_k = log softmax(logits)_k along the last dim, for the chosen indices k (shape logits.shape[:-1])"""
    k = np.asarray(k, np.int64)
    if k.shape != logits.shape[:-1]:
        raise ValueError(f"log_prob: indices of shape {k.shape} do not fit logits of shape {logits.shape}")
    return _log_probs(logits, mask).gather(-1, k[..., None]).squeeze(-1)


def entropy(logits: Tensor, mask=None) -> Tensor:
    """H(α) = -Σ_k α_k log α_k along the last dim (blocked keys contribute 0)"""
    lp = _log_probs(logits, mask)
    return -(lp.exp() * lp).sum(-1)


def reinforce_loss(logits: Tensor, k: np.ndarray, loss, baseline=0.0, entropy_coef: float = 0.0,
                   mask=None) -> Tensor:
    """S = mean[(L - b) log α_k] - β mean[H(α)], L and b constants: ∇S is the REINFORCE estimate of
    ∇ E_{k~α}[L] (minus β ∇H). `loss` and `baseline`: per-sample arrays/tensors (or a number for b)."""
    L = loss.numpy() if isinstance(loss, Tensor) else np.asarray(loss)
    b = baseline.numpy() if isinstance(baseline, Tensor) else np.asarray(baseline)
    if L.shape != logits.shape[:-1]:
        raise ValueError(f"reinforce_loss: per-sample loss of shape {L.shape} does not fit logits {logits.shape}")
    adv = Tensor((L - b).astype(logits.dtype))
    out = (adv * log_prob(logits, k, mask)).mean()
    if entropy_coef:
        out = out - entropy_coef * entropy(logits, mask).mean()
    return out


class MovingAverageBaseline:
    """b ← decay · b + (1 - decay) · mean(L), starting at the first batch's mean; `value` is the b to use
    for the current batch (from earlier batches only, so it stays independent of this batch's draws)."""

    def __init__(self, decay: float = 0.9):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"MovingAverageBaseline: decay must be in [0, 1), got {decay}")
        self.decay, self.value = decay, None

    def __call__(self, loss) -> float:
        """Return the baseline for this batch, then fold the batch's mean loss in."""
        L = float(np.mean(loss.numpy() if isinstance(loss, Tensor) else loss))
        b = L if self.value is None else self.value
        self.value = L if self.value is None else self.decay * self.value + (1 - self.decay) * L
        return b

    def state_dict(self) -> dict:
        return {"value": np.nan if self.value is None else self.value}

    def load_state_dict(self, state: dict) -> None:
        v = float(np.asarray(state["value"]))
        self.value = None if np.isnan(v) else v


class LearnedBaseline(Module):
    """b(f) = wᵀ f + c, a per-sample baseline from features f, trained by loss() = mean (b - L)²"""

    def __init__(self, in_features: int):
        super().__init__()
        self.fc = Linear(in_features, 1)

    def forward(self, features: Tensor) -> Tensor:
        return self.fc(features.detach()).squeeze(-1)

    def loss(self, b: Tensor, target) -> Tensor:
        L = target.numpy() if isinstance(target, Tensor) else np.asarray(target)
        return ((b - Tensor(L.astype(b.dtype))) ** 2).mean()
