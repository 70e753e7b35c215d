"""Adam and AdamW (PyTorch's formulation, including amsgrad)."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from .optimizer import Optimizer, _check_fraction, _check_nonneg


class Adam(Optimizer):
    """t <- t + 1;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  (amsgrad: v_max <- max(v_max, v),
    used for v);  p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    weight_decay is L2 (g <- g + wd p) unless decoupled_weight_decay (AdamW: p <- p (1 - lr wd))."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _check(self, hp: dict[str, Any]) -> None:
        _check_nonneg(hp, "lr", "eps", "weight_decay")
        betas = hp.get("betas", (0.9, 0.999))
        if len(betas) != 2:
            raise ValueError(f"Invalid betas: {betas!r} (need two values)")
        _check_fraction("betas[0]", betas[0])
        _check_fraction("betas[1]", betas[1])

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * (g * g)
        if group["amsgrad"]:
            v_max = state.setdefault("max_exp_avg_sq", np.zeros_like(p))
            np.maximum(v_max, v, out=v_max)
            v = v_max
        denom = np.sqrt(v)
        denom /= math.sqrt(1.0 - beta2 ** t)
        denom += group["eps"]
        p -= (group["lr"] / (1.0 - beta1 ** t)) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p (1 - lr weight_decay) before the Adam step."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
