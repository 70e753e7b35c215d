"""Adagrad (PyTorch's formulation)."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .optimizer import Optimizer, _check_nonneg


class Adagrad(Optimizer):
    """t <- t + 1;  clr = lr / (1 + (t - 1) lr_decay);  s <- s + g^2 (s starts at
    initial_accumulator_value);  p <- p - clr g / (sqrt(s) + eps)."""

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _check(self, hp: dict[str, Any]) -> None:
        _check_nonneg(hp, "lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(p, group["initial_accumulator_value"])
        state["step"] += 1
        clr = group["lr"] / (1.0 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += g * g
        std = np.sqrt(s)
        std += group["eps"]
        p -= clr * (g / std)
