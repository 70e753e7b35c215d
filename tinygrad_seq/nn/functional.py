"""Functional forms of the layers and losses (`import tinygrad_seq.nn.functional as F`)."""
from __future__ import annotations

from .. import ops
from ..tensor import Tensor


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b  (weight: out_features × in_features, as PyTorch)"""
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input shape {x.shape} does not match weight shape {weight.shape} "
                         f"(last dim {x.shape[-1]} vs in_features {weight.shape[-1]})")
    if bias is None:
        return ops.Linear.apply(x, weight)
    return ops.Linear.apply(x, weight, bias)
