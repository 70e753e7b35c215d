"""The backward pass: accumulation, deep graphs, graph release, hooks, grad modes, anomaly detection."""
from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq import ops
from tinygrad_seq.autograd import grad as autograd_grad

from conftest import NoGradient, leaf64


# ---------------------------------------------------------------- reused values

def test_diamond_graph_matches_torch(rng):
    """x feeds two branches that meet again; a leaf used by several ops gets the sum of all paths."""
    torch = pytest.importorskip("torch")
    a, b = rng.standard_normal((2, 3, 4))

    def f(M, x, y):
        u = x * y
        v = u.tanh() + u.exp() * x     # u and x reused
        w = v @ y.T + u.sum(-1, keepdim=True)
        return (w * w).sum() + x.sum()

    x, y = leaf64(a), leaf64(b)
    f(tg, x, y).backward()
    tx, ty = (torch.tensor(v, requires_grad=True) for v in (a, b))
    f(torch, tx, ty).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-10)
    assert tg.gradcheck(lambda x, y: f(tg, x, y), [leaf64(a), leaf64(b)])


def test_same_tensor_as_both_inputs():
    x = leaf64([1.0, -2.0, 3.0])
    (x * x + x / x + x - x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_value_used_many_times_by_slices_and_whole():
    x = leaf64(np.arange(6.0).reshape(2, 3))
    y = x[0] * 2 + x[1] + x[:, 1:].sum() + x.sum()
    y.sum().backward()
    expected = np.ones((2, 3)) * 3          # d/dx of x.sum() over 3 outputs
    expected[0] += 2
    expected[1] += 1
    expected[:, 1:] += 3
    np.testing.assert_allclose(x.grad.numpy(), expected)


# ---------------------------------------------------------------- deep graphs (no recursion)

@pytest.mark.slow
def test_100k_op_chain_backward_without_recursion():
    x = leaf64([1.0, 2.0])
    c = 1.00001
    h = x
    for _ in range(100_000):
        h = h * c
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # a recursive backward would fail here at once
    try:
        h.sum().backward(retain_graph=True)
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_allclose(x.grad.numpy(), [c ** 100_000] * 2, rtol=1e-9)
    del h  # freeing a 100,000-node graph must not overflow the C stack either


@pytest.mark.slow
def test_2000_step_unrolled_tanh_rnn_matches_torch(rng):
    torch = pytest.importorskip("torch")
    T, B, D, H = 2000, 2, 3, 4
    xs = rng.standard_normal((T, B, D)) * 0.5
    wx, wh, b = rng.standard_normal((D, H)) * 0.5, rng.standard_normal((H, H)) * 0.3, rng.standard_normal(H) * 0.1

    def run(M, X, Wx, Wh, bias):
        h = M.zeros(B, H, dtype=X.dtype)
        loss = 0.0
        for t in range(T):
            h = (X[t] @ Wx + h @ Wh + bias).tanh()
            if t % 100 == 99:
                loss = loss + (h * h).sum()
        return loss

    params = [leaf64(v) for v in (xs, wx, wh, b)]
    run(tg, *params).backward()
    tparams = [torch.tensor(v, requires_grad=True) for v in (xs, wx, wh, b)]
    run(torch, *tparams).backward()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-8, atol=1e-12)


# ---------------------------------------------------------------- graph release

def _chain(x):
    a = x * 2.0
    b = a.exp()
    return (b * a).sum()


def test_graph_released_after_backward():
    x = leaf64([0.1, 0.2, 0.3])
    out = _chain(x)
    mul_ctx = out._ctx.parents[0]._ctx      # the b * a node: it holds a and b
    b, a = mul_ctx.parents  # b * a
    refs = [weakref.ref(a), weakref.ref(b), weakref.ref(mul_ctx), weakref.ref(b._ctx.out)]
    del a, b, mul_ctx
    out.backward()
    assert all(r() is None for r in refs), "intermediates or saved arrays outlived backward()"
    assert type(out._ctx).__name__ == "_Released"
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        out.backward()


def test_recurrent_graph_released_after_backward(rng):
    """Slices of one input and a weight shared by every step (the engine's fast paths) free all steps too."""
    W, X = leaf64(rng.standard_normal((3, 3))), leaf64(rng.standard_normal((6, 2, 3)))
    h, refs = X[0], []
    for t in range(1, 6):
        h = (ops.Linear.apply(h, W) + X[t]).tanh()
        refs.append(weakref.ref(h))
    loss = (h * h).sum()
    del h
    loss.backward()
    assert all(r() is None for r in refs), "step tensors outlived backward()"
    assert W.grad.shape == (3, 3) and X.grad.shape == (6, 2, 3)


