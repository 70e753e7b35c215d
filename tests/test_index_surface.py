"""Indexing, gathering/scattering, sampling and the F.* helpers against PyTorch (float64: values and
gradients with a random upstream gradient), the errors PyTorch raises, and gradcheck for the new ops."""
import warnings

import numpy as np
import pytest

import tinygrad_seq as tg
import tinygrad_seq.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _conv(a, M):
    """Copy an argument into module M's world (tg or torch): ndarrays become tensors, the rest stays."""
    if isinstance(a, np.ndarray):
        return M.tensor(a)
    if isinstance(a, tuple):
        return tuple(_conv(b, M) for b in a)
    if isinstance(a, list) and any(isinstance(b, np.ndarray) for b in a):
        return [_conv(b, M) for b in a]
    return a


def compare(fn, shapes, args=(), seed=0, atol=1e-10):
    """Run fn(M, *leaves, *args) in torch and tg on the same float64 leaves; compare the values and,
    after backward with the same random upstream gradient, every leaf's gradient."""
    r = np.random.default_rng(seed)
    xs = [r.standard_normal(s) for s in shapes]
    tl = [torch.tensor(x, requires_grad=True) for x in xs]
    gl = [tg.tensor(x, requires_grad=True) for x in xs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's deprecation note on list-as-tuple indices
        ot = fn(torch, *tl, *_conv(args, torch))
    og = fn(tg, *gl, *_conv(args, tg))
    assert tuple(ot.shape) == og.shape, (tuple(ot.shape), og.shape)
    assert type(og.numpy()) is np.ndarray
    assert og.dtype == np.dtype(str(ot.dtype).replace("torch.", ""))
    np.testing.assert_allclose(og.numpy(), ot.detach().numpy(), atol=atol, rtol=1e-10)
    if ot.requires_grad:
        up = r.standard_normal(tuple(ot.shape))
        ot.backward(torch.tensor(up))
        og.backward(up)
        for a, b in zip(tl, gl):
            ta = np.zeros(a.shape) if a.grad is None else a.grad.numpy()
            tb = np.zeros(b.shape) if b.grad is None else b.grad.numpy()
            np.testing.assert_allclose(tb, ta, atol=atol, rtol=1e-10)
    return og


def I(*a):  # noqa: E743 - an int64 index array, copied into each world by compare
    return np.array(*a, dtype=np.int64)


# ---------------------------------------------------------------- __getitem__ as torch

MASK = np.random.default_rng(5).standard_normal((2, 3, 4)) > 0
GETITEM = [
    True, False, (0, True), (True, 0), (True, True), (False, 1), ([0, 1], True), (slice(None), True, [0, 2]),
    None, (Ellipsis, None), (None, Ellipsis, None), (0, slice(None), [0, 1]), [[0, 1], [1, 0]],
    ([0, 1], slice(None), [0, 1]), [True, False], (1, [True, False, True]), ([0, 1], [True, False, True]),
    (0, None, [1, 2]), ([[0], [1]], slice(None), [[0, 1, 2]]), ([0, 1], slice(None), True),
    (slice(None), True, slice(None), [0, 1]), (0, True, slice(None), [1, 2]), [], (True, slice(None), [0, 1]),
    (None, 0, slice(None), [0, 1]), ([0, 1], 0), (Ellipsis, [0, 1], 0), (0, Ellipsis, [0, 1]), (0, [0, 1], 0),
    (slice(None), 0, [1, 2]), 1, (1, 2, 3), (1, 2), ([0, 0, 1],), (slice(1, None, 2), [2, 2, 0]),
    ([1, 0], [[0], [2]], slice(None)), (Ellipsis, [3, 3, 0]), (slice(None), slice(None, 2), 1),
    "mask", (1, "mask0"), (slice(None), "mask0"), ("int0", slice(None), [0, 1]), ("bool0",), (0, "bool0"), ([0, 1], "int_tensor"),
    ("int_tensor2d",), ("mask01", 2), "list_of_tensors", "list_with_slice",
]


def _gi(M, key):
    def one(k):
        if isinstance(k, tuple):
            return tuple(one(j) for j in k)
        return {"mask": lambda: M.tensor(MASK), "mask0": lambda: M.tensor(MASK[0]),
                "mask01": lambda: M.tensor(MASK[:, :, 0]),
                "int0": lambda: M.tensor(0), "bool0": lambda: M.tensor(False),
                "int_tensor": lambda: M.tensor([[2, 0], [1, 1]]),
                "int_tensor2d": lambda: M.tensor([[1, 0, 1]]),
                # a short list holding tensors or slices is a tuple (torch's and old NumPy's rule)
                "list_of_tensors": lambda: [M.tensor(1), M.tensor([0, 2])],
                "list_with_slice": lambda: [slice(None), 0, [1, 3]]}[k]() if isinstance(k, str) else k
    return one(key)


@pytest.mark.parametrize("key", GETITEM, ids=[repr(k) for k in GETITEM])
def test_getitem_values_and_gradients_as_torch(key):
    compare(lambda M, x: x[_gi(M, key)], [(2, 3, 4)])


def test_indexing_a_1d_tensor_gives_a_real_0d_array():
    t = tg.tensor([1.0, 2.0, 3.0])
    for v in (t[1], t[-1], next(iter(t)), t.unbind()[2], t[tg.tensor(1)], t[np.int64(2)]):
        assert type(v.numpy()) is np.ndarray and v.shape == ()
    assert np.asarray(t[1]) == 2.0
    x = tg.zeros(2)
    x.fill_(t[2])
    assert x.tolist() == [3.0, 3.0]
    assert type(tg.tensor([[1.0, 2.0]])[0, 1].numpy()) is np.ndarray


def test_getitem_bool_scalar_gradient_reaches_the_input():
    """x[True] copies in NumPy: its gradient must be scattered back, not added into a discarded copy."""
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x[True] * tg.tensor([[3.0, 4.0]])).sum().backward()
    assert x.grad.tolist() == [3.0, 4.0]


