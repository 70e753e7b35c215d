"""Autograd state and the backward pass.

Holds the global switches (grad mode, anomaly detection, the name scope that graph nodes record) and
`run_backward`, the iterative reverse sweep: dependency counts give a topological order without
recursion; the first gradient reaching a tensor is stored as-is and later ones are added in place
only into arrays this pass owns (HIPS autograd's "mutable" idea), so an array that another node still
holds is never mutated.
"""
from __future__ import annotations

import functools
import gc as _gc
import weakref
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor


class _State:
    """Module-level switches; plain class attributes so the hot path reads them with one lookup."""
    grad_enabled: bool = True
    anomaly: bool = False
    # (module path, time step) of the code now running; every graph node records it (see name_scope).
    scope: tuple[str, Any] = ("", None)
    # Counts in-place writes; every graph node records it at creation (`Function.clock`), so backward can
    # tell whether an array a node saved was overwritten after the node was made.
    clock: int = 0
    # The library's random generator (tg.manual_seed replaces it): randn, init, dropout, sampling.
    rng: np.random.Generator = np.random.default_rng()
    # Run once by the first BLAS op (matmul, linear, einsum, conv): the library's BLAS thread default
    # (threads.apply_default), installed by threads.py; None once applied or overridden.
    blas_hook = None
    # Run once by the first backward pass: the library's heap-reuse default (heap.apply_default), installed
    # by heap.py; None once applied or overridden.
    heap_hook = None


STATE = _State


class _GradMode:
    """Context manager and decorator that sets grad mode (see `no_grad`, `enable_grad`)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._prev: list[bool] = []

    def __enter__(self):
        self._prev.append(STATE.grad_enabled)
        STATE.grad_enabled = self.enabled
        return self

    def __exit__(self, *exc):
        STATE.grad_enabled = self._prev.pop()
        return False

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(self.enabled):
                return fn(*args, **kwargs)
        return wrapper


def no_grad(fn: Callable | None = None):
    """No graph is recorded inside: results have `requires_grad=False`.

    `with tg.no_grad():`, `@tg.no_grad()` and `@tg.no_grad` all work.
    """
    gm = _GradMode(False)
    return gm(fn) if callable(fn) else gm


def enable_grad(fn: Callable | None = None):
    """Re-enable graph recording, e.g. inside a `no_grad` block (context manager or decorator)."""
    gm = _GradMode(True)
    return gm(fn) if callable(fn) else gm


class set_grad_enabled:
    """`set_grad_enabled(mode)` sets grad mode at once; used in `with`, the previous mode comes back on exit."""

    def __init__(self, mode: bool):
        self._prev = STATE.grad_enabled
        STATE.grad_enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        STATE.grad_enabled = self._prev
        return False


def is_grad_enabled() -> bool:
    return STATE.grad_enabled


class detect_anomaly:
    """Raise as soon as an op's forward or backward produces NaN/inf, naming the op and its scope.

    `with tg.detect_anomaly():`, `@tg.detect_anomaly()` and `@tg.detect_anomaly` all work.
    """

    def __new__(cls, enabled: bool = True):
        if callable(enabled):  # used as a bare decorator: `enabled` is the function
            return cls(True)(enabled)
        return super().__new__(cls)

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self):
        self._prev = STATE.anomaly
        STATE.anomaly = self.enabled
        return self

    def __exit__(self, *exc):
        STATE.anomaly = self._prev
        return False

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.enabled):
                return fn(*args, **kwargs)
        return wrapper


class name_scope:
    """Record `name` as (part of) the module path of every graph node created inside.

    `with name_scope("encoder"): ...` nests: paths join with "/". `step=t` marks the time step
    (the recurrent layers set it per step), so the visualizer can cluster and fold steps.
    Cheap: one tuple swapped on enter and exit.
    """
    __slots__ = ("name", "step", "_prev")

    def __init__(self, name: str | None = None, step: Any = None):
        self.name = name
        self.step = step

    def __enter__(self):
        prev = self._prev = STATE.scope
        path = prev[0]
        if self.name:
            path = f"{path}/{self.name}" if path else self.name
        STATE.scope = (path, self.step if self.step is not None else prev[1])
        return self

    def __exit__(self, *exc):
        STATE.scope = self._prev
        return False


def time_step(t: int) -> name_scope:
    """Mark graph nodes created inside as belonging to time step `t` of the current module."""
    return name_scope(None, t)


class _Released:
    """Stands in for a Function whose saved arrays a backward pass released."""
    __slots__ = ("op",)

    def __init__(self, op: str):
        self.op = op


class OuterSum:
    """A weight gradient Σ_k A_kᵀ B_k kept as its factors until it is needed.

    A weight shared by T steps (W_hh of an RNN) gets T gradients g_tᵀ h_{t-1}; adding T dense matrices
    costs T passes over the weight, while one matmul over the stacked factors is what a hand-written
    BPTT does. Linear/MatMul return this for the weight; the backward pass appends later ones and
    materialises the sum once (`value()`), when the weight's gradient is complete.
    """
    __slots__ = ("a", "b")

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.a, self.b = [a], [b]

    def extend(self, other: "OuterSum") -> None:
        self.a += other.a
        self.b += other.b

    def value(self) -> np.ndarray:
        if len(self.a) == 1:
            return self.a[0].T @ self.b[0]
        return np.concatenate(self.a).T @ np.concatenate(self.b)

    def __array__(self, dtype=None, copy=None):
        v = self.value()
        return v if dtype is None else v.astype(dtype)

    def __add__(self, other):
        return self.value() + other

    __radd__ = __add__


def _check_finite(arr: np.ndarray, what: str, fn) -> None:
    if type(arr) is OuterSum:
        arr = arr.value()
    if arr is not None and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        scope = getattr(fn, "scope", ("", None))
        where = f" (scope {scope[0] or '<root>'}, t={scope[1]})" if scope[0] or scope[1] is not None else ""
        raise RuntimeError(f"detect_anomaly: {what} of {type(fn).__name__}{where} produced NaN/inf")


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast gradient back to `shape`, using the shapes alone."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if lead else g


# ---------------------------------------------------------------- in-place writes: versions and history
# A write into a tensor's storage bumps the version of the storage (the root ndarray, shared by every
# view of it, as torch's version counter): [version, clock of the last write, op that wrote].
_VERSIONS: dict[int, list] = {}


def _root(arr: np.ndarray) -> np.ndarray:
    b = arr.base
    while isinstance(b, np.ndarray):
        arr, b = b, b.base
    return arr


def bump_version(arr: np.ndarray, op: str) -> None:
    """Record an in-place write by `op` into `arr`'s storage."""
    r = _root(arr)
    k = id(r)
    v = _VERSIONS.get(k)
    if v is None:
        v = _VERSIONS[k] = [0, 0, op]
        weakref.finalize(r, _VERSIONS.pop, k, None)
    STATE.clock += 1
    v[0] += 1
    v[1], v[2] = STATE.clock, op


