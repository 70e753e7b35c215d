"""`tg.compile`: trace a function once, replay it as a flat list of NumPy calls.

The first call with given input shapes/dtypes, grad mode, train/eval mode and parameters runs eagerly while
every `Function.apply` is recorded (ops._REC, a module-level switch that costs one global read per op when
off). Later matching calls replay the recording as generated straight-line code (no Tensor, no graph node
per op): the common ops (elementwise, matmul/linear, stack, basic slices, permute, reshape) are dedicated
lines writing into preallocated buffers (`out=`), views are made once per buffer set, stack rows are written
in place, buffers whose values backward never reads share bytes once dead (`_shared_offsets`), and so do
gradient buffers once read (`_shared_grad_offsets`), the same elementwise op on adjacent ranges of one
buffer (an LSTM's gates) runs as one call, `(1 - z) * a + z * b` (a GRU's update) is recorded as one Lerp
(`_lerp_fused`); every other op runs its own class's forward on plain arrays. The outputs are Tensors fed by
ONE graph node (`_ProgramNode`) whose backward is generated the same way (gradients written into buffers or
straight into their slice of the source's gradient; a shared weight's gradient one GEMM over all steps; the
σ' / tanh' factors of every step formed at once, `_hoist_factors`), so `loss.backward()` and optimizers work
unchanged and gradients are those of eager mode. A buffer set is reused only when nothing outside points
into it (an output the caller keeps, a replay still waiting for its backward): `sys.getrefcount` of its
arena.

Safety rules (a wrong replay is never acceptable, a slow one is):
- Parameters and other tensors made before the call are read live (their current `_data`) at every
  replay: in-place optimizer updates are seen.
- Reading tensor values in Python during the trace (`.item()`, `bool(t)`, `.numpy()`, `.tolist()`,
  `np.asarray(t)`), an in-place write, a tensor built outside the engine's ops from traced values (a
  comparison mask), or an index array taken from a traced tensor: a "graph break". That function then
  runs eagerly forever, with one warning naming the cause. Masks (`where`, `masked_fill`, `masked_softmax`),
  embedding indices and class-index loss targets are the ops' gradient-free tensor inputs instead, so a
  replay uses each call's values.
- Random numbers: ops draw inside their forward (Dropout), so a replay draws fresh ones; `randn` /
  `rand` factories inside the function are recorded as draws that a replay repeats with new numbers.
- NumPy array arguments (bool/int/float: token ids, masks, targets) are inputs like tensors, keyed by
  shape and dtype: the traced call receives each as a gradient-free Tensor, so a Python or NumPy read of
  its values (np.asarray, a comparison, .tolist(), an ndarray-only method) is a graph break, not a
  constant of the trace. Numbers and other arguments are keyed by value.
- Any change of shape, dtype, grad mode, train/eval mode or parameter identity re-traces (a cache of
  `cache_size` recordings per function, least recently used dropped).
"""
from __future__ import annotations

import bisect
import functools
import re
import sys
import warnings
from collections import Counter, OrderedDict
from typing import Any, Callable

import numpy as np

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

    def holds(self, t: Tensor) -> int:
        """How many references this trace holds to `t` (`keep`, `roots`): tensor.py's test for a temporary
        operand discounts them, so a traced call builds the same graph as an eager one."""
        n = 1 if id(t) in self.slots else 0
        return n + (1 if self.roots.get(id(_base(t._data))) is t else 0)

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
    def on_made(self, t: Tensor, kind: str, src: Tensor | None = None) -> None:
        """A tensor built outside an op: "init" (from Python/NumPy data), "factory" (zeros, randn ...),
        "const" (a number), "wrap" (anything else: comparisons, masks, .data: unknown provenance;
        `src`: Tensor(src))."""
        if src is not None and t._data is src._data and not src.requires_grad and id(src) in self.slots:
            # Tensor(x) of a traced tensor shares its array (a NumPy argument the model wraps): the same slot
            self.slots[id(t)] = self.slots[id(src)]
            self.keep.append(t)
            return
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
        r = id(_base(t._data))
        if kind == "factory":  # its array is new (the "wrap" note just made for it is no taint)
            self.tainted.discard(r)
        if r in self.roots or r in self.tainted:  # Tensor(arr) on a traced tensor's array: a stale replay
            self.made[id(t)] = ("unknown", None)
        elif not draws:
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


class Lerp(ops.Lerp):
    """What tg.compile records `(1 - w) * a + w * b` as: z = a + w (b - a) in one form (tg.lerp's ops.Lerp
    takes torch's two; either equals the four ops up to rounding);  da = g - g w,  db = g w,  dw = g (b - a):
    g w formed once for a and b. Replayed by its own lines (kind "lerp"); ops.Lerp by its own methods."""
    def forward(self, a, b, w):
        self.w = w
        self.d = d = b - a
        return a + w * d

    def backward(self, g):
        gw = g * self.w if self.needs[0] or self.needs[1] else None
        return (g - gw if self.needs[0] else None), gw, (g * self.d if self.needs[2] else None)


def _lerp_fused(tr: _Trace, out_refs: list) -> list:
    """The program with each `(1 - w) * a + w * b` (a GRU's update, four ops) recorded as one Lerp(a, b, w)
    = a + w (b - a): three calls forward instead of four, and backward shares g w between a and b. Only
    where the three intermediate results are read by nothing else and no operand broadcasts."""
    prog = tr.program
    prod = {e[4]: i for i, e in enumerate(prog)}
    uses = Counter(j for e in prog for k, j in e[3] if k == "s")
    uses.update(r[1] for r in out_refs if r[0] == "s")

    def meta(r):
        if r[0] == "s":
            return tr.shapes[r[1]]
        d = tr.consts[r[1]]._data if r[0] == "c" else r[1]
        return d.shape, d.dtype

    def entry(j, cls):
        i = prod.get(j)
        if i is None or prog[i][0] is not cls or uses[j] != 1 or len(prog[i][3]) != 2:
            return None
        return i

    def one_minus(u):  # the slot holds 1 - w: (entry index, w's slot)
        i = entry(u, ops.Sub)
        if i is None:
            return None
        (k1, c), (k2, w) = prog[i][3]
        if k1 != "a" or k2 != "s" or c.size != 1 or c.item() != 1:
            return None
        return i, w

    drop, put = set(), {}
    for ia, (cls, needs, kw, refs, s, sl) in enumerate(prog):
        if cls is not ops.Add or len(refs) != 2 or any(k != "s" for k, _ in refs):
            continue
        for m1, m2 in (refs, refs[::-1]):
            i1, i2 = entry(m1[1], ops.Mul), entry(m2[1], ops.Mul)
            if i1 is None or i2 is None or i1 == i2:
                continue
            found = None
            for x in (0, 1):  # m1 = (1 - w) * a or a * (1 - w)
                r = prog[i1][3][x]
                u = one_minus(r[1]) if r[0] == "s" else None
                if u is None:
                    continue
                w = u[1]
                for y in (0, 1):  # m2 = w * b or b * w
                    if prog[i2][3][y] == ("s", w):
                        found = (u[0], x, y, w)
                        break
                if found:
                    break
            if not found:
                continue
            iu, x, y, w = found
            a, b = prog[i1][3][1 - x], prog[i2][3][1 - y]
            out = tr.shapes[s]
            if any(meta(r) != out for r in (a, b, ("s", w), m1, m2)):
                continue
            n1, n2 = prog[i1][1] or (False, False), prog[i2][1] or (False, False)  # None: neither input needs one
            lneeds = None if needs is None else (n1[1 - x], n2[1 - y], n2[y])
            put[ia] = (Lerp, lneeds, {}, (a, b, ("s", w)), s, None)
            drop.update((iu, i1, i2))
            break
    if not put:
        return prog
    return [put.get(i, e) for i, e in enumerate(prog) if i not in drop]


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
    return _rebuild(kind, [_unflatten(s, vals) for s in x])


def _rebuild(typ: type, items: list):
    """A tuple or list of type `typ` (a namedtuple too) holding `items`."""
    if typ is tuple or typ is list:
        return typ(items)
    return typ(*items) if hasattr(typ, "_fields") else typ(items)


class _Recording:
    """One trace made replayable: a forward program writing into preallocated buffers (_BufferSet) and,
    per output, a backward program generated at its first backward."""

    def __init__(self, tr: _Trace, n_inputs: int, spec, out_refs: list, out_grad: list):
        self.program = _lerp_fused(tr, out_refs)
        self.consts = tr.consts
        self.const_sig = [(c._data.shape, c._data.dtype, c.requires_grad) for c in tr.consts]
        self.nslots = tr.nslots
        self.n_inputs = n_inputs
        self.spec = spec
        self.out_refs = out_refs
        self.out_grad = out_grad
        self.shapes = tr.shapes
        self.producer = {e[4]: i for i, e in enumerate(self.program)}
        self.reach = [self._reach(r[1]) if r[0] == "s" else None for r in out_refs]
        self.plan = _ForwardPlan(self)
        self.pool: list = []  # buffer sets; one is reused only when nothing outside points into it
        self.pool.append(_BufferSet(self))  # the first set also settles which reshapes are views
        self.fwd = _gen_forward(self)
        self.bwds: dict = {}  # output slot -> (backward plan, generated backward function)

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

    def buffers(self) -> "_BufferSet":
        for b in self.pool:
            if b.free():
                return b
        b = _BufferSet(self)
        if len(self.pool) < 4:
            self.pool.append(b)
        return b

    def run(self, inputs: list):
        bs = self.buffers()
        vals = bs.vals.copy()
        for i, t in enumerate(inputs):
            vals[i] = t._data
        kd = [c._data for c in self.consts]  # the parameters' arrays of this call (backward reads these)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ctxs = self.fwd(vals, kd)
        outs = []
        node = None
        if STATE.grad_enabled and any(self.out_grad):
            node = _ProgramState(self, vals, ctxs, inputs, kd, bs)
        for i, (r, g) in enumerate(zip(self.out_refs, self.out_grad)):
            if r[0] == "t":  # an input or pre-existing tensor returned as-is
                outs.append(inputs[r[1]] if r[2] == "in" else self.consts[r[1]])
                continue
            t = Tensor._wrap(vals[r[1]].view())  # a view of its own: it holds the arena (see _BufferSet.free)
            if node is not None and g:
                ins, cs = self.reach[i]
                ctx = _ProgramNode()
                ctx.state, ctx.slot, ctx.reach = node, r[1], self.reach[i]
                ctx.parents = tuple([inputs[j] for j in ins] + [self.consts[j] for j in cs])
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
    """Arrays and op instances of one replay, shared by the graph nodes of its outputs. Holding the buffer
    set's arena keeps the set from being reused while this replay can still run backward."""
    __slots__ = ("rec", "vals", "ctxs", "inputs", "kd", "bs", "arena")

    def __init__(self, rec, vals, ctxs, inputs, kd, bs):
        self.rec, self.vals, self.ctxs, self.inputs, self.kd, self.bs = rec, vals, ctxs, inputs, kd, bs
        self.arena = bs.arena

    def backward(self, slot: int, g: np.ndarray, reach: tuple) -> tuple:
        """The recorded ops in reverse: gradients of the leaves in `reach`."""
        rec = self.rec
        b = rec.bwds.get(slot)
        if b is None:
            plan = _BackwardPlan(rec, slot)
            b = rec.bwds[slot] = (plan, _gen_backward(rec, plan, reach))
        plan, bwd = b
        D = self.bs.grads.get(slot)
        if D is None:
            D = self.bs.grads[slot] = plan.allocate()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return bwd(g, self.ctxs, self.inputs, self.kd, self.vals, D[0], D[1], self.arena)