@pytest.mark.parametrize("key, err, match", [
    (slice(None, None, -1), ValueError, "step must be greater than zero"),
    ((0, slice(None, None, -2)), ValueError, "step must be greater than zero"),
    (5, IndexError, "index 5"),
    ("float", IndexError, "long, int, byte or bool"),
    ("badmask", IndexError, "boolean index did not match"),
])
def test_getitem_errors_as_torch(key, err, match):
    x = tg.ones(2, 3)
    k = {"float": tg.tensor([0.0]), "badmask": tg.tensor([True, False, True])}.get(key, key) \
        if isinstance(key, str) else key
    with pytest.raises(err, match=match):
        x[k]
    tk = {"float": torch.tensor([0.0]), "badmask": torch.tensor([True, False, True])}.get(key, key) \
        if isinstance(key, str) else key
    with pytest.raises(err):
        torch.ones(2, 3)[tk]


# ---------------------------------------------------------------- gather / scatter / index_*

@pytest.mark.parametrize("dim, idx", [
    (1, [[0, 0, 3], [1, 2, 1], [3, 3, 3]]),
    (0, [[0, 1, 2, 0], [2, 2, 2, 2]]),
    (1, [[0, 1, 1, 3, 3]]),          # smaller than the input in dim 0
    (0, [[2], [0]]),                  # smaller in dim 1
    (-1, [[3, 3]]),
])
def test_gather_as_torch(dim, idx):
    compare(lambda M, x, i: x.gather(dim, i), [(3, 4)], (I(idx),))
    compare(lambda M, x, i: M.gather(x, dim, i), [(3, 4)], (I(idx),))


@pytest.mark.parametrize("fn, match", [
    (lambda M: M.ones(3, 4).gather(0, M.tensor([[-1]])), "index -1 is out of bounds for dimension 0 with size 3"),
    (lambda M: M.ones(3, 4).gather(1, M.tensor([[4]])), "index 4 is out of bounds for dimension 1 with size 4"),
    (lambda M: M.ones(3, 4).gather(0, M.tensor([[0] * 5] * 2)), "no larger than self"),
    (lambda M: M.ones(3, 4).gather(1, M.tensor([0])), "same number of dimensions"),
    (lambda M: M.ones(3, 4).gather(1, M.tensor([[0.0]])), "int32/int64"),
    (lambda M: M.ones(3, 4).scatter(1, M.tensor([[5]]), 1.0), "index 5 is out of bounds for dimension 1 with size 4"),
    (lambda M: M.ones(3, 4).scatter(1, M.tensor([[-1]]), 1.0), "index -1 is out of bounds"),
    (lambda M: M.ones(3, 4).scatter(1, M.tensor([[0, 1]]), M.ones(1, 1)), "no larger"),
    (lambda M: M.ones(3, 4).scatter(1, M.tensor([[0]]), 1.0, reduce="max"), "add or multiply"),
    (lambda M: M.ones(3, 4).scatter(1, M.tensor([[0]]), M.ones(1, 1, dtype=M.float64)), "dtype"),
    (lambda M: M.ones(3, 4).scatter_add(1, M.tensor([[0, 1]]), M.ones(1, 1)), "no larger"),
    (lambda M: M.ones(3, 4).scatter_add(0, M.tensor([[3]]), M.ones(1, 1)), "index 3 is out of bounds"),
    (lambda M: M.ones(3, 4).index_add(0, M.tensor([0, 1, 2]), M.ones(2, 4)), r"Number of indices \(3\)"),
    (lambda M: M.ones(3, 4).index_add(0, M.tensor([0, 5]), M.ones(2, 4)), "index 5 is out of bounds"),
    (lambda M: M.ones(3, 4).index_add(0, M.tensor([0, -1]), M.ones(2, 4)), "index -1 is out of bounds"),
    (lambda M: M.ones(3, 4).index_add(0, M.tensor([0, 1]), M.ones(2, 3)), "source tensor shape must match"),
    (lambda M: M.ones(3, 4).index_add(0, M.tensor([0, 1]), M.ones(2, 4, dtype=M.float64)), "same scalar type"),
])
def test_gather_scatter_index_add_errors_as_torch(fn, match):
    with pytest.raises(RuntimeError):
        fn(torch)
    with pytest.raises(RuntimeError, match=match):
        fn(tg)