def version(arr: np.ndarray) -> int:
    v = _VERSIONS.get(id(_root(arr)))
    return v[0] if v else 0


def _resolve(p: "Tensor", clock: int) -> "Tensor":
    """The version of `p` that a node recorded at `clock` consumed: `p._history` lists (clock of the
    in-place write, stand-in for the value before it); the first write after `clock` holds that value."""
    for when, old, _ in p._history:
        if when > clock:
            return old
    return p


def _check_view(p: "Tensor", ctx) -> None:
    """Raise if `p`, a view, fed `ctx` after its base was written in place (not through p) where p's memory
    lies: p then holds the new values while its graph still leads to the old base (torch would rebuild the
    view's graph; rather than a wrong gradient, say so)."""
    base, vctx = p._view
    for when, _, via in base._history:
        if vctx.clock < when <= ctx.clock and via is not p and (
                via is None or np.shares_memory(p._data, via._data)):
            raise RuntimeError(
                f"a view of shape {list(p.shape)} was used by {type(ctx).__name__} after the tensor it views "
                "was modified in place; its gradient would skip that write. Take the view after the write "
                "(or .clone() it before).")


def _check_saved(t: "Tensor", ctx) -> None:
    """Raise if an array `ctx` saved for backward was overwritten in place after ctx was recorded."""
    parents = ctx.parents
    for i in ctx.saves:
        if i >= len(parents):
            continue
        if i >= 0 and ctx.cross is not None and not any(ctx.needs[j] for j in ctx.cross[i]):
            continue  # read only for gradients nobody needs
        x = t if i < 0 else parents[i]
        v = _VERSIONS.get(id(_root(x._data)))
        if v is not None and v[1] > (getattr(ctx, "out_clock", ctx.clock) if i < 0 else ctx.clock):
            what = "output 0" if i < 0 else f"input {i}"
            scope = ctx.scope[0] if getattr(ctx, "scope", None) else ""
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: [{x._data.dtype} tensor of shape {list(x._data.shape)}], which is {what} of "
                f"{type(ctx).__name__}{f' (in {scope})' if scope else ''}, is at version {v[0]}: {v[2]} wrote "
                "into it after the op saved it for backward. Use an out-of-place op (or .clone()) there.")


