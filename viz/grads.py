"""Gradient capture for pictures, and the recurrent-chain measurements and theory.

Everything here reads the graph the engine recorded (`t._ctx`, `.parents`, `.scope`, `.name`); nothing
touches anyone's `.grad`: gradients come from `autograd.run_backward(..., capture=...)` with
`retain_graph=True`, so the user can still call `backward()` afterwards.

BPTT: dL/dh_{k} = (dh_{k+1}/dh_k)ᵀ dL/dh_{k+1} + (direct terms), and for
h_{k+1} = φ(W_hh h_k + U x + b):  ||dh_{k+1}/dh_k|| ≤ σ_max(W_hh) · γ  with γ = max φ'
(1 for tanh, 1/4 for sigmoid)  [Pascanu, Mikolov & Bengio 2013]. Along the LSTM cell path
dL/dc_{k} = f_{k+1} * dL/dc_{k+1} (+ the path through h), so gradients decay like the product of
forget gates: half-life ln 0.5 / ln f̄ steps.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..autograd import _unbroadcast, run_backward
from ..ops import REGISTRY


# ---------------------------------------------------------------------------------------------- op classes
# The ops the pictures reason about, as classes from the engine's one registry (ops.REGISTRY): viz names
# them only here, and an op renamed or removed in the engine fails at import, not as a wrong picture.
def _ops(*names: str) -> frozenset:
    missing = [n for n in names if n not in REGISTRY]
    if missing:
        raise ImportError(f"tinygrad_seq.viz: ops {missing} are not in tinygrad_seq.ops.REGISTRY")
    return frozenset(REGISTRY[n] for n in names)


_OP_NAMES = {cls: name for name, cls in REGISTRY.items()}


def op_name(ctx) -> str:
    """The registry name of the op that made a node (its class name for an op defined outside ops.py)."""
    return _OP_NAMES.get(type(ctx)) or type(ctx).__name__


VIEW_OPS = _ops("Permute", "Reshape", "Cast", "Expand", "GetItem")   # a parameter seen through these is the parameter
SHAPE_OPS = VIEW_OPS | _ops("Cat", "Stack")                          # move a state without computing on it
TRANSPOSE_OPS = _ops("Permute", "Cast")                              # W.T in h @ W_hh.T
MATMUL_OPS = _ops("MatMul", "Linear")
GATE_OP = REGISTRY["Mul"]                                            # g * (carried state)
CARRY_OPS = _ops("Sub", "Add", "Neg")                                # (1 - z) * n + z * h
SLICE_OP = REGISTRY["GetItem"]
# Activation -> γ = sup |φ'| (the per-step Jacobian bound's second factor).
GAMMA = {REGISTRY["Tanh"]: 1.0, REGISTRY["Sigmoid"]: 0.25, REGISTRY["Relu"]: 1.0}
_RELEASED_MSG = ("{who}: the graph behind this tensor was released by backward(); call {who} before "
                 "backward(), or call backward(retain_graph=True)")


def topo_order(root, who: str = "draw_graph") -> list:
    """Every tensor behind `root`, inputs before the ops that use them (iterative DFS, no recursion)."""
    order: list = []
    done: set[int] = set()
    stack: list = [(root, False)]
    while stack:
        t, finished = stack.pop()
        if finished:
            order.append(t)
            continue
        if id(t) in done:
            continue
        done.add(id(t))
        stack.append((t, True))
        ctx = t._ctx
        if ctx is None:
            continue
        if not hasattr(ctx, "parents"):  # autograd._Released
            raise RuntimeError(_RELEASED_MSG.format(who=who))
        for p in reversed(ctx.parents):
            if id(p) not in done:
                stack.append((p, False))
    return order


def capture_grads(root, who: str = "draw_graph") -> dict[int, np.ndarray]:
    """dL/dv for every tensor v behind `root` (keyed by id), L = root (or root.sum() if not scalar).

    Runs the engine's backward in capture mode with retain_graph=True: `.grad` stays as it was and
    the graph can still be backpropagated.
    """
    if not root.requires_grad:
        return {}
    topo_order(root, who)  # raises the clear message if the graph was released
    cap: dict[int, np.ndarray] = {}
    run_backward(root, np.ones(root.numpy().shape, dtype=root.numpy().dtype), True, capture=cap)
    return cap


def norm(a: np.ndarray | None) -> float | None:
    if a is None:
        return None
    return float(np.sqrt(np.sum(np.square(a, dtype=np.float64))))


def edge_grad_norms(t, g: np.ndarray | None) -> list[float | None]:
    """||gradient flowing from op output `t` into each of its inputs|| (the op's local backward)."""
    ctx = t._ctx
    if g is None or ctx is None:
        return [None] * (len(ctx.parents) if ctx is not None else 0)
    out = ctx.backward(g)
    if len(ctx.parents) == 1:
        out = (out,)
    res: list[float | None] = []
    for p, pg in zip(ctx.parents, out):
        if pg is None or not p.requires_grad:
            res.append(None)
        else:
            pg = np.asarray(pg)  # lazily summed weight gradients (autograd.OuterSum) materialise here
            res.append(norm(_unbroadcast(pg, p.numpy().shape) if pg.shape != p.numpy().shape else pg))
    return res


def consumers(order: list) -> dict[int, list]:
    """id(tensor) -> tensors whose op takes it as an input."""
    cons: dict[int, list] = {}
    for t in order:
        ctx = t._ctx
        if ctx is not None:
            for p in ctx.parents:
                cons.setdefault(id(p), []).append(t)
    return cons


@dataclass
class Chain:
    """The per-step states named `name` in module `path`, in the order the forward pass made them."""
    path: str
    name: str
    states: list                                  # tensors, chain order
    steps: list                                   # their time steps
    norms: list = field(default_factory=list)     # ||dL/ds_k||
    ratios: list = field(default_factory=list)    # ||dL/ds_k|| / ||dL/ds_{k+1}||, k = 0..n-2
    kind: str = ""                                # "rnn" (h = φ(...)), "lstm-cell", "gru-carry", "state"
    activation: str | None = None
    sigma_max: float | None = None
    gamma: float | None = None
    gates: list = field(default_factory=list)     # mean carry/forget gate per step (lane chains)
    weight: Any = None                            # the W_hh parameter found on the chain

    @property
    def bound(self) -> float | None:
        return None if self.sigma_max is None else self.sigma_max * self.gamma

    @property
    def mean_ratio(self) -> float | None:
        """Geometric mean per-step ratio (the average of a product of factors)."""
        r = [x for x in self.ratios if x is not None and x > 0 and math.isfinite(x)]
        return float(np.exp(np.mean(np.log(r)))) if r else None

    @property
    def violations(self) -> list[int]:
        """Indices k whose measured ratio exceeds the bound (relative tolerance 1e-6)."""
        b = self.bound
        if b is None:
            return []
        return [k for k, r in enumerate(self.ratios) if r is not None and r > b * (1 + 1e-6)]

    @property
    def mean_gate(self) -> float | None:
        return float(np.mean(self.gates)) if self.gates else None

    @property
    def half_life(self) -> float | None:
        """ln 0.5 / ln f̄: steps until the gradient along the lane halves."""
        f = self.mean_gate
        if f is None or not 0 < f < 1:
            return None if f is None or f <= 0 else math.inf
        return math.log(0.5) / math.log(f)


_STATE_NAME = re.compile(r"^(?!.*_t$)[A-Za-z]\w*$")  # "h", "c", "s": carried states; "f_t" names a term


def find_chains(order: list, grads: dict[int, np.ndarray] | None = None,
                cons: dict[int, list] | None = None) -> list[Chain]:
    """Group the named per-step tensors (".name" = "h", "c", ... inside tg.time_step) into chains.

    Then classify each: a plain RNN state (h = tanh/sigmoid/relu(...)) gets its W_hh and the
    Pascanu bound; an LSTM cell chain "c" and a GRU state (h_k multiplied by a gate on its way to
    h_{k+1}) get the mean gate per step.
    """
    pos = {id(t): i for i, t in enumerate(order)}
    groups: dict[tuple[str, str], list] = {}
    for t in order:
        ctx = t._ctx
        if ctx is None or t.name is None or getattr(ctx, "scope", (None, None))[1] is None:
            continue
        if not _STATE_NAME.match(t.name):  # a formula term of one step ("f_t", "h_{t-1} W_hhᵀ"), not a state
            continue
        groups.setdefault((ctx.scope[0], t.name), []).append(t)
    cons = consumers(order) if cons is None else cons
    chains = []
    for (path, name), states in groups.items():
        if len(states) < 2:
            continue
        states.sort(key=lambda s: pos[id(s)])
        ch = Chain(path, name, states, [s._ctx.scope[1] for s in states])
        if grads is not None:
            ch.norms = [norm(grads.get(id(s))) for s in states]
            ch.ratios = [(a / b) if (a is not None and b) else None for a, b in zip(ch.norms, ch.norms[1:])]
        _classify(ch, cons, has_cell=any(p == path and n == "c" for p, n in groups))
        chains.append(ch)
    chains.sort(key=lambda c: (c.path, c.name != "h", c.name))
    return chains


def _classify(ch: Chain, cons: dict[int, list], has_cell: bool) -> None:
    op = type(ch.states[-1]._ctx)
    if ch.name == "c" or (ch.name == "h" and not has_cell):
        gates = [_carry_gate(a, b, cons) for a, b in zip(ch.states, ch.states[1:])]
        if gates and all(g is not None for g in gates):
            ch.kind = "lstm-cell" if ch.name == "c" else "gru-carry"
            ch.gates = gates
            return
    if op in GAMMA and not has_cell:
        w = _recurrent_weight(ch.states[0], cons)
        if w is not None:
            ch.kind, ch.activation, ch.gamma, ch.weight = "rnn", _OP_NAMES[op], GAMMA[op], w
            ch.sigma_max = float(np.linalg.norm(np.asarray(w.numpy(), dtype=np.float64), 2))
            return
    ch.kind = "state"


def _carry_gate(prev, nxt, cons: dict[int, list]) -> float | None:
    """Mean of the gate g in `nxt = g * (something from prev) + ...` (within 2 ops), if 0 <= g <= 1."""
    targets = {id(p) for p in nxt._ctx.parents} | {id(nxt)}
    frontier, seen = [prev], {id(prev)}
    for _ in range(2):
        nf = []
        for t in frontier:
            for c in cons.get(id(t), ()):
                if type(c._ctx) is GATE_OP and id(c) in targets:
                    other = [p for p in c._ctx.parents if p is not t]
                    if len(other) == 1 and other[0].numpy().size > 1:
                        g = other[0].numpy()
                        if g.min() >= 0 and g.max() <= 1:
                            return float(g.mean())
                if id(c) not in seen and type(c._ctx) in CARRY_OPS:
                    seen.add(id(c))
                    nf.append(c)
        frontier = nf
    return None


def _recurrent_weight(state, cons: dict[int, list]):
    """The 2-D parameter that multiplies `state` in the next step (through shape ops like Cat)."""
    frontier, seen = [state], {id(state)}
    for _ in range(4):
        nf = []
        for t in frontier:
            for c in cons.get(id(t), ()):
                op = type(c._ctx)
                if op in MATMUL_OPS:
                    for p in c._ctx.parents:
                        while p is not t and p._ctx is not None and type(p._ctx) in TRANSPOSE_OPS \
                                and hasattr(p._ctx, "parents"):
                            p = p._ctx.parents[0]  # W.T in h @ W_hh.T
                        if p is not t and p._ctx is None and p.requires_grad and p.numpy().ndim == 2:
                            return p
                elif op in SHAPE_OPS and id(c) not in seen:
                    seen.add(id(c))
                    nf.append(c)
        frontier = nf
    return None


def state_grad_norms(loss, states: list) -> list[float | None]:
    """||dL/ds|| for each tensor in `states` (e.g. return_states=True's per-step h), `.grad` untouched."""
    cap = capture_grads(loss, who="state_grad_norms")
    return [norm(cap.get(id(s))) for s in states]
