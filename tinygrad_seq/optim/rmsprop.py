"""RMSprop (PyTorch's formulation: eps outside the square root, optional centering and momentum)."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .optimizer import Optimizer, _check_nonneg


class RMSprop(Optimizer):
    """v <- alpha v + (1 - alpha) g^2;  centered: a <- alpha a + (1 - alpha) g, d = sqrt(v - a^2) + eps,
    else d = sqrt(v) + eps;  momentum > 0: b <- momentum b + g / d, p <- p - lr b;  else p <- p - lr g / d."""

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _check(self, hp: dict[str, Any]) -> None:
        _check_nonneg(hp, "lr", "alpha", "eps", "weight_decay", "momentum")

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        alpha = group["alpha"]
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p)
        state["step"] += 1
        v = state["square_avg"]
        v *= alpha
        v += (1.0 - alpha) * (g * g)
        if group["centered"]:
            a = state.setdefault("grad_avg", np.zeros_like(p))
            a *= alpha
            a += (1.0 - alpha) * g
            d = np.sqrt(v - a * a)
        else:
            d = np.sqrt(v)
        d += group["eps"]
        if group["momentum"] > 0:
            buf = state.setdefault("momentum_buffer", np.zeros_like(p))
            buf *= group["momentum"]
            buf += g / d
            p -= group["lr"] * buf
        else:
            p -= group["lr"] * (g / d)