@pytest.mark.parametrize("fn, err, match", [
    (lambda M: M.ones(3, 4).index_select(0, M.tensor([-1])), IndexError, "out of"),
    (lambda M: M.ones(3, 4).index_select(0, M.tensor([3])), IndexError, "out of"),
    (lambda M: M.ones(3, 4).index_select(0, M.tensor([[0]])), IndexError, "vector"),
    (lambda M: M.ones(3, 4).index_select(0, M.tensor([1.0])), RuntimeError, "int32"),
    (lambda M: M.ones(3, 4).index_select(2, M.tensor([1])), IndexError, "out of range"),
])
def test_index_select_errors_as_torch(fn, err, match):
    with pytest.raises(err):
        fn(torch)
    with pytest.raises(err, match=match):
        fn(tg)


SCATTER_IDX = I([[0, 2, 1], [3, 3, 0]])


@pytest.mark.parametrize("fn", [
    lambda M, x, s, i: x.scatter(1, i, s),
    lambda M, x, s, i: M.scatter(x, 1, i, s),
    lambda M, x, s, i: x.scatter(0, M.tensor([[2, 0], [1, 1]]), s[:, :2]),
    lambda M, x, s, i: x.scatter(1, i, 2.5) * s.sum(),
    lambda M, x, s, i: x.scatter(1, i, value=-1.0),
    lambda M, x, s, i: x.scatter_add(1, i, s),
    lambda M, x, s, i: M.scatter_add(x, 1, I([[0, 0, 0], [1, 1, 1]]) if M is tg else torch.tensor(
        [[0, 0, 0], [1, 1, 1]]), s),   # repeated targets accumulate
    lambda M, x, s, i: x.scatter_add(0, M.tensor([[2, 2]]), s[:1, :2]),
], ids=["src", "fn", "dim0", "value", "value_kw", "add", "add_repeats", "add_dim0"])
def test_scatter_values_and_gradients_as_torch(fn):
    compare(fn, [(3, 4), (2, 3)], (SCATTER_IDX,))


def test_scatter_src_larger_than_index():
    """torch reads the leading block of a larger src (its backward then fails on the shape: a torch bug),
    here the src gets a gradient of its own shape, zero outside that block."""
    r = np.random.default_rng(2)
    x, s, i = r.standard_normal((3, 4)), r.standard_normal((2, 3)), np.array([[2, 0], [1, 1]])
    for dim in (0, 1):
        for op in ("scatter", "scatter_add"):
            want = getattr(torch.tensor(x), op)(dim, torch.tensor(i), torch.tensor(s))
            got = getattr(tg.tensor(x), op)(dim, tg.tensor(i), tg.tensor(s))
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)
    xs = [tg.tensor(x, requires_grad=True), tg.tensor(s, requires_grad=True)]
    assert tg.gradcheck(lambda a, b: a.scatter(0, tg.tensor([[2, 0], [1, 1]]), b), xs)
    assert tg.gradcheck(lambda a, b: a.scatter_add(1, tg.tensor([[2, 2], [0, 3]]), b), xs)


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
def test_scatter_reduce_values_as_torch_and_no_derivative():
    x, s = np.random.default_rng(0).standard_normal((3, 4)), np.random.default_rng(1).standard_normal((2, 3))
    for reduce in ("add", "multiply"):
        ot = torch.tensor(x).scatter(1, torch.tensor(SCATTER_IDX), torch.tensor(s), reduce=reduce)
        og = tg.tensor(x).scatter(1, tg.tensor(SCATTER_IDX), tg.tensor(s), reduce=reduce)
        np.testing.assert_allclose(og.numpy(), ot.numpy(), rtol=1e-12)
        ov = tg.tensor(x).scatter(1, tg.tensor(SCATTER_IDX), 2.0, reduce=reduce)
        np.testing.assert_allclose(ov.numpy(), torch.tensor(x).scatter(1, torch.tensor(SCATTER_IDX), 2.0,
                                                                       reduce=reduce).numpy(), rtol=1e-12)
    xg = tg.tensor(x, requires_grad=True)
    with pytest.raises(RuntimeError, match="derivative for scatter"):
        xg.scatter(1, tg.tensor(SCATTER_IDX), 2.0, reduce="multiply").sum().backward()


