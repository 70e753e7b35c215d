"""`tg.compile`: trace a function once, replay it as a flat list of NumPy calls.

The first call with given input shapes/dtypes, grad mode, train/eval mode and parameters runs eagerly
while every `Function.apply` is recorded (ops._REC, a module-level switch that costs one global read
per op when off). Later matching calls replay the recording: each op is a fresh instance of its own
class whose `forward` runs on plain arrays (no Tensor, no graph node per op). The outputs are Tensors
fed by ONE graph node (`_ProgramNode`) whose backward walks the recorded ops in reverse, calling each
op instance's own `backward`, so `loss.backward()` and optimizers work unchanged and gradients are
those of eager mode.

Safety rules (a wrong replay is never acceptable, a slow one is):
- Parameters and other tensors made before the call are read live (their current `_data`) at every
  replay: in-place optimizer updates are seen.
- Reading tensor values in Python during the trace (`.item()`, `bool(t)`, `.numpy()`, `.tolist()`,
  `np.asarray(t)`), an in-place write, a tensor built outside the engine's ops from traced values (a
  comparison mask), or an index array taken from a traced tensor: a "graph break". That function then
  runs eagerly forever, with one warning naming the cause.
- Random numbers: ops draw inside their forward (Dropout), so a replay draws fresh ones; `randn` /
  `rand` factories inside the function are recorded as draws that a replay repeats with new numbers.
- Any change of shape, dtype, grad mode, train/eval mode or parameter identity re-traces (a cache of
  `cache_size` recordings per function, least recently used dropped).
"""
from __future__ import annotations

import functools
import warnings
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

import sys

from . import ops
from .autograd import STATE, OuterSum, _unbroadcast, add_outer
from .ops import Function
from .tensor import Tensor

_tmod = sys.modules[Tensor.__module__]  # the module (the package's `tensor` attribute is the function)


class GraphBreak(Exception):
    """Raised inside a trace when the traced function does something a replay could not repeat."""


