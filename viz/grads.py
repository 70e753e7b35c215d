"""Gradient capture for pictures, and the recurrent-chain measurements and theory.

Everything here reads the graph the engine recorded (`t._ctx`, `.parents`, `.scope`, `.name`); nothing
touches anyone's `.grad`: gradients come from `autograd.run_backward(..., capture=...)` with
`retain_graph=True`, so the user can still call `backward()` afterwards.

BPTT: dL/dh_{k} = (dh_{k+1}/dh_k)ᵀ dL/dh_{k+1} + (direct terms). The definitions every picture,
table and page uses (one place: `DEFINITIONS`, printed in the legends):

- "×r per step" of a chain s (h, or the LSTM's c, always named):  r = (‖∂L/∂s_0‖ / ‖∂L/∂s_(T-1)‖)^(1/(T-1)),
  the geometric mean of ‖∂L/∂s_k‖ / ‖∂L/∂s_(k+1)‖ over the whole chain; half-life = ln 0.5 / ln r steps.
- Pascanu condition (Pascanu, Mikolov & Bengio 2013), h_{k+1} = φ(W_hh h_k + U x + b):
  ‖∂h_{k+1}/∂h_k‖ = ‖diag(φ') W_hh‖ ≤ σ_max(W_hh)·γ, γ = sup φ' (1 tanh, ¼ sigmoid). Below 1 vanishing is
  guaranteed; it is a sufficient condition, not a prediction of r. A step "breaks it" only if its
  Jacobian norm exceeds it (impossible for a correct γ; gradient ratios are not Jacobians).
- mean-field prediction: every step Jacobian ∂s_t/∂s_(t-1) replaced by its time average J̄ (per sequence),
  and the loss's own gradient at the last step carried back through J̄; its long-distance limit is the
  spectral radius ρ(J̄), for a tanh RNN ρ(diag(mean tanh') W_hh) (≈ ρ(W_hh)·mean tanh' when the units
  share one mean tanh').
- cell lane alone (LSTM c, GRU carry): ∂L/∂c_k = f_(k+1) ⊙ ∂L/∂c_(k+1) with the path through h dropped,
  i.e. the per-unit product of the gates applied to the gradient the loss puts on each unit. The norm of a
  product is set by the units whose gates stay highest, so the arithmetic mean gate f̄ does not predict it.
"""
from __future__ import annotations

import functools
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
MATMUL_OP, PERMUTE_OP = REGISTRY["MatMul"], REGISTRY["Permute"]
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


def local_grads(t, g: np.ndarray) -> list:
    """The gradient op output `t` sends to each input (its local backward of g), shaped like the input;
    None for an input without a gradient."""
    ctx = t._ctx
    out = ctx.backward(g)
    if len(ctx.parents) == 1:
        out = (out,)
    res: list = []
    for p, pg in zip(ctx.parents, out):
        if pg is None or not p.requires_grad:
            res.append(None)
            continue
        pg = np.asarray(pg)  # lazily summed weight gradients (autograd.OuterSum) materialise here
        res.append(_unbroadcast(pg, p.numpy().shape) if pg.shape != p.numpy().shape else pg)
    return res


