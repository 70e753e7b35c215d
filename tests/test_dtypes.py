"""dtypes as objects, conversion methods, factories' dtype=, and PyTorch's type promotion checked pair by
pair against torch (result dtype, values, or both raising)."""
import itertools

import numpy as np
import pytest

import tinygrad_seq as tg
import tinygrad_seq.nn.functional as F

torch = pytest.importorskip("torch")

TORCH_DT = {tg.bool: torch.bool, tg.uint8: torch.uint8, tg.int8: torch.int8, tg.int16: torch.int16,
            tg.int32: torch.int32, tg.int64: torch.int64, tg.float16: torch.float16, tg.float32: torch.float32,
            tg.float64: torch.float64}


@pytest.fixture(autouse=True)
def _restore_default_dtype():
    yield
    tg.set_default_dtype(tg.float32)
    torch.set_default_dtype(torch.float32)


def tdt(dt) -> "torch.dtype":
    return TORCH_DT[np.dtype(dt)]


# ---------------------------------------------------------------- the promotion table

# (name, builder for tg, builder for torch); values avoid zero so division stays finite
def _kinds():
    vals1 = {tg.bool: [True, True, True], tg.int64: [1, 2, 3], tg.int32: [4, 5, 6],
             tg.float32: [0.5, 1.5, 2.5], tg.float64: [0.25, 1.75, 3.0]}
    vals0 = {tg.bool: True, tg.int64: 2, tg.int32: 3, tg.float32: 1.5, tg.float64: 2.25}
    out = []
    for dt, v in vals1.items():
        out.append((f"1d-{dt}", lambda v=v, dt=dt: tg.tensor(v, dtype=dt), lambda v=v, dt=dt: torch.tensor(v, dtype=tdt(dt))))
    for dt, v in vals0.items():
        out.append((f"0d-{dt}", lambda v=v, dt=dt: tg.tensor(v, dtype=dt), lambda v=v, dt=dt: torch.tensor(v, dtype=tdt(dt))))
    for v in (True, 3, 2.5):
        out.append((f"py-{type(v).__name__}", lambda v=v: v, lambda v=v: v))
    return out


KINDS = _kinds()
COND = [True, False, True]
OPS = {
    "+": (lambda M, a, b: a + b),
    "-": (lambda M, a, b: a - b),
    "*": (lambda M, a, b: a * b),
    "/": (lambda M, a, b: a / b),
    "maximum": (lambda M, a, b: M.maximum(a, b)),
    "==": (lambda M, a, b: a == b),
    "where": (lambda M, a, b: M.where(M.tensor(COND), a, b)),
}
PAIRS = [(op, ka, kb) for op in OPS for ka, kb in itertools.product(KINDS, KINDS)
         if op == "where" or not (ka[0].startswith("py") and kb[0].startswith("py"))]


def _run(fn):
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001 - we compare whether both raise
        return None, e


@pytest.mark.parametrize("op,ka,kb", PAIRS, ids=[f"{a[0]} {op} {b[0]}" for op, a, b in PAIRS])
def test_promotion_matches_torch_pair_by_pair(op, ka, kb):
    f = OPS[op]
    ours, our_err = _run(lambda: f(tg, ka[1](), kb[1]()))
    theirs, their_err = _run(lambda: f(torch, ka[2](), kb[2]()))
    if op == "maximum" and isinstance(their_err, TypeError) and ("py" in ka[0] or "py" in kb[0]):
        # torch.maximum takes only tensors; ours also takes a number, promoted as torch.result_type says
        assert our_err is None
        a, b = ka[2](), kb[2]()
        t, s = (a, b) if isinstance(a, torch.Tensor) else (b, a)
        assert tdt(ours.dtype) == torch.result_type(t, s)
        return
    if their_err is not None:
        assert our_err is not None, f"torch raises {their_err!r}, we gave {ours!r}"
        return
    assert our_err is None, f"we raise {our_err!r}, torch gives {theirs!r}"
    assert tdt(ours.dtype) == theirs.dtype
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy().astype(np.float64), theirs.double().numpy(), rtol=1e-6)


ALL_DT = list(TORCH_DT)


@pytest.mark.parametrize("a,b", list(itertools.product(ALL_DT, ALL_DT)))
def test_promote_types_matches_torch(a, b):
    assert tdt(tg.promote_types(a, b)) == torch.promote_types(tdt(a), tdt(b))


