"""Shared test fixtures (kept small: helpers used by several engine test files)."""
import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq import ops


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed NumPy generator, so every test sees the same data on every run."""
    return np.random.default_rng(0)


def leaf64(a, requires_grad: bool = True) -> tg.Tensor:
    """A float64 leaf tensor holding a copy of `a` (gradcheck perturbs its data in place)."""
    return tg.Tensor(np.array(a, dtype=np.float64), requires_grad=requires_grad)


class NoGradient(ops.Function):
    """z = x, with a backward that returns None: no gradient flows back through it (torch: the same)."""
    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return (None,)