def edge_grad_norms(t, g: np.ndarray | None) -> list[float | None]:
    """||gradient flowing from op output `t` into each of its inputs|| (the op's local backward)."""
    ctx = t._ctx
    if g is None or ctx is None:
        return [None] * (len(ctx.parents) if ctx is not None else 0)
    return [norm(pg) for pg in local_grads(t, g)]


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
    gate_arrays: list = field(default_factory=list)  # the gate g_k in s_(k+1) = g_k * s_k + ..., per unit
    weight: Any = None                            # the W_hh parameter found on the chain
    weight_transposed: bool = True                # state @ W.T (Jacobian diag(φ')·W) or state @ W
    last_grad: Any = None                         # ∂L/∂s_(n-1) (the loss's gradient at the chain's end)

    @property
    def bound(self) -> float | None:
        return None if self.sigma_max is None else self.sigma_max * self.gamma

    @property
    def mean_ratio(self) -> float | None:
        """Geometric mean per-step ratio (the average of a product of factors)."""
        r = [x for x in self.ratios if x is not None and x > 0 and math.isfinite(x)]
        return float(np.exp(np.mean(np.log(r)))) if r else None

    @property
    def rate(self) -> float | None:
        """×r per step: the geometric-mean ratio over the whole chain (see the module docstring)."""
        return self.mean_ratio

    @property
    def half_life(self) -> float | None:
        """Measured half-life ln 0.5 / ln r (steps until the chain's gradient halves)."""
        return half_life(self.mean_ratio)

    def _dphi(self) -> np.ndarray | None:
        """φ'(a_k) of every state after the first, (n-1, B.., H), from the state values themselves."""
        if self.kind != "rnn":
            return None
        hs = np.stack([np.asarray(s.numpy(), dtype=np.float64) for s in self.states[1:]])
        return {"Tanh": lambda h: 1 - h * h, "Sigmoid": lambda h: h * (1 - h),
                "Relu": lambda h: (h > 0).astype(np.float64)}[self.activation](hs)

    def _w(self) -> np.ndarray | None:
        if self.weight is None:
            return None
        w = np.asarray(self.weight.numpy(), dtype=np.float64)
        return w if self.weight_transposed else w.T

    @functools.cached_property
    def jacobian_norms(self) -> list[float]:
        """RNN: ‖∂h_(k+1)/∂h_k‖ = max over sequences of ‖diag(φ'_(k+1)) W_hh‖₂, k = 0..n-2."""
        d, w = self._dphi(), self._w()
        if d is None or w is None or w.shape[0] != w.shape[1] or d.shape[-1] != w.shape[0]:
            return []
        d = d.reshape(d.shape[0], -1, d.shape[-1])
        # ‖D W‖₂² = λ_max(D W Wᵀ D): one symmetric eigenproblem per step and sequence (cheaper than an SVD)
        gram = (d[..., :, None] * (w @ w.T)) * d[..., None, :]
        top = np.linalg.eigvalsh(gram)[..., -1]
        return [float(x) for x in np.sqrt(np.maximum(top, 0.0)).max(axis=1)]

    @property
    def violations(self) -> list[int]:
        """Indices k whose step Jacobian norm exceeds the Pascanu bound (relative tolerance 1e-6)."""
        b = self.bound
        if b is None:
            return []
        return [k for k, j in enumerate(self.jacobian_norms) if j > b * (1 + 1e-6)]

    @property
    def mean_dphi(self) -> float | None:
        d = self._dphi()
        return None if d is None else float(d.mean())

    @property
    def rho_w(self) -> float | None:
        """RNN: spectral radius ρ(W_hh) (largest |eigenvalue|)."""
        w = self._w()
        return None if w is None or w.shape[0] != w.shape[1] else float(max(abs(np.linalg.eigvals(w))))

    @property
    def rho_jbar(self) -> float | None:
        """RNN: ρ(J̄) = ρ(diag(mean φ') W_hh), the mean-field long-distance rate."""
        d, w = self._dphi(), self._w()
        if d is None or w is None or w.shape[0] != w.shape[1]:
            return None
        return float(max(abs(np.linalg.eigvals(d.reshape(-1, d.shape[-1]).mean(0)[:, None] * w))))

    @property
    def meanfield_rate(self) -> float | None:
        """RNN: the loss's gradient at the last step carried back n-1 times through each sequence's J̄."""
        d, w = self._dphi(), self._w()
        if d is None or w is None or self.last_grad is None or w.shape[0] != w.shape[1]:
            return None
        g = np.asarray(self.last_grad, dtype=np.float64).reshape(-1, w.shape[0])
        jbar = d.reshape(d.shape[0], -1, d.shape[-1]).mean(0)[:, :, None] * w  # (B, H, H)
        return meanfield_rate(jbar, g, len(self.states), lambda v: v)

    @property
    def mean_gate(self) -> float | None:
        """Arithmetic mean gate f̄ (shown for reference: it does not predict the decay)."""
        return float(np.mean(self.gates)) if self.gates else None

    @property
    def dominant_gate(self) -> float | None:
        """Largest per-unit geometric-mean gate: the long-distance rate of the lane alone."""
        if not self.gate_arrays:
            return None
        with np.errstate(divide="ignore"):
            lg = np.log(np.stack([np.asarray(g, dtype=np.float64) for g in self.gate_arrays]))
        return float(np.exp(lg.mean(0)).max())

    @property
    def lane_norms(self) -> list[float] | None:
        """‖(∏_(j=k..n-2) g_j) ⊙ ∂L/∂s_(n-1)‖ for k = 0..n-1: the lane alone, from the loss's gradient."""
        if not self.gate_arrays or self.last_grad is None:
            return None
        v = np.asarray(self.last_grad, dtype=np.float64)
        out = [norm(v)]
        for g in reversed(self.gate_arrays):
            v = v * g
            out.append(norm(v))
        return out[::-1]

    @property
    def lane_rate(self) -> float | None:
        ln = self.lane_norms
        return None if not ln else geo_rate(ln[0], ln[-1], len(ln) - 1)