def test_result_type_matches_torch():
    cases = [(tg.tensor([1, 2]), 1.0), (tg.tensor([1, 2], dtype=tg.int32), tg.tensor(5)), (tg.tensor(1.0), 2),
             (tg.tensor([True]), tg.tensor(3, dtype=tg.int16)), (tg.tensor([1.0], dtype=tg.float16), tg.tensor(2.0, dtype=tg.float64))]
    for a, b in cases:
        ta = torch.tensor(a.numpy()) if isinstance(a, tg.Tensor) else a
        tb = torch.tensor(b.numpy()) if isinstance(b, tg.Tensor) else b
        assert tdt(tg.result_type(a, b)) == torch.result_type(ta, tb)


def test_the_issue_cases():
    mask = tg.tensor([True, False])
    assert (mask + 2).dtype == tg.int64 and (mask + 2).tolist() == [3, 2]
    assert (2 * mask).dtype == tg.int64 and (mask * 2.5).dtype == tg.float32
    # torch 2.x refuses `-` with any bool operand (`2 - mask` too): mask.long() first
    for f in (lambda: 2 - mask, lambda: mask - 1, lambda: tg.arange(2) - True):
        with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool tensor is not supported"):
            f()
    assert (2 - mask.long()).tolist() == [1, 2]
    assert (tg.arange(3) + 0.5).dtype == tg.float32
    assert (tg.arange(3) / tg.arange(1, 4)).dtype == tg.float32
    assert (tg.ones(2) * tg.tensor(2.0, dtype=tg.float64)).dtype == tg.float32
    assert (tg.ones(2) * np.float64(2.0)).dtype == tg.float32  # a NumPy scalar counts as a Python number
    with pytest.raises(RuntimeError, match="Negation, the `-` operator, on a bool tensor is not supported"):
        -mask
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool tensors"):
        mask - mask
    with pytest.raises(RuntimeError, match="two bool tensors"):
        mask - True


def test_default_dtype_drives_python_floats_and_int_division():
    tg.set_default_dtype(tg.float64)
    torch.set_default_dtype(torch.float64)
    assert tg.get_default_dtype() == tg.float64
    assert tg.tensor([1.0]).dtype == tg.float64 and tg.zeros(2).dtype == tg.float64
    assert (tg.arange(3) / 2).dtype == tg.float64 and (tg.arange(3) * 1.5).dtype == tg.float64
    assert (tg.ones(2, dtype=tg.float32) * 1.5).dtype == tg.float32  # a Python float never promotes a float tensor
    assert tg.nn.Linear(2, 3).weight.dtype == tg.float64
    assert tg.arange(0, 1, 0.25).dtype == tg.float64
    with pytest.raises(TypeError, match="floating-point"):
        tg.set_default_dtype(tg.int64)


def test_mixed_dtype_gradients_flow_in_each_operand_dtype():
    x = tg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    s = tg.tensor(3.0, dtype=tg.float64, requires_grad=True)
    tx = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    ts = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    y, ty = x * s + s, tx * ts + ts
    assert y.dtype == tg.float32 and ty.dtype == torch.float32
    y.sum().backward()
    ty.sum().backward()
    assert x.grad.dtype == tg.float32 and s.grad.dtype == tg.float64
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy(), rtol=1e-6)
    # an int or bool operand gets no gradient; the float one does
    x.grad = None
    m = tg.tensor([1, 0, 2])
    (x * m).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 2.0] and not m.requires_grad
    x.grad = None
    tg.where(tg.tensor([True, False, True]), x, s).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0] and s.grad.dtype == tg.float64


def test_pow_promotion_and_errors():
    assert (tg.arange(3) ** 2).dtype == tg.int64 and (tg.arange(3) ** 2).tolist() == [0, 1, 4]
    assert (tg.arange(3) ** 0.5).dtype == tg.float32
    assert (tg.tensor([True]) ** 2).dtype == tg.int64
    assert (2 ** tg.arange(3)).tolist() == [1, 2, 4] and (2.5 ** tg.arange(3)).dtype == tg.float32
    assert (tg.ones(2, dtype=tg.float16) ** np.float64(2)).dtype == tg.float16
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
        tg.arange(3) ** -1


def test_comparison_happens_in_the_promoted_dtype():
    x, s = tg.tensor([0.1]), tg.tensor(0.1, dtype=tg.float64)
    assert (x == s).tolist() == (torch.tensor([0.1]) == torch.tensor(0.1, dtype=torch.float64)).tolist() == [True]
    assert (tg.arange(3) < 1.5).tolist() == [True, True, False]
    assert (tg.ones(2) == None).tolist() == [False, False]  # noqa: E711


