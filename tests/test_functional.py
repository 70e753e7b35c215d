"""tg.nn.functional: gradchecks (float64 finite differences) and PyTorch comparisons of every layer function.

`torch_check` is shared with test_losses.py and test_nn.py.
"""
import warnings

import numpy as np
import pytest

import tinygrad_seq as tg
import tinygrad_seq.nn.functional as F

R = np.random.default_rng(0)


def torch_check(tg_fn, torch_fn, *arrays, atol=1e-10, rtol=1e-7, grad_of=None):
    """Run tg_fn and torch_fn on copies of `arrays` (float arrays become leaves requiring grad unless
    grad_of names which ones); compare outputs and the gradients of sum(out * w) for a random w."""
    torch = pytest.importorskip("torch")
    grad_of = grad_of if grad_of is not None else [a.dtype.kind == "f" for a in arrays]
    ts = [tg.Tensor(a.copy(), requires_grad=g) for a, g in zip(arrays, grad_of)]
    ps = [torch.tensor(a.copy(), requires_grad=g) for a, g in zip(arrays, grad_of)]
    out, ref = tg_fn(*ts), torch_fn(*ps)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=atol, rtol=rtol)
    assert out.shape == tuple(ref.shape)
    w = np.random.default_rng(1).standard_normal(ref.shape)
    (out * tg.Tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    for i, (t, p) in enumerate(zip(ts, ps)):
        if p.grad is not None:
            assert t.grad is not None, f"input {i} got no gradient"
            np.testing.assert_allclose(t.grad.numpy(), p.grad.numpy(), atol=atol, rtol=rtol, err_msg=f"grad of input {i}")
    return out


def leaf(*shape, scale=1.0):
    return tg.Tensor(R.standard_normal(shape) * scale, requires_grad=True)


# ---------------------------------------------------------------- gradchecks

CONV_CASES = [dict(), dict(stride=2), dict(padding=1), dict(dilation=2), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
              dict(padding="same"), dict(padding="same", dilation=(1, 2))]


@pytest.mark.parametrize("kw", CONV_CASES)
def test_conv2d_gradcheck(kw):
    x, w, b = leaf(2, 2, 5, 6), leaf(3, 2, 2, 3), leaf(3)
    assert tg.gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b])


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(dilation=2, padding=2), dict(padding="same")])
def test_conv1d_gradcheck(kw):
    x, w, b = leaf(2, 3, 7), leaf(4, 3, 3), leaf(4)
    assert tg.gradcheck(lambda x, w, b: F.conv1d(x, w, b, **kw), [x, w, b])


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(2, 3), stride=1), dict(kernel_size=2, stride=1, dilation=2)])
def test_max_pool2d_gradcheck(kw):
    x = tg.Tensor(R.permutation(2 * 2 * 6 * 5).reshape(2, 2, 6, 5) * 0.1, requires_grad=True)  # distinct values: no ties
    assert tg.gradcheck(lambda x: F.max_pool2d(x, **kw), [x])


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                dict(kernel_size=(2, 3), stride=1)])
def test_avg_pool2d_gradcheck(kw):
    assert tg.gradcheck(lambda x: F.avg_pool2d(x, **kw), [leaf(2, 2, 6, 5)])


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4)])
def test_layer_norm_gradcheck(shape, affine):
    ns = shape[1:]
    args = [leaf(*shape)] + ([leaf(*ns), leaf(*ns)] if affine else [])
    fn = (lambda x, w, b: F.layer_norm(x, ns, w, b)) if affine else (lambda x: F.layer_norm(x, ns))
    assert tg.gradcheck(fn, args)


def test_layer_norm_weight_only_gradcheck():
    assert tg.gradcheck(lambda x, w: F.layer_norm(x, 5, w), [leaf(3, 5), leaf(5)])


def test_embedding_gradcheck():
    idx = np.array([[0, 2, 2], [4, 0, 1]])
    assert tg.gradcheck(lambda w: F.embedding(idx, w), [leaf(5, 3)])


def test_embedding_padding_idx_gets_no_gradient():
    w = leaf(5, 3)
    F.embedding(np.array([1, 1, 3, 2]), w, padding_idx=1).sum().backward()
    assert np.all(w.grad.numpy()[1] == 0)
    np.testing.assert_allclose(w.grad.numpy()[[2, 3]], 1.0)
    np.testing.assert_allclose(w.grad.numpy()[[0, 4]], 0.0)