def half_life(r: float | None) -> float | None:
    """ln 0.5 / ln r: steps until a gradient shrinking ×r per step halves (∞ if r >= 1)."""
    if r is None or not r > 0 or not math.isfinite(r):
        return None
    return math.inf if r >= 1 else math.log(0.5) / math.log(r)


def geo_rate(first: float | None, last: float | None, n: int) -> float | None:
    """Per-step factor r with first = r^n · last (gradient ratio going one step back in time)."""
    if not first or not last or n <= 0:
        return None
    return float((first / last) ** (1.0 / n))


def meanfield_rate(jbar: np.ndarray, last: np.ndarray, n: int, read) -> float | None:
    """×r per step of ‖read(λ_k)‖ over k = n-1..0, λ_(n-1) = `last` (B, S), λ_k = λ_(k+1) J̄_b (jbar (B, S, S))."""
    v = np.asarray(last, dtype=np.float64)
    end = norm(read(v))
    if not end or n < 2:
        return None
    logs = 0.0
    for _ in range(n - 1):
        v = np.einsum("bi,bij->bj", v, jbar)
        s = norm(v)
        if not s:
            return None
        logs += math.log(s)
        v = v / s  # rescaled every step: 1000 steps of ×0.5 must not underflow
    first = norm(read(v))
    return None if not first else math.exp((math.log(first) + logs - math.log(end)) / (n - 1))


def fmt_rate(r: float | None) -> str:
    return "n/a" if r is None else f"×{r:.3g}"


def fmt_hl(h: float | None) -> str:
    if h is None:
        return "n/a"
    return "∞" if h == math.inf else f"{h:.3g}"


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
            ch.last_grad = grads.get(id(states[-1]))
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
            ch.gate_arrays = gates
            ch.gates = [float(g.mean()) for g in gates]
            return
    if op in GAMMA and not has_cell:
        w, transposed = _recurrent_weight(ch.states[0], cons)
        if w is not None:
            ch.kind, ch.activation, ch.gamma, ch.weight = "rnn", _OP_NAMES[op], GAMMA[op], w
            ch.weight_transposed = transposed
            ch.sigma_max = float(np.linalg.norm(np.asarray(w.numpy(), dtype=np.float64), 2))
            return
    ch.kind = "state"


def _carry_gate(prev, nxt, cons: dict[int, list]) -> np.ndarray | None:
    """The gate g (float64 array) in `nxt = g * (something from prev) + ...` (within 2 ops), if 0 <= g <= 1."""
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
                        if g.min() >= 0 and g.max() <= 1 and g.shape == prev.numpy().shape:
                            return np.asarray(g, dtype=np.float64)
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
                        flips = 0
                        while p is not t and p._ctx is not None and type(p._ctx) in TRANSPOSE_OPS \
                                and hasattr(p._ctx, "parents"):
                            flips += type(p._ctx) is PERMUTE_OP
                            p = p._ctx.parents[0]  # W.T in h @ W_hh.T
                        if p is not t and p._ctx is None and p.requires_grad and p.numpy().ndim == 2:
                            # h @ W.T (or F.linear(h, W)) has Jacobian diag(φ')·W: "transposed"
                            return p, (flips % 2 == 1) if op is MATMUL_OP else (flips % 2 == 0)
                elif op in SHAPE_OPS and id(c) not in seen:
                    seen.add(id(c))
                    nf.append(c)
        frontier = nf
    return None, True


def state_grad_norms(loss, states: list) -> list[float | None]:
    """||dL/ds|| for each tensor in `states` (e.g. return_states=True's per-step h), `.grad` untouched."""
    cap = capture_grads(loss, who="state_grad_norms")
    return [norm(cap.get(id(s))) for s in states]