@pytest.mark.parametrize("dim, idx", [(0, [2, 0, 0]), (1, [3, 1]), (-1, [0]), (1, 2), (0, [])])
def test_index_select_as_torch(dim, idx):
    compare(lambda M, x, i: x.index_select(dim, i), [(3, 4)], (I(idx),))
    compare(lambda M, x, i: M.index_select(x, dim, i), [(3, 4)], (I(idx),))


@pytest.mark.parametrize("dim, idx, alpha", [(0, [2, 0, 0], 1), (1, [3, 1], -0.5), (-1, [0, 0, 0, 0, 1], 2.0)])
def test_index_add_as_torch(dim, idx, alpha):
    src = [3, 4]
    src[dim] = len(idx)
    compare(lambda M, x, s, i: x.index_add(dim, i, s, alpha=alpha), [(3, 4), tuple(src)], (I(idx),))
    compare(lambda M, x, s, i: M.index_add(x, dim, i, s, alpha=alpha), [(3, 4), tuple(src)], (I(idx),))


@pytest.mark.parametrize("idx, dim", [([[0], [1], [3]], 1), ([[0, 1, 2, 0]], 0), ([[2, 1]], None), ([5, 0], None),
                                      ([[1, 0], [2, 2], [0, 0]], -1)])
def test_take_along_dim_as_torch(idx, dim):
    compare(lambda M, x, i: M.take_along_dim(x, i, dim), [(3, 4)], (I(idx),))
    compare(lambda M, x, i: x.take_along_dim(i, dim), [(3, 4)], (I(idx),))


def test_take_along_dim_broadcasts_and_checks_range():
    compare(lambda M, x, i: M.take_along_dim(x, i, 2), [(2, 1, 4)], (I([[[0, 3]], [[1, 1]]]).reshape(2, 1, 2)
                                                                  .repeat(3, axis=1),))
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        tg.take_along_dim(tg.ones(3, 4), tg.tensor([0]), 1)
    with pytest.raises(RuntimeError, match="out of bounds"):
        tg.take_along_dim(tg.ones(3, 4), tg.tensor([[7]]), 0)


def test_masked_select_as_torch():
    m = MASK[0]
    compare(lambda M, x, k: x.masked_select(k), [(3, 4)], (m,))
    compare(lambda M, x, k: M.masked_select(x, k), [(2, 3, 4)], (m,))      # mask broadcasts to input
    compare(lambda M, x, k: M.masked_select(x, k), [(4,)], (m,))            # input broadcasts to mask
    with pytest.raises(RuntimeError, match="BoolTensor"):
        tg.ones(3, 4).masked_select(tg.ones(3, 4))


@pytest.mark.parametrize("a", [np.array([[0.0, 1.5], [2.0, 0.0]]), np.array(3.0), np.array(0.0), np.zeros(0),
                               np.array([[[1, 0], [0, 2]]])])
def test_nonzero_and_one_arg_where_as_torch(a):
    ot, og = torch.tensor(a).nonzero(), tg.tensor(a).nonzero()
    assert og.shape == tuple(ot.shape) and og.dtype == np.int64
    np.testing.assert_array_equal(og.numpy(), ot.numpy())
    np.testing.assert_array_equal(tg.argwhere(tg.tensor(a)).numpy(), torch.argwhere(torch.tensor(a)).numpy())
    for got, want in ((tg.nonzero(tg.tensor(a), as_tuple=True), torch.nonzero(torch.tensor(a), as_tuple=True)),
                      (tg.where(tg.tensor(a) != 0), torch.where(torch.tensor(a) != 0))):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == np.int64
            np.testing.assert_array_equal(g.numpy(), w.numpy())


def test_where_three_args_still_works():
    compare(lambda M, x, y: M.where(x > 0, x, y), [(3, 4), (3, 4)])


# ---------------------------------------------------------------- masked_fill

def test_masked_fill_tensor_value_gets_its_gradient():
    m = MASK[0]
    compare(lambda M, x, v: x.masked_fill(M.tensor(m), v), [(3, 4), ()])
    compare(lambda M, x, v: M.masked_fill(x, M.tensor(m), v * 2), [(2, 3, 4), ()])
    compare(lambda M, x: x.masked_fill(M.tensor(MASK), 1.5), [(3, 4)])       # broadcasts the result up, as torch


def test_masked_fill_errors_as_torch():
    with pytest.raises(RuntimeError, match="boolean masks"):
        tg.ones(3, 4).masked_fill(tg.ones(3, 4), 1.0)
    with pytest.raises(RuntimeError, match="0-dimensional value tensor"):
        tg.ones(3, 4).masked_fill(tg.ones(3, 4).bool(), tg.ones(2))
    with pytest.raises(ValueError, match="masked_fill"):
        tg.ones(3, 4).masked_fill(tg.ones(2).bool(), 1.0)


# ---------------------------------------------------------------- reordering and views