def test_retain_graph_keeps_graph_and_grads_accumulate():
    x = leaf64([0.1, 0.2, 0.3])
    out = _chain(x)
    inner = out._ctx.parents[0]
    ref = weakref.ref(inner)
    del inner
    out.backward(retain_graph=True)
    g1 = x.grad.numpy().copy()
    gc.collect()
    assert ref() is not None
    out.backward()  # second pass through the retained graph: accumulates
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1)
    np.testing.assert_allclose(g1, (2 * np.exp(2 * x.numpy()) * 2 * x.numpy() + np.exp(2 * x.numpy()) * 2))


def test_pow_zero_and_one_have_exact_gradients_at_zero():
    x = leaf64([0.0, 2.0])
    ((x ** 0) + (x ** 1)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_grads_accumulate_across_separate_graphs():
    x = leaf64([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 + 2 * x.numpy())


# ---------------------------------------------------------------- backward() arguments

def test_nonscalar_backward_needs_gradient_and_matches_torch():
    torch = pytest.importorskip("torch")
    x = leaf64([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    g = np.array([[1.0, -1.0], [0.5, 2.0]])
    y.backward(tg.Tensor(g))
    tx = torch.tensor(x.numpy(), requires_grad=True)
    (tx * tx).backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    with pytest.raises(RuntimeError, match=r"shape \(3,\).*\(2, 2\)"):
        (x * 2).backward(np.ones(3))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.ones(2).sum().backward()


def test_leaf_backward_with_gradient_copies_it():
    x = leaf64([1.0, 2.0])
    g = np.array([3.0, 4.0])
    x.backward(g)
    g[:] = 0
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])


def test_grad_arrays_of_two_leaves_never_alias():
    """Scaling one .grad in place (as clip_grad_norm_ and optimizers do) must leave every other one alone."""
    a, b, c = leaf64([1.0, 2.0]), leaf64([3.0, 4.0]), leaf64(5.0)
    y = a + b                                  # Add hands the same g to both inputs
    z = (y + c).reshape(1, 2).expand(3, 2)     # pass-through ops and a broadcast
    z.sum().backward()
    grads = [a.grad.numpy(), b.grad.numpy(), c.grad.numpy()]
    assert all(type(g) is np.ndarray and g.flags.writeable for g in grads)  # 0-d c too: no NumPy scalar
    for i, g in enumerate(grads):
        before = [h.copy() for h in grads]
        g *= 10.0
        for j, h in enumerate(grads):
            if j != i:
                np.testing.assert_array_equal(h, before[j])
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())


def test_retain_grad_on_intermediates():
    x = leaf64([1.0, 2.0, 3.0])
    y = x * 2
    z = y.tanh()
    y.retain_grad()
    z.sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 1 - np.tanh(y.numpy()) ** 2)
    assert z.grad is None  # not retained: intermediates keep no gradient


# ---------------------------------------------------------------- hooks

def test_hooks_see_the_complete_gradient_and_can_replace_it():
    x = leaf64([1.0, 2.0])
    y = x * 3
    seen = {}
    y.register_hook(lambda g: seen.setdefault("y", g.numpy().copy()))
    w = y * y + y  # y reused: the hook must see the sum of both paths
    handle = x.register_hook(lambda g: g * 0 + 7)  # replaces x's gradient
    w.sum().backward()
    np.testing.assert_allclose(seen["y"], 2 * y.numpy() + 1)
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 7.0])
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_hook_on_intermediate_changes_what_flows_upstream():
    x = leaf64([1.0, 2.0])
    y = x * 2
    y.register_hook(lambda g: g * 10)
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 10 * 2 * y.numpy() * 2)


def test_hook_needs_requires_grad():
    with pytest.raises(RuntimeError, match="doesn't require grad"):
        tg.ones(2).register_hook(lambda g: g)


def test_autograd_grad_leaves_dot_grad_untouched():
    torch = pytest.importorskip("torch")
    a = np.array([0.5, -1.0, 2.0])
    x = leaf64(a)
    h = x.tanh()
    out = (h * x).sum()
    gx, gh = autograd_grad(out, [x, h])
    assert x.grad is None and h.grad is None
    tx = torch.tensor(a, requires_grad=True)
    th = tx.tanh()
    tgx, tgh = torch.autograd.grad((th * tx).sum(), [tx, th])
    np.testing.assert_allclose(gx.numpy(), tgx.numpy())
    np.testing.assert_allclose(gh.numpy(), tgh.numpy())


