"""The vanishing-gradient experiment behind `tinygrad-seq vanishing` and the sweep plots.

A probe = one recurrent layer (models.RNN / LSTM / GRU) and a linear head on the last state,
ŷ = W h_T + b, with L = mean (ŷ - y)². The loss sees only h_T, so ||dL/dh_t|| for t < T measures how
much gradient survives T-1-t steps of BPTT. The data comes in from the caller (the command feeds the
adding problem, Hochreiter & Schmidhuber 1997, from demos/data.py): x (n, T, input_size), y (n, 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq.nn import Linear, Module

from .grads import Theory, capture_grads, chain_theory, find_chains, half_life, meanfield_rate, norm, topo_order

CELL_NAMES = ("rnn", "lstm", "gru")


class Probe(Module):
    """`cell` layer (batch_first) + head: ŷ = W h_T + b. Attribute named after the cell ("lstm"), so
    parameters read `lstm.weight_hh_l0` as in PyTorch."""

    def __init__(self, cell: str, hidden: int, input_size: int = 2, dtype=np.float64, **cell_kw):
        super().__init__()
        from tinygrad_seq.models import GRU, LSTM, RNN
        classes = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
        if cell not in classes:
            raise ValueError(f"cell must be one of {sorted(classes)}, got {cell!r}")
        self.cell = cell
        setattr(self, cell, classes[cell](input_size, hidden, batch_first=True, dtype=dtype, **cell_kw))
        self.head = Linear(hidden, 1, dtype=dtype)

    @property
    def layer(self):
        return getattr(self, self.cell)

    def forward(self, x):
        out, _, states = self.layer(x, return_states=True)
        return self.head(out[:, -1].named("h_T")).named("ŷ"), states


def probe_loss(model: Probe, x, y):
    """(L = mean (ŷ - y)², per-step states dict from return_states=True)"""
    pred, states = model(tg.Tensor(x).named("x") if not isinstance(x, tg.Tensor) else x)
    d = pred - tg.Tensor(y).named("y")
    return (d * d).mean(), states


@dataclass
class Measurement:
    """||dL/dh_t|| (and ||dL/dc_t||) of one probe on one batch, with the chain's theory numbers."""
    cell: str
    loss: float
    h: np.ndarray
    c: np.ndarray | None = None
    bound: float | None = None          # RNN: σ_max(W_hh)·γ
    mean_ratio: float | None = None     # geometric-mean per-step ratio on the h chain
    mean_gate: float | None = None      # LSTM: mean forget gate; GRU: mean z (carry)
    half_life: float | None = None      # measured: ln 0.5 / ln mean_ratio
    violations: list = field(default_factory=list)
    theory: Theory | None = None        # measured vs predicted (see grads.DEFINITIONS)

    def decay(self) -> float | None:
        """Per-step factor fitted end to end: (||dL/dh_0|| / ||dL/dh_(T-1)||)^(1/(T-1))."""
        h = self.h
        if len(h) < 2 or not h[0] > 0 or not h[-1] > 0:
            return None
        return float((h[0] / h[-1]) ** (1 / (len(h) - 1)))


def measure(model: Probe, x, y, with_theory: bool = True) -> Measurement:
    """Gradients at every step via a capture-mode backward (no `.grad` touched), and (with_theory) the
    `Theory` next to them."""
    loss, states = probe_loss(model, x, y)
    cap = capture_grads(loss, "measure")
    hs = states["h"][0]
    m = Measurement(model.cell, float(loss.item()), np.array([norm(cap.get(id(s))) or 0.0 for s in hs]))
    if "c" in states:
        m.c = np.array([norm(cap.get(id(s))) or 0.0 for s in states["c"][0]])
    chains = find_chains(topo_order(loss, "measure"), cap)
    for ch in chains:
        if ch.name == "h" and ch.kind == "rnn":
            m.bound, m.violations = ch.bound, [ch.steps[k + 1] for k in ch.violations]
        if ch.name == "h":
            m.mean_ratio, m.half_life = ch.mean_ratio, ch.half_life
        if ch.kind in ("lstm-cell", "gru-carry"):
            m.mean_gate = ch.mean_gate
    if with_theory:
        m.theory = theory(model, x, y, chains=chains, states=states, grads=cap)
    return m