# ---------------------------------------------------------------------------------------------- theory
DEFINITIONS = {
    "rate": "×r per step = (‖∂L/∂h_0‖ / ‖∂L/∂h_(T-1)‖)^(1/(T-1)): the geometric mean of "
            "‖∂L/∂h_k‖/‖∂L/∂h_(k+1)‖ "
            "over the whole h chain (the same on the c chain where it says ∂L/∂c); half-life = ln 0.5 / ln r steps",
    "forget_bias": "forget bias b = b added to the forget-gate slice of b_ih at init (LSTM(forget_bias=b)); "
                   "every other weight and bias keeps the PyTorch init U(-1/√H, 1/√H)",
    "mean_field": "predicted (mean-field) = the gradient of the loss at t = T-1 carried back through J̄, the time "
                  "average of the step Jacobians ∂(h,c)_t/∂(h,c)_(t-1) of each sequence; its far-from-the-loss "
                  "rate is the spectral radius ρ(J̄) (tanh RNN: ρ(diag(mean tanh′)·W_hh))",
    "pascanu": "Pascanu condition: ‖∂h_t/∂h_(t-1)‖ ≤ σ_max(W_hh)·γ (γ = sup φ′: 1 tanh, ¼ sigmoid); below 1 "
               "vanishing is guaranteed; it bounds, it does not predict",
    "lane": "lane alone = ∂L/∂s_k = g_(k+1) ⊙ ∂L/∂s_(k+1) on the lane s (LSTM: c, g = f; GRU: h, g = z) without "
            "the other paths: the per-unit product of the gates applied to the gradient of the loss at the last step "
            "(the units whose gates stay highest set its norm, so the mean gate does not predict it)",
}


