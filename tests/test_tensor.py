"""Tensor construction, dtypes and the small non-op API (PyTorch semantics)."""
import numpy as np
import pytest

import tinygrad_seq as tg


def test_python_floats_become_float32_and_arrays_keep_their_dtype():
    assert tg.Tensor([1.0, 2.0]).dtype == np.float32
    assert tg.tensor(3.5).dtype == np.float32
    assert tg.Tensor(np.ones(2)).dtype == np.float64
    assert tg.Tensor(np.ones(2, np.float32)).dtype == np.float32
    assert tg.tensor([1, 2]).dtype == np.int64 and tg.tensor([True]).dtype == np.bool_
    assert tg.Tensor([1, 2], dtype=tg.float64).dtype == np.float64
    assert tg.Tensor(np.ones(2), dtype="float32").dtype == np.float32


def test_the_legacy_tensor_constructor_follows_torch():
    torch = pytest.importorskip("torch")
    for args in [([1, 2],), ([True, False],), ([[1.5]],), (2, 3), (4,), ()]:
        ours, theirs = tg.Tensor(*args), torch.Tensor(*args)
        assert ours.shape == tuple(theirs.shape) and ours.dtype == tg.float32, args
        if args and not all(type(a) is int for a in args):  # sizes: torch leaves the memory uninitialised
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(TypeError):
        tg.Tensor([1.0], [2.0])
    for f in ("exp", "log", "sqrt", "tanh", "sigmoid", "sin"):  # int inputs compute in the default float dtype
        assert getattr(tg.arange(1, 4), f)().dtype == tg.float32, f


def test_float64_array_is_not_copied_or_converted():
    a = np.ones(3)
    t = tg.Tensor(a)
    assert t.numpy() is a and t.numpy() is a


@pytest.mark.parametrize("make, shape, fill", [
    (lambda: tg.zeros(2, 3), (2, 3), 0.0),
    (lambda: tg.zeros((2, 3)), (2, 3), 0.0),
    (lambda: tg.ones(4), (4,), 1.0),
    (lambda: tg.full((2, 2), 1.5), (2, 2), 1.5),
    (lambda: tg.zeros_like(tg.ones(2, 5)), (2, 5), 0.0),
    (lambda: tg.ones_like(tg.zeros(3)), (3,), 1.0),
])
def test_filled_constructors(make, shape, fill):
    t = make()
    assert t.shape == shape and t.dtype == np.float32 and not t.requires_grad
    assert (t.numpy() == fill).all()


def test_constructor_dtypes_and_requires_grad():
    assert tg.zeros(2, dtype=tg.float64).dtype == np.float64
    assert tg.ones(2, requires_grad=True).requires_grad
    assert tg.zeros_like(tg.Tensor(np.ones(2))).dtype == np.float64
    assert tg.randn(2, 3, dtype=np.float64).dtype == np.float64
    assert tg.rand(5).dtype == np.float32 and ((tg.rand(100).numpy() >= 0) & (tg.rand(100).numpy() < 1)).all()


def test_arange_and_eye_match_torch():
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(tg.arange(5).numpy(), torch.arange(5).numpy())
    np.testing.assert_array_equal(tg.arange(2, 9, 3).numpy(), torch.arange(2, 9, 3).numpy())
    assert tg.arange(5).dtype == np.int64
    r = tg.arange(0.0, 1.0, 0.25)
    assert r.dtype == np.float32
    np.testing.assert_allclose(r.numpy(), torch.arange(0.0, 1.0, 0.25).numpy())
    np.testing.assert_array_equal(tg.eye(3).numpy(), torch.eye(3).numpy())
    np.testing.assert_array_equal(tg.eye(2, 4).numpy(), torch.eye(2, 4).numpy())


def test_manual_seed_makes_draws_reproducible():
    tg.manual_seed(123)
    a, b = tg.randn(3, 4).numpy(), tg.rand(5).numpy()
    tg.manual_seed(123)
    np.testing.assert_array_equal(tg.randn(3, 4).numpy(), a)
    np.testing.assert_array_equal(tg.rand(5).numpy(), b)
    assert not np.array_equal(tg.randn(3, 4).numpy(), a)
    assert isinstance(tg.rng(), np.random.Generator)


def test_basic_properties():
    t = tg.Tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.dim() == 2 and t.numel() == 6
    assert t.size() == (2, 3) and t.size(1) == 3 and len(t) == 2
    assert t.T.shape == (3, 2) and tg.ones(4).T.shape == (4,)
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert [row.shape for row in t] == [(3,), (3,)]
    assert t.is_leaf and t.grad_fn is None


def test_item_and_scalar_conversions():
    assert tg.tensor(2.5).item() == 2.5 and float(tg.tensor([3.0])) == 3.0 and int(tg.tensor(4)) == 4
    with pytest.raises(ValueError, match=r"\(2,\)"):
        tg.ones(2).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tg.ones(2))
    assert bool(tg.ones(1))


