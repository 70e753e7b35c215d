"""The registry of drawable examples behind `tinygrad-seq graph --model NAME`.

Each entry builds a small model on random data and returns `(loss, model, title)`; the command draws
the graph behind `loss`. Adding a model to the command is one decorated function here: neither viz nor
the command changes.
"""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq.nn import functional as F

# name -> example(steps, hidden, seed, split_heads, **options) -> (loss, model, title)
DRAWABLE: dict[str, Callable] = {}
# name -> the draw_graph depth its picture uses by default (None: every op)
DEFAULT_DEPTH: dict[str, int | None] = {}
# the examples with attention heads, the only ones `split_heads=False` (--batched-heads) changes
HAS_HEADS: set[str] = set()


def drawable(name: str, depth: int | None = None, heads: bool = False) -> Callable[[Callable], Callable]:
    """Register `fn(steps, hidden, seed, split_heads) -> (loss, model, title)` under `name`, drawn by
    default with draw_graph(depth=depth) (None: every op); `heads`: it has attention heads. Options such
    as `train=N` or `layers=N` are keyword arguments the example may accept."""
    def register(fn: Callable) -> Callable:
        if name in DRAWABLE:
            raise ValueError(f"drawable example {name!r} is registered twice")
        DRAWABLE[name] = fn
        DEFAULT_DEPTH[name] = depth
        if heads:
            HAS_HEADS.add(name)
        return fn
    return register


def build_graph_model(kind: str, steps: int, hidden: int, seed: int = 0, split_heads: bool = True, **options):
    """(loss, model, title) for the drawable example `kind`, seeded. Attention models run with
    `split_heads` (each head in its own name scope, drawn as its own cluster) unless told otherwise.
    `options` (train=N Adam steps first, layers=N) go to examples that take them; others must not get one."""
    if kind not in DRAWABLE:
        raise ValueError(f"model must be one of {tuple(DRAWABLE)}, got {kind!r}")
    fn = DRAWABLE[kind]
    params = inspect.signature(fn).parameters
    given = {k: v for k, v in options.items() if v}
    bad = [k for k in given if k not in params]
    if not split_heads and kind not in HAS_HEADS:
        bad.insert(0, "batched-heads")
    if bad:
        raise ValueError(f"--{bad[0]} does not apply to --model {kind}")
    tg.manual_seed(seed)
    return fn(steps, hidden, seed, split_heads, **given)


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


VOCAB, BOS = 10, 1  # tokens 2..9 are data, 1 starts the target


def _copy_batch(rng: np.random.Generator, B: int, S: int):
    """A copy batch: source tokens (B, S); the target is the same sequence (teacher forcing: BOS + all
    but the last as decoder input)."""
    src = rng.integers(2, VOCAB, (B, S))
    return src, np.concatenate([np.full((B, 1), BOS), src[:, :-1]], 1), src


def _fit(model, loss_of, batches, train: int) -> str:
    """`train` Adam steps (lr 1e-2) on fresh batches; the words the title states about it."""
    if not train:
        return "at init"
    opt = tg.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(train):
        loss = loss_of(*batches())
        first = float(loss.item()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    return f"after {train} Adam steps (L {first:.2f} → {float(loss.item()):.2f})"


class SelfAttentionReverser(tg.nn.Module):
    """logits = W_out (x + MHA(x, x, x)) + b,  x = E[tokens]·√d + PE: one self-attention layer with a
    residual, trained to output its input reversed (position i must attend to position S-1-i)."""

    def __init__(self, d: int, heads: int, split_heads: bool):
        super().__init__()
        from tinygrad_seq import models
        self.embed = models.TokenEmbedding(VOCAB, d)
        self.pos = models.PositionalEncoding(d, dropout=0.0)
        self.self_attn = models.MultiheadAttention(d, heads, batch_first=True, split_heads=split_heads)
        self.generator = tg.nn.Linear(d, VOCAB)

    def forward(self, tokens):
        x = self.pos(self.embed(tokens))
        return self.generator((x + self.self_attn(x, x, x, need_weights=False)[0]).named("residual")).named("logits")


@drawable("attention", heads=True)
def _attention(steps: int, hidden: int, seed: int, split_heads: bool, train: int = 0):
    """Self-attention (2 heads) + residual + linear head; cross-entropy of reversing a token batch."""
    d, S = _width(hidden), max(2, min(steps, 8))
    model = SelfAttentionReverser(d, 2, split_heads)
    rng = np.random.default_rng(seed)

    def batch():
        src = rng.integers(2, VOCAB, (4, S))
        return src, src[:, ::-1].copy()

    def loss_of(src, y):
        return F.cross_entropy(model(src).reshape(-1, VOCAB), tg.Tensor(y.reshape(-1))).named("cross-entropy")
    when = _fit(model, loss_of, batch, train)
    loss = loss_of(*batch())
    return loss, model, (f"self-attention (2 heads, d={d}) + residual: cross-entropy of reversing 4×{S} tokens "
                         f"{when}, L = {float(loss.item()):.3f}")


@drawable("transformer", depth=3, heads=True)
def _transformer(steps: int, hidden: int, seed: int, split_heads: bool, train: int = 0, layers: int = 2):
    """A Transformer (`layers`+`layers`, 2 heads) with token embeddings and a generator; cross-entropy of
    copying a batch of token sequences (teacher forcing, causal target mask)."""
    from tinygrad_seq import models
    d, S = _width(hidden), max(2, min(steps, 6))
    model = models.Seq2SeqTransformer(layers, layers, d, 2, VOCAB, VOCAB, dim_feedforward=2 * d, dropout=0.0)
    models.set_split_heads(model, split_heads)
    rng = np.random.default_rng(seed)

    def loss_of(src, tgt_in, tgt_out):
        return F.cross_entropy(model(src, tgt_in).reshape(-1, VOCAB),
                               tg.Tensor(tgt_out.reshape(-1))).named("cross-entropy")
    when = _fit(model, loss_of, lambda: _copy_batch(rng, 4, S), train)
    loss = loss_of(*_copy_batch(rng, 4, S))
    return loss, model, (f"Transformer ({layers}+{layers} layers, 2 heads, d={d}): cross-entropy of copying "
                         f"4×{S} tokens {when}, L = {float(loss.item()):.3f}")
