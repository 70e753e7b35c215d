"""`Generator`: a seedable random stream, as `torch.Generator`, for the `generator=` arguments
(DataLoader shuffling, samplers, random_split). Draws come from a wrapped np.random.Generator, so the
numbers differ from torch's; the reproducibility under a seed is the same."""
from __future__ import annotations

import numbers

import numpy as np


class Generator:
    """`Generator(device="cpu")`; `Generator().manual_seed(0)` returns the generator, as torch's does."""

    def __init__(self, device: str = "cpu"):
        if str(device) != "cpu":
            raise RuntimeError(f"Generator: device {device!r} is not available, this engine runs on NumPy (CPU)")
        self.device = "cpu"
        self.seed()

    def manual_seed(self, seed: int) -> "Generator":
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__}")
        # torch reads a negative seed as its 64-bit two's complement; numpy needs it non-negative
        self._seed = int(seed) % 2 ** 64
        self.np = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Reseed from OS entropy and return the new seed."""
        self.manual_seed(int(np.random.SeedSequence().entropy) % 2 ** 64)
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        return self.np.bit_generator.state

    def set_state(self, state: dict) -> "Generator":
        self.np.bit_generator.state = state
        return self

    def __repr__(self) -> str:
        return f"<tinygrad_seq.Generator seed={self._seed}>"


def np_rng(generator: "Generator | np.random.Generator | None" = None) -> np.random.Generator:
    """The NumPy stream to draw from: the generator's, or the library's (`tg.rng()`, set by `tg.manual_seed`)."""
    if generator is None:
        from .tensor import rng
        return rng()
    if isinstance(generator, Generator):
        return generator.np
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"generator must be a tinygrad_seq.Generator, got {type(generator).__name__}")