def add_outer(prev, g: OuterSum, owned: set, key):
    """prev + g for a shared weight's gradient g (kept as factors: one GEMM when it is complete); adds in place
    only into an array this pass made (`key in owned`). The one rule the eager and compiled backward share."""
    if prev is None:
        return g
    if type(prev) is OuterSum:
        prev.extend(g)
        return prev
    if key in owned:
        prev += g.value()
        return prev
    owned.add(key)
    return prev + g.value()


def run_backward(roots, grads_in, retain_graph: bool, capture: dict | None = None, inputs=None) -> None:
    """Propagate `grads_in` from `roots` (a tensor or a list; gradients summed where graphs meet) to every
    leaf that requires grad (iterative, no recursion).

    With `capture` (a dict), every tensor's complete gradient is stored there under id(tensor) instead
    of in `.grad` (hooks still run): what `grad()` and the visualizer use. With `inputs`, only those
    tensors' `.grad` are accumulated (as torch's backward(inputs=...)).
    """
    if STATE.heap_hook is not None:
        STATE.heap_hook()
    if not isinstance(roots, (list, tuple)):
        roots, grads_in = [roots], [grads_in]
    clock = STATE.clock
    # Pass 1: count, for every tensor in the graph, how many graph edges consume it. Nodes made before
    # an in-place write first look up the version of each input they consumed (`_resolve`) and check
    # that nothing they saved was overwritten since: both before any gradient is computed.
    deps: dict[int, int] = {}
    stack = []
    for r in roots:
        if id(r) not in deps:
            deps[id(r)] = 0
            stack.append(r)
    while stack:
        t = stack.pop()
        ctx = t._ctx
        if ctx is None:
            continue
        if type(ctx) is _Released:
            raise RuntimeError(
                f"Trying to backward through the graph a second time: the saved arrays of {ctx.op} were "
                "released by the first backward(); call backward(retain_graph=True) the first time")
        if ctx.clock != clock:
            ctx.parents = tuple(_resolve(p, ctx.clock) if p._history else p for p in ctx.parents)
            _check_saved(t, ctx)
        for p in ctx.parents:
            v = p._view
            if v is not None and v[0]._history is not None:
                _check_view(p, ctx)
            if p.requires_grad:
                k = id(p)
                if k in deps:
                    deps[k] += 1
                else:
                    deps[k] = 1
                    stack.append(p)

    # Pass 2: process tensors whose consumers are all done; gradients accumulate in `grads`.
    # A tensor waiting here stays alive through the parents of a consumer not yet processed, so
    # its id cannot be reused before it is popped.
    grads: dict[int, np.ndarray] = {}
    owned: set[int] = set()  # gradient arrays created by this pass, safe to add into in place
    ready = []
    for r, g in zip(roots, grads_in):
        k = id(r)
        if k in grads:
            grads[k] = grads[k] + g
            owned.add(k)
        else:
            grads[k] = g
            if deps[k] == 0:
                ready.append(r)
    only = None if inputs is None else {id(x) for x in inputs}
    # inf/NaN in a gradient (inf * 0, inf - inf) come out as PyTorch gives them, without NumPy's warning:
    # one error-state switch for the whole pass instead of one per op
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        _sweep(ready, deps, grads, owned, only, capture, retain_graph)


