"""Tensors print exactly as PyTorch prints them (values, widths, wrapping, summaries, suffixes, options)."""
import re

import numpy as np
import pytest

import tinygrad_seq as tg

torch = pytest.importorskip("torch")

_DT = {np.float32: torch.float32, np.float64: torch.float64, np.float16: torch.float16, np.int64: torch.int64,
       np.int32: torch.int32, np.uint8: torch.uint8, np.int8: torch.int8, np.bool_: torch.bool}


def _values(rng, kind: str, shape: tuple) -> np.ndarray:
    n = int(np.prod(shape))
    if kind == "normal":
        a = rng.standard_normal(n)
    elif kind == "ints":  # integer-valued floats: `1.` mode
        a = rng.integers(-50, 50, n).astype(float)
    elif kind == "wide":  # max/min > 1000: scientific
        a = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 9, n)
    elif kind == "big":
        a = rng.standard_normal(n) * 1e9
    elif kind == "tiny":
        a = rng.standard_normal(n) * 1e-6
    else:  # "special": zeros, -0.0, nan, inf among ordinary values
        a = rng.standard_normal(n)
        a[rng.random(n) < 0.4] = rng.choice([0.0, -0.0, np.nan, np.inf, -np.inf], size=int((rng.random(n) < 0.4).sum()) or 1)[0]
    return a.reshape(shape)


SHAPES = [(), (1,), (5,), (12,), (40,), (3, 4), (2, 3, 4), (2, 2, 2, 3), (7, 300), (1100,), (4, 5, 60), (2000, 2)]
CASES = [(s, k, dt) for s in SHAPES for k in ("normal", "ints", "wide", "big", "tiny", "special")
         for dt in (np.float32, np.float64)]


def _same(a: np.ndarray, **kw) -> None:
    ours = repr(tg.tensor(a, **kw))
    theirs = repr(torch.tensor(a, **kw))
    if "dtype=torch." in theirs:  # our dtypes are NumPy's: `dtype=float64`; so the line may break elsewhere
        ours, theirs = (re.sub(r",\s+(dtype|requires_grad)=", r", \1=", s).replace("torch.", "") for s in (ours, theirs))
    assert ours == theirs, f"\nours:   {ours}\ntheirs: {theirs}"


@pytest.mark.parametrize("shape,kind,dt", CASES, ids=[f"{s}-{k}-{d.__name__}" for s, k, d in CASES])
def test_floats_print_as_torch(shape, kind, dt):
    rng = np.random.default_rng(abs(hash((shape, kind))) % 2**32)
    _same(_values(rng, kind, shape).astype(dt))


@pytest.mark.parametrize("dt", [np.int64, np.int32, np.uint8, np.int8, np.bool_, np.float16])
@pytest.mark.parametrize("shape", [(), (6,), (3, 5), (30, 40), (2, 3, 2)])
def test_other_dtypes_print_as_torch(dt, shape):
    rng = np.random.default_rng(0)
    a = rng.integers(0 if dt in (np.uint8, np.bool_) else -100, 2 if dt is np.bool_ else 100, shape)
    a = (rng.standard_normal(shape) * 3 if dt is np.float16 else a).astype(dt)
    _same(a)


@pytest.mark.parametrize("shape,dt", [((0,), np.float32), ((0, 3), np.float32), ((2, 0, 1), np.float64),
                                      ((0,), np.int64), ((0, 2), np.bool_)])
def test_empty_tensors_print_as_torch(shape, dt):
    _same(np.zeros(shape, dt))


def test_suffixes_and_their_line_breaks():
    rng = np.random.default_rng(1)
    for n in (1, 6, 7, 8, 9, 10, 11, 12):  # the last line's length decides whether a suffix wraps
        a = rng.standard_normal(n)
        _same(a.astype(np.float32), requires_grad=True)
        _same(a)
        _same(a, requires_grad=True)
    y = tg.ones(2, requires_grad=True) * 2
    assert repr(y) == "tensor([2., 2.], grad_fn=<Mul>)"  # our node's name where torch writes MulBackward0
    assert str(y) == repr(y)


OPTIONS = [dict(precision=2), dict(precision=7), dict(sci_mode=True), dict(sci_mode=False), dict(linewidth=40),
           dict(edgeitems=1), dict(edgeitems=0), dict(threshold=10), dict(profile="short"), dict(profile="full"),
           dict(profile="short", precision=6)]


@pytest.mark.parametrize("opts", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_print_options_as_torch(opts):
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((3, 70)).astype(np.float32), rng.standard_normal(30) * 1e-5,
              rng.integers(-9, 9, (40, 40)).astype(np.float32), rng.integers(0, 10**6, 1500), np.float32(0.25)]
    try:
        tg.set_printoptions(**opts)
        torch.set_printoptions(**opts)
        assert tg.get_printoptions() == {k: getattr(torch._tensor_str.PRINT_OPTS, k)
                                         for k in ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")}
        for a in arrays:
            _same(a)
    finally:
        tg.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")


def test_printoptions_block_restores_and_profiles_are_checked():
    a = np.array([1.23456789], np.float32)
    with tg.printoptions(precision=2):
        assert repr(tg.tensor(a)) == "tensor([1.23])"
    assert repr(tg.tensor(a)) == "tensor([1.2346])"
    with pytest.raises(ValueError, match="profile"):
        tg.set_printoptions(profile="long")


def test_default_dtype_float64_hides_float64():
    try:
        tg.set_default_dtype(tg.float64)
        torch.set_default_dtype(torch.float64)
        for a in (np.ones(3), np.ones(3, np.float32)):
            _same(a)
    finally:
        tg.set_default_dtype(tg.float32)
        torch.set_default_dtype(torch.float32)


def test_format_spec_on_zero_dim_tensors():
    loss = tg.tensor(0.123456)
    assert f"{loss:.3f}" == f"{torch.tensor(0.123456):.3f}" == "0.123"
    assert f"{tg.tensor(3)}" == f"{torch.tensor(3)}" == "3"  # the value, even with an empty spec
    assert f"{tg.tensor([1.5]):}" == f"{torch.tensor([1.5]):}" == "tensor([1.5000])"
    with pytest.raises(TypeError):
        f"{tg.tensor([1.5]):.2f}"
    with pytest.raises(TypeError):  # torch: a Parameter is not a plain tensor, so no value format
        f"{tg.nn.Parameter(tg.tensor(1.0)):.2f}"