@pytest.mark.parametrize("fn", [
    lambda M, x: x.flip(0), lambda M, x: x.flip(0, 2), lambda M, x: M.flip(x, (-1,)), lambda M, x: x.flip([1, 0]),
    lambda M, x: x.roll(1), lambda M, x: x.roll(-7), lambda M, x: x.roll((1, -2), (0, 2)), lambda M, x: M.roll(x, 5, 1),
    lambda M, x: x.repeat(2, 1, 1), lambda M, x: x.repeat(1, 2, 1, 3), lambda M, x: x.repeat(0, 1, 2),
    lambda M, x: x.repeat_interleave(2), lambda M, x: x.repeat_interleave(3, dim=1),
    lambda M, x: x.repeat_interleave(M.tensor([1, 0, 3]), dim=1), lambda M, x: M.repeat_interleave(x, M.tensor(2), 0),
    lambda M, x: x.repeat_interleave(M.tensor([2]), dim=-1),
    lambda M, x: x.narrow(1, 1, 2), lambda M, x: M.narrow(x, -1, -3, 2), lambda M, x: x.narrow(0, 2, 0),
    lambda M, x: x.select(1, -1), lambda M, x: M.select(x, 2, 0),
    lambda M, x: x.movedim(0, 2), lambda M, x: M.movedim(x, (0, 1), (2, 0)), lambda M, x: x.moveaxis(-1, 0),
    lambda M, x: M.moveaxis(x, [0], [1]),
    lambda M, x: x.swapaxes(0, 2), lambda M, x: M.swapdims(x, 1, -1), lambda M, x: M.swapaxes(x, 0, 1),
    lambda M, x: x.view_as(M.ones(6, 4)), lambda M, x: x.reshape_as(M.ones(4, 6)),
    lambda M, x: x[0].t(), lambda M, x: M.t(x[0, 0]), lambda M, x: x.unflatten(2, (2, -1)),
    lambda M, x: M.unflatten(x, -1, (2, 1, 2)), lambda M, x: x.unflatten(0, (1, 2)),
])
def test_reordering_and_views_as_torch(fn):
    compare(fn, [(2, 3, 4)])


def test_one_arg_repeat_interleave_as_torch():
    r = torch.tensor([1, 2, 0, 3])
    np.testing.assert_array_equal(tg.repeat_interleave(tg.tensor([1, 2, 0, 3])).numpy(),
                                  torch.repeat_interleave(r).numpy())


@pytest.mark.parametrize("fn, err, match", [
    (lambda M: M.ones(2, 3).repeat(2), RuntimeError, "can not be smaller"),
    (lambda M: M.ones(3, 4).repeat_interleave(M.tensor([1, 2]), 0), RuntimeError, "same size as input"),
    (lambda M: M.ones(3, 4).repeat_interleave(-1), RuntimeError, "non-negative"),
    (lambda M: M.ones(3, 4).repeat_interleave(M.tensor([1, -2, 0]), 0), RuntimeError, "can not be negative"),
    (lambda M: M.ones(2, 2, 2).t(), RuntimeError, "t\\(\\) expects a tensor with <= 2 dimensions"),
    (lambda M: M.ones(3, 4).narrow(0, 2, 2), RuntimeError, "exceeds dimension size"),
    (lambda M: M.ones(3, 4).narrow(0, -4, 1), IndexError, "start out of range"),
    (lambda M: M.ones(3, 4).select(1, 4), IndexError, "out of range"),
    (lambda M: M.ones(2, 3, 4).movedim((0, 0), (1, 2)), RuntimeError, "repeated dim"),
    (lambda M: M.ones(3, 4).unflatten(1, (3, -1)), RuntimeError, "multiply up"),
    (lambda M: M.ones(3, 4).roll((1, 2), (0,)), RuntimeError, "must align"),
    (lambda M: M.ones(3, 4).roll(1, 2), IndexError, "out of range"),
    (lambda M: M.ones(3, 4).flip(0, 0), RuntimeError, "multiple times"),
    (lambda M: M.ones(3, 4).flip(2), IndexError, "out of range"),
])
def test_reordering_errors_as_torch(fn, err, match):
    with pytest.raises(err):
        fn(torch)
    with pytest.raises(err, match=match):
        fn(tg)


@pytest.mark.parametrize("fn", [
    lambda x: x.flip(0, 1), lambda x: x.roll((1, 2), (0, 1)), lambda x: x.roll(3),
    lambda x: x.repeat_interleave(tg.tensor([2, 0, 1]), dim=0), lambda x: x.repeat_interleave(2),
    lambda x: x.scatter(1, tg.tensor([[0, 2], [1, 3]]), x[:2, :2] * 3),
    lambda x: x.scatter(0, tg.tensor([[0, 2, 1, 1]]), 0.5),
    lambda x: x.scatter_add(1, tg.tensor([[0, 0], [1, 1]]), x[:, 1:3]),
    lambda x: x.index_add(0, tg.tensor([1, 1, 0]), x * x, alpha=0.5),
    lambda x: x.index_select(1, tg.tensor([3, 0, 0])), lambda x: x.gather(0, tg.tensor([[2, 0], [0, 0]])),
    lambda x: x.masked_fill(tg.tensor([True, False, True, False]), x[1, 1]),
    lambda x: x[0, :, None][[2, 0]], lambda x: x[True][:, [1, 1]],
])
def test_gradcheck_indexing_ops(fn):
    x = tg.tensor(np.random.default_rng(3).standard_normal((3, 4)), requires_grad=True)
    assert tg.gradcheck(fn, [x])