@pytest.mark.parametrize("name, fn", [
    ("relu", F.relu), ("gelu", F.gelu), ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
    ("tanh", F.tanh), ("sigmoid", F.sigmoid), ("softplus", F.softplus),
    ("softmax", lambda x: F.softmax(x, dim=1)), ("log_softmax", lambda x: F.log_softmax(x, dim=0)),
    ("pad", lambda x: F.pad(x, (1, 2, 0, 1), value=0.5)),
    ("dropout_eval", lambda x: F.dropout(x, 0.5, training=False)),
])
def test_activation_gradcheck(name, fn):
    x = tg.Tensor(R.standard_normal((3, 4)), requires_grad=True)
    x.numpy()[np.abs(x.numpy()) < 0.05] = 0.3  # off relu's kink at 0
    assert tg.gradcheck(fn, [x])


def test_dropout_gradcheck_with_fixed_mask():
    x = leaf(4, 6)

    def fn(x):
        tg.manual_seed(3)  # the same mask on every evaluation
        return F.dropout(x, 0.4, training=True)
    assert tg.gradcheck(fn, [x])


# ---------------------------------------------------------------- against PyTorch (float64, copied values)

@pytest.mark.parametrize("kw", CONV_CASES)
def test_conv2d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    arrays = R.standard_normal((2, 3, 7, 6)), R.standard_normal((4, 3, 3, 2)), R.standard_normal(4)
    with warnings.catch_warnings():  # torch warns that its own "same" padding copies the input
        warnings.simplefilter("ignore", UserWarning)
        torch_check(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **kw),
                    *arrays)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=2, dilation=2), dict(padding="same"), dict(padding="valid")])
def test_conv1d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    arrays = R.standard_normal((2, 3, 9)), R.standard_normal((5, 3, 4))
    torch_check(lambda x, w: F.conv1d(x, w, **kw), lambda x, w: torch.nn.functional.conv1d(x, w, **kw), *arrays)


def test_conv2d_unbatched_matches_torch():
    torch = pytest.importorskip("torch")
    arrays = R.standard_normal((3, 5, 5)), R.standard_normal((2, 3, 3, 3))
    torch_check(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: torch.nn.functional.conv2d(x, w, padding=1), *arrays)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0)), dict(kernel_size=2, stride=1, dilation=2)])
def test_max_pool2d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    torch_check(lambda x: F.max_pool2d(x, **kw), lambda x: torch.nn.functional.max_pool2d(x, **kw),
                R.standard_normal((2, 3, 7, 6)))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0))])
def test_avg_pool2d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    torch_check(lambda x: F.avg_pool2d(x, **kw), lambda x: torch.nn.functional.avg_pool2d(x, **kw),
                R.standard_normal((2, 3, 7, 6)))


def test_layer_norm_matches_torch():
    torch = pytest.importorskip("torch")
    arrays = R.standard_normal((2, 3, 4, 5)) * 3 + 1, R.standard_normal((4, 5)), R.standard_normal((4, 5))
    torch_check(lambda x, w, b: F.layer_norm(x, (4, 5), w, b, eps=1e-3),
                lambda x, w, b: torch.nn.functional.layer_norm(x, (4, 5), w, b, eps=1e-3), *arrays)


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    idx = R.integers(0, 7, (3, 4))
    torch_check(lambda w: F.embedding(idx, w, padding_idx=2),
                lambda w: torch.nn.functional.embedding(torch.tensor(idx), w, padding_idx=2), R.standard_normal((7, 3)))


@pytest.mark.parametrize("pad", [(1, 2), (0, 1, 2, 3), (1, 1, 1, 1, 1, 1), (-1, 2, 1, -1)])
def test_pad_matches_torch(pad):
    torch = pytest.importorskip("torch")
    torch_check(lambda x: F.pad(x, pad, value=-1.5), lambda x: torch.nn.functional.pad(x, pad, value=-1.5),
                R.standard_normal((2, 3, 4)))