def _fin(g, t, arena, garena):
    """A leaf's gradient as backward returns it: never an array inside this call's buffers. A weight's
    OuterSum stays lazy: the backward pass forms it (one GEMM, with any other call's factors) into an array
    it owns, so `.grad` takes it without a copy; its factors are read before any buffer can be reused."""
    if g is None:  # no gradient reached it (an op's backward returned None), as in eager mode
        return None
    if type(g) is OuterSum:
        return g
    if type(g) is _RowSum:
        return g.value()
    b = g.base
    if b is not None and (b is garena or b is arena):
        return g.copy()
    return g


class _ProgramNode(Function):
    """The one graph node of a compiled call's output: backward runs the recorded backward program."""
    saves = ()

    def backward(self, g):
        return self.state.backward(self.slot, g, self.reach)


# ---------------------------------------------------------------- planning
# Ops with dedicated generated lines (no op instance): their forward writes into a preallocated buffer
# (`out=`), views cost nothing (made once per buffer set), and their backward lines write gradients into
# preallocated buffers or straight into the slice of the buffer they belong to.
_OPS = {c.__name__: c for c in (ops.Add, ops.Sub, ops.Mul, ops.Neg, ops.Tanh, ops.Sigmoid, ops.Relu, ops.GetItem,
                                ops.Permute, ops.Reshape, ops.MatMul, ops.Linear, ops.Stack, Lerp)}
_EW = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "Neg": "negative", "Tanh": "tanh", "Relu": None,
       "Sigmoid": None}


_GATES = "gates"  # a fused group of σ and tanh ranges (see _ForwardPlan._gates)
_FAMILY = {ops.Sigmoid: _GATES, ops.Tanh: _GATES}  # ops that may share a fused group


def _meta(rec, ref) -> tuple:
    kind, j = ref
    if kind == "s":
        return rec.shapes[j]
    if kind == "c":
        d = rec.consts[j]._data
        return d.shape, d.dtype
    return j.shape, j.dtype


def _emit_kind(rec, entry) -> str | None:
    """How an op is replayed: "ew" elementwise, "lerp", "mm" matmul, "lin" linear, "stack", "view", or None
    (its own forward/backward on an op instance)."""
    cls, needs, kw, refs, s, sl = entry
    name = cls.__name__
    if _OPS.get(name) is not cls:
        return None
    oshape, odt = rec.shapes[s]
    if name == "GetItem":
        return "view" if sl is not None and len(oshape) > 0 and refs[0][0] != "a" else None
    if name in ("Permute", "Reshape"):
        return "view" if refs[0][0] != "a" else None
    ins = [_meta(rec, r) for r in refs]
    if any(d != odt for _, d in ins):
        return None
    if name in _EW:
        return "ew"
    if name == "Lerp":  # a + w (b - a) without broadcasting
        return "lerp" if all(sh == oshape for sh, _ in ins) else None
    if name == "MatMul":
        a, b = ins[0][0], ins[1][0]
        if len(a) >= 2 and (len(b) == 2 or (len(a) == len(b) and a[:-2] == b[:-2])):
            return "mm"
        return None
    if name == "Linear":
        return "lin" if len(ins[1][0]) == 2 and len(ins[0][0]) >= 2 else None
    if name == "Stack":
        return "stack"
    return None