# ---------------------------------------------------------------- F.pad modes

PADS = [
    ("reflect", (3, 4), (2, 1)), ("reflect", (2, 3, 4), (1, 3, 2, 0)), ("reflect", (1, 2, 3, 4, 5), (1, 2, 0, 3, 2, 1)),
    ("reflect", (2, 3, 4), (-1, 2)), ("replicate", (3, 4), (5, 0)), ("replicate", (2, 3, 4), (1, 4, 3, 1)),
    ("replicate", (1, 2, 3, 2, 2), (1, 1, 2, 0, 0, 3)), ("replicate", (2, 3, 4), (-2, 3)),
    ("circular", (3, 4), (4, 2)), ("circular", (2, 3, 4), (1, 2, 3, 0)), ("circular", (2, 3, 4), (-1, 2)),
    ("circular", (1, 1, 2, 3, 4), (1, 1, 1, 1, 2, 2)), ("reflect", (2, 5), (-2, 3)),
    ("constant", (2, 3, 4), (1, 2, -1, 1)),
]


@pytest.mark.parametrize("mode, shape, pad", PADS)
def test_pad_modes_as_torch(mode, shape, pad):
    compare(lambda M, x: (F if M is tg else TF).pad(x, pad, mode=mode), [shape])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_modes_gradcheck(mode):
    x = tg.tensor(np.random.default_rng(1).standard_normal((2, 3, 4)), requires_grad=True)
    assert tg.gradcheck(lambda x: F.pad(x, (2, 3, 1, 2), mode=mode), [x])
    assert tg.gradcheck(lambda x: F.pad(x, (-1, 3), mode=mode), [x])


@pytest.mark.parametrize("shape, pad, mode, err, match", [
    ((1, 2, 3), (3, 0), "reflect", RuntimeError, "should be less than"),
    ((1, 2, 3), (0, 4), "circular", RuntimeError, "wrapping around more than once"),
    ((3,), (1, 1), "reflect", NotImplementedError, "not supported for 1D input"),
    ((1, 1, 2, 3), (1, 1), "replicate", NotImplementedError, "not supported for 4D"),
    ((1, 2, 3), (1, 1, 1, 1, 1, 1), "replicate", NotImplementedError, "Padding size 6"),
    ((1, 2, 3), (1, 1), "foo", NotImplementedError, "Unrecognised padding mode foo"),
])
def test_pad_mode_errors_as_torch(shape, pad, mode, err, match):
    with pytest.raises(err):
        TF.pad(torch.ones(shape), pad, mode=mode)
    with pytest.raises(err, match=match):
        F.pad(tg.ones(*shape), pad, mode=mode)


def test_pad_mode_with_a_value_raises_as_torch():
    with pytest.raises(RuntimeError):
        TF.pad(torch.ones(1, 2, 3), (1, 1), mode="reflect", value=1.0)
    with pytest.raises(RuntimeError, match="doesn't take in value"):
        F.pad(tg.ones(1, 2, 3), (1, 1), mode="reflect", value=1.0)


# ---------------------------------------------------------------- one_hot, normalize, cosine_similarity

@pytest.mark.parametrize("idx, n", [([0, 2, 1], -1), ([[1, 0], [3, 3]], 5), ([], 3), (2, 4)])
def test_one_hot_as_torch(idx, n):
    got, want = F.one_hot(tg.tensor(np.array(idx, np.int64)), n), TF.one_hot(torch.tensor(idx, dtype=torch.int64), n)
    assert got.dtype == np.int64 and got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("idx, n, match", [([0, 2], 2, "smaller than num_classes"), ([-1], 3, "non-negative"),
                                           ([], -1, "empty"), ([0.0], 2, "LongTensor")])
def test_one_hot_errors_as_torch(idx, n, match):
    with pytest.raises(RuntimeError):
        TF.one_hot(torch.tensor(idx, dtype=torch.float32 if match == "LongTensor" else torch.int64), n)
    with pytest.raises(RuntimeError, match=match):
        F.one_hot(tg.tensor(np.array(idx, dtype=np.float64 if match == "LongTensor" else np.int64)), n)