@pytest.mark.parametrize("name", ["relu", "gelu", "gelu_tanh", "tanh", "sigmoid", "softplus", "softmax", "log_softmax"])
def test_activations_match_torch(name):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    pairs = {"relu": (F.relu, tf.relu), "gelu": (F.gelu, tf.gelu),
             "gelu_tanh": (lambda x: F.gelu(x, "tanh"), lambda x: tf.gelu(x, approximate="tanh")),
             "tanh": (F.tanh, torch.tanh), "sigmoid": (F.sigmoid, torch.sigmoid), "softplus": (F.softplus, tf.softplus),
             "softmax": (lambda x: F.softmax(x, 1), lambda x: tf.softmax(x, 1)),
             "log_softmax": (lambda x: F.log_softmax(x, 0), lambda x: tf.log_softmax(x, 0))}
    torch_check(*pairs[name], R.standard_normal((4, 5)) * 3)


def test_softplus_stable_at_extremes():
    x = tg.Tensor(np.array([-1e4, -50.0, 0.0, 50.0, 1e4]), requires_grad=True)
    y = F.softplus(x)
    y.sum().backward()
    np.testing.assert_allclose(y.numpy(), [0.0, np.exp(-50.0), np.log(2), 50.0, 1e4], rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), [0.0, np.exp(-50.0), 0.5, 1.0, 1.0], rtol=1e-12)


# ---------------------------------------------------------------- dropout

def test_dropout_scaling_and_rate():
    tg.manual_seed(0)
    x = tg.ones(200, 500)
    y = F.dropout(x, 0.3, training=True)
    kept = y.numpy() != 0
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)  # inverted dropout: kept values scaled
    assert abs(kept.mean() - 0.7) < 0.01
    assert y.dtype == np.float32


def test_dropout_reproducible_with_manual_seed_and_identity_in_eval():
    x = tg.randn(10, 10)
    tg.manual_seed(5)
    a = F.dropout(x, 0.5).numpy()
    tg.manual_seed(5)
    b = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert F.dropout(x, 0.5, training=False) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


def test_dropout_gradient_follows_mask():
    x = tg.Tensor(np.ones((20, 20)), requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # d(x·m/(1-p))/dx = m/(1-p) = y at x = 1


# ---------------------------------------------------------------- bad input

def test_conv_errors_name_shapes():
    x, w = tg.randn(2, 3, 5, 5), tg.randn(4, 2, 3, 3)
    with pytest.raises(ValueError, match=r"conv2d: input shape \(2, 3, 5, 5\) has 3 channels"):
        F.conv2d(x, w)
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        F.conv2d(tg.randn(1, 2, 2, 2), w)
    with pytest.raises(ValueError, match="4-D"):
        F.conv2d(tg.randn(5, 5), w)
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(tg.randn(1, 2, 5, 5), w, stride=0)
    with pytest.raises(ValueError, match="bias shape"):
        F.conv2d(tg.randn(1, 2, 5, 5), w, tg.randn(3))
    with pytest.raises(ValueError, match="'same' is not supported for strided"):
        F.conv1d(tg.randn(1, 2, 5), tg.randn(1, 2, 3), stride=2, padding="same")


def test_pool_pad_layer_norm_embedding_errors():
    with pytest.raises(ValueError, match="at most half of kernel_size"):
        F.max_pool2d(tg.randn(1, 1, 4, 4), 2, padding=2)
    with pytest.raises(ValueError, match="smaller than kernel_size"):
        F.avg_pool2d(tg.randn(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match="pad"):
        F.pad(tg.randn(2, 2), (1, 1, 1))
    with pytest.raises(ValueError, match=r"layer_norm: input shape \(3, 4\) does not end with normalized_shape \(5,\)"):
        F.layer_norm(tg.randn(3, 4), 5)
    with pytest.raises(ValueError, match="weight shape"):
        F.layer_norm(tg.randn(3, 4), 4, tg.ones(3))
    with pytest.raises(TypeError, match="integers"):
        F.embedding(tg.Tensor([0.0, 1.0]), tg.randn(3, 2))
    with pytest.raises(IndexError, match="out of range"):
        F.embedding(np.array([0, 3]), tg.randn(3, 2))
    with pytest.raises(ValueError, match="linear"):
        F.linear(tg.randn(2, 3), tg.randn(4, 5))
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(tg.randn(2), approximate="fast")


# ---------------------------------------------------------------- random configurations and dtypes

def test_conv_and_pool_random_configs_match_torch():
    torch = pytest.importorskip("torch")
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=25, deadline=None)
    @hypothesis.given(n=st.integers(1, 2), c=st.integers(1, 3), o=st.integers(1, 3), h=st.integers(3, 7),
                      w=st.integers(3, 7), k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1),
                      d=st.integers(1, 2), seed=st.integers(0, 99))
    def check(n, c, o, h, w, k, s, p, d, seed):
        hypothesis.assume(h + 2 * p >= d * (k - 1) + 1 and w + 2 * p >= d * (k - 1) + 1)
        r = np.random.default_rng(seed)
        x, wt, b = r.standard_normal((n, c, h, w)), r.standard_normal((o, c, k, k)), r.standard_normal(o)
        kw = dict(stride=s, padding=p, dilation=d)
        torch_check(lambda x, wt, b: F.conv2d(x, wt, b, **kw), lambda x, wt, b: torch.nn.functional.conv2d(x, wt, b, **kw),
                    x, wt, b)
        torch_check(lambda x, wt: F.conv1d(x, wt, **kw), lambda x, wt: torch.nn.functional.conv1d(x, wt, **kw),
                    x[:, :, 0], wt[:, :, 0])
        if 2 * p <= k and h + 2 * p >= k and w + 2 * p >= k:
            pk = dict(kernel_size=k, stride=s, padding=p)
            torch_check(lambda x: F.avg_pool2d(x, **pk), lambda x: torch.nn.functional.avg_pool2d(x, **pk), x)
            torch_check(lambda x: F.max_pool2d(x, **pk), lambda x: torch.nn.functional.max_pool2d(x, **pk), x)
    check()


