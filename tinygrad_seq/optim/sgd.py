"""Stochastic gradient descent with momentum (PyTorch's formulation)."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .optimizer import Optimizer, _check_nonneg


class SGD(Optimizer):
    """g <- g + weight_decay * p;  b <- g on the first step, else b <- momentum * b + (1 - dampening) * g;
    g <- g + momentum * b if nesterov else b;  p <- p - lr * g.   (maximize: g <- -g first.)"""

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _check(self, hp: dict[str, Any]) -> None:
        _check_nonneg(hp, "lr", "momentum", "weight_decay")
        if hp.get("nesterov") and (hp.get("momentum", 0) <= 0 or hp.get("dampening", 0) != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={hp.get('momentum')}, dampening={hp.get('dampening')})")

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype, copy=True)
            else:
                buf *= momentum
                buf += (1.0 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p -= group["lr"] * g