@pytest.mark.parametrize("p, dim", [(2.0, 1), (1.0, -1), (3.0, 0), (float("inf"), 1), (0.5, 2)])
def test_normalize_as_torch(p, dim):
    compare(lambda M, x: (F if M is tg else TF).normalize(x, p=p, dim=dim), [(2, 3, 4)], atol=1e-9)


def test_normalize_below_eps_and_zero_vectors_as_torch():
    a = np.array([[0.0, 0.0, 0.0], [1e-14, -2e-14, 0.0], [3.0, -4.0, 1.0]])
    for eps in (1e-12, 1e-13):
        xt, xg = torch.tensor(a, requires_grad=True), tg.tensor(a, requires_grad=True)
        up = np.random.default_rng(0).standard_normal(a.shape)
        TF.normalize(xt, eps=eps).backward(torch.tensor(up))
        yg = F.normalize(xg, eps=eps)
        yg.backward(up)
        np.testing.assert_allclose(yg.numpy(), TF.normalize(torch.tensor(a), eps=eps).numpy(), rtol=1e-10)
        np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-6)


@pytest.mark.parametrize("shapes, dim", [([(3, 5), (3, 5)], 1), ([(2, 3, 4), (2, 3, 4)], -1),
                                         ([(4, 1, 3), (1, 5, 3)], 2), ([(3, 1), (1, 3)], 0)])
def test_cosine_similarity_as_torch(shapes, dim):
    compare(lambda M, a, b: (F if M is tg else TF).cosine_similarity(a, b, dim=dim), shapes)


def test_cosine_similarity_clamps_each_norm_as_torch():
    """Tiny and zero vectors: each norm is clamped at eps (the clamp not differentiated), as torch."""
    a = np.array([[1e-9, 0.0], [0.0, 0.0], [1e-5, 2e-5], [1.0, 2.0]])
    b = np.array([[1e3, 0.0], [1.0, 2.0], [1e-5, -1e-5], [0.0, 0.0]])
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ag, bg = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    up = np.array([0.3, -1.2, 0.7, 2.0])
    TF.cosine_similarity(at, bt, eps=1e-8).backward(torch.tensor(up))
    y = F.cosine_similarity(ag, bg, eps=1e-8)
    y.backward(up)
    np.testing.assert_allclose(y.numpy(), TF.cosine_similarity(torch.tensor(a), torch.tensor(b), eps=1e-8).numpy())
    np.testing.assert_allclose(ag.grad.numpy(), at.grad.numpy(), rtol=1e-8, atol=1e-15)
    np.testing.assert_allclose(bg.grad.numpy(), bt.grad.numpy(), rtol=1e-8, atol=1e-15)


def test_normalize_and_cosine_gradcheck():
    r = np.random.default_rng(4)
    a = tg.tensor(r.standard_normal((3, 4)), requires_grad=True)
    b = tg.tensor(r.standard_normal((3, 4)), requires_grad=True)
    assert tg.gradcheck(lambda a: F.normalize(a, dim=1), [a])
    assert tg.gradcheck(lambda a: F.normalize(a, p=3, dim=0), [a])
    assert tg.gradcheck(lambda a, b: F.cosine_similarity(a, b, dim=1), [a, b])
    assert tg.gradcheck(lambda a, b: F.cosine_similarity(a, b[:1], dim=0), [a, b])


@pytest.mark.parametrize("p, keepdim", [(2.0, False), (1.0, True), (3.0, False)])
def test_pairwise_distance_as_torch(p, keepdim):
    compare(lambda M, a, b: (F if M is tg else TF).pairwise_distance(a, b, p=p, keepdim=keepdim), [(4, 5), (4, 5)])


# ---------------------------------------------------------------- sampling

def test_multinomial_with_replacement_frequencies():
    tg.manual_seed(0)
    p = tg.tensor([[0.1, 0.0, 0.6, 0.3], [1.0, 1.0, 1.0, 1.0]])     # unnormalised rows are fine
    n = 20000
    s = tg.multinomial(p, n, replacement=True)
    assert s.shape == (2, n) and s.dtype == np.int64
    for row, probs in zip(s.numpy(), ([0.1, 0.0, 0.6, 0.3], [0.25] * 4)):
        freq = np.bincount(row, minlength=4) / n
        sigma = np.sqrt(np.array(probs) * (1 - np.array(probs)) / n)
        assert np.all(np.abs(freq - probs) <= 5 * sigma + 1e-12), (freq, probs)
    assert not (s.numpy()[0] == 1).any()          # a zero-probability category is never drawn