def step_jacobians(model: Probe, x, states: dict) -> np.ndarray:
    """J[t-1, b] = ∂s_t/∂s_(t-1) for t = 1..T-1 and every sequence b, s = h (RNN, GRU) or (h, c) (LSTM):
    the layer's own step function (its kernel) differentiated by the engine, one row per output unit."""
    layer = model.layer
    W_ih, b, step = layer.kernel(0)
    xw = tg.nn.functional.linear(tg.Tensor(np.swapaxes(np.asarray(x, dtype=np.float64), 0, 1)), W_ih, b).numpy()
    hs = [s.numpy() for s in states["h"][0]]
    cs = [s.numpy() for s in states["c"][0]] if "c" in states else None
    T, B, H = len(hs), hs[0].shape[0], hs[0].shape[1]
    S = 2 * H if cs is not None else H
    eye = np.tile(np.eye(S), (B, 1))  # row (b, j): e_j, the output unit whose Jacobian row it computes
    J = np.empty((T - 1, B, S, S))
    for t in range(1, T):
        prev = [tg.Tensor(np.repeat(a[t - 1], S, axis=0), requires_grad=True)
                for a in ((hs, cs) if cs is not None else (hs,))]
        new = step(tg.Tensor(np.repeat(xw[t], S, axis=0)), *prev)
        outs = [n for n in new][:len(prev)]
        gos = [tg.Tensor(eye[:, i * H:(i + 1) * H]) for i in range(len(prev))]
        gr = tg.autograd.grad(outs, prev, grad_outputs=gos)
        J[t - 1] = np.concatenate([g.numpy() for g in gr], axis=1).reshape(B, S, S)
    return J


def theory(model: Probe, x, y, chains=None, states=None, grads=None) -> Theory:
    """Measured ×r per step (h chain) next to the predictors of `grads.DEFINITIONS` for a probe on (x, y).

    The mean-field prediction uses the layer's step Jacobians (`step_jacobians`), except for the tanh RNN
    whose h chain gives it in closed form (`Chain.meanfield_rate`, the same J̄); the lane and the Pascanu
    numbers come from the chains the graph shows (`find_chains`)."""
    if chains is None:
        loss, states = probe_loss(model, x, y)
        grads = capture_grads(loss, "theory")
        chains = find_chains(topo_order(loss, "theory"), grads)
    h = next(ch for ch in chains if ch.name == "h")
    lane = next((ch for ch in chains if ch.kind in ("lstm-cell", "gru-carry")), None)
    th = chain_theory(model.cell, h, lane)
    if th.predicted_rate is not None:  # tanh RNN: the chain gave J̄ = diag(mean φ')·W_hh already (no engine Jacobians)
        return th
    T, H = len(h.states), h.states[0].numpy().shape[-1]
    J = step_jacobians(model, x, states)
    lam = np.asarray(grads[id(h.states[-1])], dtype=np.float64)
    if J.shape[-1] > H:  # LSTM: the step's outputs are (h, c); the loss reads h_(T-1) only
        lam = np.concatenate([lam, np.zeros_like(lam)], axis=-1)
    th.predicted_rate = meanfield_rate(J.mean(0), lam, T, lambda v: v[:, :H])
    th.predicted_half_life = half_life(th.predicted_rate)
    th.spectral_radius = float(max(abs(np.linalg.eigvals(J.mean((0, 1))))))
    return th


def train(model: Probe, batches: Iterable[tuple[np.ndarray, np.ndarray]], lr: float = 1e-2,
          clip: float = 1.0) -> list[float]:
    """One Adam step per (x, y) batch of `batches`; returns the loss per step."""
    opt = tg.optim.Adam(list(model.parameters()), lr=lr)
    losses = []
    for x, y in batches:
        loss, _ = probe_loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        tg.nn.utils.clip_grad_norm_(list(model.parameters()), clip)
        opt.step()
        losses.append(float(loss.item()))
    return losses


def orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random orthogonal matrix (QR of a Gaussian, signs fixed): every singular value is 1."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def sweep_forget_bias(x, y, biases=(0.0, 1.0, 3.0, 5.0), hidden: int = 32,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """||dL/dh_t|| of an LSTM probe on (x, y) for each forget bias b, LSTM(forget_bias=b): b added to the
    forget slice of b_ih at init, as in the main demo (grads.DEFINITIONS["forget_bias"]), so the b = 1
    curve is the main demo's LSTM."""
    out = {}
    for b in biases:
        tg.manual_seed(seed)
        m = Probe("lstm", hidden, input_size=np.shape(x)[-1], forget_bias=float(b))
        out[f"LSTM, forget bias {b:g}"] = measure(m, x, y, with_theory=False).h
    return out


def sweep_sigma(x, y, sigmas=(0.5, 0.9, 1.0, 1.5), hidden: int = 32,
                seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """||dL/dh_t|| of a tanh RNN probe on (x, y) with W_hh = σ · (orthogonal), for each σ = σ_max(W_hh).

    Returns (curves, bounds) where bounds[label] = σ·γ, the Pascanu per-step bound (γ = 1 for tanh).
    """
    curves, bounds = {}, {}
    for s in sigmas:
        tg.manual_seed(seed)
        m = Probe("rnn", hidden, input_size=np.shape(x)[-1])
        m.rnn.weight_hh_l0.numpy()[...] = s * orthogonal(hidden, np.random.default_rng(seed + 7))
        meas = measure(m, x, y, with_theory=False)
        label = f"RNN, σ_max(W_hh) = {s:g}"
        curves[label], bounds[label] = meas.h, s * 1.0
    return curves, bounds