def _sweep(ready: list, deps: dict, grads: dict, owned: set, only, capture, retain_graph: bool) -> None:
    """Pass 2 of run_backward: process tensors whose consumers are all done (a short loop; gradients
    accumulate in `grads`, in place only into arrays listed in `owned`). The common node (an ndarray
    gradient, no hook, not a leaf, no capture) and the common edge (an ndarray gradient into a tensor that
    needs one) take the short path; everything else goes through `_deliver` / `_edge`."""
    anomaly = STATE.anomaly
    plain = capture is None and only is None
    pop_grad = grads.pop
    ndarray = np.ndarray
    while ready:
        t = ready.pop()
        k = id(t)
        g = pop_grad(k, None)
        ctx = t._ctx
        if g is None:  # every backward into t returned None for it (as torch: no gradient, not zeros)
            if ctx is not None:
                for p in ctx.parents:
                    if p.requires_grad:
                        _arrived(p, deps, ready)
                if not retain_graph:
                    t._ctx = ctx.released
            continue
        if ctx is None or not plain or type(g) is not ndarray or t._hooks or t._retain:
            g = _deliver(t, k, g, ctx, owned, only, capture)
            if ctx is None:
                continue
        elif owned:
            owned.discard(k)
        sl = ctx.slice_index
        parents = ctx.parents
        if sl is not None:  # a basic-index slice: its one parent's gradient gets g added into its part
            if not retain_graph:
                t._ctx = ctx.released
            p = parents[0]
            if p.requires_grad:
                if anomaly:
                    _check_finite(g, "backward", ctx)
                _add_slice(p, g, sl, grads, owned)
                _arrived(p, deps, ready)
            continue
        pgrads = ctx.backward(g)
        if not retain_graph:
            t._ctx = ctx.released
        if len(parents) == 1 and not isinstance(pgrads, tuple):  # Cat/Stack of one tensor give (g,)
            pgrads = (pgrads,)
        for p, pg in zip(parents, pgrads):
            if not p.requires_grad:
                continue
            if type(pg) is not ndarray or anomaly:
                if _edge(p, pg, ctx, anomaly, grads, owned):  # None or a shared weight's factors: handled there
                    _arrived(p, deps, ready)
                    continue
            pdata = p._data
            if pg.shape != pdata.shape:
                pg = _unbroadcast(pg, pdata.shape)
            if pg.dtype is not pdata.dtype and pg.dtype != pdata.dtype:
                pg = pg.astype(pdata.dtype)
            pk = id(p)
            prev = grads.get(pk)
            if prev is None:
                grads[pk] = pg
            elif pk in owned:
                grads[pk] += pg  # in place for an array; a 0-d result may be a NumPy scalar, so store it back
            else:
                grads[pk] = prev + pg
                owned.add(pk)
            n = deps[pk] - 1
            if n:
                deps[pk] = n
            else:
                ready.append(p)


def _deliver(t: "Tensor", k: int, g, ctx, owned: set, only, capture):
    """t's gradient `g` is complete: materialise a shared weight's factors, run t's hooks, and store it
    (in `capture`, or in `.grad` for leaves, retain_grad() tensors and `inputs`). Returns the gradient
    backward continues with."""
    if type(g) is OuterSum:
        g = g.value()
        if g.dtype != t._data.dtype:  # factors of another dtype (mixed-precision inputs)
            g = g.astype(t._data.dtype)
        owned.add(k)
    if t._hooks:
        for hook in t._hooks:
            r = hook(t._wrap(g))
            if r is not None:
                g = r._data if hasattr(r, "_data") else np.asarray(r)
                owned.discard(k)  # the hook may keep the array it returned: never store it uncopied
    if capture is not None:
        capture[k] = g
    elif only is not None:  # as torch, retain_grad() tensors still get theirs
        if k in only or (t._retain and ctx is not None):
            _store_grad(t, g, k in owned)
    elif ctx is None or t._retain:
        _store_grad(t, g, k in owned)
    owned.discard(k)
    return g


def _edge(p: "Tensor", pg, ctx, anomaly: bool, grads: dict, owned: set) -> bool:
    """The uncommon edge gradients into p: None (the edge is done, no gradient) and a shared weight's
    factors (kept, one matmul when complete) are handled here (True); anything else is checked under
    detect_anomaly and left to the caller (False)."""
    if pg is None:
        return True
    if anomaly:
        _check_finite(pg, "backward", ctx)
    if type(pg) is OuterSum:
        pk = id(p)
        grads[pk] = add_outer(grads.get(pk), pg, owned, pk)
        return True
    return False


def _add_slice(p: "Tensor", g, sl, grads: dict, owned: set) -> None:
    """Add a slice's gradient into its part of ONE zero-initialised buffer for p that this pass owns."""
    pk = id(p)
    if pk not in owned:
        pdata = p._data
        buf = np.zeros(pdata.shape, pdata.dtype)
        if pk in grads:
            buf += grads[pk]
        grads[pk] = buf
        owned.add(pk)
    buf = grads[pk]
    v = buf[sl]
    if type(v) is np.ndarray:
        np.add(v, g, out=v)  # into the view: `buf[sl] += g` would also copy it back
    else:  # a single element
        buf[sl] += g


def _arrived(p: "Tensor", deps: dict, ready: list) -> None:
    """One more consumer of p is done; p is ready when all are."""
    k = id(p)
    n = deps[k] = deps[k] - 1
    if n == 0:
        ready.append(p)