# ---------------------------------------------------------------- recording
class _Trace:
    """What one eager call did: the ops it applied, where each op's inputs came from."""

    def __init__(self):
        self.slots: dict[int, int] = {}       # id(tensor) -> slot, for inputs and op outputs
        self.keep: list = []                  # keeps traced tensors alive, so ids stay unique
        self.nslots = 0
        self.roots: dict[int, Tensor] = {}    # id(root array of a traced tensor) -> tensor (index arrays taken from them)
        self.made: dict[int, tuple] = {}      # id(tensor) -> (kind, info) for tensors built outside ops during the trace
        self.live: dict[int, int] = {}        # id(pre-existing tensor) -> index into self.consts
        self.consts: list[Tensor] = []        # pre-existing tensors, read live at replay
        self.program: list = []               # (cls, needs, kw, in_refs, out_slot, slice_index)
        self.shapes: dict = {}                # slot -> (shape, dtype) seen in the trace (fixed by the guards)
        self.tainted: set = set()             # root arrays of tensors of unknown provenance
        self.draws: list = []                 # proxied random draws since the last factory: (method, args, kw, result)
        self.broken: str | None = None

    def slot_of(self, t: Tensor) -> int:
        s = self.nslots
        self.nslots += 1
        self.slots[id(t)] = s
        self.shapes[s] = (t._data.shape, t._data.dtype)
        self.keep.append(t)
        r = t._data
        while isinstance(r.base, np.ndarray):
            r = r.base
        self.roots[id(r)] = t
        return s

    def brk(self, why: str):
        if self.broken is None:
            self.broken = why
        raise GraphBreak(why)

    def ref(self, t: Tensor):
        """Where input `t` of an op comes from: ('s', slot) | ('c', const index) | ('a', array)."""
        k = id(t)
        s = self.slots.get(k)
        if s is not None:
            return ("s", s)
        m = self.made.get(k)
        if m is not None:
            kind, info = m
            if kind == "const":
                return ("a", t._data)
            if kind == "rand":  # a factory draw: a replay repeats it with fresh numbers
                s = self.slot_of(t)
                self.program.append((_Draw, (False,), info, (), s, None))
                return ("s", s)
            self.brk("the function builds a tensor outside the engine's ops from traced values "
                     "(a comparison, mask, .data or NumPy result), which a replay could not recompute")
        c = self.live.get(k)
        if c is None:
            c = self.live[k] = len(self.consts)
            self.consts.append(t)
        return ("c", c)

    def record(self, ctx: Function, tensors: tuple, kw: dict, out: Tensor) -> None:
        for v in kw.values():
            self._check_kw(v)
        refs = tuple(self.ref(t) for t in tensors)
        if self.draws:
            if not getattr(type(ctx), "draws_random", False):
                self.brk("the function draws random numbers outside the engine's ops (e.g. a mask from "
                         "tg.rng()), which a replay would repeat unchanged")
            self.draws = []  # drawn inside the op's forward: a replay draws again
        needs = getattr(ctx, "needs", None) if out._ctx is not None else None
        s = self.slot_of(out)
        self.program.append((type(ctx), needs, kw, refs, s, ctx.slice_index))

    def _check_kw(self, v) -> None:
        if isinstance(v, np.ndarray):
            r = v
            while isinstance(r.base, np.ndarray):
                r = r.base
            if id(r) in self.roots or id(r) in self.tainted:
                self.brk("an op argument (e.g. an index) is an array read from a traced tensor")
        elif isinstance(v, (tuple, list)):
            for x in v:
                self._check_kw(x)

    # hooks called from tensor.py while tracing
    def on_made(self, t: Tensor, kind: str) -> None:
        """A tensor built outside an op: "init" (from Python/NumPy data), "factory" (zeros, randn ...),
        "const" (a number), "wrap" (anything else: comparisons, masks, .data: unknown provenance)."""
        if kind == "wrap":  # (draws stay pending: factories wrap their array first)
            if id(t) not in self.made:
                self.made[id(t)] = ("unknown", None)
                self.tainted.add(id(_base(t._data)))
            self.keep.append(t)
            return
        if kind == "const":
            if self.made.get(id(t), ("",))[0] == "unknown":
                self.tainted.discard(id(_base(t._data)))
            self.made[id(t)] = ("const", None)
            self.keep.append(t)
            return
        draws, self.draws = self.draws, []
        if not draws:
            self.made[id(t)] = ("const", None)
        elif kind == "factory" and len(draws) == 1 and draws[0][3].shape == t._data.shape and \
                np.array_equal(draws[0][3].astype(t._data.dtype), t._data):
            self.made[id(t)] = ("rand", {"method": draws[0][0], "args": draws[0][1], "kw": draws[0][2],
                                         "dtype": t._data.dtype})
        else:  # built from random numbers in a way a replay cannot repeat
            self.made[id(t)] = ("unknown", None)
        self.keep.append(t)

    def on_read(self, t: Tensor, what: str) -> None:
        if self.made.get(id(t), ("",))[0] == "const":
            return
        self.brk(f"the function reads a tensor's value in Python ({what}) during the trace")


