"""Every Tensor op: float64 gradcheck (finite differences), PyTorch forward + gradients, dtype kept.

Each case is a function `fn(M, *xs)` written once for both libraries: `M` is `tinygrad_seq` or `torch`
and the `xs` are that library's tensors, so the same expression is checked in both.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tinygrad_seq as tg
from tinygrad_seq.tensor import pad as tg_pad


@dataclass
class Case:
    name: str
    fn: Callable
    shapes: tuple
    low: float = -2.0   # inputs drawn uniformly from [low, high], then pushed away from `avoid`
    high: float = 2.0
    avoid: tuple = ()   # kinks (relu at 0, clamp bounds ...) where finite differences are meaningless

    def arrays(self, seed: int = 0) -> list[np.ndarray]:
        r = np.random.default_rng(seed)
        out = []
        for s in self.shapes:
            a = r.uniform(self.low, self.high, s)
            for k in self.avoid:
                near = np.abs(a - k) < 0.1
                a = np.where(near, a + 0.25 * np.where(a >= k, 1, -1), a)
            out.append(a)
        return out


def _gelu(M, x, approximate="none"):
    if M is tg:
        return x.gelu(approximate=approximate)
    return M.nn.functional.gelu(x, approximate=approximate)


def _pad(M, x, p, value=0.0):
    return tg_pad(x, p, value) if M is tg else M.nn.functional.pad(x, p, value=value)


def _idx(M, a):
    return M.tensor(np.asarray(a))


MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, True, False]])

CASES = [
    # ---- arithmetic with scalars on either side and broadcasting
    Case("add", lambda M, x, y: x + y, ((3, 4), (4,))),
    Case("add_scalar_both_sides", lambda M, x: 2.5 + x + 1, ((3, 4),)),
    Case("sub", lambda M, x, y: x - y, ((2, 1, 4), (3, 1))),
    Case("rsub_scalar", lambda M, x: 3 - x - 0.5, ((5,),)),
    Case("mul", lambda M, x, y: x * y, ((3, 1), (1, 4))),
    Case("mul_scalar_both_sides", lambda M, x: 2 * x * -1.5, ((2, 3),)),
    Case("div", lambda M, x, y: x / y, ((3, 4), (4,)), low=0.5, high=2.0),
    Case("rdiv_scalar", lambda M, x: 1.5 / x / 2, ((3, 4),), low=0.5, high=2.0),
    Case("pow_const", lambda M, x: x ** 3 + x ** 2 + x ** 0.5, ((3, 4),), low=0.3, high=2.0),
    Case("pow_neg_const", lambda M, x: x ** -1.5, ((3,),), low=0.5, high=2.0),
    Case("pow_tensor", lambda M, x, y: x ** y, ((3, 4), (4,)), low=0.5, high=2.0),
    Case("rpow_scalar", lambda M, x: 2.0 ** x, ((3, 4),)),
    Case("neg", lambda M, x: -x, ((3, 4),)),
    Case("square_rsqrt_reciprocal", lambda M, x: x.square() + x.rsqrt() + x.reciprocal(), ((4,),), low=0.5),
    # ---- matmul: 1-D, 2-D, batched, broadcast batch dims
    Case("matmul_1d_1d", lambda M, x, y: x @ y, ((4,), (4,))),
    Case("matmul_1d_2d", lambda M, x, y: x @ y, ((4,), (4, 3))),
    Case("matmul_2d_1d", lambda M, x, y: x @ y, ((3, 4), (4,))),
    Case("matmul_2d_2d", lambda M, x, y: x @ y, ((3, 4), (4, 5))),
    Case("matmul_3d_2d", lambda M, x, y: x @ y, ((2, 3, 4), (4, 5))),
    Case("matmul_2d_3d", lambda M, x, y: x @ y, ((3, 4), (2, 4, 5))),
    Case("matmul_batched", lambda M, x, y: x @ y, ((2, 3, 4), (2, 4, 5))),
    Case("matmul_broadcast_batch", lambda M, x, y: x @ y, ((2, 1, 3, 4), (3, 4, 2))),
    Case("matmul_1d_3d", lambda M, x, y: x @ y, ((4,), (2, 4, 3))),
    Case("matmul_3d_1d", lambda M, x, y: x @ y, ((2, 3, 4), (4,))),
    Case("matmul_method", lambda M, x, y: x.matmul(y), ((3, 4), (4, 2))),
    # ---- unary
    Case("exp", lambda M, x: x.exp(), ((3, 4),)),
    Case("exp_0d", lambda M, x: x.exp(), ((),)),
    Case("log", lambda M, x: x.log(), ((3, 4),), low=0.2, high=3.0),
    Case("sqrt", lambda M, x: x.sqrt(), ((2, 3, 4),), low=0.2, high=3.0),
    Case("abs", lambda M, x: x.abs() + abs(x), ((3, 4),), avoid=(0.0,)),
    Case("tanh", lambda M, x: x.tanh(), ((2, 3, 4),)),
    Case("sigmoid", lambda M, x: x.sigmoid(), ((2, 3, 4),), low=-6, high=6),
    Case("relu", lambda M, x: x.relu(), ((3, 4),), avoid=(0.0,)),
    Case("gelu", lambda M, x: _gelu(M, x), ((3, 5),), low=-4, high=4),
    Case("gelu_tanh", lambda M, x: _gelu(M, x, "tanh"), ((3, 5),), low=-4, high=4),
    Case("clamp_both", lambda M, x: x.clamp(-0.5, 0.7), ((4, 5),), avoid=(-0.5, 0.7)),
    Case("clamp_min", lambda M, x: x.clamp(min=0.3), ((4, 5),), avoid=(0.3,)),
    Case("clamp_max", lambda M, x: x.clamp(max=-0.2), ((4, 5),), avoid=(-0.2,)),
    Case("clamp_tensor_bounds", lambda M, x, lo: x.clamp(min=lo), ((3, 4), (4,))),
    Case("maximum", lambda M, x, y: M.maximum(x, y), ((3, 4), (4,))),
    Case("minimum", lambda M, x, y: x.minimum(y), ((3, 1), (1, 4))),
    Case("where", lambda M, x, y: M.where(x > 0, x, y), ((3, 4), (4,)), avoid=(0.0,)),
    Case("where_scalar", lambda M, x: M.where(x > 0, x, 0.5), ((3, 4),), avoid=(0.0,)),
    Case("masked_fill", lambda M, x: x.masked_fill(_idx(M, MASK), -3.0), ((3, 4),)),
    Case("masked_fill_broadcast", lambda M, x: x.masked_fill(_idx(M, MASK[0]), 0.0), ((2, 3, 4),)),
    Case("masked_fill_tensor_value", lambda M, x: x.masked_fill(_idx(M, MASK), M.tensor(2.5)), ((3, 4),)),
    # ---- reductions
    Case("sum_all", lambda M, x: x.sum(), ((3, 4),)),
    Case("sum_dim", lambda M, x: x.sum(1), ((2, 3, 4),)),
    Case("sum_neg_dim_keepdim", lambda M, x: x.sum(-1, keepdim=True), ((2, 3, 4),)),
    Case("sum_tuple", lambda M, x: x.sum((0, 2)), ((2, 3, 4),)),
    Case("mean_all", lambda M, x: x.mean(), ((3, 4),)),
    Case("mean_tuple_keepdim", lambda M, x: x.mean((0, -1), keepdim=True), ((2, 3, 4),)),
    Case("var_all", lambda M, x: x.var(), ((3, 4),)),
    Case("var_dim_correction0", lambda M, x: x.var(1, correction=0), ((2, 3, 4),)),
    Case("var_tuple_keepdim", lambda M, x: x.var((0, 2), keepdim=True, correction=2), ((2, 3, 4),)),
    Case("std_all", lambda M, x: x.std(), ((3, 4),)),
    Case("std_dim", lambda M, x: x.std(-1, keepdim=True), ((2, 3, 4),)),
    Case("max_all", lambda M, x: x.max(), ((3, 4),)),
    Case("min_all", lambda M, x: x.min(), ((3, 4),)),
    Case("max_dim_values", lambda M, x: x.max(1).values, ((3, 4),)),
    Case("max_dim_keepdim", lambda M, x: x.max(-1, keepdim=True)[0], ((2, 3, 4),)),
    Case("min_dim_values", lambda M, x: x.min(0).values, ((3, 4),)),
    Case("amax_tuple", lambda M, x: x.amax((0, 2)), ((2, 3, 4),)),
    Case("amin_keepdim", lambda M, x: x.amin(1, keepdim=True), ((2, 3, 4),)),
    Case("logsumexp_dim", lambda M, x: x.logsumexp(1), ((3, 4),), low=-5, high=5),
    Case("logsumexp_tuple_keepdim", lambda M, x: x.logsumexp((0, 2), keepdim=True), ((2, 3, 4),)),
    Case("softmax", lambda M, x: x.softmax(-1), ((2, 3, 4),), low=-5, high=5),
    Case("softmax_dim0", lambda M, x: x.softmax(0), ((3, 4),)),
    Case("log_softmax", lambda M, x: x.log_softmax(-1), ((2, 3, 4),), low=-5, high=5),
    Case("log_softmax_dim1", lambda M, x: x.log_softmax(1), ((2, 3, 4),)),
    # ---- shape
    Case("reshape", lambda M, x: x.reshape(4, 6), ((2, 3, 4),)),
    Case("reshape_minus1_tuple", lambda M, x: x.reshape((-1, 2)), ((2, 3, 4),)),
    Case("view", lambda M, x: x.view(6, 4), ((2, 3, 4),)),
    Case("flatten", lambda M, x: x.flatten(), ((2, 3, 4),)),
    Case("flatten_range", lambda M, x: x.flatten(1), ((2, 3, 4),)),
    Case("transpose", lambda M, x: x.transpose(0, 2), ((2, 3, 4),)),
    Case("T", lambda M, x: x.T, ((3, 4),)),
    Case("permute", lambda M, x: x.permute(2, 0, 1), ((2, 3, 4),)),
    Case("squeeze_all", lambda M, x: x.squeeze(), ((1, 3, 1, 4),)),
    Case("squeeze_dim", lambda M, x: x.squeeze(2), ((1, 3, 1, 4),)),
    Case("unsqueeze", lambda M, x: x.unsqueeze(-1).unsqueeze(0), ((3, 4),)),
    Case("expand", lambda M, x: x.expand(2, 3, 4), ((3, 1),)),
    Case("expand_minus1", lambda M, x: x.expand(5, -1), ((1, 4),)),
    Case("broadcast_to", lambda M, x: x.broadcast_to((2, 3, 4)), ((4,),)),
    # ---- indexing
    Case("getitem_int", lambda M, x: x[1], ((3, 4),)),
    Case("getitem_neg_int", lambda M, x: x[-1, -2], ((3, 4),)),
    Case("getitem_slices_steps", lambda M, x: x[::2, 1::2], ((5, 6),)),
    Case("getitem_none_ellipsis", lambda M, x: x[None, ..., 1:3], ((2, 3, 4),)),
    Case("getitem_int_array_repeats", lambda M, x: x[_idx(M, [0, 2, 0, 0])], ((3, 4),)),
    Case("getitem_int_arrays_2d", lambda M, x: x[_idx(M, [0, 2, 2]), _idx(M, [1, 1, 3])], ((3, 4),)),
    Case("getitem_array_with_slice", lambda M, x: x[:, _idx(M, [3, 0, 3])], ((3, 4),)),
    Case("getitem_bool_mask", lambda M, x: x[_idx(M, MASK)], ((3, 4),)),
    Case("getitem_bool_rows", lambda M, x: x[_idx(M, [True, False, True])], ((3, 4),)),
    Case("getitem_tensor_scalar_index", lambda M, x: x[_idx(M, 2)], ((3, 4),)),
    # ---- joining and splitting
    Case("cat", lambda M, x, y: M.cat([x, y, x], dim=1), ((2, 3), (2, 2))),
    Case("cat_neg_dim", lambda M, x, y: M.cat([x, y], dim=-1), ((2, 3, 1), (2, 3, 2))),
    Case("stack", lambda M, x, y: M.stack([x, y, x], dim=1), ((2, 3), (2, 3))),
    Case("stack_last", lambda M, x, y: M.stack([x, y], dim=-1), ((2, 3), (2, 3))),
    Case("split_size", lambda M, x: M.cat([p * (i + 1) for i, p in enumerate(x.split(2, dim=1))], 1), ((3, 5),)),
    Case("split_sections", lambda M, x: M.cat(list(x.split([1, 3], dim=1))[::-1], 1), ((3, 4),)),
    Case("chunk", lambda M, x: M.stack([p.sum(0) for p in x.chunk(3, 0)], 0), ((6, 2),)),
    Case("unbind", lambda M, x: M.stack(list(x.unbind(1))[::-1], 0), ((2, 3),)),
    Case("gather", lambda M, x: x.gather(1, _idx(M, [[0, 0, 3], [1, 2, 1], [3, 3, 3]])), ((3, 4),)),
    Case("gather_dim0", lambda M, x: x.gather(0, _idx(M, [[0, 1, 2, 0], [2, 2, 2, 2]])), ((3, 4),)),
    Case("pad_last", lambda M, x: _pad(M, x, (1, 2)), ((2, 3),)),
    Case("pad_two_dims_value", lambda M, x: _pad(M, x, (0, 1, 2, 1), 1.5), ((2, 3, 4),)),
    Case("pad_negative_crops", lambda M, x: _pad(M, x, (-1, 2, 1, -1)), ((3, 4),)),
    # ---- compositions that reuse values
    Case("diamond", lambda M, x: (x * x + x.exp() * x).sum(-1), ((3, 4),)),
    Case("shared_matmul_weight", lambda M, x, w: (x @ w).tanh() @ w.T, ((2, 3), (3, 3))),
]
IDS = [c.name for c in CASES]


def _tg_inputs(case: Case, dtype=np.float64, seed: int = 0) -> list[tg.Tensor]:
    return [tg.Tensor(a.astype(dtype), requires_grad=True) for a in case.arrays(seed)]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck_float64(case: Case):
    xs = _tg_inputs(case)
    assert tg.gradcheck(lambda *t: case.fn(tg, *t), xs)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch(case: Case):
    torch = pytest.importorskip("torch")
    arrays = case.arrays()
    xs = [tg.Tensor(a.copy(), requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, tout = case.fn(tg, *xs), case.fn(torch, *ts)
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = np.random.default_rng(1).standard_normal(out.shape)
    (out * tg.Tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for i, (x, t) in enumerate(zip(xs, ts)):
        assert x.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=f"input {i}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dtype_kept_through_forward_and_backward(case: Case, dtype):
    xs = _tg_inputs(case, dtype)
    out = case.fn(tg, *xs)
    assert out.dtype == dtype
    out.sum().backward()
    for x in xs:
        assert x.grad.dtype == dtype


# ---------------------------------------------------------------- binary ops over random broadcast shapes

BINARY = {
    "add": lambda M, x, y: x + y,
    "sub": lambda M, x, y: x - y,
    "mul": lambda M, x, y: x * y,
    "div": lambda M, x, y: x / (y * y + 0.5),
    "pow": lambda M, x, y: (x * x + 0.5) ** y,
    "maximum": lambda M, x, y: M.maximum(x, y),
    "minimum": lambda M, x, y: M.minimum(x, y),
    "where": lambda M, x, y: M.where(x > y, x, y * 2),
}


@pytest.mark.parametrize("op", list(BINARY))
@settings(max_examples=25, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       seed=st.integers(0, 2 ** 16))
def test_binary_ops_broadcast_gradcheck_and_torch(op, shapes, seed):
    fn = BINARY[op]
    r = np.random.default_rng(seed)
    a, b = (r.uniform(-2, 2, s) for s in shapes.input_shapes)
    if op in ("maximum", "minimum", "where"):
        # keep |x - y| away from 0 (broadcast): ties and the where() switch are kinks
        d = np.broadcast_to(a, shapes.result_shape) - np.broadcast_to(b, shapes.result_shape)
        if np.abs(d).min(initial=1.0) < 1e-3:
            return
    xs = [tg.Tensor(a.copy(), requires_grad=True), tg.Tensor(b.copy(), requires_grad=True)]
    assert tg.gradcheck(lambda x, y: fn(tg, x, y), xs)
    torch = pytest.importorskip("torch")
    x, y = (tg.Tensor(v.copy(), requires_grad=True) for v in (a, b))
    tx, ty = (torch.tensor(v, requires_grad=True) for v in (a, b))
    out, tout = fn(tg, x, y), fn(torch, tx, ty)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-9, atol=1e-12)
    assert x.grad.shape == a.shape and y.grad.shape == b.shape


@settings(max_examples=25, deadline=None)
@given(batch=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3),
       n=st.integers(1, 3), k=st.integers(1, 3), m=st.integers(1, 3), seed=st.integers(0, 2 ** 16))
def test_matmul_random_batch_broadcast(batch, n, k, m, seed):
    r = np.random.default_rng(seed)
    a = r.standard_normal(batch.input_shapes[0] + (n, k))
    b = r.standard_normal(batch.input_shapes[1] + (k, m))
    xs = [tg.Tensor(a.copy(), requires_grad=True), tg.Tensor(b.copy(), requires_grad=True)]
    assert tg.gradcheck(lambda x, y: x @ y, xs)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose((xs[0] @ xs[1]).numpy(), (torch.tensor(a) @ torch.tensor(b)).numpy(), rtol=1e-10)


# ---------------------------------------------------------------- comparisons: values, no gradient

@pytest.mark.parametrize("op", ["__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"])
def test_comparisons_match_torch_and_carry_no_grad(op):
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    x = tg.Tensor(a, requires_grad=True)
    for other, tother in ((tg.Tensor(b, requires_grad=True), torch.tensor(b)), (2.0, 2.0)):
        out = getattr(x, op)(other)
        assert out.dtype == np.bool_ and not out.requires_grad and out._ctx is None
        np.testing.assert_array_equal(out.numpy(), getattr(torch.tensor(a), op)(tother).numpy())


# ---------------------------------------------------------------- stable ops at extreme inputs

EXTREME = np.array([[-1e4, 0.0, 1e4], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4], [3.0, -2.0, 1e4]])
STABLE = {
    "sigmoid": lambda M, x: x.sigmoid(),
    "tanh": lambda M, x: x.tanh(),
    "softmax": lambda M, x: x.softmax(-1),
    "log_softmax": lambda M, x: x.log_softmax(-1),
    "logsumexp": lambda M, x: x.logsumexp(-1),
    "gelu": lambda M, x: _gelu(M, x),
    "gelu_tanh": lambda M, x: _gelu(M, x, "tanh"),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(STABLE))
def test_stable_at_extreme_inputs_without_warnings(name, dtype):
    torch = pytest.importorskip("torch")
    fn = STABLE[name]
    x = tg.Tensor(EXTREME.astype(dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow/invalid RuntimeWarning fails here
        out = fn(tg, x)
        out.backward(np.ones(out.shape, dtype))
    assert np.isfinite(out.numpy()).all() and np.isfinite(x.grad.numpy()).all()
    tx = torch.tensor(EXTREME, requires_grad=True)
    tout = fn(torch, tx)
    tout.backward(torch.ones_like(tout))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=tol, atol=tol)


def test_masked_rows_in_softmax_family():
    """-inf entries (masking) give exact zeros; a fully masked row gives NaN in softmax/log_softmax and -inf
    in logsumexp, as PyTorch, and zeros in masked_softmax (attention's rule); never a warning."""
    a = np.array([[0.5, -np.inf, 1.5], [-np.inf, -np.inf, -np.inf]])
    x = tg.Tensor(a, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = x.softmax(-1)
        lp = x.log_softmax(-1)
        lse = x.logsumexp(-1)
        mp = x.masked_softmax(dim=-1)
        (lse[0] + mp.sum()).backward()
    e = np.exp(np.array([0.5, 1.5]) - np.logaddexp(0.5, 1.5))
    np.testing.assert_allclose(p.numpy()[0], [e[0], 0.0, e[1]])
    assert np.isnan(p.numpy()[1]).all() and np.isnan(lp.numpy()[1]).all()
    np.testing.assert_allclose(mp.numpy()[0], p.numpy()[0])
    np.testing.assert_array_equal(mp.numpy()[1], 0.0)
    np.testing.assert_allclose(lp.numpy()[0, [0, 2]], np.log(e))
    assert lp.numpy()[0, 1] == -np.inf
    np.testing.assert_allclose(lse.numpy(), [np.logaddexp(0.5, 1.5), -np.inf])
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy()[0], [e[0], 0.0, e[1]], atol=1e-15)  # d(sum mp)=0, dlse=softmax
    torch = pytest.importorskip("torch")
    t = torch.tensor(a)
    np.testing.assert_array_equal(np.isnan(torch.softmax(t, -1).numpy()), np.isnan(p.numpy()))
    np.testing.assert_array_equal(np.isnan(torch.log_softmax(t, -1).numpy()), np.isnan(lp.numpy()))


# ---------------------------------------------------------------- bad input: op and shapes named

@pytest.mark.parametrize("fn, parts", [
    (lambda: tg.ones(2, 3) + tg.ones(4), ["Add", "(2, 3)", "(4,)"]),
    (lambda: tg.ones(2, 3) * tg.ones(3, 2), ["Mul", "(2, 3)", "(3, 2)"]),
    (lambda: tg.ones(3, 4) @ tg.ones(5, 6), ["MatMul", "inner sizes differ: 4", "(3, 4)", "(5, 6)"]),
    (lambda: tg.ones(2, 3, 4) @ tg.ones(2, 5, 6), ["MatMul", "(2, 3, 4)", "(2, 5, 6)"]),
    (lambda: tg.ones(2, 3, 4) @ tg.ones(3, 4, 5), ["MatMul", "batch dims (2,) and (3,)", "(3, 4, 5)"]),
    (lambda: tg.ones(4) @ tg.ones(5), ["MatMul", "(4,)", "(5,)"]),
    (lambda: tg.ones(2, 3).reshape(4, 2), ["reshape", "(2, 3)", "(4, 2)"]),
    (lambda: tg.ones(2, 3).expand(4, 3), ["expand", "(2, 3)"]),
    (lambda: tg.ones(2, 3).expand(3), ["expand", "(2, 3)", "(3,)"]),
    (lambda: tg.ones(2, 1).expand(-1, 2, 1), ["expand", "(2, 1)", "(-1, 2, 1)"]),
    (lambda: tg.cat([tg.ones(2, 3), tg.ones(3, 3)], dim=1), ["cat", "(2, 3)", "(3, 3)"]),
    (lambda: tg.stack([tg.ones(2, 3), tg.ones(3, 2)]), ["stack", "(2, 3)", "(3, 2)"]),
    (lambda: tg.ones(2, 3).masked_fill(tg.ones(4).bool(), 0.0), ["masked_fill", "(4,)", "(2, 3)"]),
    (lambda: tg.where(tg.ones(2).bool(), tg.ones(3), 0.0), ["where", "(2,)", "(3,)"]),
    (lambda: tg.ones(2, 3).gather(1, tg.tensor([0, 1])), ["gather", "(2,)", "(2, 3)"]),
    (lambda: tg.ones(2, 3).split([1, 1], dim=1), ["split", "(2, 3)"]),
    (lambda: tg.ones(2, 3).permute(0, 0), ["permute", "(2, 3)"]),
    (lambda: tg_pad(tg.ones(2, 3), (1, 2, 3)), ["pad", "(2, 3)"]),
    (lambda: tg.maximum(tg.ones(2, 3), tg.ones(2)), ["Maximum", "(2, 3)", "(2,)"]),
])
def test_shape_errors_name_the_op_and_shapes(fn, parts):
    with pytest.raises((ValueError, RuntimeError)) as exc:
        fn()
    for p in parts:
        assert p in str(exc.value), f"{p!r} missing from: {exc.value}"


@pytest.mark.parametrize("fn, parts", [
    (lambda: tg.ones(2, 3).sum(2), ["Sum", "dim 2", "(2, 3)"]),
    (lambda: tg.ones(2, 3).mean((0, -3)), ["Mean", "dim -3", "(2, 3)"]),
    (lambda: tg.ones(2, 3).softmax(2), ["Softmax", "(2, 3)"]),
    (lambda: tg.ones(2, 3).max(2), ["max", "dim 2", "(2, 3)"]),
    (lambda: tg.ones(2, 3).unsqueeze(3), ["unsqueeze", "dim 3", "(2, 3)"]),
    (lambda: tg.ones(2, 3).transpose(0, 2), ["transpose", "dim 2", "(2, 3)"]),
    (lambda: tg.ones(2, 3).split(1, dim=-3), ["split", "dim -3", "(2, 3)"]),
    (lambda: tg.cat([tg.ones(2), tg.ones(2)], dim=1), ["cat", "dim 1", "(2,)"]),
    (lambda: tg.stack([tg.ones(2), tg.ones(2)], dim=3), ["Stack", "dim 3", "(2,)"]),
    (lambda: tg.ones(2, 3)[2], ["GetItem", "index 2", "(2, 3)"]),
])
def test_out_of_range_dims_and_indices_raise_index_error(fn, parts):
    """Like PyTorch: never silently wrapped around (dim 2 of a 2-d tensor is not dim 0)."""
    with pytest.raises(IndexError) as exc:
        fn()
    for p in parts:
        assert p in str(exc.value), f"{p!r} missing from: {exc.value}"


def test_bad_masks_and_conditions_are_type_errors():
    with pytest.raises(RuntimeError, match="bool"):  # as torch: "masked_fill only supports boolean masks"
        tg.ones(2).masked_fill(tg.ones(2), 0.0)
    with pytest.raises(TypeError, match="bool"):
        tg.where(tg.ones(2), tg.ones(2), tg.ones(2))


# ---------------------------------------------------------------- specific semantics

def test_max_dim_returns_values_and_indices_like_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(3).standard_normal((3, 5, 4))
    for dim in (0, 1, -1):
        for keepdim in (False, True):
            v, i = tg.Tensor(a).max(dim, keepdim=keepdim)
            tv, ti = torch.tensor(a).max(dim, keepdim=keepdim)
            np.testing.assert_array_equal(v.numpy(), tv.numpy())
            np.testing.assert_array_equal(i.numpy(), ti.numpy())
            mv = tg.Tensor(a).min(dim, keepdim=keepdim)
            np.testing.assert_array_equal(mv.indices.numpy(), torch.tensor(a).min(dim, keepdim=keepdim).indices.numpy())


def test_tied_maxima_share_the_gradient_like_torch_amax():
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x, tx = tg.Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    x.amax(1).sum().backward()
    tx.amax(1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    y, ty = tg.Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    tg.maximum(y, tg.Tensor(np.full(3, 2.0))).sum().backward()
    torch.maximum(ty, torch.full((3,), 2.0, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy())


def test_getitem_repeated_indices_accumulate():
    x = tg.Tensor(np.arange(4.0), requires_grad=True)
    x[tg.tensor([1, 1, 1, 3])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 3.0, 0.0, 1.0])


def test_split_chunk_shapes_like_torch():
    torch = pytest.importorskip("torch")
    a = np.zeros((7, 2))
    for n in (1, 2, 3, 4, 7):
        assert [p.shape for p in tg.Tensor(a).chunk(n)] == [tuple(p.shape) for p in torch.tensor(a).chunk(n)]
        assert [p.shape for p in tg.Tensor(a).split(n)] == [tuple(p.shape) for p in torch.tensor(a).split(n)]


def test_split_chunk_of_an_empty_dim_and_bad_sizes_like_torch():
    torch = pytest.importorskip("torch")
    a = np.zeros((0, 3))
    for make in (lambda M, x: x.split(2), lambda M, x: x.split(0), lambda M, x: x.chunk(2), lambda M, x: x.chunk(1)):
        assert [p.shape for p in make(tg, tg.Tensor(a))] == [tuple(p.shape) for p in make(torch, torch.tensor(a))]
    for bad in (lambda x: x.split(0), lambda x: x.split(-1), lambda x: x.chunk(0), lambda x: x.chunk(-2),
                lambda x: x.split([-1, 5])):
        with pytest.raises(RuntimeError):
            bad(torch.zeros(4, 2))
        with pytest.raises(RuntimeError, match="split|chunk"):
            bad(tg.zeros(4, 2))
    for M in (torch, tg):
        with pytest.raises(TypeError, match="chunks"):
            M.zeros(4, 2).chunk(2.5)
    assert [p.shape for p in tg.zeros(5).chunk(np.int64(2))] == [tuple(p.shape) for p in torch.zeros(5).chunk(np.int64(2))]


def test_var_with_too_few_elements_is_nan_like_torch():
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns about degrees of freedom
        expected = torch.tensor([1.5], dtype=torch.float64).var().item()
    assert np.isnan(expected) and np.isnan(tg.Tensor(np.array([1.5])).var().item())


def test_scalars_keep_the_tensor_dtype():
    x = tg.Tensor(np.ones(3, np.float32), requires_grad=True)
    for out in (x + 1.5, 2.5 * x, x / 3.0, 1.0 - x, x ** 2.0, 2.0 ** x, x.maximum(0.5), tg.where(x > 0, x, 0.25)):
        assert out.dtype == np.float32
    z = tg.Tensor(np.ones(3), requires_grad=True)
    assert (z * 1.5).dtype == np.float64 and (z + np.float32(1)).dtype == np.float64


def test_mixed_precision_grads_come_back_in_each_inputs_dtype():
    torch = pytest.importorskip("torch")
    a, b = np.random.default_rng(0).standard_normal((2, 3, 4))
    x = tg.Tensor(a.astype(np.float32), requires_grad=True)
    y = tg.Tensor(b, requires_grad=True)
    out = x * y
    assert out.dtype == np.float64  # NumPy/PyTorch promotion
    out.sum().backward()
    assert x.grad.dtype == np.float32 and y.grad.dtype == np.float64
    tx = torch.tensor(a.astype(np.float32), requires_grad=True)
    ty = torch.tensor(b, requires_grad=True)
    (tx * ty).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


# ---------------------------------------------------------------- reductions over random shapes and dims

REDUCTIONS = {
    "sum": lambda M, x, dim, keepdim: x.sum(dim, keepdim=keepdim),
    "mean": lambda M, x, dim, keepdim: x.mean(dim, keepdim=keepdim),
    "var": lambda M, x, dim, keepdim: x.var(dim, keepdim=keepdim, correction=0),
    "std": lambda M, x, dim, keepdim: x.std(dim, keepdim=keepdim),
    "amax": lambda M, x, dim, keepdim: x.amax(dim, keepdim=keepdim),
    "logsumexp": lambda M, x, dim, keepdim: x.logsumexp(dim, keepdim=keepdim),
}


@pytest.mark.parametrize("op", list(REDUCTIONS))
@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(2, 3), min_size=1, max_size=3), data=st.data(), keepdim=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_reductions_random_dims_gradcheck_and_torch(op, shape, data, keepdim, seed):
    nd = len(shape)
    dims = data.draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                              unique_by=lambda d: d % nd))
    dim = dims[0] if len(dims) == 1 else tuple(dims)
    fn = REDUCTIONS[op]
    a = np.random.default_rng(seed).standard_normal(shape)
    assert tg.gradcheck(lambda x: fn(tg, x, dim, keepdim), [tg.Tensor(a.copy(), requires_grad=True)])
    torch = pytest.importorskip("torch")
    x, tx = tg.Tensor(a.copy(), requires_grad=True), torch.tensor(a, requires_grad=True)
    out, tout = fn(tg, x, dim, keepdim), fn(torch, tx, dim, keepdim)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = np.random.default_rng(seed + 1).standard_normal(out.shape)
    (out * tg.Tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- every core Function is exercised above

CORE_OPS = {"Abs", "Add", "Cat", "Clamp", "Div", "Exp", "Expand", "Gather", "Gelu", "GetItem", "Log",
            "LogSoftmax", "LogSumExp", "MaskedFill", "MatMul", "Max", "MaxDim", "Maximum", "Mean", "Minimum",
            "Mul", "Neg", "Pad", "Permute", "Pow", "PowConst", "Relu", "Reshape", "Sigmoid", "Softmax", "Sqrt",
            "Stack", "Sub", "Sum", "Tanh", "Var", "Where"}


def test_every_core_op_is_covered_by_the_cases():
    from tinygrad_seq import ops
    assert CORE_OPS <= set(ops.REGISTRY), CORE_OPS - set(ops.REGISTRY)
    seen = set()
    for case in CASES:
        stack = [case.fn(tg, *_tg_inputs(case))]
        while stack:
            t = stack.pop()
            if t._ctx is not None:
                seen.add(type(t._ctx).__name__)
                stack.extend(t._ctx.parents)
    assert CORE_OPS <= seen, f"ops without a test case: {sorted(CORE_OPS - seen)}"


# ---------------------------------------------------------------- unary ops over several shapes (0-d included)

UNARY = {
    "neg": (lambda M, x: -x, (-2, 2)),
    "exp": (lambda M, x: x.exp(), (-2, 2)),
    "log": (lambda M, x: x.log(), (0.2, 3)),
    "sqrt": (lambda M, x: x.sqrt(), (0.2, 3)),
    "abs": (lambda M, x: x.abs(), (0.1, 2)),
    "tanh": (lambda M, x: x.tanh(), (-2, 2)),
    "sigmoid": (lambda M, x: x.sigmoid(), (-4, 4)),
    "relu": (lambda M, x: x.relu(), (0.1, 2)),
    "gelu": (lambda M, x: _gelu(M, x), (-3, 3)),
    "gelu_tanh": (lambda M, x: _gelu(M, x, "tanh"), (-3, 3)),
    "softmax": (lambda M, x: x.softmax(-1) if x.ndim else x.exp(), (-3, 3)),
    "square": (lambda M, x: x.square(), (-2, 2)),
}


@pytest.mark.parametrize("shape", [(), (1,), (5,), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_ops_over_shapes(name, shape):
    fn, (lo, hi) = UNARY[name]
    r = np.random.default_rng(len(shape))
    a = r.uniform(lo, hi, shape) * (r.choice([-1.0, 1.0], shape) if name in ("abs", "relu") else 1.0)
    assert tg.gradcheck(lambda x: fn(tg, x), [tg.Tensor(np.array(a), requires_grad=True)])
    torch = pytest.importorskip("torch")
    x, tx = tg.Tensor(np.array(a), requires_grad=True), torch.tensor(a, requires_grad=True)
    out, tout = fn(tg, x), fn(torch, tx)
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_matmul_with_a_held_transpose_keeps_it_in_the_graph_as_torch():
    """x @ W.T on a W.T held in a variable: retain_grad() and grad() with respect to it work (the one-node
    Linear shortcut applies only to a W.T nobody holds)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w, h = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    res = {}
    for M in (tg, torch):
        W = M.tensor(w, requires_grad=True)
        WT = W.T
        WT.retain_grad()
        y = M.tensor(h) @ WT
        (y * y).sum().backward()
        WT2 = W.T
        g = M.autograd.grad((M.tensor(h) @ WT2).sum(), [WT2, W])
        res[M] = (WT.grad.numpy(), W.grad.numpy(), g[0].numpy(), g[1].numpy())
    for a, b in zip(res[tg], res[torch]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    x = tg.tensor(h)
    W = tg.tensor(w, requires_grad=True)
    y = x @ W.T  # (not inside the assert: pytest's rewriting would hold W.T)
    assert type(y._ctx).__name__ == "Linear"  # the temporary: one node