def test_rejected_mixed_dtype_ops_raise_clearly():
    a, b = tg.ones(2, 2), tg.ones(2, 2, dtype=tg.float64)
    with pytest.raises(RuntimeError, match="same dtype.*float32 != float64"):
        a @ b
    with pytest.raises(RuntimeError, match="same dtype"):
        tg.ones(3) @ tg.ones(3, dtype=tg.float64)
    with pytest.raises(RuntimeError, match="same dtype"):
        F.linear(a, b)
    with pytest.raises(RuntimeError, match="same dtype"):
        F.linear(a, a, tg.ones(2, dtype=tg.float64))
    with pytest.raises(RuntimeError, match="same dtype"):
        tg.nn.Linear(2, 2)(b)
    with pytest.raises(RuntimeError, match=r"mean\(\): could not infer output dtype.*Got: Long"):
        tg.arange(3).mean()
    with pytest.raises(RuntimeError, match="Got: Bool"):
        tg.tensor([True]).mean()
    with pytest.raises(RuntimeError, match="std and var only support floating point"):
        tg.arange(3).var()
    assert tg.arange(3).mean(dtype=tg.float64).item() == 1.0
    assert (tg.ones(2, 2, dtype=tg.int64) @ tg.ones(2, 2, dtype=tg.int64)).tolist() == [[2, 2], [2, 2]]
    assert tg.tensor([True, True]).sum().dtype == tg.int64 and tg.ones(2, dtype=tg.int32).sum().dtype == tg.int64


# ---------------------------------------------------------------- dtype objects and conversions

def test_dtype_objects_and_aliases():
    assert tg.float32 == np.dtype("float32") and tg.ones(2).dtype == tg.float32
    assert (tg.float, tg.double, tg.half) == (tg.float32, tg.float64, tg.float16)
    assert (tg.long, tg.int, tg.short) == (tg.int64, tg.int32, tg.int16)
    assert tg.bool == np.dtype(bool) and tg.uint8 == np.uint8 and tg.int8 == np.int8
    assert isinstance(tg.float32, tg.dtype)
    assert tg.finfo(tg.float32).eps == np.finfo(np.float32).eps and tg.iinfo(tg.int64).max == 2 ** 63 - 1
    assert tg.zeros(2, dtype=float).dtype == tg.float64 and tg.zeros(2, dtype="torch.int32").dtype == tg.int32
    with pytest.raises(TypeError, match="unsupported dtype"):
        tg.zeros(2, dtype=np.complex64)


@pytest.mark.parametrize("method,dt", [("long", tg.int64), ("float", tg.float32), ("double", tg.float64),
                                       ("int", tg.int32), ("bool", tg.bool), ("half", tg.float16),
                                       ("short", tg.int16), ("char", tg.int8), ("byte", tg.uint8)])
def test_conversion_methods_match_torch(method, dt):
    v = [-1.5, 0.0, 2.7]
    ours, theirs = getattr(tg.tensor(v), method)(), getattr(torch.tensor(v), method)()
    assert ours.dtype == dt and tdt(dt) == theirs.dtype
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert ours.type() == theirs.type()


def test_type_type_as_and_to_forms():
    x = tg.tensor([1.5, 2.5])
    assert x.type() == "torch.FloatTensor" and tg.arange(2).type() == "torch.LongTensor"
    assert x.type("torch.LongTensor").dtype == tg.int64 and x.type(tg.LongTensor).dtype == tg.int64
    assert x.type(tg.float64).dtype == tg.float64
    assert x.type_as(tg.arange(2)).dtype == tg.int64
    assert x.to(tg.float64).dtype == tg.float64 and x.to(tg.float32) is x
    assert x.to(tg.zeros(1, dtype=tg.float64)).dtype == tg.float64
    assert x.to("cpu") is x and x.to(tg.device("cpu")) is x and x.to(device="cpu") is x
    assert x.to("cpu", tg.float64).dtype == tg.float64 and x.to(tg.device("cpu"), dtype=tg.int32).dtype == tg.int32
    assert x.to(dtype=tg.float16).dtype == tg.float16
    c = x.to(tg.float32, copy=True)
    assert c is not x and c.tolist() == x.tolist()
    assert x.cpu() is x and not x.is_cuda and x.device == "cpu" and x.device == tg.device("cpu")
    assert x.is_floating_point() and not tg.arange(2).is_floating_point() and tg.is_floating_point(x)
    assert x.element_size() == 4 and x.double().element_size() == 8 and tg.tensor([True]).element_size() == 1
    assert tg.is_tensor(x) and not tg.is_tensor(np.ones(2))
    with pytest.raises(tg.DeviceError, match="NumPy"):
        x.to("cuda")
    with pytest.raises(tg.DeviceError, match="NumPy"):
        x.cuda()


