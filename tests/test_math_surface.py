"""Math functions and reductions of the PyTorch surface (issue 9): each against torch in float64
(values, and gradients via backward with a random upstream gradient), gradcheck for the new ops, and
the edge cases PyTorch answers with inf/NaN (same values here, and no NumPy RuntimeWarning)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import tinygrad_seq as tg

torch = pytest.importorskip("torch")


@dataclass
class Case:
    name: str
    fn: Callable  # fn(M, *xs) with M = tinygrad_seq or torch: the same expression in both
    shapes: tuple
    low: float = -2.0
    high: float = 2.0
    gradcheck: bool = True

    def arrays(self, seed: int = 0) -> list[np.ndarray]:
        r = np.random.default_rng(seed)
        return [r.uniform(self.low, self.high, s) for s in self.shapes]


CASES = [
    Case("exp", lambda M, x: M.exp(x), [(3, 4)]),
    Case("log", lambda M, x: M.log(x), [(3, 4)], 0.1, 3),
    Case("sin", lambda M, x: M.sin(x), [(3, 4)]),
    Case("cos", lambda M, x: M.cos(x), [(3, 4)]),
    Case("tan", lambda M, x: M.tan(x), [(3, 4)], -1.2, 1.2),
    Case("tanh", lambda M, x: M.tanh(x), [(3, 4)]),
    Case("sigmoid", lambda M, x: M.sigmoid(x), [(3, 4)]),
    Case("relu", lambda M, x: M.relu(x), [(3, 4)]),
    Case("softmax", lambda M, x: M.softmax(x, dim=0), [(3, 4)]),
    Case("log_softmax", lambda M, x: M.log_softmax(x, 1), [(3, 4)]),
    Case("sqrt", lambda M, x: M.sqrt(x), [(3, 4)], 0.1, 3),
    Case("rsqrt", lambda M, x: M.rsqrt(x), [(3, 4)], 0.1, 3),
    Case("abs", lambda M, x: M.abs(x), [(3, 4)]),
    Case("sign", lambda M, x: M.sign(x) * x, [(3, 4)]),
    Case("floor", lambda M, x: M.floor(x) + x, [(3, 4)], gradcheck=False),
    Case("ceil", lambda M, x: M.ceil(x) * x, [(3, 4)], gradcheck=False),
    Case("round", lambda M, x: M.round(x * 3), [(3, 4)], gradcheck=False),
    Case("round_decimals", lambda M, x: M.round(x, decimals=2) + x, [(3, 4)], gradcheck=False),
    Case("log2", lambda M, x: M.log2(x), [(3, 4)], 0.1, 3),
    Case("log10", lambda M, x: M.log10(x), [(3, 4)], 0.1, 3),
    Case("log1p", lambda M, x: M.log1p(x), [(3, 4)], -0.9, 3),
    Case("expm1", lambda M, x: M.expm1(x), [(3, 4)]),
    Case("exp2", lambda M, x: M.exp2(x), [(3, 4)]),
    Case("pow_tensor", lambda M, x, y: M.pow(x, y), [(3, 4), (3, 4)], 0.2, 2),
    Case("pow_number_base", lambda M, x: M.pow(2.5, x), [(3, 4)]),
    Case("pow_const", lambda M, x: M.pow(x, 3), [(3, 4)]),
    Case("square", lambda M, x: M.square(x), [(3, 4)]),
    Case("sinh", lambda M, x: M.sinh(x), [(3, 4)]),
    Case("cosh", lambda M, x: M.cosh(x), [(3, 4)]),
    Case("asin", lambda M, x: M.asin(x), [(3, 4)], -0.9, 0.9),
    Case("acos", lambda M, x: M.acos(x), [(3, 4)], -0.9, 0.9),
    Case("atan", lambda M, x: M.atan(x), [(3, 4)]),
    Case("atan2", lambda M, y, x: M.atan2(y, x), [(3, 4), (4,)]),
    Case("lerp", lambda M, a, b, w: M.lerp(a, b, w), [(3, 4), (3, 4), (3, 4)], 0.0, 1.0),
    Case("lerp_broadcast", lambda M, a, b, w: a.lerp(b, w), [(4,), (2, 3, 4), (3, 1)]),
    Case("lerp_number", lambda M, a, b: M.lerp(a, b, 0.75), [(3, 4), (4,)]),
    Case("matmul", lambda M, a, b: M.matmul(a, b), [(2, 3, 4), (4, 5)]),
    Case("mm", lambda M, a, b: M.mm(a, b), [(3, 4), (4, 2)]),
    Case("bmm", lambda M, a, b: M.bmm(a, b), [(2, 3, 4), (2, 4, 5)]),
    Case("outer", lambda M, a, b: M.outer(a, b), [(3,), (4,)]),
    Case("dot", lambda M, a, b: M.dot(a, b), [(5,), (5,)]),
    Case("einsum_matmul", lambda M, a, b: M.einsum("ij,jk->ik", a, b), [(3, 4), (4, 2)]),
    Case("einsum_batched_ellipsis", lambda M, a, b: M.einsum("...ij,...jk->...ik", a, b), [(2, 3, 4), (2, 4, 5)]),
    Case("einsum_ellipsis_broadcast", lambda M, a, b: M.einsum("...d,...d->...", a, b), [(2, 3, 4), (3, 4)]),
    Case("einsum_implicit", lambda M, a, b: M.einsum("ij,jk", a, b), [(3, 4), (4, 2)]),
    Case("einsum_implicit_transpose", lambda M, a: M.einsum("ji", a), [(3, 4)]),
    Case("einsum_attention", lambda M, q, k: M.einsum("bhqd,bhkd->bhqk", q, k), [(2, 2, 3, 4), (2, 2, 5, 4)]),
    Case("einsum_sum_out", lambda M, a: M.einsum("ij->j", a), [(3, 4)]),
    Case("einsum_trace", lambda M, a: M.einsum("ii", a), [(4, 4)]),
    Case("einsum_diag", lambda M, a: M.einsum("ii->i", a), [(4, 4)]),
    Case("einsum_three", lambda M, a, b, c: M.einsum("i,ij,j->", a, b, c), [(3,), (3, 4), (4,)]),
    Case("einsum_outer", lambda M, a, b: M.einsum("i,j->ij", a, b), [(3,), (4,)]),
    Case("einsum_list", lambda M, a, b: M.einsum("bij,bjk->bik", [a, b]), [(2, 3, 4), (2, 4, 2)]),
    Case("triu", lambda M, x: M.triu(x), [(4, 5)]),
    Case("triu_diag", lambda M, x: M.triu(x, diagonal=1), [(2, 4, 5)]),
    Case("tril_diag", lambda M, x: M.tril(x, diagonal=-1), [(4, 5)]),
    Case("topk", lambda M, x: M.topk(x, 2).values, [(3, 5)]),
    Case("topk_dim0_smallest", lambda M, x: M.topk(x, 2, dim=0, largest=False).values, [(3, 5)]),
    Case("sort", lambda M, x: M.sort(x, dim=0).values, [(3, 5)]),
    Case("sort_descending", lambda M, x: M.sort(x, descending=True)[0], [(3, 5)]),
    Case("max_dim", lambda M, x: M.max(x, 1).values, [(3, 5)]),
    Case("min_dim_keepdim", lambda M, x: M.min(x, dim=0, keepdim=True)[0], [(3, 5)]),
    Case("cumsum", lambda M, x: M.cumsum(x, dim=1), [(3, 5)]),
    Case("cumsum_neg_dim", lambda M, x: M.cumsum(x, -3), [(2, 3, 4)]),
    Case("cumprod", lambda M, x: M.cumprod(x, dim=1), [(3, 5)]),
    Case("cumprod_dim0", lambda M, x: M.cumprod(x, 0), [(4, 3)]),
    Case("prod_all", lambda M, x: M.prod(x), [(3, 4)]),
    Case("prod_dim", lambda M, x: M.prod(x, 1), [(3, 4)]),
    Case("prod_dim_keepdim", lambda M, x: M.prod(x, dim=-2, keepdim=True), [(3, 4)]),
    Case("norm_fro", lambda M, x: M.norm(x), [(3, 4)]),
    Case("norm_2_dim", lambda M, x: M.norm(x, p=2, dim=1), [(3, 4)]),
    Case("norm_1_keepdim", lambda M, x: M.norm(x, p=1, dim=0, keepdim=True), [(3, 4)]),
    Case("norm_inf", lambda M, x: M.norm(x, p=float("inf"), dim=1), [(3, 4)]),
    Case("norm_neg_inf", lambda M, x: M.norm(x, p=-float("inf")), [(3, 4)]),
    Case("norm_3", lambda M, x: M.norm(x, 3, dim=(0, 1)), [(3, 4)]),
    Case("norm_fro_dim", lambda M, x: M.norm(x, "fro", dim=1), [(3, 4)]),
    Case("dist", lambda M, x, y: M.dist(x, y), [(3, 4), (3, 4)]),
    Case("dist_p1", lambda M, x, y: M.dist(x, y, 1), [(3, 4), (4,)]),
    Case("logsumexp", lambda M, x: M.logsumexp(x, 1), [(3, 4)]),
    Case("var", lambda M, x: M.var(x, 0), [(3, 4)]),
    Case("std", lambda M, x: M.std(x, dim=1, keepdim=True), [(3, 4)]),
    Case("mean", lambda M, x: M.mean(x, (0, 1)), [(3, 4)]),
    Case("sum", lambda M, x: M.sum(x, 1), [(3, 4)]),
    Case("amax", lambda M, x: M.amax(x, 1), [(3, 4)]),
    Case("clamp", lambda M, x: M.clamp(x, -0.5, 0.7), [(3, 4)]),
    Case("clamp_min", lambda M, x: M.clamp_min(x, 0.3), [(3, 4)]),
    Case("clamp_max", lambda M, x: x.clamp_max(0.3), [(3, 4)]),
    Case("clamp_tensor_bounds", lambda M, x, lo, hi: M.clamp(x, lo, hi), [(3, 4), (4,), (3, 1)]),
    Case("clamp_tensor_min", lambda M, x, lo: M.clamp(x, min=lo), [(3, 4), (3, 4)]),
    Case("clone", lambda M, x: M.clone(x) * 2, [(3, 4)]),
    Case("neg_reciprocal", lambda M, x: M.reciprocal(M.neg(x)), [(3, 4)], 0.5, 2),
]


def _run(M, case: Case, arrays, seed: int = 1):
    """Output and input gradients of case.fn under library M (float64 leaves, random upstream grad)."""
    if M is tg:
        xs = [tg.Tensor(a.copy(), requires_grad=True) for a in arrays]
    else:
        xs = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    out = case.fn(M, *xs)
    g = np.random.default_rng(seed).standard_normal(tuple(out.shape))
    out.backward(tg.Tensor(g) if M is tg else torch.tensor(g))
    grads = [np.zeros(a.shape) if x.grad is None else np.asarray(x.grad.numpy() if M is tg else x.grad.numpy())
             for x, a in zip(xs, arrays)]
    return out.detach().numpy() if M is torch else out.numpy(), grads


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_torch(case: Case):
    arrays = case.arrays()
    out, grads = _run(tg, case, arrays)
    t_out, t_grads = _run(torch, case, arrays)
    assert out.dtype == np.float64
    assert out.shape == t_out.shape
    np.testing.assert_allclose(out, t_out, rtol=1e-10, atol=1e-12)
    for i, (g, tgd) in enumerate(zip(grads, t_grads)):
        np.testing.assert_allclose(g, tgd, rtol=1e-9, atol=1e-12, err_msg=f"gradient of input {i}")


@pytest.mark.parametrize("case", [c for c in CASES if c.gradcheck], ids=[c.name for c in CASES if c.gradcheck])
def test_gradcheck(case: Case):
    xs = [tg.Tensor(a, requires_grad=True) for a in case.arrays(seed=2)]
    assert tg.gradcheck(lambda *t: case.fn(tg, *t), xs)


# ---------------------------------------------------------------- ops with integer outputs, booleans

def test_indices_match_torch():
    a = np.random.default_rng(0).standard_normal((4, 6))
    x, t = tg.tensor(a), torch.tensor(a)
    for kw in ({}, {"dim": 0}, {"dim": -1, "keepdim": True}, {"keepdim": True}):
        for f in ("argmax", "argmin"):
            got, want = getattr(x, f)(**kw), getattr(t, f)(**kw)
            assert got.shape == tuple(want.shape), (f, kw)
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got.numpy(), want.numpy())
            assert isinstance(got.numpy(), np.ndarray)
    np.testing.assert_array_equal(x.argsort(dim=0).numpy(), t.argsort(dim=0).numpy())
    np.testing.assert_array_equal(tg.argsort(x, descending=True).numpy(), torch.argsort(t, descending=True).numpy())
    np.testing.assert_array_equal(x.topk(3).indices.numpy(), t.topk(3).indices.numpy())
    np.testing.assert_array_equal(x.max(1).indices.numpy(), t.max(1).indices.numpy())


def test_sort_stable_ties_and_nan_as_torch():
    a = np.array([[1.0, 2.0, np.nan, 2.0, 1.0, 0.0], [3.0, 3.0, 3.0, -1.0, np.nan, np.nan]])
    x, t = tg.tensor(a), torch.tensor(a)
    for desc in (False, True):
        got, want = x.sort(descending=desc, stable=True), t.sort(descending=desc, stable=True)
        np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
        np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    i = np.array([3, 1, 3, 2, 1, 3])
    np.testing.assert_array_equal(tg.tensor(i).sort(descending=True, stable=True).indices.numpy(),
                                  torch.tensor(i).sort(descending=True, stable=True).indices.numpy())
    got, want = x.topk(2), t.topk(2)  # NaN counts as the largest
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())


def test_topk_gradient_goes_to_chosen_entries():
    x = tg.tensor([[0.5, 3.0, -1.0, 2.0]], requires_grad=True)
    v, i = tg.topk(x, 2)
    (v * tg.tensor([[10.0, 1.0]])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 10, 0, 1]])
    np.testing.assert_array_equal(i.numpy(), [[1, 3]])


def test_topk_errors():
    with pytest.raises(RuntimeError, match="k=5 is out of range"):
        tg.randn(2, 4).topk(5)
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        tg.randn(2, 4).topk(1, dim=2)


def test_integer_inputs_as_torch():
    a = np.array([[1, -2, 3], [4, 0, 2]])
    x, t = tg.tensor(a), torch.tensor(a)
    for f in ("cumsum", "cumprod"):
        got, want = getattr(x, f)(1), getattr(t, f)(1)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert x.prod().dtype == np.int64 and x.prod().item() == t.prod().item()
    for f in ("floor", "ceil", "round", "sign"):
        got, want = getattr(x, f)(), getattr(t, f)()
        assert got.dtype == np.int64, f
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    for f in ("sin", "log1p", "expm1", "atan", "log2"):  # integers compute in the default float dtype
        got, want = getattr(tg, f)(tg.tensor([0, 1])), getattr(torch, f)(torch.tensor([0, 1]))
        assert got.dtype == np.float32, f
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_predicates_and_conversions():
    a = np.array([1.0, np.inf, -np.inf, np.nan, 0.0])
    x, t = tg.tensor(a), torch.tensor(a)
    for f in ("isnan", "isinf", "isfinite"):
        got = getattr(tg, f)(x)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got.numpy(), getattr(torch, f)(t).numpy())
    b = tg.tensor([1.0, 2.0])
    assert tg.allclose(b, tg.tensor([1.0, 2.000001])) is True
    assert b.allclose(tg.tensor([1.0, 2.1])) is False
    assert tg.allclose(x, x) is False and tg.allclose(x, x, equal_nan=True) is True
    assert tg.equal(tg.tensor([1, 2]), tg.tensor([1.0, 2.0])) is torch.equal(torch.tensor([1, 2]), torch.tensor([1.0, 2.0]))
    assert tg.equal(tg.tensor([1, 2]), tg.tensor([1, 2, 3])) is False
    assert tg.equal(tg.tensor([1, 2]), tg.tensor([1, 3])) is False
    assert tg.numel(tg.zeros(2, 3)) == 6
    assert tg.tensor([[1, 2]]).tolist() == [[1, 2]]
    c = tg.clone(b)
    c.numpy()[0] = 5
    assert b.numpy()[0] == 1  # a copy, not a view
    assert tg.tensor([2.5]).round().item() == 2.0 and tg.tensor([-0.5]).round().item() == 0.0


def test_function_forms_take_tensors():
    with pytest.raises(TypeError, match="exp\\(\\): argument 'input' must be a Tensor, not list"):
        tg.exp([1.0, 2.0])
    with pytest.raises(TypeError, match="pow"):
        tg.pow(2, 3)
    x = tg.randn(3)
    assert tg.exp(input=x).shape == (3,)


def test_shape_errors_name_shapes():
    with pytest.raises(RuntimeError, match=r"mm: both arguments must be 2-D.*\(2, 3, 4\)"):
        tg.mm(tg.randn(2, 3, 4), tg.randn(4, 2))
    with pytest.raises(RuntimeError, match=r"mm: shapes \(3, 4\) and \(3, 2\)"):
        tg.mm(tg.randn(3, 4), tg.randn(3, 2))
    with pytest.raises(RuntimeError, match="bmm"):
        tg.bmm(tg.randn(2, 3, 4), tg.randn(3, 4, 5))
    with pytest.raises(RuntimeError, match="dot"):
        tg.dot(tg.randn(3), tg.randn(4))
    with pytest.raises(RuntimeError, match="triu: input must have at least 2 dims"):
        tg.triu(tg.randn(3))
    with pytest.raises(ValueError, match="einsum"):
        tg.einsum("ij,jk->ik", tg.randn(3, 4))
    with pytest.raises(ValueError, match="einsum"):
        tg.einsum("ijk->i", tg.randn(3, 4))


# ---------------------------------------------------------------- gradients at zeros and ties

@pytest.mark.parametrize("a", [
    [[1.0, 0.0, 2.0, 3.0], [0.0, 0.0, 2.0, -1.0]],
    [[2.0, 3.0, 0.5, 0.0], [1.5, -2.0, 0.0, 4.0]],
    [[0.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]],
])
@pytest.mark.parametrize("f", ["cumprod1", "cumprod0", "prod1", "prod0", "prod_all"])
def test_products_with_zeros_as_torch(a, f):
    case = Case(f, {"cumprod1": lambda M, x: M.cumprod(x, 1), "cumprod0": lambda M, x: M.cumprod(x, 0),
                    "prod1": lambda M, x: M.prod(x, 1), "prod0": lambda M, x: M.prod(x, 0),
                    "prod_all": lambda M, x: M.prod(x)}[f], [])
    arrays = [np.array(a)]
    out, (g,) = _run(tg, case, arrays)
    t_out, (tgd,) = _run(torch, case, arrays)
    np.testing.assert_allclose(out, t_out)
    np.testing.assert_allclose(g, tgd, rtol=1e-12, atol=1e-12)
    assert tg.gradcheck(lambda x: case.fn(tg, x), [tg.tensor(np.array(a), requires_grad=True)])


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, float("inf"), -float("inf"), 0, "fro"])
def test_norm_at_zero_and_ties_as_torch(p):
    for a in ([0.0, 0.0, 0.0], [1.0, -3.0, 3.0, 0.0], [[2.0, -2.0], [0.0, 1.0]]):
        case = Case("norm", lambda M, x: M.norm(x, p), [])
        out, (g,) = _run(tg, case, [np.array(a)])
        t_out, (tgd,) = _run(torch, case, [np.array(a)])
        np.testing.assert_allclose(out, t_out, rtol=1e-12)
        np.testing.assert_allclose(g, tgd, rtol=1e-12, atol=1e-12, err_msg=f"p={p} at {a}")


def _both(fn, *arrays):
    """fn applied in both libraries to float64 leaves: (tg out, tg grads, torch out, torch grads) with
    a ones upstream gradient."""
    res = []
    for M in (tg, torch):
        xs = [(tg.tensor if M is tg else torch.tensor)(np.array(a, dtype=np.float64), requires_grad=True)
              for a in arrays]
        out = fn(M, *xs)
        out.sum().backward()
        res.append((out.detach().numpy(), [x.grad.numpy() if x.grad is not None else None for x in xs]))
    return res


def _assert_same(res):
    (o1, g1), (o2, g2) = res
    np.testing.assert_array_equal(o1, o2)
    for a, b in zip(g1, g2):
        if b is None:
            assert a is None or not np.any(a)
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fn", [
    lambda M, x, y: M.maximum(x, y),
    lambda M, x, y: M.minimum(x, y),
    lambda M, x, y: M.clamp(x, min=y),
    lambda M, x, y: M.clamp(x, max=y),
    lambda M, x, y: M.clamp(x, y, y + 1),
    lambda M, x, y: M.clamp(x, y + 1, y),  # min > max: the result is max
    lambda M, x, y: M.clamp(x, 1.0, 2.0) + M.clamp(y, min=1.0),
    lambda M, x, y: M.clamp(x, 2.0, 1.0),
    lambda M, x, y: M.max(M.stack([x, y]), 0).values,
    lambda M, x, y: M.amax(M.stack([x, y]), 0),
], ids=["maximum", "minimum", "clamp_min_t", "clamp_max_t", "clamp_both_t", "clamp_crossed_t",
        "clamp_scalar", "clamp_crossed_scalar", "max_dim", "amax"])
def test_tie_gradients_as_torch(fn):
    x = [0.0, 1.0, 2.0, 3.0, 1.0]
    y = [1.0, 1.0, 1.0, 2.0, 3.0]
    _assert_same(_both(fn, x, y))


# ---------------------------------------------------------------- 0-d tensors and empty dims

@pytest.mark.parametrize("f", ["sum", "mean", "amax", "amin", "logsumexp", "softmax", "log_softmax",
                               "var", "std", "prod", "cumsum", "cumprod", "norm", "argmax", "argmin"])
@pytest.mark.parametrize("dim", [0, -1])
def test_reductions_over_dim_of_0d_as_torch(f, dim):
    import warnings
    x, t = tg.tensor(3.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns for var/std with one element
        kw = {"p": 2, "dim": dim} if f == "norm" else {}
        want = getattr(t, f)(**kw) if f == "norm" else getattr(t, f)(dim)
    got = getattr(x, f)(**kw) if f == "norm" else getattr(x, f)(dim)
    assert got.shape == tuple(want.shape) == ()
    np.testing.assert_array_equal(got.numpy(), want.detach().numpy())
    assert isinstance(got.numpy(), np.ndarray)
    if want.requires_grad:
        got.backward()
        want.backward()
        np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("f", ["max", "min"])
def test_max_min_dim_of_0d(f):
    x, t = tg.tensor(3.0), torch.tensor(3.0)
    got, want = getattr(x, f)(0), getattr(t, f)(0)
    assert got.values.shape == () and got.indices.shape == () and got.indices.item() == want.indices.item() == 0
    with pytest.raises(IndexError, match="out of range"):
        getattr(x, f)(1)
    with pytest.raises(IndexError, match="out of range"):
        x.softmax(1)


@pytest.mark.parametrize("f", ["sum", "mean", "amax", "amin", "var", "std", "norm"])
@pytest.mark.parametrize("empty", [(), []])
def test_empty_dim_reduces_everything_as_torch(f, empty):
    a = np.random.default_rng(0).standard_normal((2, 3))
    case = Case(f, lambda M, x: M.norm(x, dim=empty) if f == "norm" else getattr(x, f)(empty), [])
    out, (g,) = _run(tg, case, [a])
    t_out, (tgd,) = _run(torch, case, [a])
    assert out.shape == t_out.shape == ()
    np.testing.assert_allclose(out, t_out, rtol=1e-12)
    if f in ("var", "std"):  # torch 2.x's var/std backward treats dim=() as no reduction (inf gradients,
        # inconsistent with its own value): check ours against finite differences instead
        assert tg.gradcheck(lambda x: case.fn(tg, x), [tg.tensor(a, requires_grad=True)])
    else:
        np.testing.assert_allclose(g, tgd, rtol=1e-12)
    assert tg.tensor(a).sum((), keepdim=True).shape == tuple(torch.tensor(a).sum((), keepdim=True).shape)


# ---------------------------------------------------------------- inf/NaN as torch, never a warning
# pytest turns RuntimeWarning into errors (setup.cfg), so each of these fails if NumPy warns.

EDGE = [
    ("log", lambda M, x: M.log(x), [0.0, -1.0, 1.0]),
    ("exp", lambda M, x: M.exp(x), [1000.0, -1000.0, 0.0]),
    ("div_zero", lambda M, x: x / 0.0, [1.0, 0.0, -1.0]),
    ("div_tensor_zero", lambda M, x: M.tensor([1.0, 0.0, -1.0], dtype=M.float64) / x, [0.0, 0.0, 0.0]),
    ("div_zero_by_zero", lambda M, x: x / M.tensor([0.0, 0.0, 0.0], dtype=M.float64), [1.0, 0.0, -1.0]),
    ("div_small", lambda M, x: x / 1e-300, [1e300, 1.0, -1e300]),
    ("sqrt", lambda M, x: M.sqrt(x), [-1.0, 0.0, 4.0]),
    ("pow_half", lambda M, x: x ** 0.5, [0.0, -1.0, 4.0]),
    ("pow_neg_one", lambda M, x: x ** -1, [0.0, 2.0, -2.0]),
    ("pow_neg_two", lambda M, x: x ** -2.0, [0.0, 2.0, -2.0]),
    ("pow_2_5", lambda M, x: x ** 2.5, [0.0, -1.0, 2.0]),
    ("pow_zero", lambda M, x: x ** 0, [0.0, -1.0, 2.0]),
    ("pow_big", lambda M, x: x ** 3, [1e200, -1e200, 2.0]),
    ("pow_tensor", lambda M, x: M.pow(x, M.tensor([0.5, 0.0, 2.0, -1.0], dtype=M.float64)), [0.0, 0.0, -2.0, 0.0]),
    ("pow_tensor_exponent", lambda M, x: M.pow(M.tensor([0.0, -2.0, 0.0, 2.0], dtype=M.float64), x),
     [0.5, 2.0, 0.0, 1e5]),
    ("rpow_zero_base", lambda M, x: 0.0 ** x, [1.0, 0.0, 2.0]),
    ("rsqrt", lambda M, x: M.rsqrt(x), [0.0, -1.0, 4.0]),
    ("tanh_extreme", lambda M, x: M.tanh(x), [1e4, -1e4, 0.0]),
    ("sigmoid_extreme", lambda M, x: M.sigmoid(x), [1e4, -1e4, 800.0]),
    ("log2", lambda M, x: M.log2(x), [0.0, -1.0, 2.0]),
    ("log10", lambda M, x: M.log10(x), [0.0, -1.0, 2.0]),
    ("log1p", lambda M, x: M.log1p(x), [-1.0, -2.0, 2.0]),
    ("expm1", lambda M, x: M.expm1(x), [1000.0, -1000.0, 0.0]),
    ("exp2", lambda M, x: M.exp2(x), [5000.0, -5000.0, 0.0]),
    ("sinh", lambda M, x: M.sinh(x), [1000.0, -1000.0, 0.0]),
    ("cosh", lambda M, x: M.cosh(x), [1000.0, -1000.0, 0.0]),
    ("asin_acos", lambda M, x: M.asin(x) + M.acos(x), [2.0, -1.5, 0.5]),
    ("sin_inf", lambda M, x: M.sin(x) + M.cos(x) + M.tan(x), [np.inf, -np.inf, 0.0]),
    ("atan2_zero", lambda M, x: M.atan2(x, x), [0.0, 1.0, -1.0]),
    ("log_softmax_inf", lambda M, x: M.log_softmax(x, 0), [-np.inf, 0.0, 1.0]),
]


@pytest.mark.parametrize("name,fn,a", EDGE, ids=[e[0] for e in EDGE])
def test_inf_nan_as_torch_without_warning(name, fn, a):
    res = _both(fn, a)
    (o1, g1), (o2, g2) = res
    np.testing.assert_allclose(o1, o2, rtol=1e-15)  # inf and NaN in the same places
    np.testing.assert_allclose(g1[0], g2[0], rtol=1e-15)


def test_float32_exp_overflow_without_warning():
    x = tg.tensor([100.0, 0.0], requires_grad=True)
    y = x.exp()
    assert y.dtype == np.float32 and np.isinf(y.numpy()[0])
    y.sum().backward()
    assert np.isinf(x.grad.numpy()[0]) and x.grad.numpy()[1] == 1


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("fn", [
    lambda M, x, y: M.maximum(x, y),
    lambda M, x, y: M.minimum(x, y),
    lambda M, x, y: M.clamp(x, 0.0, 1.5) + M.clamp(y, min=1.0),
    lambda M, x, y: M.clamp(x, min=y),
    lambda M, x, y: x.max() + y.min(),
    lambda M, x, y: M.amax(x) + M.amin(y, 0),
    lambda M, x, y: M.max(x, 0).values,
    lambda M, x, y: M.var(x) + M.std(y),
    lambda M, x, y: M.sum(x) + M.mean(y),
], ids=["maximum", "minimum", "clamp", "clamp_tensor", "max_min_all", "amax_amin", "max_dim", "var_std", "sum_mean"])
@pytest.mark.parametrize("x,y,g", [
    ([NAN, 1.0, 2.0, 1.0], [1.0, NAN, 1.0, 3.0], 1.0),
    ([INF, 1.0, 2.0, 1.0], [1.0, 0.0, 1.0, INF], 1.0),
    ([3.0, 1.0, 2.0, 1.0], [1.0, 0.0, 1.0, 3.0], INF),
], ids=["nan_inputs", "inf_inputs", "inf_upstream"])
def test_non_finite_gradients_as_torch_without_warning(fn, x, y, g):
    res = []
    for M in (tg, torch):
        xs = [(tg.tensor if M is tg else torch.tensor)(np.array(a), requires_grad=True) for a in (x, y)]
        out = fn(M, *xs)
        up = np.full(tuple(out.shape), g)
        out.backward(tg.tensor(up) if M is tg else torch.tensor(up))
        res.append([out.detach().numpy()] + [np.zeros(4) if t.grad is None else t.grad.numpy() for t in xs])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-15)


def test_einsum_more_forms_gradcheck():
    r = np.random.default_rng(3)
    for eq, shapes in [("ii,i->i", [(3, 3), (3,)]), ("ij,ij->i", [(2, 1), (2, 3)]),
                       ("b...,b...->b", [(2, 3, 4), (2, 3, 4)]), ("...ii->...i", [(2, 3, 3)]),
                       ("ijk->kji", [(2, 3, 4)]), ("i,i", [(4,), (4,)])]:
        arrays = [r.standard_normal(s) for s in shapes]
        xs = [tg.tensor(a, requires_grad=True) for a in arrays]
        np.testing.assert_allclose(tg.einsum(eq, *xs).numpy(), torch.einsum(eq, *map(torch.tensor, arrays)).numpy(),
                                   rtol=1e-12, err_msg=eq)
        assert tg.gradcheck(lambda *t: tg.einsum(eq, *t), xs), eq


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_float32_stays_float32(case: Case):
    xs = [tg.tensor(a.astype(np.float32), requires_grad=True) for a in case.arrays()]
    out = case.fn(tg, *xs)
    assert out.dtype == np.float32
    out.sum().backward()
    for x in xs:
        assert x.grad is None or x.grad.dtype == np.float32


def test_every_function_form_is_a_torch_function_and_a_method():
    from tinygrad_seq import mathfns
    for name in mathfns.__all__:
        assert callable(getattr(tg, name)), name
        assert hasattr(torch, name), name  # the same name exists in torch
        if name not in ("pow", "einsum"):
            assert hasattr(tg.Tensor, name) and hasattr(torch.Tensor, name), name
    x = tg.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(tg.cumsum(x, dim=1).numpy(), x.cumsum(1).numpy())
    assert tg.max(x, tg.ones(2, 3)).shape == (2, 3)  # max(input, other) is maximum, as torch


@pytest.mark.parametrize("decimals", [0, 1, 3, -1])
def test_round_decimals_float32_bitwise_as_torch(decimals):
    a = np.random.default_rng(0).standard_normal(10000).astype(np.float32) * 100
    np.testing.assert_array_equal(tg.round(tg.tensor(a), decimals=decimals).numpy(),
                                  torch.round(torch.tensor(a), decimals=decimals).numpy())


def test_lerp_dtypes_errors_and_in_place_as_torch():
    a32, b32 = np.ones(3, np.float32), np.full(3, 3.0, np.float32)
    ours = tg.lerp(tg.tensor(a32), tg.tensor(b32), tg.tensor(0.25, dtype=tg.float64))  # a 0-d weight of any float dtype
    ref = torch.lerp(torch.tensor(a32), torch.tensor(b32), torch.tensor(0.25, dtype=torch.float64))
    assert ours.dtype == tg.float32 and str(ref.dtype) == "torch.float32"
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())
    for args in [(tg.tensor(a32), tg.tensor(b32).double(), 0.5),  # end of another dtype
                 (tg.tensor(a32), tg.tensor(b32), tg.tensor(np.full(3, 0.5))),  # a 1-d float64 weight
                 (tg.ones(3), tg.ones(2), 0.5)]:  # shapes that do not broadcast
        with pytest.raises(RuntimeError, match="lerp"):
            tg.lerp(*args)
    with pytest.raises(NotImplementedError, match="lerp"):
        tg.lerp(tg.arange(3), tg.arange(3), 0.5)
    with pytest.raises(TypeError, match="end"):
        tg.ones(3).lerp(2.0, 0.5)
    for w in (True, 1, tg.tensor(1), tg.tensor(True)):  # a bool, an int, a 0-d int or bool tensor: numbers, as torch
        np.testing.assert_array_equal(tg.lerp(tg.tensor(a32), tg.tensor(b32), w).numpy(), b32)
    big = np.array([1e8, -3e7, 0.1], np.float32)  # at weight 1, end exactly (torch's second form)
    np.testing.assert_array_equal(tg.tensor(big).lerp(tg.tensor(b32), 1.0).numpy(),
                                  torch.lerp(torch.tensor(big), torch.tensor(b32), 1.0).numpy())
    x, xt = tg.tensor(np.arange(3.0)), torch.tensor(np.arange(3.0))
    x.lerp_(tg.ones(3, dtype=tg.float64), 0.5)
    xt.lerp_(torch.ones(3, dtype=torch.float64), 0.5)
    np.testing.assert_array_equal(x.numpy(), xt.numpy())