@pytest.mark.parametrize("name, fn", [
    ("conv2d", lambda x: F.conv2d(x, tg.ones(2, 3, 2, 2), tg.zeros(2), padding=1)),
    ("conv1d", lambda x: F.conv1d(x[0], tg.ones(2, 4, 3))),
    ("max_pool2d", lambda x: F.max_pool2d(x, 2)), ("avg_pool2d", lambda x: F.avg_pool2d(x, 2, padding=1)),
    ("layer_norm", lambda x: F.layer_norm(x, 5, tg.ones(5), tg.zeros(5))),
    ("embedding", lambda x: F.embedding(np.array([0, 1]), x[0, 0])), ("dropout", lambda x: F.dropout(x, 0.2)),
    ("pad", lambda x: F.pad(x, (1, 1))), ("softplus", F.softplus),
    ("cross_entropy", lambda x: F.cross_entropy(x, np.zeros((2, 4, 5), np.int64), label_smoothing=0.1)),
    ("bce_logits", lambda x: F.binary_cross_entropy_with_logits(x, tg.zeros(2, 3, 4, 5))),
])
def test_float32_stays_float32(name, fn):
    x = tg.randn(2, 3, 4, 5, requires_grad=True)
    out = fn(x)
    assert out.dtype == np.float32, name
    out.sum().backward()
    assert x.grad.dtype == np.float32, name


# ---------------------------------------------------------------- layer norm and softmax: the edge cases
# (non-contiguous inputs, long float32 rows, non-finite rows, float16, an empty batch)

def test_layer_norm_and_softmax_on_transposed_inputs_match_torch():
    """A non-contiguous input (a transposed view) reshapes through a copy: still the same values and grads."""
    torch = pytest.importorskip("torch")
    x = R.standard_normal((5, 3, 6)) * 2 + 1
    w, b = R.standard_normal(3), R.standard_normal(3)
    torch_check(lambda x, w, b: F.layer_norm(x.transpose(1, 2), (3,), w, b),
                lambda x, w, b: torch.nn.functional.layer_norm(x.transpose(1, 2), (3,), w, b), x, w, b)
    torch_check(lambda x: F.softmax(x.transpose(0, 2), -1), lambda x: torch.softmax(x.transpose(0, 2), -1), x)
    torch_check(lambda x: F.log_softmax(x.transpose(0, 2), -1), lambda x: torch.log_softmax(x.transpose(0, 2), -1), x)


def test_long_row_sums_keep_float32_accuracy():
    """float32 sums over 4096-long rows (softmax, layer norm) stay within float32 rounding of float64."""
    x = (R.standard_normal((3, 4096)) * 4).astype(np.float32)
    ref = x.astype(np.float64)
    sm = tg.Tensor(x).softmax(-1).numpy()
    e = np.exp(ref - ref.max(-1, keepdims=True))
    np.testing.assert_allclose(sm, e / e.sum(-1, keepdims=True), rtol=2e-5, atol=1e-9)
    ln = F.layer_norm(tg.Tensor(x), (4096,)).numpy()
    np.testing.assert_allclose(ln, (ref - ref.mean(-1, keepdims=True)) / np.sqrt(ref.var(-1, keepdims=True) + 1e-5),
                               rtol=1e-4, atol=2e-5)
    assert sm.dtype == ln.dtype == np.float32