# ---------------------------------------------------------------- grad modes

def test_no_grad_records_no_graph():
    x = leaf64([1.0, 2.0])
    with tg.no_grad():
        y = (x * 2).exp().sum()
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            z = x * 2
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert z.requires_grad and z._ctx is not None


def test_no_grad_and_enable_grad_as_decorators():
    x = leaf64([1.0])

    @tg.no_grad()
    def f1(t):
        return t * 2

    @tg.no_grad
    def f2(t):
        return t * 2

    @tg.enable_grad()
    def g1(t):
        return t * 2

    assert f1(x)._ctx is None and f2(x)._ctx is None and f1.__name__ == "f1"
    with tg.no_grad():
        assert g1(x)._ctx is not None
    assert tg.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with tg.no_grad():
            1 / 0
    assert tg.is_grad_enabled()


def test_set_grad_enabled_call_and_context():
    with tg.set_grad_enabled(False):
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    tg.set_grad_enabled(False)
    try:
        assert not tg.is_grad_enabled()
    finally:
        tg.set_grad_enabled(True)
    assert tg.is_grad_enabled()


def test_no_graph_when_no_input_requires_grad():
    a, b = tg.Tensor(np.ones(3)), tg.Tensor(np.ones(3))
    for out in (a + b, a @ b, (a * b).exp(), tg.cat([a, b]), a[1:], a.softmax(-1)):
        assert not out.requires_grad and out._ctx is None


# ---------------------------------------------------------------- anomaly detection

def test_detect_anomaly_names_the_forward_op():
    x = leaf64([0.0, 1.0])
    y = x + tg.Tensor(np.array([-np.inf, 0.0]))  # made outside: not checked
    with tg.detect_anomaly():
        (x + 1.0).exp()  # finite: fine
        with pytest.raises(RuntimeError, match="forward of Neg"):
            -y


def test_detect_anomaly_names_the_backward_op():
    x = leaf64([0.0, 4.0])
    with tg.detect_anomaly():
        y = x.sqrt()  # sqrt(0) = 0 is fine forward; its backward is 1/(2*0) = inf
        with np.errstate(divide="ignore"), pytest.raises(RuntimeError, match="backward of Sqrt"):
            y.sum().backward()


def test_detect_anomaly_as_decorator_and_off_by_default():
    @tg.detect_anomaly()
    def f(t):
        return t.log()

    @tg.detect_anomaly
    def g(t):
        return -t

    with np.errstate(divide="ignore"):
        assert tg.Tensor(np.array([0.0])).log().numpy()[0] == -np.inf  # off: no error
        with pytest.raises(RuntimeError, match="Log"):
            f(tg.Tensor(np.array([0.0])))
        with pytest.raises(RuntimeError, match="Neg"):
            g(tg.Tensor(np.array([np.inf])))
    assert f.__name__ == "f" and g.__name__ == "g"


# ---------------------------------------------------------------- requires_grad on non-float data

@pytest.mark.parametrize("data", [[1, 2, 3], [True, False], np.arange(3)])
def test_int_and_bool_tensors_cannot_require_grad(data):
    with pytest.raises(RuntimeError, match="floating-point"):
        tg.tensor(data, requires_grad=True)
    with pytest.raises(RuntimeError, match="floating-point"):
        tg.tensor(data).requires_grad_()


def test_requires_grad_false_on_nonleaf_raises():
    y = leaf64([1.0]) * 2
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)


# ---------------------------------------------------------------- fused ops used by the layers

def test_linear_op_matches_matmul_and_torch(rng):
    torch = pytest.importorskip("torch")
    a, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    xs = [leaf64(v) for v in (a, w, b)]
    assert tg.gradcheck(lambda x, w, b: ops.Linear.apply(x, w, b), xs)
    out = ops.Linear.apply(*xs)
    (out * out).sum().backward()
    ts = [torch.tensor(v, requires_grad=True) for v in (a, w, b)]
    tout = torch.nn.functional.linear(*ts)
    (tout * tout).sum().backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12)
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10)