def test_detach_shares_data_and_cuts_the_graph():
    x = tg.Tensor(np.ones(3), requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.numpy() is y.numpy() and not d.requires_grad and d._ctx is None
    assert (d * x).requires_grad


def test_requires_grad_():
    x = tg.Tensor(np.ones(2))
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad


def test_to_double_float_cast_with_gradient():
    x = tg.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64 and x.to(np.float32) is x
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    assert y.float().dtype == np.float32 and y.type(np.float32).dtype == np.float32
    assert x.long().dtype == np.int64 and x.bool().dtype == np.bool_


def test_clone_is_a_graph_copy():
    x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = x.clone()
    assert c.numpy() is not x.numpy()
    (c * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_in_place_helpers():
    t = tg.Tensor(np.arange(3.0))
    assert t.zero_() is t and (t.numpy() == 0).all()
    t.fill_(2.0)
    assert (t.numpy() == 2).all()
    t.copy_(tg.Tensor(np.array([1.0, 2.0, 3.0])))
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0, 3.0])


def test_repr_names_grad_fn_and_dtype():
    x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert "requires_grad=True" in repr(x) and "float64" in repr(x)
    assert "grad_fn=<Mul>" in repr(x * 2)
    assert "dtype" not in repr(tg.ones(2))


def test_argmax_any_all_isnan():
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    for dim in (None, 0, 1):
        np.testing.assert_array_equal(tg.Tensor(a).argmax(dim).numpy(), torch.tensor(a).argmax(dim).numpy())
        np.testing.assert_array_equal(tg.Tensor(a).argmin(dim).numpy(), torch.tensor(a).argmin(dim).numpy())
    assert (tg.Tensor(a) > 6).any().item() and not (tg.Tensor(a) > 6).all().item()
    assert tg.Tensor(np.array([np.nan, 1.0])).isnan().tolist() == [True, False]
    assert ((tg.Tensor(a) > 1) & (tg.Tensor(a) < 5)).tolist() == [[False, False, True], [False, False, True]]
    assert (~(tg.Tensor(a) > 1)).tolist() == [[True, False, False], [False, True, False]]


def test_repeat_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.arange(6.0).reshape(2, 3)
    x = tg.Tensor(a, requires_grad=True)
    r = x.repeat(2, 1, 2)
    np.testing.assert_array_equal(r.numpy(), torch.tensor(a).repeat(2, 1, 2).numpy())
    r.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 4.0))


def test_tensor_is_hashable_and_eq_is_elementwise():
    a = tg.ones(2)
    assert {a: 1}[a] == 1
    assert (a == tg.ones(2)).tolist() == [True, True]


def test_setitem_writes_in_place_and_a_leaf_that_requires_grad_refuses_outside_no_grad():
    t = tg.zeros(2, 3)
    t[0, 1:] = 5.0
    t[tg.tensor([1])] = tg.ones(3)
    np.testing.assert_array_equal(t.numpy(), [[0, 5, 5], [1, 1, 1]])
    p = tg.Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"a leaf Variable that requires grad is being used in an in-place"):
        p[0] = 1.0
    np.testing.assert_array_equal(p.numpy(), [0, 0, 0])  # refused before writing
    with tg.no_grad():
        p[0] = 1.0
    np.testing.assert_array_equal(p.numpy(), [1, 0, 0])


def test_scalar_constants_are_reused_safely():
    x = tg.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = x * 0.5 + x * 0.5          # the cached 0.5 constant serves both products
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
    c = (x * 0.5)._ctx.parents[1]
    assert not c.requires_grad and not c.numpy().flags.writeable
    assert np.signbit((x * -0.0).numpy()).tolist() == [True, False] and not np.signbit((x * 0.0).numpy()[0])
    assert (tg.arange(3) * 2).dtype == np.int64 and (tg.arange(3) * 2).tolist() == [0, 2, 4]


def test_numpy_interop():
    t = tg.Tensor(np.arange(3.0))
    assert np.asarray(t) is t.numpy() and np.asarray(t, dtype=np.float32).dtype == np.float32
    assert np.array(t, copy=True) is not t.numpy()
    r = np.ones(3) * t          # ndarray on the left defers to the Tensor
    assert isinstance(r, tg.Tensor) and r.tolist() == [0.0, 1.0, 2.0]


def test_contiguous_copies_a_transposed_tensor_as_torch_and_passes_its_gradient():
    """`.contiguous()` of a non-contiguous tensor is a copy: a write into it leaves the original alone (it
    used to return the tensor itself, a view, so the write reached the original where torch's does not)."""
    x = tg.arange(6.0).reshape(2, 3)
    assert x.contiguous() is x and x.is_contiguous()
    y = x.t().contiguous()
    assert y.is_contiguous() and not x.t().is_contiguous()
    y[0, 0] = 9.0
    assert x[0, 0].item() == 0.0 and y[0, 0].item() == 9.0
    w = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    (w.t().contiguous() * tg.tensor(np.arange(6.0).reshape(3, 2) + 1)).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), (np.arange(6.0).reshape(3, 2) + 1).T)
    torch = pytest.importorskip("torch")
    tx = torch.arange(6.0).reshape(2, 3)
    ty = tx.t().contiguous()
    ty[0, 0] = 9.0
    assert tx[0, 0].item() == x[0, 0].item() and ty.is_contiguous() == y.is_contiguous()
