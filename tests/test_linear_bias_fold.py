"""`x_t + h @ W.T` and `h @ W.T + b` on a product nobody else holds become one Linear node with that bias
(ops.Linear.take_bias): the same values, bits and gradients as a Linear followed by an Add."""
import numpy as np
import pytest

import tinygrad_seq as tg


def _params(seed=0, bias_shape=(3, 5)):
    rng = np.random.default_rng(seed)
    h, w, b = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(bias_shape)
    return [tg.tensor(a, requires_grad=True) for a in (h, w, b)]


def _grads(build, bias_shape=(3, 5)):
    h, w, b = _params(bias_shape=bias_shape)
    z = build(h, w, b)
    node = (type(z._ctx).__name__, len(z._ctx.parents))  # (read before backward releases it)
    g = np.random.default_rng(1).standard_normal(z.shape)
    (z * tg.tensor(g)).sum().backward()
    return node, [z.numpy().copy()] + [t.grad.numpy() for t in (h, w, b)]


def _unfused(h, w, b):
    y = h @ w.T  # held in a variable: never folded
    return b + y


@pytest.mark.parametrize("bias_shape", [(3, 5), (5,)])
@pytest.mark.parametrize("build", [lambda h, w, b: b + h @ w.T, lambda h, w, b: h @ w.T + b],
                         ids=["bias_left", "bias_right"])
def test_folded_bias_matches_linear_then_add(build, bias_shape):
    node, got = _grads(build, bias_shape)
    assert node == ("Linear", 3)
    ref_node, want = _grads(_unfused, bias_shape)
    assert ref_node == ("Add", 2)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)  # the same floating-point steps: the same bits


def test_folded_bias_against_finite_differences():
    h, w, b = _params()
    assert tg.gradcheck(lambda h, w, b: b + h @ w.T, (h, w, b))


def test_a_bias_that_needs_no_gradient():
    h, w, _ = _params()
    b = tg.tensor(np.ones((3, 5)))
    z = b + h @ w.T
    assert len(z._ctx.parents) == 3
    z.sum().backward()
    assert b.grad is None
    np.testing.assert_allclose(w.grad.numpy(), np.ones((5, 3)) @ h.numpy())


@pytest.mark.parametrize("case", ["named", "retained", "hooked", "broadcast_grows", "other_dtype"])
def test_not_folded_where_the_product_is_observable_or_the_shapes_differ(case):
    h, w, b = _params()
    if case == "named":
        z = b + (h @ w.T).named("hw")
    elif case == "retained":
        y = h @ w.T
        y.retain_grad()
        z = b + y
    elif case == "hooked":
        y = h @ w.T
        y.register_hook(lambda g: g)
        z = b + y
    elif case == "broadcast_grows":  # (3, 5) + (2, 3, 5): the sum is bigger than the product
        z = tg.tensor(np.ones((2, 3, 5)), requires_grad=True) + h @ w.T
    else:
        z = tg.tensor(np.ones((3, 5), np.float32)) + h @ w.T  # float32 + float64 promotes: not folded
    assert type(z._ctx).__name__ == "Add"


def test_an_inplace_write_between_product_and_sum_keeps_the_add():
    h, w, b = _params()
    other = tg.tensor(np.zeros(2))

    def bias_after_a_write():
        other.add_(1.0)  # any in-place write moves the clock: the product's node is no longer the newest
        return b

    z = h @ w.T + bias_after_a_write()
    assert type(z._ctx).__name__ == "Add"
    z.sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), np.ones((3, 5)))


def test_no_fold_under_no_grad_or_compile():
    h, w, b = _params()
    with tg.no_grad():
        z = b + h @ w.T
    assert z._ctx is None
    np.testing.assert_allclose(z.numpy(), b.numpy() + h.numpy() @ w.numpy().T)
    f = tg.compile(lambda h: b + h @ w.T)
    for _ in range(2):  # trace, then replay
        out = f(h)
        out.sum().backward()
    np.testing.assert_allclose(out.numpy(), b.numpy() + h.numpy() @ w.numpy().T)


def test_a_parameter_bias_folds_too():
    h, w, _ = _params()
    b = tg.nn.Parameter(np.arange(5.0))
    z = h @ w.T + b  # the GRU's h @ W_hh.T + b_hh
    assert type(z._ctx).__name__ == "Linear" and len(z._ctx.parents) == 3
    z.sum().backward()
    np.testing.assert_allclose(z.numpy(), h.numpy() @ w.numpy().T + np.arange(5.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full(5, 3.0))


def test_two_products_summed_and_a_batched_product():
    rng = np.random.default_rng(3)
    a, b = (tg.tensor(rng.standard_normal(s), requires_grad=True) for s in ((3, 4), (3, 2)))
    w, v = (tg.tensor(rng.standard_normal(s), requires_grad=True) for s in ((5, 4), (5, 2)))
    x3 = tg.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    bias = tg.tensor(rng.standard_normal(5), requires_grad=True)
    g = rng.standard_normal((2, 3, 5))

    def both(fold: bool):
        for t in (a, b, w, v, x3, bias):
            t.grad = None
        if fold:
            z = (a @ w.T + b @ v.T) + tg.nn.functional.linear(x3, w) + bias
        else:
            p, q, r = a @ w.T, b @ v.T, tg.nn.functional.linear(x3, w)
            z = ((p + q) + r) + bias
        (z * tg.tensor(g)).sum().backward()
        return [z.numpy().copy()] + [t.grad.numpy().copy() for t in (a, b, w, v, x3, bias)]

    for got, want in zip(both(True), both(False)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