def test_float_casts_keep_the_graph_and_int_casts_cut_it():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.requires_grad and y.dtype == tg.float64
    (y * y).sum().backward()
    assert x.grad.dtype == tg.float32 and x.grad.tolist() == [2.0, 4.0]
    assert not x.long().requires_grad and not x.bool().requires_grad and not x.int().requires_grad
    assert x.half().requires_grad


def test_clone_and_copy_keep_the_dtype():
    for t in (tg.tensor([True, False]), tg.arange(3, dtype=tg.int32), tg.ones(2, dtype=tg.float16)):
        assert t.clone().dtype == t.dtype and t.to(t.dtype, copy=True).dtype == t.dtype
        assert t.clone().numpy() is not t.numpy()


def test_torch_dtypes_are_accepted_as_dtype_arguments():
    assert tg.zeros(2, dtype=torch.float64).dtype == tg.float64 and tg.ones(2).to(torch.int32).dtype == tg.int32


def test_nan_to_int_cast_gives_no_warning():
    assert tg.tensor([np.nan, 1.0]).long().dtype == tg.int64


def test_legacy_typed_constructors():
    t = tg.LongTensor([1, 2])
    assert t.dtype == tg.int64 and t.tolist() == [1, 2]
    assert tg.FloatTensor(2, 3).shape == (2, 3) and tg.FloatTensor(2, 3).dtype == tg.float32
    assert tg.LongTensor(3).shape == (3,)
    assert tg.DoubleTensor([[1, 2]]).dtype == tg.float64 and tg.BoolTensor([1, 0]).tolist() == [True, False]
    assert isinstance(tg.ones(2), tg.FloatTensor) and not isinstance(tg.ones(2), tg.LongTensor)
    assert isinstance(t, tg.LongTensor) and isinstance(t, tg.Tensor)
    assert tg.FloatTensor([1]).type() == torch.FloatTensor([1]).type()


def test_repr_shows_dtype_like_torch():
    assert "dtype" not in repr(tg.ones(2)) and "dtype" not in repr(tg.arange(2)) and "dtype" not in repr(tg.tensor([True]))
    assert "dtype=float64" in repr(tg.ones(2, dtype=tg.float64)) and "dtype=int32" in repr(tg.ones(2, dtype=tg.int32))
    tg.set_default_dtype(tg.float64)
    assert "dtype" not in repr(tg.ones(2)) and "dtype=float32" in repr(tg.ones(2, dtype=tg.float32))


# ---------------------------------------------------------------- factories

def test_tensor_infers_dtypes_like_torch():
    for data in ([1, 2], [1.0], True, [True, False], 3, 2.5, [1, 2.5], [[1, 2], [3, 4]]):
        assert tdt(tg.tensor(data).dtype) == torch.tensor(data).dtype, data
    assert tg.tensor(np.ones(2)).dtype == tg.float64 and tg.tensor(np.ones(2, np.int32)).dtype == tg.int32
    a = np.ones(2)
    t = tg.tensor(a)
    a[0] = 5  # tg.tensor copies, as torch.tensor
    assert t.tolist() == [1.0, 1.0]
    assert tg.tensor([1, 2], dtype=tg.float64, requires_grad=True).requires_grad
    with pytest.raises(RuntimeError, match="floating-point"):
        tg.tensor([1, 2], requires_grad=True)


NUMPY_SCALAR_DATA = [np.float64(2.5), np.float16(1), np.float32(3), np.int32(4), np.bool_(True), [np.float64(1), 2.0],
                     [[np.float64(1)], [2.0]], [np.float16(1), 2], [np.float16(1), np.float32(2)], [np.float32(1), 2.0],
                     [1.0, np.float16(2)], [np.int8(1), np.uint8(2)], [True, np.float32(1)], [np.int32(1), 2],
                     [np.array([1.0], np.float32)], ([1.5, 2.0], (3.0, 4.0))]


@pytest.mark.parametrize("default", [tg.float32, tg.float64])
@pytest.mark.parametrize("data", NUMPY_SCALAR_DATA, ids=[repr(d) for d in NUMPY_SCALAR_DATA])
def test_tensor_of_numpy_scalars_keeps_their_dtype_like_torch(data, default):
    # NumPy infers float64 for [np.float32(1), 2.0] and [np.float16(1), 2]; torch promotes the elements' own
    # dtypes, a Python float counting as the default dtype: np.mean(...) results stay float64
    import warnings
    try:
        tg.set_default_dtype(default)
        torch.set_default_dtype(tdt(default))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch: a list of ndarrays is slow
            expected = torch.tensor(data).dtype
        assert tdt(tg.tensor(data).dtype) == expected, data
    finally:
        tg.set_default_dtype(tg.float32)
        torch.set_default_dtype(torch.float32)