def _store_grad(t: "Tensor", g: np.ndarray, owned: bool) -> None:
    # `.grad` may be scaled in place later (clip_grad_norm_, optimizers), so it must not share its
    # array with another tensor's gradient: copy unless this pass created the array.
    # np.array (not .copy()) also turns a NumPy scalar (0-d results) into a writable 0-d array.
    if t.grad is None:
        t.grad = t._wrap(g if owned and type(g) is np.ndarray else np.array(g))
    else:
        t.grad = t._wrap(np.asarray(t.grad._data + g))


def root_grad(out: "Tensor", g, what: str = "grad") -> np.ndarray:
    """The gradient a backward pass starts from at `out`: ones for a one-element output, else `g`,
    checked against out's shape (one rule for backward() and grad())."""
    if not out.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    if g is None:
        if out._data.size != 1:
            raise RuntimeError(f"{what} can be implicitly created only for scalar outputs; the output has shape "
                               f"{tuple(out.shape)}: pass a gradient of that shape")
        return np.ones(out._data.shape, dtype=out._data.dtype)
    arr = np.asarray(getattr(g, "_data", g), dtype=out._data.dtype)
    if arr.shape != out._data.shape:
        raise RuntimeError(f"{what}: gradient has shape {tuple(arr.shape)} but the output has shape {tuple(out.shape)}")
    return arr


def _seq(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False, materialize_grads: bool = False) -> tuple:
    """d(Σ outputs)/d inputs as a tuple of Tensors (always a tuple, as torch.autograd.grad), leaving every
    `.grad` untouched. `grad_outputs` weights each output (the vector of a vector-Jacobian product);
    the graph is released unless `retain_graph=True`."""
    if create_graph:
        raise NotImplementedError("grad(create_graph=True): higher-order gradients are not supported by this engine")
    outs, ins = _seq(outputs), _seq(inputs)
    gos = [None] * len(outs) if grad_outputs is None else _seq(grad_outputs)
    if len(gos) != len(outs):
        raise RuntimeError(f"grad: grad_outputs has {len(gos)} entries but outputs has {len(outs)}")
    for i, x in enumerate(ins):
        if not getattr(x, "requires_grad", False):
            raise RuntimeError(f"grad: input {i} does not require grad (One of the differentiated Tensors does not "
                               "require grad)")
    g0 = [root_grad(o, g, "grad") for o, g in zip(outs, gos)]
    captured: dict[int, np.ndarray] = {}
    run_backward(outs, g0, bool(retain_graph), capture=captured)
    res = []
    for i, x in enumerate(ins):
        g = captured.get(id(x))
        if g is None and not (allow_unused or materialize_grads):
            raise RuntimeError(f"grad: the differentiated Tensor at index {i} (shape {tuple(x.shape)}) appears to not "
                               "have been used in the graph. Set allow_unused=True if this is the desired behavior.")
        if g is None:
            res.append(x._wrap(np.zeros(x._data.shape, x._data.dtype)) if materialize_grads else None)
        else:
            res.append(x._wrap(np.array(g)))
    return tuple(res)


# ---------------------------------------------------------------- cyclic GC back-off (issue 10)
# A long unrolled graph is ~50 live objects per time step (Tensors, nodes, arrays) that CPython's cyclic
# collector re-walks while the graph is built: at T=2048 the full (generation 2) collections doubled the
# per-step cost, and on a small model the young (generation 0) collections, one per ~700 new objects, cost
# 3-7% of a training step. The graph holds no reference cycles (reference counting frees it when the loss
# goes away), so those walks never find anything. Back-off: each generation-0 or generation-2 collection
# that finds no garbage doubles that generation's threshold (up to 8x / 64x the one set at import; 8 x 700
# is about CPython 3.13's own young threshold of 2000 times 3); one that finds garbage restores it. Cycles
# are still collected, only collections that keep finding nothing get rarer; generation 1 is untouched.

_GC_BASE = _gc.get_threshold()
_GC_MAX = (_GC_BASE[0] * 8, _GC_BASE[1], _GC_BASE[2] * 64)


def _gc_backoff(phase: str, info: dict) -> None:
    gen = info.get("generation")
    if phase != "stop" or (gen != 0 and gen != 2):
        return
    th = list(_gc.get_threshold())
    if info.get("collected", 0) == 0 and info.get("uncollectable", 0) == 0:
        if th[gen] >= _GC_MAX[gen]:
            return
        th[gen] = min(2 * th[gen], _GC_MAX[gen])
    elif th[gen] != _GC_BASE[gen]:
        th[gen] = _GC_BASE[gen]
    else:
        return
    _gc.set_threshold(*th)


if _GC_BASE[0] > 0 and _GC_BASE[2] > 0:  # (a threshold of 0 means the program turned collection off)
    _gc.callbacks.append(_gc_backoff)