def test_multinomial_without_replacement_distribution_and_distinct():
    tg.manual_seed(1)
    p = tg.tensor([0.5, 0.3, 0.2])
    first = np.array([tg.multinomial(p, 2).tolist() for _ in range(6000)])
    assert all(a != b for a, b in first)
    freq = np.bincount(first[:, 0], minlength=3) / len(first)
    sigma = np.sqrt(np.array([0.5, 0.3, 0.2]) * np.array([0.5, 0.7, 0.8]) / len(first))
    assert np.all(np.abs(freq - [0.5, 0.3, 0.2]) <= 5 * sigma)
    # the second draw, given the first was 0: p(1) = 0.3 / 0.5
    second = first[first[:, 0] == 0, 1]
    assert abs((second == 1).mean() - 0.6) <= 5 * np.sqrt(0.24 / len(second))
    full = tg.multinomial(tg.ones(3, 5), 5)
    assert sorted(full.numpy()[1].tolist()) == [0, 1, 2, 3, 4] and full.dtype == np.int64
    z = tg.multinomial(tg.tensor([0.0, 1.0, 0.0]), 2)      # as torch: positive categories first
    assert z.numpy()[0] == 1 and z.shape == (2,)


def test_multinomial_reproducible_under_manual_seed():
    p = tg.tensor([0.2, 0.3, 0.5])
    tg.manual_seed(7)
    a = tg.multinomial(p, 10, replacement=True).tolist(), p.multinomial(2).tolist()
    tg.manual_seed(7)
    b = tg.multinomial(p, 10, replacement=True).tolist(), p.multinomial(2).tolist()
    assert a == b


@pytest.mark.parametrize("probs, k, repl, match", [
    ([0.2, 0.3, 0.5], 4, False, "without replacement"),
    ([0.2, 0.3, 0.5], 0, True, "n_sample <= 0"),
    ([-1.0, 1.0], 1, True, "element < 0"),
    ([float("nan"), 1.0], 1, True, "nan"),
    ([0.0, 0.0], 1, True, "sum of probabilities <= 0"),
    ([[[1.0]]], 1, True, "1 or 2 dim"),
    ([1, 2], 1, True, "floating-point"),
])
def test_multinomial_errors_as_torch(probs, k, repl, match):
    with pytest.raises(RuntimeError):
        torch.multinomial(torch.tensor(probs), k, repl)
    with pytest.raises(RuntimeError, match=match):
        tg.multinomial(tg.tensor(probs), k, repl)


def test_bernoulli_distribution_dtype_and_seed():
    p = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    tg.manual_seed(3)
    draws = np.stack([tg.bernoulli(tg.tensor(p, dtype="float64")).numpy() for _ in range(8000)])
    assert draws.dtype == np.float64 and set(np.unique(draws)) <= {0.0, 1.0}
    sigma = np.sqrt(p * (1 - p) / len(draws))
    assert np.all(np.abs(draws.mean(0) - p) <= 5 * sigma + 1e-12)
    tg.manual_seed(3)
    again = tg.tensor(p, dtype="float64").bernoulli().numpy()
    np.testing.assert_array_equal(again, draws[0])
    half = tg.ones(20000).bernoulli(0.3)
    assert half.dtype == np.float32 and abs(half.numpy().mean() - 0.3) < 5 * np.sqrt(0.21 / 20000)


def test_bernoulli_errors_as_torch():
    with pytest.raises(RuntimeError):
        torch.bernoulli(torch.tensor([1.5]))
    with pytest.raises(RuntimeError, match="p_in >= 0"):
        tg.bernoulli(tg.tensor([1.5]))
    with pytest.raises(RuntimeError, match="p to be in"):
        tg.ones(2).bernoulli(1.3)
    with pytest.raises(NotImplementedError):
        tg.bernoulli(tg.tensor([1]))


def test_randperm_is_a_seeded_permutation():
    tg.manual_seed(11)
    a = tg.randperm(50)
    assert a.dtype == np.int64 and sorted(a.tolist()) == list(range(50))
    tg.manual_seed(11)
    assert tg.randperm(50).tolist() == a.tolist()
    firsts = np.bincount([tg.randperm(4).tolist()[0] for _ in range(4000)], minlength=4) / 4000
    assert np.all(np.abs(firsts - 0.25) <= 5 * np.sqrt(0.25 * 0.75 / 4000))
    assert tg.randperm(0).shape == (0,)
    with pytest.raises(RuntimeError, match="negative dimension"):
        tg.randperm(-1)


def test_randint_like_and_normal():
    tg.manual_seed(0)
    x = tg.ones(1000, 3)
    r = tg.randint_like(x, 2, 5)
    assert r.shape == (1000, 3) and r.dtype == np.float32 and set(np.unique(r.numpy())) == {2.0, 3.0, 4.0}
    assert tg.randint_like(tg.ones(4, dtype="int64"), 3).dtype == np.int64
    n = tg.normal(tg.full((20000,), 2.0), 0.5)
    assert n.dtype == np.float32 and abs(n.numpy().mean() - 2.0) < 5 * 0.5 / np.sqrt(20000)
    assert abs(n.numpy().std() - 0.5) < 0.02
    assert tg.normal(0.0, 1.0, size=(3, 2)).shape == (3, 2)
    with pytest.raises(RuntimeError, match="std >= 0"):
        tg.normal(tg.zeros(2), -1.0)