def _base(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class _Draw(Function):
    """A random factory call (randn/rand) inside a compiled function, re-drawn on every replay."""
    saves = ()
    def forward(self, method, args, kw, dtype):
        return getattr(STATE.rng, method)(*args, **kw).astype(dtype)
    def backward(self, g): return ()


class _ProxyRNG:
    """Stands in for the library's generator during a trace: notes each draw made outside an op."""

    def __init__(self, gen, trace: _Trace):
        self._gen, self._trace = gen, trace

    def __getattr__(self, name):
        f = getattr(self._gen, name)
        if not callable(f):
            return f
        tr = self._trace

        def draw(*args, **kw):
            r = f(*args, **kw)
            if isinstance(r, np.ndarray):
                tr.draws.append((name, args, kw, r))
            return r
        return draw


# ---------------------------------------------------------------- replay
def _flatten(out, leaves: list):
    """The output structure with tensors replaced by their index in `leaves`."""
    if isinstance(out, Tensor):
        leaves.append(out)
        return ("T", len(leaves) - 1)
    if isinstance(out, (tuple, list)):
        return (type(out), [_flatten(o, leaves) for o in out])
    return ("V", out)


def _unflatten(spec, vals):
    kind, x = spec
    if kind == "T":
        return vals[x]
    if kind == "V":
        return x
    items = [_unflatten(s, vals) for s in x]
    return kind(*items) if hasattr(kind, "_fields") else kind(items)


class _Recording:
    """One trace made replayable."""

    def __init__(self, tr: _Trace, n_inputs: int, spec, out_refs: list, out_grad: list):
        self.program = tr.program
        self.consts = tr.consts
        self.const_sig = [(c._data.shape, c._data.dtype, c.requires_grad) for c in tr.consts]
        self.nslots = tr.nslots
        self.n_inputs = n_inputs
        self.spec = spec
        self.out_refs = out_refs
        self.out_grad = out_grad
        self.reach = [self._reach(r[1]) if r[0] == "s" else None for r in out_refs]
        self.shapes = tr.shapes
        self.fwd = _gen_forward(self.program, tr.shapes, tr.consts)
        self.bwds: dict = {}  # output slot -> generated backward program

    def _reach(self, slot: int) -> tuple:
        """(input indices, const indices) whose gradient the output at `slot` reaches."""
        live, ins, cs = {slot}, set(), set()
        for cls, needs, kw, refs, s, sl in reversed(self.program):
            if s not in live or needs is None:
                continue
            for (kind, j), need in zip(refs, needs):
                if not need:
                    continue
                if kind == "s":
                    live.add(j)
                    if j < self.n_inputs:
                        ins.add(j)
                elif kind == "c":
                    cs.add(j)
        return tuple(sorted(ins)), tuple(sorted(cs))

    def valid(self) -> bool:
        for c, (shape, dt, rg) in zip(self.consts, self.const_sig):
            d = c._data
            if d.shape != shape or d.dtype != dt or c.requires_grad != rg:
                return False
        return True

    def run(self, inputs: list):
        vals: list = [None] * self.nslots
        for i, t in enumerate(inputs):
            vals[i] = t._data
        consts = self.consts
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ctxs = self.fwd(vals, consts)
        outs = []
        node = None
        if STATE.grad_enabled and any(self.out_grad):
            node = _ProgramState(self, vals, ctxs, inputs)
        for i, (r, g) in enumerate(zip(self.out_refs, self.out_grad)):
            if r[0] == "t":  # an input or pre-existing tensor returned as-is
                outs.append(inputs[r[1]] if r[2] == "in" else consts[r[1]])
                continue
            t = Tensor._wrap(vals[r[1]])
            if node is not None and g:
                ins, cs = self.reach[i]
                ctx = _ProgramNode()
                ctx.state, ctx.slot, ctx.reach = node, r[1], self.reach[i]
                ctx.parents = tuple([inputs[j] for j in ins] + [consts[j] for j in cs])
                ctx.needs = (True,) * len(ctx.parents)
                # the replay's arrays (its output, inputs, parameters) are read by backward: an in-place write
                # into any of them before backward raises, as in eager mode (autograd._check_saved)
                ctx.saves = (-1,) + tuple(range(len(ctx.parents)))
                ctx.scope = STATE.scope
                ctx.clock = STATE.clock
                t._ctx, t.requires_grad = ctx, True
            outs.append(t)
        return _unflatten(self.spec, outs)


class _ProgramState:
    """Arrays and op instances of one replay, shared by the graph nodes of its outputs."""
    __slots__ = ("rec", "vals", "ctxs", "inputs")

    def __init__(self, rec, vals, ctxs, inputs):
        self.rec, self.vals, self.ctxs, self.inputs = rec, vals, ctxs, inputs

    def backward(self, slot: int, g: np.ndarray, reach: tuple) -> tuple:
        """The recorded ops in reverse, each op instance's own backward: gradients of the leaves in `reach`."""
        rec = self.rec
        bwd = rec.bwds.get(slot)
        if bwd is None:
            bwd = rec.bwds[slot] = _gen_backward(rec, slot, reach)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return bwd(g, self.ctxs, self.inputs, rec.consts, self.vals)


def _fin(g, t):
    if g is None:
        return np.zeros(t._data.shape, t._data.dtype)
    return g.value() if type(g) is OuterSum else g


class _ProgramNode(Function):
    """The one graph node of a compiled call's output: backward runs the recorded backward program."""
    saves = ()

    def backward(self, g):
        return self.state.backward(self.slot, g, self.reach)


# ---------------------------------------------------------------- code generation
# The recording becomes two straight-line Python functions (exec'd once per recording): no loop, no
# per-op dispatch on the kind of each input; each line is one op's own forward (or backward).
_EMIT_FWD = {"Add": "{0} + {1}", "Sub": "{0} - {1}", "Mul": "{0} * {1}", "Tanh": "tanh({0})"}


def _emitted(rec_shapes: dict, consts: list, entry) -> bool:
    """Ops replayed by a dedicated line of NumPy (no op instance): same-dtype elementwise ops, sigmoid,
    tanh and basic slices (a zero-cost view). Their backward lines read the replay's arrays directly."""
    cls, needs, kw, refs, s, sl = entry
    name = cls.__name__
    if cls is not _OPS.get(name):
        return False
    if name == "GetItem":
        return sl is not None and len(rec_shapes[s][0]) > 0 and refs[0][0] != "a"
    if name == "Permute":
        return refs[0][0] != "a"
    if name == "MatMul":  # 2-D @ 2-D of replay arrays (its backward reads both)
        return all(k == "s" and len(rec_shapes[j][0]) == 2 for k, j in refs)
    if name not in _EMIT_FWD and name != "Sigmoid":
        return False
    dts = [rec_shapes[j][1] if k == "s" else (consts[j]._data.dtype if k == "c" else getattr(j, "dtype", None))
           for k, j in refs]
    if any(d is None or d != rec_shapes[s][1] for d in dts):
        return False
    return name != "Mul" or all(k != "c" for k, _ in refs)  # Mul's backward reads its inputs: not live ones


_OPS = {c.__name__: c for c in (ops.Add, ops.Sub, ops.Mul, ops.Tanh, ops.Sigmoid, ops.GetItem, ops.Permute, ops.MatMul)}


def _transpose_grad(g, inv: tuple):
    """Permute's backward; a lazy weight gradient Σ aᵀb transposes to Σ bᵀa without being formed."""
    if type(g) is OuterSum:
        if inv == (1, 0):
            t = object.__new__(OuterSum)
            t.a, t.b = g.b, g.a
            return t
        g = g.value()
    return g.transpose(inv)


def _gen_forward(program: list, shapes: dict, consts: list):
    ns: dict = {"new": object.__new__, "ndarray": np.ndarray, "asarray": np.asarray, "tanh": np.tanh}
    lines = ["def fwd(V, K):"]
    names = []
    for e, entry in enumerate(program):
        cls, needs, kw, refs, s, _sl = entry
        ns[f"C{e}"], ns[f"N{e}"], ns[f"W{e}"] = cls, needs, kw
        args = []
        for i, (kind, j) in enumerate(refs):
            if kind == "s":
                args.append(f"V[{j}]")
            elif kind == "c":
                args.append(f"K[{j}]._data")
            else:
                ns[f"A{e}_{i}"] = j
                args.append(f"A{e}_{i}")
        if _emitted(shapes, consts, entry):
            name = cls.__name__
            if name == "GetItem":
                ns[f"SL{e}"] = _sl
                lines.append(f"    V[{s}] = {args[0]}[SL{e}]")
            elif name == "Permute":
                lines.append(f"    V[{s}] = {args[0]}.transpose(W{e}['order'])")
            elif name == "MatMul":
                lines.append(f"    V[{s}] = {args[0]} @ {args[1]}")
            elif name == "Sigmoid":  # as ops.Sigmoid: 0.5 tanh(x/2) + 0.5
                lines.append(f"    d = tanh({args[0]} * 0.5); d *= 0.5; d += 0.5; V[{s}] = d")
            else:
                lines.append(f"    d = {_EMIT_FWD[name].format(*args)}")
                lines.append("    if type(d) is not ndarray: d = asarray(d)")
                lines.append(f"    V[{s}] = d")
            names.append("None")
            continue
        if kw:
            args.append(f"**W{e}")
        lines.append(f"    c{e} = new(C{e})")
        if needs is not None:
            lines.append(f"    c{e}.needs = N{e}")
        lines.append(f"    d = c{e}.forward({', '.join(args)})")
        lines.append("    if type(d) is not ndarray: d = asarray(d)")
        lines.append(f"    V[{s}] = d")
        names.append(f"c{e}")
    lines.append(f"    return [{', '.join(names)}]")
    exec("\n".join(lines), ns)
    return ns["fwd"]


def _gen_backward(rec: "_Recording", slot: int, reach: tuple):
    program, shapes = rec.program, rec.shapes
    ns: dict = {"OuterSum": OuterSum, "acc": _acc, "acc_sl": _acc_sl, "fin": _fin, "tgrad": _transpose_grad,
                "zeros": np.zeros, "add": np.add}
    lines = ["def bwd(g, ctxs, inputs, consts, V):", f"    G = [None] * {rec.nslots}", f"    KG = [None] * {len(rec.consts)}",
             "    own = set()", f"    G[{slot}] = g"]
    live = {slot}
    assigned = {("G", slot)}  # (dst, j) that an earlier line (in this reverse order) may already have set
    for e in range(len(program) - 1, -1, -1):
        cls, needs, kw, refs, s, sl = program[e]
        if s not in live or needs is None:
            continue
        targets = [(i, r) for i, (r, need) in enumerate(zip(refs, needs)) if need and r[0] != "a"]
        if not targets:
            continue
        lines.append(f"    go = G[{s}]")
        lines.append("    if go is not None:")
        lines.append(f"        G[{s}] = None")
        em = _emitted(shapes, rec.consts, program[e])
        name = cls.__name__
        if not (em and name == "Permute"):
            lines.append("        if type(go) is OuterSum: go = go.value()")
        if sl is not None:
            ns[f"SL{e}"] = sl
        elif em:  # the op's own backward formula, on the replay's arrays
            a = []
            for i, (k, j) in enumerate(refs):
                if k == "s":
                    a.append(f"V[{j}]")
                else:
                    ns[f"A{e}_{i}"] = j
                    a.append(f"A{e}_{i}")
            if name == "Permute":
                ns[f"INV{e}"] = tuple(int(i) for i in np.argsort(kw["order"]))
                exprs = [f"tgrad(go, INV{e})"]
            elif name == "MatMul":  # dx = g yᵀ; dy = xᵀ g kept lazy (one GEMM over all steps for a shared weight)
                exprs = [f"go @ {a[1]}.T", f"OuterSum({a[0]}, go)"]
            elif name == "Add":
                exprs = ["go", "go"]
            elif name == "Sub":
                exprs = ["go", "-go"]
            elif name == "Mul":
                exprs = [f"go * {a[1]}", f"go * {a[0]}"]
            elif name == "Tanh":
                exprs = [f"go * (1 - V[{s}] * V[{s}])"]
            else:  # Sigmoid
                exprs = [f"go * V[{s}] * (1 - V[{s}])"]
        else:
            lines.append(f"        r = ctxs[{e}].backward(go)")
            lines.append("        if type(r) is not tuple: r = (r,)")
        for i, (kind, j) in targets:
            if kind == "s":
                live.add(j)
                shape, dt = shapes[j]
                dst, key = "G", j
            else:
                c = rec.consts[j]._data
                shape, dt = c.shape, c.dtype
                dst, key = "KG", ~j
            ns[f"S{e}_{i}"], ns[f"T{e}_{i}"] = shape, dt
            if sl is not None and em:  # into one zero buffer of the parent's shape, owned by this pass
                if (dst, j) not in assigned:
                    lines.append(f"        b = zeros(S{e}_{i}, T{e}_{i}); v = b[SL{e}]; add(v, go, out=v); "
                                 f"{dst}[{j}] = b; own.add({key})")
                else:
                    lines.append(f"        b = {dst}[{j}]")
                    lines.append(f"        if {key} in own: v = b[SL{e}]; add(v, go, out=v)")
                    lines.append(f"        else: acc_sl({dst}, {j}, {key}, go, SL{e}, S{e}_{i}, T{e}_{i}, own)")
            elif sl is not None:
                lines.append(f"        acc_sl({dst}, {j}, {key}, go, SL{e}, S{e}_{i}, T{e}_{i}, own)")
            elif em:  # gi has the output's shape and dtype: the first gradient of a slot is stored as is
                if (dst, j) not in assigned and shapes[s] == (shape, dt):
                    lines.append(f"        {dst}[{j}] = {exprs[i]}")
                else:
                    lines.append(f"        acc({dst}, {j}, {key}, {exprs[i]}, S{e}_{i}, T{e}_{i}, own)")
            else:
                lines.append(f"        gi = r[{i}] if len(r) > {i} else None")
                lines.append(f"        if gi is not None: acc({dst}, {j}, {key}, gi, S{e}_{i}, T{e}_{i}, own)")
            assigned.add((dst, j))
    outs = [f"fin(G[{i}], inputs[{i}])" for i in reach[0]] + [f"fin(KG[{j}], consts[{j}])" for j in reach[1]]
    lines.append(f"    return ({', '.join(outs)}{',' if outs else ''})")
    exec("\n".join(lines), ns)
    return ns["bwd"]


def _acc(D: list, j: int, key: int, gi, shape, dt, own: set) -> None:
    """Add gradient gi into D[j] (in place only into arrays this pass made: `own` holds their keys)."""
    prev = D[j]
    if type(gi) is OuterSum:  # a shared weight: keep the factors, one GEMM at the end
        D[j] = add_outer(prev, gi, own, key)
        return
    if gi.shape != shape:
        gi = _unbroadcast(gi, shape)
    if gi.dtype != dt:
        gi = gi.astype(dt)
    if prev is None:
        D[j] = gi
        own.discard(key)
    elif key in own:
        prev += gi
    else:
        D[j] = (prev.value() if type(prev) is OuterSum else prev) + gi
        own.add(key)


def _acc_sl(D: list, j: int, key: int, gi, sl, shape, dt, own: set) -> None:
    """A basic slice's gradient: added into one zero buffer of the full shape that this pass owns."""
    prev = D[j]
    if key not in own or type(prev) is not np.ndarray:
        buf = np.zeros(shape, dt)
        if prev is not None:
            buf += prev.value() if type(prev) is OuterSum else prev
        D[j] = prev = buf
        own.add(key)
    v = prev[sl]
    if type(v) is np.ndarray:
        np.add(v, gi, out=v)
    else:
        prev[sl] += gi


# ---------------------------------------------------------------- the compiled callable
_ACTIVE: list = []  # the trace now running (compiled calls inside it run eagerly and are recorded)


def _key_of(v):
    if isinstance(v, Tensor):
        return ("T", v._data.shape, v._data.dtype.str, v.requires_grad)
    if isinstance(v, (tuple, list)):
        return (type(v).__name__,) + tuple(_key_of(x) for x in v)
    if isinstance(v, dict):
        return ("D",) + tuple((k, _key_of(x)) for k, x in sorted(v.items()))
    if isinstance(v, np.ndarray):
        return ("A", v.shape, v.dtype.str, v.tobytes())
    try:
        hash(v)
    except TypeError:
        return ("O", id(v))
    return ("V", type(v).__name__, v)


def _tensor_args(v, acc: list):
    if isinstance(v, Tensor):
        acc.append(v)
    elif isinstance(v, (tuple, list)):
        for x in v:
            _tensor_args(x, acc)
    elif isinstance(v, dict):
        for k in sorted(v):
            _tensor_args(v[k], acc)
    return acc


class CompiledFunction:
    """What `tg.compile(fn)` returns: call it as fn; `.eager` is the original function."""

    def __init__(self, fn: Callable, module=None, cache_size: int = 8):
        self.eager = fn
        self.module = module
        self.cache: OrderedDict = OrderedDict()
        self.cache_size = cache_size
        self.broken: str | None = None
        functools.update_wrapper(self, fn, updated=())

    def _mode_key(self):
        m = self.module
        if m is None:
            return ()
        mods = list(m.modules())
        return (tuple(x.training for x in mods), tuple(id(p) for p in m.parameters()))

    def __call__(self, *args, **kwargs):
        if self.broken is not None or _ACTIVE or not _ENABLED[0]:
            return self.eager(*args, **kwargs)
        key = (STATE.grad_enabled, _key_of(args), _key_of(kwargs), self._mode_key())
        rec = self.cache.get(key)
        inputs = _tensor_args(kwargs, _tensor_args(args, []))
        if rec is not None and rec.valid():
            self.cache.move_to_end(key)
            return rec.run(inputs)
        return self._trace(key, inputs, args, kwargs)

    def _trace(self, key, inputs, args, kwargs):
        tr = _Trace()
        for t in inputs:
            if id(t) in tr.slots:  # the same tensor passed twice: keep eager (aliasing inputs)
                return self.eager(*args, **kwargs)
            tr.slot_of(t)
        _ACTIVE.append(tr)
        gen = STATE.rng
        STATE.rng = _ProxyRNG(gen, tr)
        ops._REC, _tmod._TRACE = tr.record, tr
        try:
            out = self.eager(*args, **kwargs)
        except GraphBreak:
            out = None
        finally:
            ops._REC, _tmod._TRACE = None, None
            if STATE.rng.__class__ is _ProxyRNG:
                STATE.rng = gen
            _ACTIVE.pop()
        if tr.broken is not None:
            self.broken = tr.broken
            warnings.warn(f"tg.compile: graph break in {getattr(self.eager, '__qualname__', self.eager)}: "
                          f"{tr.broken}; this function runs eagerly from now on", UserWarning, stacklevel=3)
            return self.eager(*args, **kwargs)
        leaves: list = []
        spec = _flatten(out, leaves)
        refs, grad = [], []
        for t in leaves:
            k = id(t)
            if k in tr.slots:
                s = tr.slots[k]
                refs.append(("t", s, "in") if s < len(inputs) else ("s", s))
            elif k in tr.made and tr.made[k][0] == "const":
                refs.append(("s", _const_slot(tr, t)))
            elif k in tr.made:
                self.broken = "the function returns a tensor built outside the engine's ops"
                warnings.warn(f"tg.compile: graph break: {self.broken}", UserWarning, stacklevel=3)
                return out
            else:
                c = tr.ref(t)
                refs.append(("t", c[1], "const"))
            grad.append(t.requires_grad)
        self.cache[key] = _Recording(tr, len(inputs), spec, refs, grad)
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return out


class _Const(Function):
    """A constant made inside the function and returned: a replay returns a fresh copy."""
    saves = ()
    def forward(self, arr): return arr.copy()
    def backward(self, g): return (None,)


def _const_slot(tr: _Trace, t: Tensor) -> int:
    s = tr.nslots
    tr.nslots += 1
    tr.shapes[s] = (t._data.shape, t._data.dtype)
    tr.program.append((_Const, None, {}, (("a", t._data),), s, None))
    return s


_ENABLED = [True]


def compile(model: Callable | None = None, *, cache_size: int = 8, **options: Any):
    """torch.compile's spelling: `tg.compile(fn)` or `tg.compile(module)` (its forward is compiled; the
    module is returned so it is still a Module). Options PyTorch takes (mode=, fullgraph=, ...) are
    accepted and ignored. `@tg.compile` and `@tg.compile(...)` both work."""
    if model is None:
        return lambda m: compile(m, cache_size=cache_size, **options)
    from .nn import Module
    if isinstance(model, Module):
        cf = CompiledFunction(model.forward, module=model, cache_size=cache_size)
        model.forward = cf  # instance attribute: Module.__call__ finds it first
        return model
    return CompiledFunction(model, cache_size=cache_size)


def is_compiled_output(t: Tensor) -> bool:
    """True when t's graph was made by a compiled replay (one node for the whole program)."""
    return isinstance(t._ctx, _ProgramNode)


def check_drawable(root: Tensor) -> None:
    """Raise if root's graph contains a compiled call: its ops are one node, so there is no op graph to draw."""
    seen, stack = set(), [root]
    while stack:
        t = stack.pop()
        ctx = t._ctx
        if ctx is None or id(t) in seen:
            continue
        seen.add(id(t))
        if isinstance(ctx, _ProgramNode):
            raise RuntimeError("draw_graph: this graph comes from a tg.compile'd call, which records its whole "
                               "program as one node; call the eager function instead (compiled_fn.eager(...), or "
                               "the model without tg.compile) to draw the full op graph")
        stack.extend(getattr(ctx, "parents", ()))