@dataclass
class Theory:
    """The measured decay of one recurrent probe next to what predicts it (definitions: `DEFINITIONS`).

    Rates are per step (×r), half-lives in steps (ln 0.5 / ln r). None where a quantity does not apply.
    """
    cell: str                                  # "rnn", "lstm", "gru"
    T: int
    rate: float | None                         # measured ×r on the h chain
    half_life: float | None
    predicted_rate: float | None = None        # mean-field: loss gradient carried back through J̄ (h part)
    predicted_half_life: float | None = None
    spectral_radius: float | None = None       # ρ(J̄): the mean-field rate far from the loss
    # tanh RNN
    sigma_max: float | None = None             # σ_max(W_hh)
    gamma: float | None = None                 # sup φ'
    pascanu: float | None = None               # σ_max(W_hh)·γ: sufficient condition (< 1 => vanishing)
    rho_w: float | None = None                 # ρ(W_hh)
    mean_dphi: float | None = None             # mean tanh' over steps, sequences and units
    max_jacobian: float | None = None          # max_t ‖∂h_t/∂h_(t-1)‖ (per sequence, 2-norm)
    violations: list = field(default_factory=list)  # steps t with ‖∂h_t/∂h_(t-1)‖ > σ_max·γ
    # LSTM (c lane) / GRU (carry lane)
    lane_chain: str | None = None              # "c" (LSTM) or "h" (GRU)
    lane_measured: float | None = None         # measured ×r on the lane chain
    lane_rate: float | None = None             # lane alone (per-unit gate product on the loss's gradient)
    lane_half_life: float | None = None
    dominant_gate: float | None = None         # max over units of the geometric-mean gate
    mean_gate: float | None = None             # arithmetic mean gate f̄ / z̄ (not a predictor)

    @property
    def rho_w_dphi(self) -> float | None:
        """ρ(W_hh)·mean tanh' (the RNN's mean-field rate in one product)."""
        return None if self.rho_w is None or self.mean_dphi is None else self.rho_w * self.mean_dphi

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["rho_w_dphi"] = self.rho_w_dphi
        return {k: (None if isinstance(v, float) and not math.isfinite(v) and v != math.inf else v)
                for k, v in d.items()}

    # --------------------------------------------------------------- the one wording of every number
    def measured_text(self) -> str:
        return f"∂L/∂h {fmt_rate(self.rate)} per step, half-life {fmt_hl(self.half_life)} steps"

    def predicted_text(self) -> str:
        return f"mean-field {fmt_rate(self.predicted_rate)}, half-life {fmt_hl(self.predicted_half_life)} steps"

    def condition_text(self) -> str:
        if self.pascanu is None:
            return ""
        verdict = "< 1: vanishing guaranteed" if self.pascanu < 1 else "≥ 1: vanishing not guaranteed"
        return f"Pascanu σ_max(W_hh)·γ = {self.pascanu:.3g} {verdict}"

    def lane_text(self) -> str:
        if self.lane_rate is None:
            return ""
        g = "f" if self.cell == "lstm" else "z"
        return (f"{self.lane_chain} lane alone {fmt_rate(self.lane_rate)}, half-life {fmt_hl(self.lane_half_life)} "
                f"steps (measured ∂L/∂{self.lane_chain} {fmt_rate(self.lane_measured)}{self._off('lane')}); "
                f"slowest unit's geometric-mean {g} = {self.dominant_gate:.3g}, mean {g}̄ = {self.mean_gate:.3g} "
                f"(not a predictor)")

    def summary(self) -> str:
        """The table's theory cell."""
        lane = "" if self.lane_rate is None else \
            f"{self.lane_chain} lane alone {fmt_rate(self.lane_rate)} (∂L/∂{self.lane_chain} {fmt_rate(self.lane_measured)})"
        return "; ".join(x for x in (self.condition_text(), lane) if x)

    def error(self, which: str = "predicted") -> float | None:
        """|ln r_pred / ln r_meas - 1|: the relative error of the predicted half-life (which = "predicted" or
        "lane", against the h chain or the lane's own chain)."""
        pred, meas = (self.predicted_rate, self.rate) if which == "predicted" else (self.lane_rate, self.lane_measured)
        if not pred or not meas or not 0 < meas < 1 or not 0 < pred < 1:
            return None
        return abs(math.log(meas) / math.log(pred) - 1)

    def _off(self, which: str) -> str:
        e = self.error(which)
        return "" if e is None else f", {e:.0%} from the measured half-life"

    def legend_lines(self) -> list[str]:
        """The numbers, in the words of `DEFINITIONS` (draw_graph prints the definitions once, under them)."""
        lines = [f"measured: {self.measured_text()}"]
        if self.predicted_rate is not None:
            far = f"; far from the loss ρ(J̄) = {self.spectral_radius:.3g}" if self.spectral_radius else ""
            if self.rho_w_dphi is not None:
                far += (f" (ρ(W_hh)·mean tanh′ = {self.rho_w:.3g}·{self.mean_dphi:.3g} = {self.rho_w_dphi:.3g}: "
                        "the same when every unit has the same mean tanh′)")
            lines.append(f"predicted: {self.predicted_text()}{self._off('predicted')}{far}")
        if self.pascanu is not None:
            broken = (f"{len(self.violations)} step(s) break it" if self.violations else "no step breaks it")
            jac = "" if self.max_jacobian is None else \
                f"; largest step Jacobian ‖∂h_t/∂h_(t-1)‖ = {self.max_jacobian:.3g}: {broken}"
            lines.append(f"condition: {self.condition_text()} (σ_max = {self.sigma_max:.3g}, γ = {self.gamma:g}){jac}")
        if self.lane_rate is not None:
            lines.append(self.lane_text())
        return lines


def chain_theory(cell: str, h: Chain, lane: Chain | None = None) -> Theory:
    """A `Theory` from the chains alone (no step Jacobians: the mean-field prediction only for an RNN)."""
    th = Theory(cell, len(h.states), h.rate, h.half_life)
    if h.kind == "rnn":
        th.predicted_rate = h.meanfield_rate
        th.predicted_half_life = half_life(th.predicted_rate)
        th.spectral_radius = h.rho_jbar
        th.sigma_max, th.gamma, th.pascanu = h.sigma_max, h.gamma, h.bound
        th.rho_w, th.mean_dphi = h.rho_w, h.mean_dphi
        jn = h.jacobian_norms
        th.max_jacobian = max(jn) if jn else None
        th.violations = [h.steps[k + 1] for k in h.violations]
    if lane is not None and lane.gate_arrays:
        th.lane_chain, th.lane_measured = lane.name, lane.rate
        th.lane_rate = lane.lane_rate
        th.lane_half_life = half_life(th.lane_rate)
        th.dominant_gate, th.mean_gate = lane.dominant_gate, lane.mean_gate
    return th
