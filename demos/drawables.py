"""The registry of drawable examples behind `tinygrad-seq graph --model NAME`.

Each entry builds a small model on random data and returns `(loss, model, title)`; the command draws
the graph behind `loss`. Adding a model to the command is one decorated function here: neither viz nor
the command changes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

import tinygrad_seq as tg

# name -> example(steps, hidden, seed, split_heads) -> (loss, model, title)
DRAWABLE: dict[str, Callable] = {}


def drawable(name: str) -> Callable[[Callable], Callable]:
    """Register `fn(steps, hidden, seed, split_heads) -> (loss, model, title)` under `name`."""
    def register(fn: Callable) -> Callable:
        if name in DRAWABLE:
            raise ValueError(f"drawable example {name!r} is registered twice")
        DRAWABLE[name] = fn
        return fn
    return register


def build_graph_model(kind: str, steps: int, hidden: int, seed: int = 0, split_heads: bool = True):
    """(loss, model, title) for the drawable example `kind`, seeded. Attention models run with
    `split_heads` (each head in its own name scope, drawn as its own cluster) unless told otherwise."""
    if kind not in DRAWABLE:
        raise ValueError(f"model must be one of {tuple(DRAWABLE)}, got {kind!r}")
    tg.manual_seed(seed)
    return DRAWABLE[kind](steps, hidden, seed, split_heads)


def _recurrent_probe(kind: str) -> Callable:
    def example(steps: int, hidden: int, seed: int, split_heads: bool):
        from tinygrad_seq.viz.experiments import Probe, probe_loss

        from .data import adding_problem
        model = Probe(kind, hidden)
        x, y = adding_problem(4, steps, np.random.default_rng(seed), dtype=np.float64)
        loss, _ = probe_loss(model, x, y)
        return loss, model, f"{kind.upper()}, T={steps}, loss on the last step"
    example.__doc__ = f"{kind.upper()} layer + linear head on the adding problem, loss on the last step."
    return example


for _kind in ("rnn", "lstm", "gru"):
    drawable(_kind)(_recurrent_probe(_kind))


def _width(hidden: int) -> int:
    return max(4, hidden - hidden % 2)  # 2 heads: an even model size


@drawable("attention")
def _attention(steps: int, hidden: int, seed: int, split_heads: bool):
    """Multi-head self-attention (2 heads) on random inputs, loss = mean(out²)."""
    from tinygrad_seq import models
    d = _width(hidden)
    model = models.MultiheadAttention(d, 2, split_heads=split_heads)
    x = tg.randn(min(steps, 8), 2, d)
    out, _ = model(x, x, x)
    return (out * out).mean(), model, f"multi-head self-attention (2 heads, d={d})"


@drawable("transformer")
def _transformer(steps: int, hidden: int, seed: int, split_heads: bool):
    """A 2+2-layer Transformer (2 heads) on random source/target, causal target mask, loss = mean(out²)."""
    from tinygrad_seq import models
    d = _width(hidden)
    model = models.Transformer(d_model=d, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                               dim_feedforward=2 * d, dropout=0.0)
    models.set_split_heads(model, split_heads)
    src, tgt = tg.randn(min(steps, 6), 2, d), tg.randn(min(steps, 5), 2, d)
    out = model(src, tgt, tgt_mask=models.generate_square_subsequent_mask(tgt.shape[0]))
    return (out * out).mean(), model, f"Transformer (2+2 layers, 2 heads, d={d})"
