"""Layers: Linear, Embedding, LayerNorm, Dropout, containers and activation modules."""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor, rng
from . import functional as F
from .module import Module, Parameter


class Linear(Module):
    """y = x Wᵀ + b, W ~ U(-1/√in, 1/√in) as PyTorch"""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        k = 1 / math.sqrt(in_features)
        dt = np.dtype(dtype or np.float32)
        self.weight = Parameter(rng().uniform(-k, k, (out_features, in_features)).astype(dt))
        self.bias = Parameter(rng().uniform(-k, k, out_features).astype(dt)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
