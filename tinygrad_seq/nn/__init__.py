"""Neural-network building blocks: Module, Parameter, layers, init, functional, utils.

The sequence layers (`nn.LSTM`, `nn.MultiheadAttention`, `nn.Transformer`, ...) live in
`tinygrad_seq.models`, which itself builds on this package; they are looked up lazily (on first use of the
name) so that importing `tinygrad_seq.nn` does not import the models and no import cycle arises."""
from typing import Any

from . import functional, init, utils  # noqa: F401
from .layers import *  # noqa: F401,F403
from .module import Module, Parameter  # noqa: F401

from .batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d  # noqa: F401,E402

# The one place where torch.nn's names for the sequence layers map onto tinygrad_seq.models.
_FROM_MODELS = ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "MultiheadAttention", "Transformer",
                "TransformerEncoder", "TransformerEncoderLayer", "TransformerDecoder", "TransformerDecoderLayer")


def from_models(name: str, module: str | None = None) -> Any:
    """`tinygrad_seq.models[.module].name`, imported on first use (nn.LSTM, F.scaled_dot_product_attention)."""
    import importlib
    return getattr(importlib.import_module("tinygrad_seq.models" + (f".{module}" if module else "")), name)


def __getattr__(name: str) -> Any:
    if name in _FROM_MODELS:
        value = from_models(name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value
    raise AttributeError(f"module 'tinygrad_seq.nn' has no attribute '{name}'")


def __dir__() -> list:
    return sorted(set(globals()) | set(_FROM_MODELS))