def test_shared_weight_over_steps_gradcheck(rng):
    """A weight reused by many Linear steps plus slices of one input (the lazily summed paths)."""
    W, X = leaf64(rng.standard_normal((3, 3)) * 0.5), leaf64(rng.standard_normal((5, 2, 3)))

    def rnn(W, X):
        h = X[0]
        for t in range(1, 5):
            h = (ops.Linear.apply(h, W) + X[t]).tanh()
        return h * W[0]

    assert tg.gradcheck(rnn, [W, X])


# ---------------------------------------------------------------- gradcheck itself

class _WrongSquare(ops.Function):
    """z = x², with a deliberately wrong backward (3x instead of 2x)."""
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return g * 3 * self.x


def test_gradcheck_catches_a_wrong_backward():
    x = leaf64([0.5, -1.0, 2.0])
    with pytest.raises(AssertionError, match=r"input 0 \(shape \(3,\)\)"):
        tg.gradcheck(lambda t: _WrongSquare.apply(t), [x])
    assert tg.gradcheck(lambda t: _WrongSquare.apply(t), [x], raise_exception=False) is False
    assert tg.gradcheck(lambda t: t * t, [x])
    assert x.grad is None  # gradcheck leaves .grad alone


def test_gradcheck_needs_float64():
    with pytest.raises(TypeError, match="float64"):
        tg.gradcheck(lambda t: t * 2, [tg.Tensor(np.ones(2, np.float32), requires_grad=True)])


def test_a_backward_returning_none_stops_only_its_own_path():
    """The other uses of x still give it their gradient, and the tensors before the None edge still finish;
    when every path gives None, x.grad stays None (as torch: not zeros)."""
    x = leaf64([0.5, -1.0, 2.0])
    h = x * 2.0
    (NoGradient.apply(h * 3.0) + h.tanh() + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (1 - np.tanh(2 * x.numpy()) ** 2) + 1, rtol=1e-12)
    x.grad = None
    NoGradient.apply(x * 2.0).sum().backward()
    assert x.grad is None


def test_gc_backoff_grows_only_while_collections_find_nothing_and_restores():
    from tinygrad_seq import autograd
    saved = gc.get_threshold()
    base, cap = autograd._GC_BASE, autograd._GC_MAX
    try:
        gc.set_threshold(*base)
        for gen in (0, 2):
            for _ in range(12):  # empty collections: doubling, capped
                autograd._gc_backoff("stop", {"generation": gen, "collected": 0, "uncollectable": 0})
            assert gc.get_threshold()[gen] == cap[gen]
        assert gc.get_threshold()[1] == base[1]  # generation 1 untouched
        autograd._gc_backoff("stop", {"generation": 1, "collected": 0, "uncollectable": 0})
        assert gc.get_threshold() == (cap[0], base[1], cap[2])
        autograd._gc_backoff("stop", {"generation": 0, "collected": 3, "uncollectable": 0})  # garbage: restore
        assert gc.get_threshold() == (base[0], base[1], cap[2])
        autograd._gc_backoff("stop", {"generation": 2, "collected": 0, "uncollectable": 1})
        assert gc.get_threshold() == base
        autograd._gc_backoff("start", {"generation": 0, "collected": 0, "uncollectable": 0})  # only "stop" counts
        assert gc.get_threshold() == base
        assert autograd._gc_backoff in gc.callbacks
    finally:
        gc.set_threshold(*saved)


def test_cycles_are_still_collected_under_the_backoff():
    import weakref

    from tinygrad_seq import autograd

    class Node:
        pass
    saved = gc.get_threshold()
    try:
        gc.set_threshold(autograd._GC_MAX[0], *autograd._GC_BASE[1:])  # the young threshold fully backed off
        a, b = Node(), Node()
        a.other, b.other = b, a  # a reference cycle: only the cyclic collector frees it
        alive = weakref.ref(a)
        del a, b
        junk = [[i] for i in range(200_000)]  # net growth of tracked objects: young and middle collections run
        assert alive() is None
        del junk
    finally:
        gc.set_threshold(*saved)



def test_many_gradients_into_a_0d_tensor_all_count_as_torch():
    """0-d backward results can be NumPy scalars, not arrays: every one of several contributions must add up."""
    torch = pytest.importorskip("torch")
    for n in (2, 3, 5):
        res = []
        for M in (tg, torch):
            x = M.tensor(2.0, requires_grad=True, dtype=M.float64)
            w = M.tensor(3.0, dtype=M.float64)
            y = sum(x * w * (k + 1) for k in range(n))
            y.backward()
            res.append(float(x.grad))
        assert res[0] == res[1], (n, res)