FACTORIES = [
    ("zeros", lambda M, **k: M.zeros(2, 3, **k)),
    ("ones", lambda M, **k: M.ones((2, 3), **k)),
    ("empty", lambda M, **k: M.empty(2, **k)),
    ("full", lambda M, **k: M.full((2,), 7, **k)),
    ("rand", lambda M, **k: M.rand(2, **k)),
    ("randn", lambda M, **k: M.randn(2, 2, **k)),
    ("arange", lambda M, **k: M.arange(4, **k)),
    ("arange_f", lambda M, **k: M.arange(0, 1, 0.25, **k)),
    ("eye", lambda M, **k: M.eye(3, **k)),
    ("linspace", lambda M, **k: M.linspace(-1, 2, 5, **k)),
    ("zeros_like", lambda M, **k: M.zeros_like(M.ones(2, dtype=M.int32), **k)),
    ("ones_like", lambda M, **k: M.ones_like(M.ones(2, dtype=M.float64), **k)),
    ("full_like", lambda M, **k: M.full_like(M.ones(2), 3, **k)),
    ("empty_like", lambda M, **k: M.empty_like(M.ones(2, dtype=M.int16), **k)),
    ("rand_like", lambda M, **k: M.rand_like(M.ones(2, dtype=M.float64), **k)),
    ("randn_like", lambda M, **k: M.randn_like(M.ones(2), **k)),
    ("tensor", lambda M, **k: M.tensor([1, 2], **k)),
    ("randint", lambda M, **k: M.randint(0, 5, (3,), **k)),
]


@pytest.mark.parametrize("name,fn", FACTORIES, ids=[f[0] for f in FACTORIES])
@pytest.mark.parametrize("dtype", [None, "float64", "float32"])
def test_factories_dtype_device_requires_grad_as_torch(name, fn, dtype):
    kw = {} if dtype is None else {"dtype": getattr(tg, dtype)}
    tkw = {} if dtype is None else {"dtype": getattr(torch, dtype)}
    ours, theirs = fn(tg, device="cpu", **kw), fn(torch, device="cpu", **tkw)
    assert tdt(ours.dtype) == theirs.dtype and ours.shape == tuple(theirs.shape)
    if name not in ("rand", "randn", "rand_like", "randn_like", "randint", "empty", "empty_like"):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    if ours.dtype.kind == "f":
        assert fn(tg, requires_grad=True, **kw).requires_grad
    with pytest.raises(tg.DeviceError, match="NumPy"):
        fn(tg, device="cuda", **kw)


def test_factory_dtype_inference_and_errors():
    assert tg.full((2,), 1).dtype == tg.int64 and tg.full((2,), True).dtype == tg.bool
    assert tg.full((2,), 1.5).dtype == tg.float32 and tg.zeros(size=(2, 3)).shape == (2, 3)
    assert tg.linspace(0, 1, 5, dtype=tg.int64).tolist() == torch.linspace(0, 1, 5, dtype=torch.int64).tolist()
    assert tg.arange(5, dtype=tg.float32).dtype == tg.float32 and tg.arange(tg.tensor(3)).tolist() == [0, 1, 2]
    with pytest.raises(TypeError, match="floating point"):
        tg.randn(2, dtype=tg.int64)
    with pytest.raises(TypeError, match="floating point"):
        tg.rand(2, dtype=tg.int64)
    x = tg.ones(2, dtype=tg.float64)
    assert x.new_zeros(3).dtype == tg.float64 and x.new_ones((2, 2)).shape == (2, 2)
    assert x.new_full((2,), 3).tolist() == [3.0, 3.0] and x.new_tensor([1, 2]).dtype == tg.float64
    assert x.new_empty(2).dtype == tg.float64


def test_randint_argument_forms():
    tg.manual_seed(0)
    for t in (tg.randint(10, (50,)), tg.randint(3, 10, (50,)), tg.randint(low=3, high=10, size=(50,)),
              tg.randint(high=10, size=(50,)), tg.randint(0, 10, size=(5, 10))):
        assert t.dtype == tg.int64 and t.numel() == 50 and 0 <= t.numpy().min() and t.numpy().max() < 10
    assert tg.randint(3, 10, (50,)).numpy().min() >= 3
    assert tg.randint(0, 5, (3,), dtype=tg.float32).dtype == tg.float32
    with pytest.raises(TypeError, match="randint"):
        tg.randint(5)
    with pytest.raises(ValueError, match="less than"):
        tg.randint(5, 5, (2,))