def test_softmax_rows_with_non_finite_values_as_torch():
    """A row with NaN or +inf, and a row of only -inf, give NaN rows (PyTorch), the finite rows their values."""
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, 2.0, 3.0], [np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0], [-np.inf] * 3], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = tg.Tensor(x).softmax(-1).numpy()
    np.testing.assert_allclose(ours, torch.softmax(torch.tensor(x), -1).numpy(), rtol=1e-6, equal_nan=True)


def test_layer_norm_half_precision_and_empty_batch():
    """float16 keeps NumPy's reductions (float32 accumulation) and its dtype; an empty batch gives empty outputs."""
    x = R.standard_normal((4, 8)).astype(np.float16)
    out = F.layer_norm(tg.Tensor(x), (8,)).numpy()
    ref = x.astype(np.float64)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, (ref - ref.mean(-1, keepdims=True)) / np.sqrt(ref.var(-1, keepdims=True) + 1e-5),
                               atol=1e-2)
    ln = tg.nn.LayerNorm(8)
    e = tg.Tensor(np.zeros((0, 8), np.float32), requires_grad=True)
    y = ln(e)
    y.sum().backward()
    assert y.shape == (0, 8) and e.grad.shape == (0, 8)
    np.testing.assert_array_equal(ln.weight.grad.numpy(), np.zeros(8, np.float32))


@pytest.mark.parametrize("shape", [(4, 2, 16, 16), (16, 4, 64, 64), (100, 7), (31, 64), (40, 2), (3, 65), (5,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_row_max_of_short_rows_is_numpys(shape, dtype, monkeypatch):
    """The softmax family's row maximum (slab-transposed for rows of at most 64) equals np.maximum.reduce,
    NaN, ±inf and -0.0 rows included, and the softmaxes built on it keep every value and gradient to the
    last bit (compared with the same ops on the plain reduction)."""
    from tinygrad_seq import ops
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    flat = x.reshape(-1, shape[-1])
    flat[0, 0], flat[-1, :] = np.nan, -np.inf
    if len(flat) > 3:
        flat[1, :], flat[2, 1 % shape[-1]] = -0.0, np.inf
    want = np.maximum.reduce(x, axis=-1, keepdims=True)
    got = ops._row_max(x, -1)
    np.testing.assert_array_equal(got, want)
    assert got.shape == want.shape and got.dtype == want.dtype

    def run():
        outs = []
        for f in (lambda t: t.softmax(-1), lambda t: t.log_softmax(-1), lambda t: t.masked_softmax(dim=-1),
                  lambda t: t.logsumexp(-1)):
            t = tg.tensor(x, requires_grad=True)
            y = f(t)
            (y * tg.tensor(np.linspace(-1, 1, y.numpy().size).reshape(y.shape).astype(dtype))).sum().backward()
            outs += [y.numpy().copy(), t.grad.numpy().copy()]
        return outs
    fast = run()
    monkeypatch.setattr(ops, "_row_max", lambda a, axis: np.maximum.reduce(a, axis=axis, keepdims=True))
    for a, b in zip(fast, run()):
        np.testing.assert_array_equal(a, b)


def test_masked_softmax_row_with_inf_or_nan_is_all_nan_as_torch():
    """A score row holding +inf or NaN has no softmax: every entry NaN (torch.softmax and torch's
    scaled_dot_product_attention give that), while a fully blocked row (all -inf) still gives zeros."""
    x = np.array([[np.inf, 1.0, 2.0], [np.nan, 0.0, 1.0], [-np.inf] * 3, [1.0, 2.0, -np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = tg.tensor(x).masked_softmax(dim=-1).numpy()
    assert np.isnan(y[:2]).all()
    np.testing.assert_array_equal(y[2], 0)
    e = np.exp(np.array([1.0, 2.0]) - 2.0)
    np.testing.assert_allclose(y[3], list(e / e.sum()) + [0.0], rtol=1e-15)