class _ForwardPlan:
    """Which forward ops run (those the outputs need, and random draws), which results live in a
    preallocated buffer ("buf"), in a row of a stack's buffer ("sview": the stack then costs nothing),
    are views made once per buffer set ("pview"), or are computed per call (anything else)."""

    def __init__(self, rec: _Recording):
        prog = rec.program
        need = {r[1] for r in rec.out_refs if r[0] == "s"}
        live = []
        for e in range(len(prog) - 1, -1, -1):
            cls, needs, kw, refs, s, sl = prog[e]
            if s in need or getattr(cls, "draws_random", False) or cls is _Draw:
                live.append(e)
                need.update(j for k, j in refs if k == "s")
        self.live = live[::-1]
        self.kind = {e: _emit_kind(rec, prog[e]) for e in self.live}
        self.fk: dict = {}  # slot -> "buf" | "sview" | "pview"
        self.sview: dict = {}  # slot -> (stack slot, row)
        for e in self.live:
            cls, needs, kw, refs, s, sl = prog[e]
            k = self.kind[e]
            if k in ("ew", "lerp", "mm", "lin", "stack"):
                self.fk[s] = "buf"
            elif k == "view" and refs[0][0] == "s" and refs[0][1] in self.fk and (
                    cls is not ops.Reshape or self.fk[refs[0][1]] == "buf"):  # a reshape of a contiguous buffer
                self.fk[s] = "pview"
        for e in self.live:  # a stack along dim 0 of buffered results: they are written into its rows
            cls, needs, kw, refs, s, sl = prog[e]
            if self.kind[e] != "stack" or _axis(kw, len(rec.shapes[s][0])) != 0:
                continue
            seen: dict = {}
            for k, j in refs:
                if k == "s":
                    seen[j] = seen.get(j, 0) + 1
            for i, (k, j) in enumerate(refs):
                if k == "s" and self.fk.get(j) == "buf" and j not in self.sview and seen[j] == 1:
                    self.sview[j] = (s, i)
                    self.fk[j] = "sview"
        self.nvirt = rec.nslots
        self.groups: list = []  # elementwise ops on adjacent slices, run as one call (see _fuse)
        self.gconst: dict = {}  # the constants of fused σ|tanh groups, shared by groups of one layout
        self.lead: dict = {}    # entry index of a group's first op -> group
        self.skip: set = set()  # the group's other ops: nothing to run
        self._fuse(rec)

    def _gates(self, rec, g: dict) -> None:
        """σ and tanh on adjacent ranges (an LSTM's i f | g | o gates) as one tanh over the joined range:
        y = A tanh(S x) + C with S = A = C = ½ on the σ ranges (σ(x) = ½ tanh(x/2) + ½) and S = A = 1, C = 0
        on the tanh ranges; the backward is dy/dx = A S (1 - T²) from the kept T = tanh(S x)."""
        g["cls"] = _GATES
        sig = tuple((lo, hi) for e, ms, lo, hi in g["members"] if rec.program[e][0] is ops.Sigmoid)
        key = (g["bshape"], g["dtype"], g["axis"], sig)
        if key not in self.gconst:  # full-shape constants: a row vector broadcast costs ~3x a same-shape operand
            S, C = np.ones(g["bshape"], g["dtype"]), np.zeros(g["bshape"], g["dtype"])
            for lo, hi in sig:
                S[_member_index(g, lo, hi)] = 0.5
                C[_member_index(g, lo, hi)] = 0.5
            self.gconst[key] = (S, C, S * S)
        g["S"], g["C"], g["SA"] = self.gconst[key]
        g["tanh"] = self.nvirt  # a virtual slot: the kept T
        self.nvirt += 1

    def _desc(self, rec, j: int, fview: dict):
        """(source, axis, lo, hi) when slot j is a range of one axis of a buffer: a basic slice made once per
        set, or one op's part of a fused group's buffer."""
        if j in fview:
            return fview[j]
        e = rec.producer.get(j)
        if e is None or self.fk.get(j) != "pview" or rec.program[e][0] is not ops.GetItem:
            return None
        cls, needs, kw, refs, s, sl = rec.program[e]
        src = refs[0][1]
        rng = _range(sl, rec.shapes[src][0])
        if rng is None:
            return None
        return (("s", src),) + rng

    def _fuse(self, rec) -> None:
        """The same elementwise op on adjacent ranges of the same buffers (σ of an LSTM's i and f gates,
        x_r + h_r and x_z + h_z of a GRU) runs once on the joined range, writing into one buffer whose
        ranges are the ops' results (views): fewer NumPy calls, the same numbers."""
        prog = rec.program
        fview: dict = {}
        open_: list = []
        by_key: dict = {}  # (op, axis, dtype, other dims, sources) -> groups it could join
        for e in self.live:
            cls, needs, kw, refs, s, sl = prog[e]
            if self.kind[e] != "ew" or self.fk.get(s) != "buf":
                continue
            oshape = rec.shapes[s][0]
            ds = []
            for k, j in refs:
                if k == "s":
                    d = self._desc(rec, j, fview)
                    if d is None or rec.shapes[j][0] != oshape:
                        break
                    ds.append(d)
                elif k == "a" and j.ndim == 0:
                    ds.append(("same", id(j)))
                else:
                    break
            else:
                axes = {d[1] for d in ds if d[0] != "same"}
                if len(axes) != 1:
                    continue
                axis = axes.pop()
                n = oshape[axis]
                if any(d[3] - d[2] != n for d in ds if d[0] != "same"):
                    continue
                gkey = (_FAMILY.get(cls, cls), axis, rec.shapes[s][1], oshape[:axis] + oshape[axis + 1:],
                        tuple(d if d[0] == "same" else d[0] for d in ds))
                for g in by_key.get(gkey, ()):
                    if any(d[0] == ("F", g["id"]) for d in ds):
                        continue
                    pairs = list(zip(g["ins"], ds))
                    if all(a[0] == "same" or a[3] == b[2] for a, b in pairs):  # appends
                        g["ins"] = [a if a[0] == "same" else a[:3] + (b[3],) for a, b in pairs]
                        g["members"].append((e, s, g["n"], g["n"] + n))
                        g["n"] += n
                    elif all(a[0] == "same" or a[2] == b[3] for a, b in pairs):  # prepends
                        g["ins"] = [a if a[0] == "same" else a[:2] + (b[2], a[3]) for a, b in pairs]
                        g["members"] = [(m[0], m[1], m[2] + n, m[3] + n) for m in g["members"]]
                        g["members"].append((e, s, 0, n))
                        g["n"] += n
                    else:
                        continue
                    for m in g["members"]:
                        fview[m[1]] = (("F", g["id"]), axis, m[2], m[3])
                    break
                else:
                    g = {"id": len(self.groups) + len(open_), "cls": cls, "axis": axis, "dtype": rec.shapes[s][1],
                         "rest": oshape[:axis] + oshape[axis + 1:], "ins": ds, "members": [(e, s, 0, n)], "n": n,
                         "lead": e}
                    open_.append(g)
                    by_key.setdefault(gkey, []).append(g)
                    fview[s] = (("F", g["id"]), axis, 0, n)
        for g in sorted(open_, key=lambda g: g["id"]):
            if len(g["members"]) < 2:
                continue
            self.groups.append(g)
        gid_ok = {g["id"] for g in self.groups}
        # a group whose input is a range of a dissolved one-op group cannot run fused
        changed = True
        while changed:
            changed = False
            for g in list(self.groups):
                if any(d[0] != "same" and d[0][0] == "F" and d[0][1] not in gid_ok for d in g["ins"]):
                    self.groups.remove(g)
                    gid_ok.discard(g["id"])
                    changed = True
        fed = {d[0][1] for g in self.groups for d in g["ins"] if d[0] != "same" and d[0][0] == "F"}
        for g in self.groups:
            shape = list(g["rest"])
            shape.insert(g["axis"], g["n"])
            g["shape"] = tuple(shape)
            widths = {hi - lo for _, _, lo, hi in g["members"]}
            if g["axis"] == len(shape) - 1 and len(shape) >= 2 and len(widths) == 1 and g["id"] not in fed:
                # planar: the ops' results are the contiguous planes of an (m, ..., w) buffer, so every later
                # op on one of them (f * c, i * g, o * tanh(c)) runs on a contiguous array (~2.5x cheaper
                # at these sizes than on a strided range); only the fused call reads across the planes
                w = widths.pop()
                g["planar"] = (g["n"] // w, w)
                g["bshape"] = (g["n"] // w,) + tuple(shape[:-1]) + (w,)
            else:
                g["bshape"] = g["shape"]
            g["out"] = self.nvirt  # virtual slots: the fused buffer and the fused inputs
            g["vin"] = list(range(self.nvirt + 1, self.nvirt + 1 + len(g["ins"])))
            self.nvirt += 1 + len(g["ins"])
            if len({prog[m[0]][0] for m in g["members"]}) > 1:
                self._gates(rec, g)
            self.lead[g["lead"]] = g
            for m in g["members"]:
                self.fk[m[1]] = "fview"
                if m[0] != g["lead"]:
                    self.skip.add(m[0])
        self.groups_by_id = {g["id"]: g for g in self.groups}
        self.offsets: list | None = None  # where each buffer lives in a set's arena (_shared_offsets)


def _member_index(g: dict, lo: int, hi: int) -> tuple:
    """The index of a fused group's range lo:hi in the group's buffer (a plane of a planar buffer)."""
    if "planar" in g:
        return (lo // g["planar"][1],)
    return (slice(None),) * g["axis"] + (slice(lo, hi),)


def _planes(a: np.ndarray, m: int, w: int) -> np.ndarray:
    """The (m, ..., w) view of a (..., m w) array (its last axis read as m planes of width w): always a view,
    whatever a's strides."""
    st = a.strides
    return np.lib.stride_tricks.as_strided(a, (m,) + a.shape[:-1] + (w,), (w * st[-1],) + st)


def _range(sl, shape: tuple):
    """(axis, lo, hi) when the basic index `sl` takes the range lo:hi of one axis and all of the others."""
    if type(sl) is not tuple or len(sl) != len(shape):
        return None
    rng = None
    for d, x in enumerate(sl):
        if type(x) is not slice:
            return None
        lo, hi, st = x.indices(shape[d])
        if st != 1:
            return None
        if (lo, hi) != (0, shape[d]):
            if rng is not None:
                return None
            rng = (d, lo, hi)
    return rng


def _axis(kw, ndim: int) -> int:
    d = kw.get("dim", 0)
    return d + ndim if d < 0 else d


def _nbytes(shape, dt) -> int:
    """An item's size in an arena: its bytes rounded up to 64 (each item starts on a cache line)."""
    return -(-max(int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize, 1) // 64) * 64


def _packed(items: list) -> list:
    """Offsets giving every (shape, dtype) in `items` its own bytes, one after another."""
    offs, total = [], 0
    for shape, dt in items:
        offs.append(total)
        total += _nbytes(shape, dt)
    return offs


def _layout(items: list, offs: list | None = None):
    """One uint8 arena holding every (shape, dtype) in `items` (64-byte aligned) at `offs` (default: each its
    own bytes; `_shared_offsets` lets dead ones share): (arena, arrays)."""
    offs = _packed(items) if offs is None else offs
    total = max([o + _nbytes(sh, dt) for (sh, dt), o in zip(items, offs)], default=0)
    arena = np.empty(max(total, 64), np.uint8)
    return arena, [np.ndarray(shape, dt, buffer=arena, offset=o) for (shape, dt), o in zip(items, offs)]


def _span(a: np.ndarray, base: int) -> int:
    """The first byte of the arena that array `a` (a view into it) touches."""
    lo = a.__array_interface__["data"][0] - base
    return lo + sum(st * (n - 1) for st, n in zip(a.strides, a.shape) if st < 0 and n > 0)


def _shared_offsets(rec, vals: list, arena: np.ndarray, items: list) -> list:
    """Arena offsets under which forward buffers share memory: a buffer whose value neither the backward
    program nor the caller reads (a matmul result once added, a pre-activation once squashed, f * c once
    summed) is dead after its last forward read, and a later buffer of the same size takes its bytes: a
    smaller arena (an LSTM's: about 60%), so more of a replay stays in cache.

    Lifetimes come from the program: a buffer lives from the first op writing into it (a stack's rows are
    written by their producers) to the last op reading it, forever when backward reads it (the op's
    `saves`: Mul's inputs, σ/tanh/relu's outputs, matmul/linear inputs; every array of an op that runs its
    own forward, which may keep any of them) or it is an output. An op's outputs are placed before its dead
    inputs are released, so no op writes over its own inputs. `vals` and `arena` are a set laid out by
    `_packed(items)`."""
    prog, plan = rec.program, rec.plan
    where = _items_of(vals, arena, items)  # slot -> item index
    lead_of = {m[0]: g["lead"] for g in plan.groups for m in g["members"]}
    pos = {e: p for p, e in enumerate(plan.live)}
    FOREVER = len(plan.live)
    first, last = {}, {}

    def write(s, p):
        k = where.get(s)
        if k is not None and first.get(k, FOREVER) > p:
            first[k] = p

    def read(s, p):
        k = where.get(s)
        if k is not None and last.get(k, -1) < p:
            last[k] = p

    for e in plan.live:
        cls, needs, kw, refs, s, sl = prog[e]
        kind = plan.kind[e]
        if kind == "view" and s not in where and refs[0][0] == "s" and refs[0][1] in where:
            where[s] = where[refs[0][1]]  # a view made per call: it reads its source's bytes
        p = pos[lead_of.get(e, e)]
        slots = [j for k, j in refs if k == "s"]
        write(s, p)
        for j in slots:
            read(j, p)
        if kind is None:
            kept = slots + [s]
        elif kind == "lerp":  # backward reads w, and b - a unless hoisted
            kept = slots
        else:  # the generated backward reads what the op's own backward reads
            kept = [s if i == -1 else refs[i][1] for i in cls.saves
                    if i == -1 or (i < len(refs) and refs[i][0] == "s")]
        for j in kept:
            read(j, FOREVER)
        g = plan.lead.get(e)
        if g is not None:
            write(g["out"], p)
            for v in g["vin"]:
                read(v, p)
            if "tanh" in g:
                write(g["tanh"], p)
                read(g["tanh"], FOREVER)
    for r in rec.out_refs:
        if r[0] == "s":
            read(r[1], FOREVER)
    return _place(items, first, last, FOREVER)


def _items_of(arrays: list, arena: np.ndarray, items: list) -> dict:
    """index -> the item of an arena laid out by `_packed(items)` that arrays[index] (a view into it) lies in,
    found by address: a view of a view (as_strided planes) need not have the arena as .base."""
    base = arena.__array_interface__["data"][0]
    starts = _packed(items) + [sum(_nbytes(*it) for it in items)]
    where: dict = {}
    for s, a in enumerate(arrays):
        if type(a) is np.ndarray and a.size:
            at = _span(a, base)
            if 0 <= at < starts[-1]:
                where[s] = bisect.bisect_right(starts, at) - 1
    return where


def _place(items: list, first: dict, last: dict, forever: int) -> list:
    """Offsets for items live from step first[k] to last[k] (an item without a first step, or last at
    `forever`, gets bytes of its own): placed in step order, each step's new items first, then the ones it
    read for the last time are freed, so no step writes over what it reads."""
    FOREVER = forever
    born: dict = {}
    died: dict = {}
    for k in range(len(items)):
        f, l = first.get(k), last.get(k, first.get(k))
        if f is None or l >= FOREVER:
            f, l = -1, FOREVER  # its own bytes
        l = max(l, f)
        born.setdefault(f, []).append(k)
        died.setdefault(l, []).append(k)
    offs = [0] * len(items)
    free: dict = {}  # size -> offsets free for reuse
    top = 0
    for p in [-1] + list(range(FOREVER)):
        for k in born.get(p, ()):
            n = _nbytes(*items[k])
            if free.get(n):
                offs[k] = free[n].pop()
            else:
                offs[k], top = top, top + n
        for k in died.get(p, ()):
            free.setdefault(_nbytes(*items[k]), []).append(offs[k])
    return offs


class _BufferSet:
    """The forward buffers of one replay (and, per output, its gradient buffers): every array is a view of
    one arena, so `sys.getrefcount(arena)` tells whether anything outside (an output the caller keeps, a
    replay that may still run backward) points into it."""

    def __init__(self, rec: _Recording):
        plan = rec.plan
        own = [s for s, k in plan.fk.items() if k == "buf"]
        gates = [g for g in plan.groups if "tanh" in g]
        items = [rec.shapes[s] for s in own] + [(g["bshape"], g["dtype"]) for g in plan.groups + gates]
        if plan.offsets is None:  # the first set: lay out every buffer apart, then find which can share
            self.arena, arrs = _layout(items)
            self._views(rec, own, gates, arrs)
            plan.offsets = _shared_offsets(rec, self.vals, self.arena, items)
        self.arena, arrs = _layout(items, plan.offsets)
        self._views(rec, own, gates, arrs)
        self.grads: dict = {}  # output slot -> (gradient arrays by slot, their arena)
        self.rc = sys.getrefcount(self.arena)

    def _views(self, rec, own: list, gates: list, arrs: list) -> None:
        plan, prog = rec.plan, rec.program
        vals = [None] * plan.nvirt
        for s, a in zip(own, arrs):
            vals[s] = a
        for g, a in zip(plan.groups, arrs[len(own):]):
            vals[g["out"]] = a
        for g, a in zip(gates, arrs[len(own) + len(plan.groups):]):
            vals[g["tanh"]] = a
        for s, (k, i) in plan.sview.items():
            vals[s] = vals[k][i]
        for e in plan.live:
            g = plan.lead.get(e)
            if g is not None:  # a fused group: its ops' results are ranges of its buffer, its inputs ranges too
                F, ax = vals[g["out"]], g["axis"]
                pre = (slice(None),) * ax
                for _, ms, lo, hi in g["members"]:
                    vals[ms] = F[_member_index(g, lo, hi)]
                for d, v in zip(g["ins"], g["vin"]):
                    if d[0] != "same":
                        src = vals[d[0][1]] if d[0][0] == "s" else vals[plan.groups_by_id[d[0][1]]["out"]]
                        vals[v] = src[pre + (slice(d[2], d[3]),)]
                        if "planar" in g:
                            vals[v] = _planes(vals[v], *g["planar"])
                continue
            cls, needs, kw, refs, s, sl = prog[e]
            if plan.fk.get(s) != "pview":
                continue
            src = vals[refs[0][1]]
            name = cls.__name__
            if name == "GetItem":
                v = src[sl]
            elif name == "Permute":
                v = src.transpose(kw["order"])
            else:
                v = src.reshape(kw["shape"])
                assert v.base is self.arena, "a reshape of a contiguous buffer is a view"
            vals[s] = v
        self.vals = vals

    def free(self) -> bool:
        return sys.getrefcount(self.arena) <= self.rc


def _shared_grad_offsets(plan, D: list, arena: np.ndarray, items: list) -> list:
    """Arena offsets under which gradient buffers share memory: a step's gradients (dh, the gates', a
    scratch buffer) are dead once the ops before it have read them, and a later step's take their bytes,
    so backward's working set stays about one step plus what must be kept (a smaller arena stays in cache).

    A buffer lives from the first step of the program naming it to the last; a view of it that a step's
    `go` hands on uncopied (a dyn slot: `G[j] = go`) lives until the step reading that slot, and forever
    when it goes to a leaf's gradient or into a lazy weight/bias gradient (OuterSum, row sums) that the
    sweep forms after the program returns. `D` and `arena` are laid out by `_packed(items)`."""
    where = _items_of(D, arena, items)
    FOREVER = len(plan.uses)
    first, last = {}, {}
    held: dict = {}  # dyn slot -> items the gradient in it may be a view of
    keep: set = set()
    for p, (named, go, esc) in enumerate(plan.uses):
        its = {where[j] for j in named if j in where}
        if go is None:  # the incoming gradient, or a fused group's (read from the buffers it names)
            gi = set()
        elif go[0] == "D":
            gi = {where[go[1]]} if go[1] in where else set()
        else:
            gi = held.pop(go[1], set())
        its |= gi
        for j in esc:
            if j is None:
                keep |= gi
            else:
                held.setdefault(j, set()).update(gi)
        for k in its:
            first.setdefault(k, p)
            last[k] = p
    for v in held.values():  # never read again: kept, to be safe
        keep |= v
    for k in keep:
        last[k] = FOREVER
    return _place(items, first, last, FOREVER)


class _BackwardPlan:
    """Where each gradient of the backward program from output `slot` lives:
    "ext" the incoming gradient (the root), "leaf" an input or parameter (accumulated as eager does),
    "own" a preallocated buffer, "view" a slice of its source's buffer (when the source's gradient is made
    only of disjoint slices, e.g. the gates of a chunk), "sview" a row of a stack's gradient buffer (the
    stack's gradient is the first to reach it), "alias" the same buffer as an Add/Sub input whose only
    gradient it is (no copy), "dyn" whatever array the first contribution gives (no buffer)."""

    def __init__(self, rec: _Recording, slot: int):
        prog, fplan = rec.program, rec.plan
        self.rec, self.root = rec, slot
        live = {slot}
        contrib: dict = {}  # ("s"|"c", j) -> [(entry index, input index)] in backward order
        ops_ = []
        for e in reversed(fplan.live):
            cls, needs, kw, refs, s, sl = prog[e]
            if s not in live or needs is None:
                continue
            t = [(i, r) for i, (r, nd) in enumerate(zip(refs, needs)) if nd and r[0] != "a"]
            if not t:
                continue
            ops_.append(e)
            for i, (k, j) in t:
                contrib.setdefault((k, j), []).append((e, i))
                if k == "s":
                    live.add(j)
        self.ops, self.contrib = ops_, contrib
        self.gk: dict = {}
        self.info: dict = {}
        self._counts: dict = {}
        self.fill: list = []  # slice sources whose slices do not cover them: zeroed first
        nin = rec.n_inputs
        # slice sources: every gradient a slot gets comes from disjoint basic slices of it
        self.sp = set()
        for (k, j), cs in contrib.items():
            if k != "s" or j < nin or j == slot:
                continue
            ok = all(fplan.kind[e] == "view" and prog[e][0] is ops.GetItem and prog[e][4] != slot for e, _ in cs)
            if not ok:
                continue
            cnt = np.zeros(rec.shapes[j][0], np.int8)
            for e, _ in cs:
                cnt[prog[e][5]] += 1
            if cnt.max(initial=0) > 1:
                continue
            self.sp.add(j)
            if cnt.size and cnt.min() == 0:
                self.fill.append(j)
        for j in sorted(live):
            self.kind_of(j)
        self.bjoin: dict = {}  # group id -> (gradient slot, [input gradient slots]), virtual slots of joined ranges
        self.bdone: set = set()
        self.nv = fplan.nvirt
        self.vd: list = []  # (virtual slot, buffer slot, axis, lo, hi)
        self.vplanar: dict = {}  # virtual slot -> (m, w): read as the planes of a planar group
        self.btmp: dict = {}  # planar group id -> virtual slot of its scratch buffer
        self.blead: dict = {}  # fused forward groups of σ / tanh whose backward also runs as one call
        self.bskip: set = set()
        self.uses: list | None = None  # set by _gen_backward (see _shared_grad_offsets)
        self.hoisted: dict = {}  # set by _gen_backward: op -> its local derivative's row (see _hoist_factors)
        self.offsets: list | None = None
        for g in fplan.groups:
            self._fuse_backward(g)

    def _joined(self, slots: list, g: dict):
        """A virtual slot for the joined range, when the gradients of `slots` (one per group op, in group
        order) are adjacent ranges of one buffer along the group's axis; else None."""
        off = None
        for j, (e, ms, lo, hi) in zip(slots, g["members"]):
            d = self._gdesc(j)
            if d is None or d[1] != g["axis"] or d[3] - d[2] != hi - lo or \
                    (off is not None and (d[0], d[1], d[2] - lo) != off):
                return None
            off = (d[0], d[1], d[2] - lo)
        v = self.nv
        self.nv += 1
        self.vd.append((v, off[0], off[1], off[2], off[2] + g["n"]))
        return v

    def _fuse_backward(self, g: dict) -> None:
        """A fused group's backward as one pass too, when its inputs' gradients are adjacent ranges of one
        buffer and are theirs alone, and every input is made before the group (or by a fused group before):
        σ / tanh of chunked gates (from one buffer holding the outputs' gradients), x_r + h_r and x_z + h_z."""
        prog = self.rec.program
        cls = g["cls"]
        if cls not in (ops.Sigmoid, ops.Tanh, ops.Add, _GATES):
            return
        lead = g["lead"]
        for e, ms, lo, hi in g["members"]:
            if ms == self.root or ms not in self.gk or prog[e][1] != prog[lead][1]:
                return
            for i, (k, j) in enumerate(prog[e][3]):
                if k == "s" and prog[e][1][i]:
                    pe = self.rec.producer.get(j)
                    if self.contrib.get(("s", j)) != [(e, i)] or (pe is not None and pe >= lead and pe not in self.bdone):
                        return
        if cls is ops.Add:
            jobs = []
            for i in range(2):
                ins = [prog[e][3][i] for e, *_ in g["members"]]
                if not prog[g["lead"]][1][i] or all(self.gk.get(ms) == "alias" and self.info[ms] == r[1]
                                                    for r, (e, ms, lo, hi) in zip(ins, g["members"])):
                    continue
                if any(r[0] != "s" for r in ins):
                    return
                jobs.append([r[1] for r in ins])
            go = self._joined([ms for e, ms, lo, hi in g["members"]], g)
            dst = [self._joined(js, g) for js in jobs]
            if go is None or None in dst:
                return
            self.bjoin[g["id"]] = (go, dst)
        else:
            if any(self.gk.get(ms) != "own" or ms in self.sp for e, ms, lo, hi in g["members"]):
                return
            dst = self._joined([prog[e][3][0][1] for e, *_ in g["members"]], g)
            if dst is None:
                return
            if "planar" in g:
                self.vplanar[dst] = g["planar"]
                self.btmp[g["id"]] = self.nv
                self.nv += 1
            for e, ms, lo, hi in g["members"]:
                self.gk[ms] = "fgrad"
                self.info[ms] = (g, lo, hi)
            self.bjoin[g["id"]] = (g["out"], [dst])
        for e, ms, lo, hi in g["members"]:
            self.bdone.add(e)
            if e != lead:
                self.bskip.add(e)
        self.blead[lead] = g

    def _gdesc(self, j: int):
        """(buffer slot, axis, lo, hi) when slot j's gradient is a range of one axis of another's."""
        k = self.gk.get(j)
        if k == "alias":
            return self._gdesc(self.info[j])
        if k == "view":
            p, sl = self.info[j]
            r = _range(sl, self.rec.shapes[p][0])
            return None if r is None else (p,) + r
        return None

    def first(self, j) -> tuple:
        return self.contrib[("s", j)][0]

    def kind_of(self, j: int) -> str:
        k = self.gk.get(j)
        if k is not None:
            return k
        rec, prog = self.rec, self.rec.program
        if j == self.root:
            k = "ext"
        elif j < rec.n_inputs:
            k = "leaf"
        else:
            k = self._structural(j) or self._alias(j) or self._own(j)
        self.gk[j] = k
        return k

    def _producer(self, j: int):
        return self.rec.producer.get(j)

    def _structural(self, j: int):
        rec, prog, fplan = self.rec, self.rec.program, self.rec.plan
        e = self._producer(j)
        if e is not None and fplan.kind.get(e) == "view" and prog[e][0] is ops.GetItem:
            p = prog[e][3][0]
            if p[0] == "s" and p[1] in self.sp:
                self.kind_of(p[1])
                self.info[j] = (p[1], prog[e][5])
                return "view"
        e, i = self.first(j)
        if fplan.kind[e] == "stack" and _axis(prog[e][2], len(rec.shapes[prog[e][4]][0])) == 0:
            k = prog[e][4]
            if self.kind_of(k) in ("own", "sview") and prog[e][3][i] == ("s", j) and \
                    rec.plan.sview.get(j, (k, i)) == (k, i) and self._once(e, j):
                self.info[j] = (k, i)
                return "sview"
        return None

    def _once(self, e: int, j: int) -> bool:
        """Slot j is one input of op e only once (counts kept per op: a stack of T inputs is O(T))."""
        c = self._counts.get(e)
        if c is None:
            c = self._counts[e] = {}
            for r in self.rec.program[e][3]:
                c[r] = c.get(r, 0) + 1
        return c[("s", j)] == 1

    def _alias(self, j: int):
        """j = a + b (or a - b): j's gradient written straight into a's buffer when it is a's only one."""
        rec, prog, fplan = self.rec, self.rec.program, self.rec.plan
        e = self._producer(j)
        if e is None or fplan.kind.get(e) != "ew" or prog[e][0] not in (ops.Add, ops.Sub):
            return None
        refs = prog[e][3]
        for i, (k, a) in enumerate(refs[:1] if prog[e][0] is ops.Sub else refs):
            if k != "s" or rec.shapes[a] != rec.shapes[j] or self.contrib.get(("s", a)) != [(e, i)]:
                continue
            if self.kind_of(a) in ("view", "sview"):
                self.info[j] = a
                return "alias"
        return None

    def _own(self, j: int) -> str:
        if j in self.sp:
            return "own"
        cs = self.contrib[("s", j)]
        e, i = cs[0]
        prog = self.rec.program
        if len(cs) == 1 and self._passes(e, i, j):
            return "dyn"  # its one gradient is the op's own (or a row of it): referenced, not copied
        if self.rec.plan.kind[e] is not None:
            return "own"
        return "dyn"

    def _passes(self, e: int, i: int, j: int) -> bool:
        """Op e hands its gradient (or a row of it) unchanged to input i, slot j."""
        cls, needs, kw, refs, s, sl = self.rec.program[e]
        k = self.rec.plan.kind[e]
        if k == "stack":
            return True
        if k == "ew" and (cls is ops.Add or (cls is ops.Sub and i == 0)):
            return self.rec.shapes[j] == self.rec.shapes[s]
        return False

    def noop(self, e: int, i: int, j: int) -> bool:
        """The contribution of op e's input i to slot j is already in place (a slice written into its source's
        buffer, a stack's row, an Add's alias)."""
        s = self.rec.program[e][4]
        gs = self.gk.get(s)
        if gs == "view" and self.info[s][0] == j:
            return True
        if self.gk.get(j) == "sview" and self.first(j) == (e, i):
            return True
        return gs == "alias" and self.info[s] == j

    def allocate(self):
        """This plan's gradient arrays for one buffer set: (list by slot, arena). Once the backward program
        is generated (`uses`), buffers whose gradient is dead share bytes (_shared_grad_offsets)."""
        rec = self.rec
        own = sorted(j for j, k in self.gk.items() if k == "own")
        gs = [g for g in self.blead.values() if g["cls"] is not ops.Add]
        tmp = [g for g in gs if g["id"] in self.btmp]
        items = [rec.shapes[j] for j in own] + [(g["bshape"], g["dtype"]) for g in gs + tmp]
        if self.offsets is None and self.uses is not None:
            arena, arrs = _layout(items)
            self.offsets = _shared_grad_offsets(self, self._arrays(own, gs, tmp, arrs), arena, items)
        arena, arrs = _layout(items, self.offsets)
        return self._arrays(own, gs, tmp, arrs), arena

    def _arrays(self, own: list, gs: list, tmp: list, arrs: list) -> list:
        D = [None] * self.nv
        for j, a in zip(own, arrs):
            D[j] = a
        for g, a in zip(gs, arrs[len(own):]):
            D[g["out"]] = a
            for _, ms, lo, hi in g["members"]:
                D[ms] = a[_member_index(g, lo, hi)]
        for g, a in zip(tmp, arrs[len(own) + len(gs):]):
            D[self.btmp[g["id"]]] = a
        for v, p, ax, lo, hi in self.vd:
            D[v] = self._resolve(p, D)[(slice(None),) * ax + (slice(lo, hi),)]
            if v in self.vplanar:
                D[v] = _planes(D[v], *self.vplanar[v])
        for j in sorted(self.gk):
            self._resolve(j, D)
        return D

    def _resolve(self, j: int, D: list):
        if D[j] is not None:
            return D[j]
        k = self.gk[j]
        if k == "view":
            p, sl = self.info[j]
            D[j] = self._resolve(p, D)[sl]
        elif k == "sview":
            s, i = self.info[j]
            D[j] = self._resolve(s, D)[i]
        elif k == "alias":
            D[j] = self._resolve(self.info[j], D)
        return D[j]  # "fgrad": set with its group's buffer


# ---------------------------------------------------------------- code generation
# The plans become two straight-line Python functions (exec'd once per recording): no loop, no per-op
# dispatch; each line is one op's forward (or backward) formula, the same formula its op class has.
_NS = {"new": object.__new__, "ndarray": np.ndarray, "asarray": np.asarray, "add": np.add, "subtract": np.subtract,
       "multiply": np.multiply, "negative": np.negative, "tanh": np.tanh, "maximum": np.maximum,
       "matmul": np.matmul, "stack": np.stack, "copyto": np.copyto, "swapaxes": np.swapaxes, "npsum": np.sum,
       "zeros": np.zeros, "OuterSum": OuterSum, "concatenate": np.concatenate,
       "ascontiguousarray": np.ascontiguousarray, "broadcast_to": np.broadcast_to}


def _transposed(w: np.ndarray) -> np.ndarray:
    """wᵀ as a contiguous array, the same bytes as np.ascontiguousarray(w.T). NumPy copies a large transpose
    element by element across the whole array (7.3 ms at (2048, 512) float32: a char-LM's W_hh). Copied in
    slabs of 32 rows, each slab's writes stay within a few cache lines per output row: 0.7 ms there, 0.14
    against 0.28 ms at (1024, 256); below ~10^5 elements the plain copy is as fast."""
    if w.ndim != 2 or w.size < 1 << 17:
        return np.ascontiguousarray(w.T)
    out = np.empty(w.shape[::-1], w.dtype)
    for i in range(0, w.shape[0], 32):
        out[:, i:i + 32] = w[i:i + 32].T
    return out


_NS["transposed"] = _transposed


def _arg(ns: dict, e: int, i: int, ref) -> str:
    kind, j = ref
    if kind == "s":
        return f"V[{j}]"
    if kind == "c":
        return f"K[{j}]"
    ns[f"A{e}_{i}"] = j
    return f"A{e}_{i}"


_OUT_KW = re.compile(r"\b(add|subtract|multiply|negative|tanh|matmul)\(([^;\n]*?), out=([^;\n]*?)\)")


def _positional_out(code: str) -> str:
    """ufunc(a, b, out=o) -> ufunc(a, b, o): a ufunc parses a positional `out` ~15% faster at these sizes
    (not np.maximum, where a third positional argument is deprecated)."""
    return _OUT_KW.sub(r"\1(\2, \3)", code)


def _const(ns: dict, v: float, dt) -> str:
    """A number as a 0-d array of the op's dtype (a ufunc converts a Python float on every call)."""
    name = f"N_{str(v).replace('.', '_').replace('-', 'm')}_{np.dtype(dt).str[1:]}"
    ns[name] = np.array(v, dt)
    return name


def _zeros(ns: dict, shape: tuple, dt) -> str:
    """A read-only zeros array of `shape` (a ufunc runs ~3x slower against a broadcast 0 than a same-shape one)."""
    name = f"Z_{'x'.join(map(str, shape))}_{np.dtype(dt).str[1:]}"
    if name not in ns:
        ns[name] = np.zeros(shape, dt)
        ns[name].flags.writeable = False
    return name


def _gen_forward(rec: _Recording):
    prog, plan = rec.program, rec.plan
    ns = dict(_NS)
    lines = ["def fwd(V, K):"]
    names = ["None"] * len(prog)
    made: set = set()
    # a parameter broadcast into many same-shape elementwise ops (the b_hh a GRU adds at every step):
    # broadcast once per call into a full-shape array, since a row-vector operand costs ~3x a same-shape one
    wide: dict = {}  # (constant, shape) -> uses, then the name of its broadcast
    for e in plan.live:
        cls, needs, kw, refs, s, sl = prog[e]
        if plan.kind[e] == "ew" and e not in plan.lead and e not in plan.skip:
            for r in refs:
                if r[0] == "c" and rec.consts[r[1]]._data.shape != rec.shapes[s][0]:
                    key = (r[1], rec.shapes[s][0])
                    wide[key] = wide.get(key, 0) + 1
    lin_uses = Counter(prog[e][3][1][1] for e in plan.live  # constant -> linear ops using it as their weight
                       if plan.kind[e] == "lin" and prog[e][3][1][0] == "c")
    for e in plan.live:
        cls, needs, kw, refs, s, sl = prog[e]
        a = [_arg(ns, e, i, r) for i, r in enumerate(refs)]
        k, name, o = plan.kind[e], cls.__name__, f"V[{s}]"
        ns[f"W{e}"] = kw
        if e in plan.skip:
            continue  # computed by its group's first op
        g = plan.lead.get(e)
        if g is not None:
            o = f"V[{g['out']}]"
            a = [f"V[{v}]" if d[0] != "same" else x for d, v, x in zip(g["ins"], g["vin"], a)]
        if k is None:
            ns[f"C{e}"], ns[f"N{e}"] = cls, needs
            lines.append(f"    c{e} = new(C{e})")
            if needs is not None:
                lines.append(f"    c{e}.needs = N{e}")
            lines.append(f"    d = c{e}.forward({', '.join(a + ([f'**W{e}'] if kw else []))})")
            lines.append("    if type(d) is not ndarray: d = asarray(d)")
            lines.append(f"    {o} = d")
            names[e] = f"c{e}"
        elif k == "view":
            if plan.fk.get(s) == "pview":
                continue  # made once per buffer set
            if name == "GetItem":
                ns[f"SL{e}"] = sl
                lines.append(f"    {o} = {a[0]}[SL{e}]")
            elif name == "Permute":
                lines.append(f"    {o} = {a[0]}.transpose(W{e}['order'])")
            else:
                lines.append(f"    {o} = {a[0]}.reshape(W{e}['shape'])")
        elif k == "ew":
            if g is not None and g["cls"] is _GATES:
                ns[f"GS{e}"], ns[f"GC{e}"], T = g["S"], g["C"], f"V[{g['tanh']}]"
                lines.append(f"    o = {o}; multiply({a[0]}, GS{e}, out=o); tanh(o, out={T}); multiply({T}, GS{e}, out=o); "
                             f"add(o, GC{e}, out=o)")
            elif name == "Sigmoid":  # as ops.Sigmoid: 0.5 tanh(x/2) + 0.5 (a 0-d array is cheaper than a float)
                h = _const(ns, 0.5, rec.shapes[s][1])
                lines.append(f"    o = {o}; multiply({a[0]}, {h}, out=o); tanh(o, out=o); multiply(o, {h}, out=o); "
                             f"add(o, {h}, out=o)")
            elif name == "Relu":  # against a same-shape zeros array: ~3x faster than a broadcast 0 (same values)
                lines.append(f"    maximum({a[0]}, {_zeros(ns, *rec.shapes[s])}, out={o})")
            else:
                for i, r in enumerate(refs):
                    key = (r[1], rec.shapes[s][0]) if r[0] == "c" else None
                    n = wide.get(key, 0)
                    if type(n) is int and n > 1:  # the first use broadcasts it; the rest use that array
                        n = wide[key] = f"KB{e}"
                        ns[f"SHP{e}"] = rec.shapes[s][0]
                        lines.append(f"    {n} = ascontiguousarray(broadcast_to({a[i]}, SHP{e}))")
                    if type(n) is str:
                        a[i] = n
                lines.append(f"    {_EW[name]}({', '.join(a)}, out={o})")
        elif k == "lerp":  # as compile.Lerp: a + w (b - a)
            lines.append(f"    o = {o}; subtract({a[1]}, {a[0]}, out=o); multiply({a[2]}, o, out=o); add({a[0]}, o, out=o)")
        elif k == "mm":
            lines.append(f"    matmul({a[0]}, {a[1]}, out={o})")
        elif k == "lin":  # as ops.Linear: one 2-D GEMM, then the bias added in place
            xs, (m, n) = _meta(rec, refs[0])[0], _meta(rec, refs[1])[0]
            wT = f"{a[1]}.T"
            if refs[1][0] == "c" and lin_uses[refs[1][1]] > 1:
                # a weight in several GEMMs (a decoder's step) runs them faster on a contiguous Wᵀ, made once
                # per call; for one GEMM the copy costs more than it saves (measured 8x32 to 2048x512)
                wT = f"WT{refs[1][1]}"
                if wT not in made:
                    made.add(wT)
                    lines.append(f"    {wT} = transposed({a[1]})")
            if len(xs) == 2:
                lines.append(f"    matmul({a[0]}, {wT}, out={o})")
            else:
                lines.append(f"    matmul({a[0]}.reshape(-1, {n}), {wT}, out={o}.reshape(-1, {m}))")
            if len(refs) == 3:
                lines.append(f"    add({o}, {a[2]}, out={o})")
        elif k == "stack":
            ax = _axis(kw, len(rec.shapes[s][0]))
            if ax == 0:  # rows already written in place by their producers cost nothing
                for i, r in enumerate(refs):
                    if not (r[0] == "s" and plan.sview.get(r[1]) == (s, i)):
                        lines.append(f"    {o}[{i}] = {a[i]}")
            else:
                lines.append(f"    stack([{', '.join(a)}], axis={ax}, out={o})")
    lines.append(f"    return [{', '.join(names)}]")
    exec(_positional_out("\n".join(lines)), ns)
    return ns["fwd"]


def _is_weight(rec, e: int, i: int) -> bool:
    """Input i of op e is a 2-D weight (a linear's or a 2-D matmul's second operand): its gradient is a
    factor pair Aᵀ B (_outer_factors)."""
    k = rec.plan.kind[e]
    return i == 1 and (k == "lin" or k == "mm" and len(_meta(rec, rec.program[e][3][1])[0]) == 2)


def _outer_factors(rec, e: int, i: int, a: list) -> tuple:
    """(A, B) of a weight's gradient Aᵀ B (see _is_weight), as expressions of op e's arguments `a` and `go`."""
    cls, needs, kw, refs, s, sl = rec.program[e]
    xs, ws = _meta(rec, refs[0])[0], _meta(rec, refs[1])[0]
    if rec.plan.kind[e] == "mm":
        return (a[0], "go") if len(xs) == 2 else (f"{a[0]}.reshape(-1, {xs[-1]})", f"go.reshape(-1, {ws[-1]})")
    return ("go", a[0]) if len(xs) == 2 else (f"go.reshape(-1, {ws[0]})", f"{a[0]}.reshape(-1, {ws[1]})")


def _row_bias(rec, e: int, i: int, tshape: tuple) -> bool:
    """Op e adds (or subtracts) input i, a 1-D parameter, to every row of its output: a bias added at every
    step, whose gradient is the sum of go's rows."""
    cls, needs, kw, refs, s, sl = rec.program[e]
    out = rec.shapes[s][0]
    return cls in (ops.Add, ops.Sub) and rec.plan.kind[e] == "ew" and len(tshape) == 1 and len(out) >= 2 and \
        tuple(tshape) == out[-1:]


def _contribution(rec, plan, e: int, i: int, tshape: tuple, ns: dict, factor: str | None = None):
    """(expr, writer, same) for op e's gradient to its input i: an expression of it, lines writing it into a
    buffer `dst` of the input's shape (or None), and whether expr already has the input's shape.
    `factor`: the name of a σ / tanh op's hoisted local derivative (see _hoist_factors)."""
    cls, needs, kw, refs, s, sl = rec.program[e]
    name, k = cls.__name__, rec.plan.kind[e]
    a = [_arg(ns, e, j, r) for j, r in enumerate(refs)] if k != "stack" else None
    oshape = rec.shapes[s][0]
    same = tuple(tshape) == tuple(oshape)
    Y = f"V[{s}]"
    one = _const(ns, 1.0, rec.shapes[s][1])
    if name in ("Add", "Sub"):
        if name == "Sub" and i == 1:
            return "-go", (lambda d: [f"negative(go, out={d})"]) if same else None, same
        return "go", (lambda d: [f"copyto({d}, go)"]) if same else None, same
    if name == "Mul":
        other = a[1 - i]
        return f"go * {other}", (lambda d: [f"multiply(go, {other}, out={d})"]) if same else None, same
    if name == "Neg":
        return "-go", lambda d: [f"negative(go, out={d})"], True
    if k == "lerp":  # as compile.Lerp: da = g - g w, db = g w (gw: formed once before), dw = g (b - a)
        if i == 0:
            return "go - gw", lambda d: [f"subtract(go, gw, out={d})"], True
        if i == 1:
            return "gw", lambda d: [f"copyto({d}, gw)"], True
        if factor is not None:
            return f"go * {factor}", lambda d: [f"multiply(go, {factor}, out={d})"], True
        return (f"go * ({a[1]} - {a[0]})", lambda d: [f"subtract({a[1]}, {a[0]}, out={d})", f"multiply(go, {d}, out={d})"],
                True)
    if factor is not None:  # go * tanh'  or  σ' * go: the operand order of the writers below
        return (f"go * {factor}", lambda d: [f"multiply(go, {factor}, out={d})" if name == "Tanh" else
                                             f"multiply({factor}, go, out={d})"], True)
    if name == "Tanh":
        return (f"go * (1 - {Y} * {Y})",
                lambda d: [f"t = {d}", f"multiply({Y}, {Y}, out=t)", f"subtract({one}, t, out=t)", "multiply(go, t, out=t)"],
                True)
    if name == "Sigmoid":
        return (f"go * {Y} * (1 - {Y})",
                lambda d: [f"t = {d}", f"subtract({one}, {Y}, out=t)", f"multiply(t, {Y}, out=t)", "multiply(t, go, out=t)"],
                True)
    if name == "Relu":
        return f"go * ({Y} > 0)", lambda d: [f"multiply(go, {Y} > 0, out={d})"], True
    if k == "mm":
        xs, ys = _meta(rec, refs[0])[0], _meta(rec, refs[1])[0]
        if i == 0:
            yT = f"{a[1]}.T" if len(ys) == 2 else f"swapaxes({a[1]}, -1, -2)"
            return f"go @ {yT}", lambda d: [f"matmul(go, {yT}, out={d})"], True
        if len(ys) == 2:  # the weight's gradient xᵀg: lazy for a leaf (one GEMM over all steps)
            X2, G2 = _outer_factors(rec, e, i, a)
            return f"OuterSum({X2}, {G2})", lambda d: [f"matmul({X2}.T, {G2}, out={d})"], True
        return f"swapaxes({a[0]}, -1, -2) @ go", lambda d: [f"matmul(swapaxes({a[0]}, -1, -2), go, out={d})"], True
    if k == "lin":
        xs, (m, n) = _meta(rec, refs[0])[0], _meta(rec, refs[1])[0]
        G2, X2 = ("go", a[0]) if len(xs) == 2 else (f"go.reshape(-1, {m})", f"{a[0]}.reshape(-1, {n})")
        if i == 0:
            if len(xs) == 2:
                return f"go @ {a[1]}", lambda d: [f"matmul(go, {a[1]}, out={d})"], True
            return f"({G2} @ {a[1]}).reshape({tuple(xs)})", lambda d: [f"mm_into({G2}, {a[1]}, {d})"], True
        if i == 1:
            G2, X2 = _outer_factors(rec, e, i, a)
            return f"OuterSum({G2}, {X2})", lambda d: [f"matmul({G2}.T, {X2}, out={d})"], True
        if len(tshape) == 1:  # a bias vector: Σ over rows
            ok = tuple(tshape) == (m,)
            return f"{G2}.sum(0)", (lambda d: [f"npsum({G2}, axis=0, out={d})"]) if ok else None, ok
        return "go", (lambda d: [f"copyto({d}, go)"]) if same else None, same
    if k == "stack":
        ax = _axis(kw, len(oshape))
        if ax == 0:
            part = f"go[{i}]"
        else:
            ns[f"IX{e}_{i}"] = (slice(None),) * ax + (i,)
            part = f"go[IX{e}_{i}]"
        return part, lambda d: [f"copyto({d}, {part})"], True
    if name == "Permute":
        ns[f"INV{e}"] = tuple(int(x) for x in np.argsort(kw["order"]))
        return f"tgrad(go, INV{e})", lambda d: [f"copyto({d}, go.transpose(INV{e}))"], True
    if name == "Reshape":
        ns[f"SH{e}"] = tuple(tshape)
        return f"go.reshape(SH{e})", lambda d: [f"copyto({d}, go.reshape(SH{e}))"], True
    raise AssertionError(name)  # pragma: no cover


_BUFFERED = ("own", "view", "sview", "alias", "fgrad")


def _gen_backward(rec: _Recording, plan: _BackwardPlan, reach: tuple):
    prog, shapes, nin = rec.program, rec.shapes, rec.n_inputs
    ns = dict(_NS, acc=_acc, acc_sl=_acc_sl, accrow=_accrow, fin=_fin, tgrad=_transpose_grad, put=_put, addto=_addto,
              outer_of=_outer_of, rows_of=_rows_of, mm_into=_mm_into)
    lines = ["def bwd(g, ctxs, inputs, K, V, D, garena, arena):", f"    G = [None] * {rec.nslots}",
             f"    KG = [None] * {len(rec.consts)}", "    own = set()"]
    for j in plan.fill:
        lines.append(f"    D[{j}].fill(0)")
    hoisted = plan.hoisted = _hoist_factors(rec, plan, ns, lines)
    # a weight whose every gradient is a factor pair Aᵀ B (W_hh over the steps), or a bias whose every one is
    # a row sum: collected into a list the sweep forms once, instead of an accumulation call per step
    lazy: dict = {}
    for (kd, j), cs in plan.contrib.items():
        if kd == "c":
            shape = rec.consts[j]._data.shape
            if all(_is_weight(rec, e, i) for e, i in cs):
                lazy[j] = "outer"
            elif all(_row_bias(rec, e, i, shape) for e, i in cs):
                lazy[j] = "rows"
    lines += [f"    L{j} = []" for j in lazy]
    # dyn slots that every path sets (a contribution outside any `if go is not None`), and those that may
    # hold a lazy weight gradient: a slot in the first and not the second is read without checks
    sure: set = set()
    lazy_g: set = set()
    # per step of the program, what _shared_grad_offsets needs: the gradient buffers its lines name, where
    # its `go` comes from, and the slots (None: a leaf, kept forever) a view of `go` may be handed to
    uses: list = [(list(plan.fill), None, ())]
    for e in plan.ops:
        cls, needs, kw, refs, s, sl = prog[e]
        k, name = rec.plan.kind[e], cls.__name__
        if e in plan.bskip:
            continue  # its group's first op computes it
        g = plan.blead.get(e)
        start = len(lines)
        if g is not None:  # the group's gradients in one pass over the joined range
            vgo, vdst = plan.bjoin[g["id"]]
            lines.append(f"    go = D[{vgo}]")
            if cls is ops.Add:
                lines += [f"    copyto(D[{v}], go)" for v in vdst]
                uses.append((_named(lines[start:]), None, ()))
                continue
            one = _const(ns, 1.0, g["dtype"])
            Y, d = f"V[{g['out']}]", f"D[{vdst[0]}]"
            # planar: the work runs on a contiguous scratch buffer, only the last call writes across planes
            t = f"D[{plan.btmp[g['id']]}]" if g["id"] in plan.btmp else d
            F = hoisted.get(e)
            if F is not None:  # the factor σ' / tanh' of this step was formed with every step's at the start
                plan.btmp.pop(g["id"], None)  # so it needs no scratch buffer
                lines.append(f"    multiply(go, {F}, out={d})" if cls is ops.Tanh and g["cls"] is not _GATES
                             else f"    multiply({F}, go, out={d})")
            elif g["cls"] is _GATES:
                ns[f"GSA{e}"], T = g["SA"], f"V[{g['tanh']}]"
                lines.append(f"    t = {t}; multiply({T}, {T}, out=t); multiply(t, GSA{e}, out=t); subtract(GSA{e}, t, out=t); "
                             f"multiply(t, go, out={d})")
            elif cls is ops.Sigmoid:
                lines.append(f"    t = {t}; subtract({one}, {Y}, out=t); multiply(t, {Y}, out=t); multiply(t, go, out={d})")
            else:
                lines.append(f"    t = {t}; multiply({Y}, {Y}, out=t); subtract({one}, t, out=t); multiply(go, t, out={d})")
            uses.append((_named(lines[start:]), None, ()))
            continue
        gs = plan.gk[s]
        go_from = None if gs == "ext" else ("D", s) if gs in _BUFFERED else ("G", s)
        esc: list = []
        ind = "    "
        if gs == "ext":
            lines.append("    go = g")
        elif gs in _BUFFERED:
            lines.append(f"    go = D[{s}]")
        elif s in sure and s not in lazy_g:  # set on every path, and never a lazy weight gradient
            lines.append(f"    go = G[{s}]; G[{s}] = None")
        else:
            lines += [f"    go = G[{s}]", "    if go is not None:", f"        G[{s}] = None"]
            ind = "        "
            if name != "Permute" or k is None:
                lines.append(ind + "if type(go) is OuterSum: go = go.value()")
        go_array = gs == "ext" or gs in _BUFFERED or s in sure and s not in lazy_g or name != "Permute"
        if k is None:
            lines.append(ind + f"r = ctxs[{e}].backward(go)")
            lines.append(ind + "if type(r) is not tuple: r = (r,)")
        elif k == "lerp" and (needs[0] or needs[1]):  # as compile.Lerp: g w, for a (g - g w) and b
            lines.append(ind + f"gw = go * {_arg(ns, e, 2, refs[2])}")
        for i, (r, nd) in enumerate(zip(refs, needs)):
            if not nd or r[0] == "a":
                continue
            kind, j = r
            if kind == "c":
                shape, dt = rec.consts[j]._data.shape, rec.consts[j]._data.dtype
                dk, lst, key = "leaf", "KG", ~j
            else:
                shape, dt = shapes[j]
                dk = plan.gk[j]
                lst, key = "G", j
            ns[f"S{e}_{i}"], ns[f"T{e}_{i}"] = shape, dt
            S, T = f"S{e}_{i}", f"T{e}_{i}"
            first = plan.contrib[r][0] == (e, i)
            buffered = dk in _BUFFERED
            if buffered and plan.noop(e, i, j):
                continue
            dst = f"D[{j}]"
            held = None if dk == "leaf" else j  # where a gradient not copied into a buffer is kept
            if k is None:  # the op's own backward
                lines.append(ind + f"gi = r[{i}] if len(r) > {i} else None")
                if buffered:
                    lines.append(ind + (f"put({dst}, gi)" if first else f"if gi is not None: addto({dst}, gi)"))
                else:
                    esc.append(held)  # its gradient may be go itself, a lazy weight gradient, or None
                    if kind == "s":
                        lazy_g.add(j)
                    lines.append(ind + f"if gi is not None: acc({lst}, {j}, {key}, gi, {S}, {T}, own)")
                continue
            if k == "view" and name == "GetItem":  # a basic slice: added into its part of the source's gradient
                ns[f"SL{e}"] = sl
                if buffered:
                    lines.append(ind + (f"{dst}.fill(0); " if first else "") + f"v = {dst}[SL{e}]; add(v, go, out=v)")
                elif first:
                    lines.append(ind + f"b = zeros({S}, {T}); v = b[SL{e}]; add(v, go, out=v); {lst}[{j}] = b; own.add({key})")
                else:
                    lines.append(ind + f"acc_sl({lst}, {j}, {key}, go, SL{e}, {S}, {T}, own)")
                continue
            expr, writer, same = _contribution(rec, plan, e, i, shape, ns, hoisted.get(e))
            if not buffered and not _fresh(expr):
                esc.append(None if "OuterSum(" in expr else held)  # kept lazily until the sweep forms it
            if not buffered and kind == "s":
                if "OuterSum(" in expr or not go_array:
                    lazy_g.add(j)
                if ind == "    ":
                    sure.add(j)
            if kind == "c" and j in lazy:
                if lazy[j] == "outer":
                    A, B = _outer_factors(rec, e, i, [_arg(ns, e, x, q) for x, q in enumerate(refs)])
                    lines.append(ind + f"L{j}.append(({A}, {B}))")
                else:
                    esc.append(None)
                    n = rec.shapes[s][0][-1]
                    row = expr if len(rec.shapes[s][0]) == 2 else f"({expr}).reshape(-1, {n})"
                    lines.append(ind + f"L{j}.append({row})")
            elif buffered:
                if first:
                    lines += [ind + x for x in (writer(dst) if writer else
                                                [f"copyto({dst}, {expr})" if same else f"put({dst}, {expr})"])]
                elif same and expr == "-go":
                    lines.append(ind + f"subtract({dst}, go, out={dst})")
                else:
                    lines.append(ind + (f"add({dst}, {expr}, out={dst})" if same else f"addto({dst}, {expr})"))
            elif dk == "leaf" and _row_bias(rec, e, i, shape):  # a bias added at every step
                esc.append(None)  # its rows are summed by the sweep
                lines.append(ind + f"accrow({lst}, {j}, {key}, {expr}, own)")
            elif first and same:
                lines.append(ind + f"{lst}[{j}] = {expr}")
            else:
                lines.append(ind + f"acc({lst}, {j}, {key}, {expr}, {S}, {T}, own)")
        if len(lines) == start + 1 and ind == "    ":  # every contribution is already in place: no `go = D[s]`
            lines.pop()
        uses.append((_named(lines[start:]), go_from, esc))
    plan.uses = uses
    for j, how in lazy.items():
        lines.append(f"    if L{j}: KG[{j}] = {'outer_of' if how == 'outer' else 'rows_of'}(L{j})")
    outs = [f"fin(G[{i}], inputs[{i}]._data, arena, garena)" for i in reach[0]] + \
           [f"fin(KG[{j}], K[{j}], arena, garena)" for j in reach[1]]
    lines.append(f"    return ({', '.join(outs)}{',' if outs else ''})")
    exec(_positional_out("\n".join(lines)), ns)
    return ns["bwd"]


# hoisting pays where it saves calls, not where the stacked values would no longer fit in cache
_HOIST_MIN_STEPS = 4
_HOIST_MAX_BYTES = 1 << 20


def _factor_site(rec, plan, ns: dict, e: int):
    """(key, the saved values read, a gates group's SA) of a σ / tanh op (or fused group of them) or a lerp,
    whose local derivative σ(1 - σ), 1 - tanh², a gates group's SA - SA tanh², or a lerp's b - a depends on
    forward values only; else None."""
    cls, needs, kw, refs, s, sl = rec.program[e]
    g = plan.blead.get(e)
    if g is not None:
        shape, dt = tuple(g["bshape"]), np.dtype(g["dtype"])
        if g["cls"] is _GATES:
            return ("gates", shape, dt, id(g["SA"])), f"V[{g['tanh']}]", g["SA"]
        if cls in (ops.Sigmoid, ops.Tanh):
            return (cls.__name__, shape, dt), f"V[{g['out']}]", None
        return None
    if rec.plan.kind[e] == "lerp" and needs[2]:  # dw = g (b - a)
        shape, dt = rec.shapes[s]
        return ("Lerp", tuple(shape), np.dtype(dt)), (_arg(ns, e, 1, refs[1]), _arg(ns, e, 0, refs[0])), None
    if e in plan.bskip or cls not in (ops.Sigmoid, ops.Tanh) or rec.plan.kind[e] is None:
        return None
    shape, dt = rec.shapes[s]
    return (cls.__name__, tuple(shape), np.dtype(dt)), f"V[{s}]", None


def _hoist_factors(rec, plan, ns: dict, lines: list) -> dict:
    """The local derivatives repeated at every step, formed for all steps at once.

    Each depends only on saved forward values (tanh' = 1 - y², σ' = (1 - y) y of the op's output y; a
    lerp's b - a), so a recurrent layer's T copies of it become one concatenate and one or two calls over all
    T steps instead of one or two calls per step; each step's backward then multiplies its gradient by its
    row (the same operations in the same order, so the same bits). Returns op index -> the expression of
    its factor; appends the lines that form them."""
    sites: dict = {}
    for e in plan.ops:
        f = _factor_site(rec, plan, ns, e)
        if f is not None and len(f[0][1]):
            sites.setdefault(f[0], []).append((e, f[1], f[2]))
    out: dict = {}
    cats: dict = {}
    n = -1
    for key, ss in sites.items():
        kind, shape, dt = key[:3]
        if len(ss) < _HOIST_MIN_STEPS or len(ss) * int(np.prod(shape)) * dt.itemsize > _HOIST_MAX_BYTES:
            continue
        n += 1
        F, one = f"HF{n}", _const(ns, 1.0, dt)
        ns[f"HSH{n}"] = (len(ss),) + shape

        def cat(ys: tuple) -> str:  # each list of saved values concatenated once (a GRU's n_t feed two factors)
            if ys not in cats:
                cats[ys] = c = f"HC{len(cats)}"
                lines.append(f"    {c} = concatenate(({', '.join(ys)},)).reshape(HSH{n})")
            return cats[ys]
        if kind == "Lerp":  # b - a
            lines.append(f"    {F} = subtract({cat(tuple(y[0] for _, y, _ in ss))}, {cat(tuple(y[1] for _, y, _ in ss))})")
        else:
            Y = cat(tuple(y for _, y, _ in ss))
            if kind == "Tanh":
                lines.append(f"    {F} = multiply({Y}, {Y}); subtract({one}, {F}, out={F})")
            elif kind == "Sigmoid":
                lines.append(f"    {F} = subtract({one}, {Y}); multiply({F}, {Y}, out={F})")
            else:
                ns[f"HSA{n}"] = ss[0][2]
                lines.append(f"    {F} = multiply({Y}, {Y}); multiply({F}, HSA{n}, out={F}); subtract(HSA{n}, {F}, out={F})")
        for k, (e, _, _) in enumerate(ss):
            out[e] = f"{F}[{k}]"
    return out


_DSLOT = re.compile(r"\bD\[(\d+)\]")


def _named(lines: list) -> list:
    """The gradient buffers (D[j]) some generated lines read or write."""
    return [int(j) for ln in lines for j in _DSLOT.findall(ln)]


def _fresh(expr: str) -> bool:
    """A contribution expression that makes a new array (never a view of `go`)."""
    return expr in ("-go", "gw", "go - gw") or " * " in expr or " @ " in expr or expr.endswith(".sum(0)")


def _dense(gi, shape: tuple) -> np.ndarray:
    """An op's own gradient as an array of `shape` (a lazy weight gradient formed, a broadcast one summed)."""
    if type(gi) is OuterSum:
        gi = gi.value()
    return gi if gi.shape == shape else _unbroadcast(gi, shape)


def _put(dst: np.ndarray, gi) -> None:
    """The first gradient of a buffered slot, from an op's own backward (None: no gradient, zeros)."""
    if gi is None:
        dst.fill(0)
    else:
        np.copyto(dst, _dense(gi, dst.shape))


def _addto(dst: np.ndarray, gi) -> None:
    np.add(dst, _dense(gi, dst.shape), out=dst)


def _mm_into(a: np.ndarray, b: np.ndarray, dst: np.ndarray) -> None:
    """dst = (a @ b) reshaped to dst's shape, the GEMM writing into dst itself when dst is contiguous: no
    temporary and no copy (at B=16 L=64 a Transformer's linear1 input gradient is a 2 MB copy)."""
    if dst.flags.c_contiguous:
        np.matmul(a, b, out=dst.reshape(a.shape[0], b.shape[1]))
    else:
        np.copyto(dst, (a @ b).reshape(dst.shape))


def _transpose_grad(g, inv: tuple):
    """Permute's backward; a lazy weight gradient Σ aᵀb transposes to Σ bᵀa without being formed."""
    if type(g) is OuterSum:
        if inv == (1, 0):
            t = object.__new__(OuterSum)
            t.a, t.b = g.b, g.a
            return t
        g = g.value()
    return g.transpose(inv)


class _RowSum:
    """A bias's gradient Σ_t Σ_rows g_t (a bias added at every time step) kept as its terms until it is
    complete: one reduction over all steps instead of one per step plus an add."""
    __slots__ = ("g",)

    def value(self) -> np.ndarray:
        return (self.g[0] if len(self.g) == 1 else np.concatenate(self.g)).sum(0)


def _outer_of(pairs: list) -> OuterSum:
    """Σ Aᵀ B over a list of factor pairs, kept lazy: what OuterSum(A_1, B_1) extended by the others is."""
    o = object.__new__(OuterSum)
    o.a, o.b = [p[0] for p in pairs], [p[1] for p in pairs]
    return o


def _rows_of(rows: list) -> "_RowSum":
    r = _RowSum()
    r.g = rows
    return r


def _accrow(D: list, j: int, key: int, go: np.ndarray, own: set) -> None:
    prev = D[j]
    g2 = go.reshape(-1, go.shape[-1])
    if type(prev) is _RowSum:
        prev.g.append(g2)
    elif prev is None:
        r = D[j] = _RowSum()
        r.g = [g2]
    else:
        D[j] = (prev.value() if type(prev) is OuterSum else prev) + g2.sum(0)
        own.add(key)


def _acc(D: list, j: int, key: int, gi, shape, dt, own: set) -> None:
    """Add gradient gi into D[j] (in place only into arrays this pass made: `own` holds their keys)."""
    prev = D[j]
    if type(prev) is _RowSum:
        prev = D[j] = prev.value()
        own.add(key)
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
    if type(prev) is _RowSum:
        prev = D[j] = prev.value()
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


def _key_of(v, values: bool = True):
    """The guard key of an argument; values=False leaves out array contents and numbers (what a re-trace
    for every new value has in common)."""
    if isinstance(v, Tensor):
        return ("T", v._data.shape, v._data.dtype.str, v.requires_grad)
    if isinstance(v, (tuple, list)):
        return (type(v).__name__,) + tuple(_key_of(x, values) for x in v)
    if isinstance(v, dict):
        return ("D",) + tuple((k, _key_of(x, values)) for k, x in sorted(v.items()))
    if isinstance(v, np.ndarray):
        if v.dtype.kind in _ARRAY_INPUT_KINDS:  # an input of the trace (see _inputs): its values are not in the key
            return ("A", v.shape, v.dtype.str)
        return ("A", v.shape, v.dtype.str, v.tobytes() if values else None)
    try:
        hash(v)
    except TypeError:
        return ("O", id(v))
    return ("V", type(v).__name__, v if values or isinstance(v, (str, bool, type(None))) else None)


_ARRAY_INPUT_KINDS = "biufc"  # NumPy arguments of these kinds are inputs of the trace, like tensors


def _inputs(v, acc: list):
    """Append the trace inputs found in argument v to acc (tensors, and NumPy arrays wrapped as gradient-free
    tensors); return v with each array replaced by its wrapper (what the traced call receives, so any Python
    read of an array's values is seen as a graph break)."""
    if isinstance(v, Tensor):
        acc.append(v)
        return v
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in _ARRAY_INPUT_KINDS:
            return v
        t = Tensor._wrap(v)
        acc.append(t)
        return t
    if isinstance(v, (tuple, list)):
        return _rebuild(type(v), [_inputs(x, acc) for x in v])
    if isinstance(v, dict):
        out = dict(v)
        for k in sorted(v):
            out[k] = _inputs(v[k], acc)
        return out
    return v


class CompiledFunction:
    """What `tg.compile(fn)` returns: call it as fn; `.eager` is the original function."""

    def __init__(self, fn: Callable, module=None, cache_size: int = 8):
        self.eager = fn
        self.module = module
        self.cache: OrderedDict = OrderedDict()
        self.cache_size = cache_size
        self.broken: str | None = None
        self.retraces: dict = {}  # shapes-only key -> traces made for it
        functools.update_wrapper(self, fn, updated=())

    def _mode_key(self):
        m = self.module
        if m is None:
            return ()
        return m.mode_signature()

    def __call__(self, *args, **kwargs):
        if self.broken is not None or _ACTIVE or not _ENABLED[0]:
            return self.eager(*args, **kwargs)
        key = (STATE.grad_enabled, _key_of(args), _key_of(kwargs), self._mode_key())
        rec = self.cache.get(key)
        inputs: list = []
        targs = _inputs(args, inputs)
        tkwargs = _inputs(kwargs, inputs)
        if rec is not None and rec.valid():
            self.cache.move_to_end(key)
            return rec.run(inputs)
        # a number (or object array) argument that changes at every call re-traces every time: slower
        # than eager, so after more such traces than the cache holds, run eagerly
        sig = (key[0], _key_of(args, False), _key_of(kwargs, False), key[3])
        n = self.retraces[sig] = self.retraces.get(sig, 0) + 1
        if n > self.cache_size and len(self.retraces) < 10_000:
            self.broken = ("a number argument changes value between calls (each new value is a constant of "
                           "a new trace); pass it as a Tensor or NumPy array, or call eagerly")
            warnings.warn(f"tg.compile: {getattr(self.eager, '__qualname__', self.eager)} re-traced {n - 1} times "
                          f"for the same shapes: {self.broken}; this function runs eagerly from now on",
                          UserWarning, stacklevel=2)
            return self.eager(*args, **kwargs)
        return self._trace(key, inputs, args, kwargs, targs, tkwargs)

    def _trace(self, key, inputs, args, kwargs, targs, tkwargs):
        tr = _Trace()
        for t in inputs:
            if id(t) in tr.slots:  # the same tensor passed twice: keep eager (aliasing inputs)
                return self.eager(*args, **kwargs)
            tr.slot_of(t)
        arrays = {id(x) for x in _leaves((args, kwargs)) if isinstance(x, np.ndarray)}
        wrapped = {s for s, t in enumerate(inputs) if id(t._data) in arrays}  # slots of NumPy arguments
        _ACTIVE.append(tr)
        gen = STATE.rng
        STATE.rng = _ProxyRNG(gen, tr)
        ops._REC, _tmod._TRACE = tr.record, tr
        try:
            out = self.eager(*targs, **tkwargs)
        except GraphBreak:
            out = None
        except Exception as e:  # noqa: BLE001 -- the function may need an array argument as a NumPy array
            if not wrapped:
                raise
            out = None
            tr.broken = tr.broken or (f"it uses a NumPy array argument as an array ({type(e).__name__}: {e}), "
                                      "which a replay could not repeat with new values")
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
                if s in wrapped:  # eager returns the array itself, a replay could only return a tensor
                    self.broken = "the function returns one of its NumPy array arguments"
                    warnings.warn(f"tg.compile: graph break: {self.broken}", UserWarning, stacklevel=3)
                    return self.eager(*args, **kwargs)
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


def _leaves(v):
    if isinstance(v, (tuple, list)):
        for x in v:
            yield from _leaves(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _leaves(x)
    else:
        yield v


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
