"""The torch.nn surface teaching code reaches for: Module attribute rules and state_dict/load_state_dict,
layer arguments (Conv groups/padding_mode, pooling ceil_mode/return_indices/divisor_override, Embedding
max_norm/scale_grad_by_freq/from_pretrained, Softplus beta/threshold, activations), the lazy tg.nn
aliases, and nn.utils.rnn.pad_sequence. Layers are compared with torch in float64 with copied weights:
outputs, the input's gradient and every parameter's gradient."""
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_seq as tg
import tinygrad_seq.nn.functional as F
from tinygrad_seq import nn

torch = pytest.importorskip("torch")
R = np.random.default_rng(7)


def copy_weights(ours, theirs):
    """Our (float64) module's state into the torch module, converted to float64."""
    ours.to(np.float64)
    theirs.double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})


def check_module(ours, theirs, x, atol=1e-10, rtol=1e-8, copy=True):
    """Forward, input gradient and every parameter gradient of `ours` vs `theirs` for input array x."""
    if copy:
        copy_weights(ours, theirs)
    xt, xp = tg.Tensor(x.copy(), requires_grad=True), torch.tensor(x.copy(), requires_grad=True)
    out, ref = ours(xt), theirs(xp)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=atol, rtol=rtol)
    w = R.standard_normal(tuple(ref.shape))
    (out * tg.Tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), xp.grad.numpy(), atol=atol, rtol=rtol, err_msg="input grad")
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        tp = theirs_params[name]
        if tp.grad is None:
            assert p.grad is None or not np.any(p.grad.numpy()), name
        else:
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), atol=atol, rtol=rtol, err_msg=name)
    return out


def check_fn(ours, theirs, *arrays, atol=1e-10, rtol=1e-8):
    """A functional form vs torch's: output and gradient of every float input."""
    ts = [tg.Tensor(a.copy(), requires_grad=a.dtype.kind == "f") for a in arrays]
    ps = [torch.tensor(a.copy(), requires_grad=a.dtype.kind == "f") for a in arrays]
    out, ref = ours(*ts), theirs(*ps)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=atol, rtol=rtol)
    assert out.shape == tuple(ref.shape) and out.numpy().dtype == np.float64
    w = R.standard_normal(tuple(ref.shape))
    (out * tg.Tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    for i, (t, p) in enumerate(zip(ts, ps)):
        if p.grad is not None:
            np.testing.assert_allclose(t.grad.numpy(), p.grad.numpy(), atol=atol, rtol=rtol, err_msg=f"grad {i}")


# ================================================================ Module attribute rules

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.register_buffer("steps", tg.zeros(2))


def test_assigning_a_tensor_to_a_parameter_name_raises_as_torch():
    m = nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"cannot assign 'torch.FloatTensor' as parameter 'weight' "
                                        r"\(torch.nn.Parameter or None expected\)"):
        m.weight = tg.zeros(2, 3)
    with pytest.raises(TypeError, match=r"cannot assign 'torch.DoubleTensor' as parameter 'weight'"):
        m.weight = tg.zeros(2, 3, dtype="float64")
    with pytest.raises(TypeError, match=r"cannot assign 'int' as parameter 'bias'"):
        m.bias = 3
    with pytest.raises(TypeError, match=r"cannot assign 'torch.FloatTensor' as parameter 'weight'"):
        torch.nn.Linear(3, 2).weight = torch.zeros(2, 3)  # the message we copy
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert list(m.state_dict()) == ["weight", "bias"]


def test_assigning_none_keeps_the_parameter_name_registered():
    m = nn.Linear(3, 2)
    m.bias = None
    assert "bias" in m._parameters and m.bias is None
    assert list(m.state_dict()) == ["weight"] and [n for n, _ in m.named_parameters()] == ["weight"]
    m.bias = nn.Parameter(tg.zeros(2))
    assert list(m.state_dict()) == ["weight", "bias"]


def test_buffer_and_submodule_assignment_rules():
    m = Net()
    new = tg.ones(2)
    m.steps = new  # a Tensor replaces the buffer, as torch
    assert m.steps is new and m.state_dict()["steps"].tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match=r"cannot assign 'int' as buffer 'steps' \(torch.nn.Buffer, torch.Tensor or None"):
        m.steps = 3
    with pytest.raises(TypeError, match=r"cannot assign 'int' as child module 'fc' \(torch.nn.Module or None expected\)"):
        m.fc = 3
    m.fc = None
    assert "fc" in m._modules and list(m.state_dict()) == ["steps"]
    m.fc = nn.Linear(1, 1)  # a Module may replace the slot again
    assert list(m.state_dict()) == ["steps", "fc.weight", "fc.bias"]  # own buffers before children, as torch
    m.fc = nn.Parameter(tg.zeros(1))  # a Parameter takes over a module's name (as torch)
    assert "fc" not in m._modules and list(m.state_dict()) == ["fc", "steps"]
    with pytest.raises(TypeError, match="cannot assign 'torch.FloatTensor' object to parameter 'p'"):
        m.register_parameter("p", tg.zeros(1))
    with pytest.raises(KeyError, match="attribute 'steps' already exists"):
        m.register_parameter("steps", nn.Parameter(tg.zeros(1)))
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", tg.zeros(1))


def test_register_module_get_submodule_get_parameter():
    outer = nn.Module()
    outer.register_module("enc", nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    assert outer.get_submodule("enc.0") is outer.enc[0]
    assert outer.get_submodule("") is outer
    assert outer.get_parameter("enc.0.weight") is outer.enc[0].weight
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        outer.get_submodule("enc.nope")
    with pytest.raises(AttributeError, match="has no parameter `nope`"):
        outer.get_parameter("enc.0.nope")
    with pytest.raises(TypeError, match="is not a Module subclass"):
        outer.register_module("x", 3)
    n = Net()
    assert n.get_buffer("steps") is n.steps


def test_named_parameters_prefix_recurse_remove_duplicate_as_torch():
    def build(m):
        torch.manual_seed(0)
        shared = m.Linear(2, 2)
        return m.Sequential(shared, m.ReLU(), shared, m.Linear(2, 1))
    ours, theirs = build(nn), build(torch.nn)
    for kw in [dict(), dict(prefix="model"), dict(recurse=False), dict(remove_duplicate=False),
               dict(prefix="m", remove_duplicate=False)]:
        assert [n for n, _ in ours.named_parameters(**kw)] == [n for n, _ in theirs.named_parameters(**kw)], kw
    assert [n for n, _ in ours.named_modules(prefix="x")] == [n for n, _ in theirs.named_modules(prefix="x")]
    assert ([n for n, _ in ours.named_modules(remove_duplicate=False)]
            == [n for n, _ in theirs.named_modules(remove_duplicate=False)])
    assert list(ours.state_dict()) == list(theirs.state_dict())  # the shared layer under both names, as torch


def test_state_dict_prefix_keep_vars_destination():
    m = Net()
    sd = m.state_dict(prefix="net.")
    assert list(sd) == ["net.steps", "net.fc.weight", "net.fc.bias"]
    assert isinstance(sd["net.fc.weight"], np.ndarray) and np.shares_memory(sd["net.fc.weight"], m.fc.weight.numpy())
    kv = m.state_dict(keep_vars=True)
    assert kv["fc.weight"] is m.fc.weight and kv["steps"] is m.steps
    dest = {"other": 1}
    assert m.state_dict(destination=dest) is dest and list(dest) == ["other", "steps", "fc.weight", "fc.bias"]


def test_load_state_dict_copies_in_place_and_the_optimizer_keeps_working():
    m = nn.Linear(3, 2)
    opt = tg.optim.SGD(m.parameters(), lr=0.1)
    w_obj, w_arr = m.weight, m.weight.numpy()
    src = {"weight": np.arange(6.0).reshape(2, 3), "bias": torch.tensor([1.0, 2.0], dtype=torch.float64)}
    m.load_state_dict(src)
    assert m.weight is w_obj and m.weight.numpy() is w_arr and w_arr.dtype == np.float32
    np.testing.assert_array_equal(m.weight.numpy(), np.arange(6.0).reshape(2, 3))
    m(tg.ones(1, 3)).sum().backward()
    opt.step()  # the optimizer holds the same objects: the loaded values are what it updates
    np.testing.assert_allclose(m.weight.numpy(), np.arange(6.0).reshape(2, 3) - 0.1)


def test_load_state_dict_converts_dtype_as_torch():
    ours, theirs = nn.Module(), torch.nn.Module()
    ours.register_buffer("b", tg.zeros(3, dtype="int64"))
    theirs.register_buffer("b", torch.zeros(3, dtype=torch.long))
    vals = np.array([1.7, -2.2, 3.9])
    ours.load_state_dict({"b": vals})
    theirs.load_state_dict({"b": torch.tensor(vals)})
    assert ours.b.numpy().dtype == np.int64
    np.testing.assert_array_equal(ours.b.numpy(), theirs.b.numpy())


def test_load_state_dict_reports_every_problem_before_copying_anything():
    m = Net()
    before = {k: v.copy() for k, v in m.state_dict().items()}
    bad = {"fc.weight": np.ones((2, 3)), "fc.bias": np.ones(5), "extra": np.ones(1)}  # steps missing
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(bad)
    msg = str(e.value)
    assert "Missing key(s) in state_dict: \"steps\"" in msg
    assert "Unexpected key(s) in state_dict: \"extra\"" in msg
    assert "size mismatch for fc.bias: copying a param with shape (5,) from checkpoint, the shape in current model is (2,)" in msg
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # fc.weight was fine, but was not copied either
    with pytest.raises(RuntimeError, match="size mismatch for fc.bias"):  # shapes are checked with strict=False too
        m.load_state_dict(bad, strict=False)
    res = m.load_state_dict({"fc.weight": np.ones((2, 3)), "extra": 1}, strict=False)
    assert res.missing_keys == ["steps", "fc.bias"] and res.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(m.fc.weight.numpy(), np.ones((2, 3)))


def test_zero_grad_half_and_extra_repr():
    m = nn.Linear(2, 2)
    m(tg.ones(1, 2)).sum().backward()
    m.zero_grad(set_to_none=False)
    assert m.weight.grad is not None and not m.weight.grad.numpy().any()
    m.zero_grad()
    assert m.weight.grad is None
    assert m.half().weight.numpy().dtype == np.float16
    assert repr(m) == "Linear(in_features=2, out_features=2, bias=True)"


# ================================================================ lazy aliases

def test_nn_sequence_layers_are_the_models_classes():
    import tinygrad_seq.models as models
    for name in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "MultiheadAttention", "Transformer",
                 "TransformerEncoder", "TransformerEncoderLayer", "TransformerDecoder", "TransformerDecoderLayer"):
        assert getattr(tg.nn, name) is getattr(models, name)
        assert name in dir(tg.nn)
    assert tg.models is models
    from tinygrad_seq.nn import LSTM, TransformerEncoderLayer  # the from-import form goes through the alias too
    assert LSTM is models.LSTM and TransformerEncoderLayer is models.TransformerEncoderLayer
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchLayer'"):
        tg.nn.NoSuchLayer


def test_lazy_imports_pull_in_no_graphviz_matplotlib_or_torch():
    code = ("import tinygrad_seq as tg; tg.nn.LSTM; tg.nn.MultiheadAttention; tg.models; tg.viz; import sys; "
            "bad = [m for m in ('graphviz', 'matplotlib', 'torch') if m in sys.modules]; assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", "import tinygrad_seq, sys; assert 'tinygrad_seq.models' not in sys.modules"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_functional_exposes_the_losses():
    for name in ("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits", "kl_div", "huber_loss", "smooth_l1_loss"):
        assert callable(getattr(F, name)) and hasattr(torch.nn.functional, name)


# ================================================================ pad_sequence

@pytest.mark.parametrize("kw", [dict(), dict(batch_first=True), dict(padding_value=-1.5, padding_side="left"),
                                dict(batch_first=True, padding_side="left")])
def test_pad_sequence_matches_torch(kw):
    from tinygrad_seq.nn.utils.rnn import pad_sequence
    arrays = [R.standard_normal((n, 3)) for n in (2, 5, 1)]
    check_fn(lambda *xs: pad_sequence(list(xs), **kw), lambda *xs: torch.nn.utils.rnn.pad_sequence(list(xs), **kw),
             *arrays)
    assert tg.nn.utils.rnn.pad_sequence is pad_sequence and callable(tg.nn.utils.clip_grad_norm_)


def test_pad_sequence_errors():
    from tinygrad_seq.nn.utils.rnn import pad_sequence
    with pytest.raises(RuntimeError, match="same rest"):
        pad_sequence([tg.zeros(2, 3), tg.zeros(2, 4)])
    with pytest.raises(ValueError, match="padding_side"):
        pad_sequence([tg.zeros(2)], padding_side="up")


# ================================================================ convolution

@pytest.mark.parametrize("kw", [dict(groups=2), dict(groups=4, stride=2, padding=1), dict(groups=2, dilation=2, bias=False),
                                dict(groups=2, padding="same")])
def test_conv2d_groups_matches_torch(kw):
    check_module(nn.Conv2d(4, 6 if kw["groups"] == 2 else 8, 3, **kw),
                 torch.nn.Conv2d(4, 6 if kw["groups"] == 2 else 8, 3, **kw), R.standard_normal((2, 4, 7, 6)))


def test_conv1d_depthwise_matches_torch():
    check_module(nn.Conv1d(3, 6, 3, groups=3, padding=2), torch.nn.Conv1d(3, 6, 3, groups=3, padding=2),
                 R.standard_normal((2, 3, 9)))


def test_conv_groups_functional_matches_torch():
    check_fn(lambda x, w, b: F.conv2d(x, w, b, groups=3, stride=(1, 2)),
             lambda x, w, b: torch.nn.functional.conv2d(x, w, b, groups=3, stride=(1, 2)),
             R.standard_normal((2, 6, 5, 6)), R.standard_normal((9, 2, 2, 3)), R.standard_normal(9))
    check_fn(lambda x, w: F.conv1d(input=x, weight=w, groups=2), lambda x, w: torch.nn.functional.conv1d(x, w, groups=2),
             R.standard_normal((4, 6)), R.standard_normal((2, 2, 3)))  # unbatched


def test_conv_groups_gradcheck():
    x = tg.Tensor(R.standard_normal((1, 4, 5, 5)), requires_grad=True)
    w = tg.Tensor(R.standard_normal((4, 2, 2, 2)), requires_grad=True)
    assert tg.gradcheck(lambda x, w: F.conv2d(x, w, groups=2, stride=2, padding=1), [x, w])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("kw", [dict(padding=1), dict(padding=(2, 1), stride=2), dict(padding="same", dilation=(1, 2)),
                                dict(padding=2, groups=2)])
def test_conv2d_padding_modes_match_torch(mode, kw):
    check_module(nn.Conv2d(4, 4, 3, padding_mode=mode, **kw), torch.nn.Conv2d(4, 4, 3, padding_mode=mode, **kw),
                 R.standard_normal((2, 4, 6, 5)))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own performance note
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "zeros"])
def test_conv1d_padding_modes_match_torch(mode):
    check_module(nn.Conv1d(2, 3, 4, padding="same", padding_mode=mode),
                 torch.nn.Conv1d(2, 3, 4, padding="same", padding_mode=mode), R.standard_normal((2, 2, 7)))
    check_module(nn.Conv1d(2, 3, 3, padding=3, padding_mode=mode), torch.nn.Conv1d(2, 3, 3, padding=3, padding_mode=mode),
                 R.standard_normal((2, 7)))  # unbatched


def test_conv_argument_errors():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(4, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        nn.Conv1d(4, 4, 3, padding="same", stride=2)
    with pytest.raises(ValueError, match=r"weight shape \(4, 2, 3, 3\) with groups=2 expects 4"):
        F.conv2d(tg.zeros(1, 3, 5, 5), tg.zeros(4, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="padding_mode='reflect' needs padding"):
        nn.Conv1d(1, 1, 3, padding=3, padding_mode="reflect")(tg.zeros(1, 1, 3))
    assert repr(nn.Conv2d(4, 4, 3, groups=2, padding_mode="circular")) == repr(
        torch.nn.Conv2d(4, 4, 3, groups=2, padding_mode="circular"))


# ================================================================ pooling

POOL_CASES = [dict(kernel_size=2), dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=3, stride=2, padding=1,
              ceil_mode=True), dict(kernel_size=(2, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True),
              dict(kernel_size=2, stride=3, ceil_mode=True)]


@pytest.mark.parametrize("kw", POOL_CASES + [dict(kernel_size=3, stride=2, dilation=2, ceil_mode=True)])
def test_max_pool2d_ceil_mode_and_indices_match_torch(kw):
    x = R.standard_normal((2, 3, 7, 8))
    check_fn(lambda x: F.max_pool2d(x, **kw), lambda x: torch.nn.functional.max_pool2d(x, **kw), x)
    out, idx = F.max_pool2d(tg.Tensor(x), return_indices=True, **kw)
    ref, ridx = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    assert idx.numpy().dtype == np.int64
    np.testing.assert_array_equal(idx.numpy(), ridx.numpy())
    mo, mi = nn.MaxPool2d(return_indices=True, **kw)(tg.Tensor(x))
    np.testing.assert_array_equal(mi.numpy(), ridx.numpy())


def test_max_pool_indices_ties_and_unbatched_match_torch():
    x = np.zeros((2, 4, 4))  # all ties: the first element of each window, as torch
    _, idx = F.max_pool2d(tg.Tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)[1])


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                dict(kernel_size=4, stride=3, dilation=1, ceil_mode=True)])
def test_max_pool1d_matches_torch(kw):
    x = R.standard_normal((2, 3, 10))
    check_module(nn.MaxPool1d(**kw), torch.nn.MaxPool1d(**kw), x, copy=False)
    _, idx = F.max_pool1d(tg.Tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(idx.numpy(), torch.nn.functional.max_pool1d(torch.tensor(x), return_indices=True, **kw)[1])


@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("kw", POOL_CASES + [dict(kernel_size=3, stride=2, padding=1, divisor_override=2),
                                             dict(kernel_size=2, ceil_mode=True, stride=2, divisor_override=3)])
def test_avg_pool2d_matches_torch(kw, cip):
    check_module(nn.AvgPool2d(count_include_pad=cip, **kw), torch.nn.AvgPool2d(count_include_pad=cip, **kw),
                 R.standard_normal((2, 3, 7, 8)), copy=False)


@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                dict(kernel_size=2, stride=3, ceil_mode=True)])
def test_avg_pool1d_matches_torch(kw, cip):
    check_module(nn.AvgPool1d(count_include_pad=cip, **kw), torch.nn.AvgPool1d(count_include_pad=cip, **kw),
                 R.standard_normal((2, 3, 10)), copy=False)
    check_fn(lambda x: F.avg_pool1d(x, count_include_pad=cip, **kw),
             lambda x: torch.nn.functional.avg_pool1d(x, count_include_pad=cip, **kw), R.standard_normal((3, 11)))


@pytest.mark.parametrize("size", [1, 3, (2, 5), (None, 2), (7, 8)])
def test_adaptive_avg_pool2d_matches_torch(size):
    check_module(nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size), R.standard_normal((2, 3, 7, 8)), copy=False)


@pytest.mark.parametrize("size", [1, 3, 4, 10])
def test_adaptive_avg_pool1d_matches_torch(size):
    check_module(nn.AdaptiveAvgPool1d(size), torch.nn.AdaptiveAvgPool1d(size), R.standard_normal((2, 3, 10)), copy=False)
    check_fn(lambda x: F.adaptive_avg_pool1d(x, size), lambda x: torch.nn.functional.adaptive_avg_pool1d(x, size),
             R.standard_normal((3, 7)))


def test_pool_errors():
    with pytest.raises(ValueError, match="divisor must be a positive integer"):
        F.avg_pool2d(tg.zeros(1, 1, 4, 4), 2, divisor_override=0)
    with pytest.raises(ValueError, match="should be at most half of kernel_size"):
        F.max_pool1d(tg.zeros(1, 1, 4), 2, padding=2)


# ================================================================ embedding

def test_embedding_max_norm_renormalises_rows_in_place_as_torch():
    w = R.standard_normal((6, 4)) * 3
    idx = np.array([[0, 2, 2], [5, 1, 0]])
    for kw in [dict(max_norm=1.0), dict(max_norm=2.0, norm_type=1.0), dict(max_norm=1.5, scale_grad_by_freq=True),
               dict(max_norm=1.0, padding_idx=2)]:
        ours = nn.Embedding(6, 4, _weight=w.copy(), **kw)
        theirs = torch.nn.Embedding(6, 4, _weight=torch.tensor(w.copy()), **kw)
        out, ref = ours(tg.tensor(idx)), theirs(torch.tensor(idx))
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(ours.weight.numpy(), theirs.weight.detach().numpy(), rtol=1e-12)  # renormed in place
        g = R.standard_normal(tuple(ref.shape))
        (out * tg.Tensor(g)).sum().backward()
        (ref * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-12, err_msg=str(kw))
    assert np.linalg.norm(ours.weight.numpy()[[0, 1, 5]], axis=1).max() <= 1.0 + 1e-6


def test_embedding_scale_grad_by_freq_matches_torch():
    w = R.standard_normal((5, 3))
    idx = np.array([1, 1, 1, 4, 0, 4])
    check_fn(lambda w: F.embedding(tg.tensor(idx), w, scale_grad_by_freq=True),
             lambda w: torch.nn.functional.embedding(torch.tensor(idx), w, scale_grad_by_freq=True), w)
    check_fn(lambda w: F.embedding(tg.tensor(idx), w, padding_idx=4, scale_grad_by_freq=True),
             lambda w: torch.nn.functional.embedding(torch.tensor(idx), w, padding_idx=4, scale_grad_by_freq=True), w)


def test_embedding_from_pretrained_as_torch():
    w = R.standard_normal((4, 3))
    ours = nn.Embedding.from_pretrained(tg.Tensor(w))
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(w))
    assert not ours.weight.requires_grad and not theirs.weight.requires_grad
    np.testing.assert_array_equal(ours(tg.tensor([3, 0])).numpy(), theirs(torch.tensor([3, 0])).detach().numpy())
    thawed = nn.Embedding.from_pretrained(w, freeze=False, padding_idx=1)
    assert thawed.weight.requires_grad and thawed.padding_idx == 1
    np.testing.assert_array_equal(thawed.weight.numpy()[1], w[1])  # not zeroed, as torch
    assert repr(thawed) == repr(torch.nn.Embedding.from_pretrained(torch.tensor(w), freeze=False, padding_idx=1))
    with pytest.raises(ValueError, match="expected to be 2-dimensional"):
        nn.Embedding.from_pretrained(np.zeros(3))
    with pytest.raises(NotImplementedError, match="sparse=True"):
        nn.Embedding(3, 2, sparse=True)
    nn.Embedding(3, 2, sparse=False)


# ================================================================ activations

@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 20.0), (0.5, 3.0), (3.0, 1.0)])
def test_softplus_beta_threshold_matches_torch(beta, threshold):
    x = np.concatenate([R.standard_normal(20) * 6, [0.0, 25.0, -40.0, 1.0 / beta * threshold, 800.0]])
    check_module(nn.Softplus(beta, threshold), torch.nn.Softplus(beta, threshold), x, copy=False)
    check_fn(lambda x: F.softplus(x, beta=beta, threshold=threshold),
             lambda x: torch.nn.functional.softplus(x, beta=beta, threshold=threshold), x)
    assert repr(nn.Softplus(beta, threshold)) == repr(torch.nn.Softplus(beta, threshold))


ACTIVATIONS = [("LeakyReLU", dict()), ("LeakyReLU", dict(negative_slope=0.2)), ("ELU", dict()), ("ELU", dict(alpha=0.5)),
               ("SELU", dict()), ("SiLU", dict()), ("Mish", dict()), ("Hardtanh", dict()),
               ("Hardtanh", dict(min_val=-0.5, max_val=2.0)), ("ReLU6", dict()), ("LogSigmoid", dict()),
               ("Softsign", dict())]


@pytest.mark.parametrize("name,kw", ACTIVATIONS)
def test_activations_match_torch_including_kinks(name, kw):
    x = np.concatenate([R.standard_normal(30) * 4, [0.0, -1.0, 1.0, 6.0, -0.5, 2.0, 800.0, -800.0]])
    check_module(getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw), x, copy=False)
    assert repr(getattr(nn, name)(**kw)) == repr(getattr(torch.nn, name)(**kw))


def test_relu_accepts_inplace():
    assert repr(nn.ReLU(inplace=True)) == repr(torch.nn.ReLU(inplace=True)) and repr(nn.ReLU()) == "ReLU()"
    x = tg.Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    nn.ReLU(inplace=True)(x * 1.0).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0]


def test_softmax2d_matches_torch():
    check_module(nn.Softmax2d(), torch.nn.Softmax2d(), R.standard_normal((2, 3, 4, 5)), copy=False)


@pytest.mark.parametrize("cls,shape", [("Dropout1d", (4, 6, 50)), ("Dropout2d", (4, 6, 5, 10))])
def test_channel_dropout_zeroes_whole_channels(cls, shape):
    tg.manual_seed(0)
    m = getattr(nn, cls)(p=0.5)
    x = tg.Tensor(np.ones(shape), requires_grad=True)
    y = m(x).numpy()
    per_channel = y.reshape(shape[0], shape[1], -1)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert np.all(per_channel.min(-1) == per_channel.max(-1))  # each channel kept or dropped whole
    assert 0 < (per_channel[..., 0] == 0).sum() < shape[0] * shape[1]
    assert m.eval()(x) is x
    with pytest.raises(ValueError, match="probability has to be between 0 and 1"):
        getattr(nn, cls)(p=1.5)


# ================================================================ MultiheadAttention add_bias_kv / add_zero_attn

MHA_CASES = [dict(add_bias_kv=True), dict(add_zero_attn=True), dict(add_bias_kv=True, add_zero_attn=True),
             dict(add_bias_kv=True, add_zero_attn=True, batch_first=True), dict(add_bias_kv=True, kdim=3, vdim=5),
             dict(add_zero_attn=True, bias=False)]
MASKS = ["none", "bool_attn", "float_attn", "key_padding", "both", "causal"]


@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("kw", MHA_CASES)
def test_mha_bias_kv_and_zero_attn_match_torch(kw, masks):
    E, h, L, S, N = 6, 2, 4, 5, 3
    ours, theirs = nn.MultiheadAttention(E, h, **kw), torch.nn.MultiheadAttention(E, h, **kw)
    copy_weights(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    bf = kw.get("batch_first", False)
    shape = (lambda n, t, e: (n, t, e)) if bf else (lambda n, t, e: (t, n, e))
    arrays = [R.standard_normal(shape(N, L, E)), R.standard_normal(shape(N, S, kw.get("kdim", E))),
              R.standard_normal(shape(N, S, kw.get("vdim", E)))]
    mk = {}
    if masks in ("bool_attn", "both"):
        mk["attn_mask"] = R.random((L, S)) < 0.3
    if masks == "float_attn":
        mk["attn_mask"] = R.standard_normal((N * h, L, S))
    if masks in ("key_padding", "both"):
        kp = np.zeros((N, S), bool)
        kp[0, -2:] = kp[2, :] = True  # batch 2: every real key blocked, only the bias / zero key remains
        mk["key_padding_mask"] = kp
    if masks == "causal":
        mk = dict(attn_mask=np.triu(np.ones((L, S), bool), 1), is_causal=True)
    ts = [tg.Tensor(a.copy(), requires_grad=True) for a in arrays]
    ps = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    out, w = ours(*ts, **{k: v for k, v in mk.items()})
    ref, rw = theirs(*ps, **{k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in mk.items()})
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=1e-10, rtol=1e-8)
    np.testing.assert_allclose(w.numpy(), rw.detach().numpy(), atol=1e-10, rtol=1e-8)
    g = R.standard_normal(tuple(ref.shape))
    ((out * tg.Tensor(g)).sum() + (w * w).sum()).backward()
    ((ref * torch.tensor(g)).sum() + (rw * rw).sum()).backward()
    for i, (t, p) in enumerate(zip(ts, ps)):
        np.testing.assert_allclose(t.grad.numpy(), p.grad.numpy(), atol=1e-10, rtol=1e-8, err_msg=f"input {i}")
    tp = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), atol=1e-10, rtol=1e-8, err_msg=name)


def test_mha_bias_kv_parameters_as_torch():
    m = nn.MultiheadAttention(8, 2, add_bias_kv=True)
    assert m.bias_k.shape == (1, 1, 8) and m.bias_v.shape == (1, 1, 8)
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in torch.nn.MultiheadAttention(
        8, 2, add_bias_kv=True).named_parameters()]
    assert nn.MultiheadAttention(8, 2).bias_k is None
    x = tg.Tensor(R.standard_normal((3, 8)).astype(np.float32))  # unbatched (float32, as the module)
    out, w = m(x, x, x)
    assert out.shape == (3, 8) and w.shape == (3, 4)


def test_functional_first_argument_is_named_input_as_torch():
    x = R.standard_normal((2, 3, 6))
    for name, kw in [("relu", {}), ("gelu", {}), ("tanh", {}), ("sigmoid", {}), ("softmax", dict(dim=1)),
                     ("log_softmax", dict(dim=-1)), ("softplus", dict(beta=2.0)), ("leaky_relu", {}), ("elu", {}),
                     ("silu", {}), ("hardtanh", {}), ("dropout", dict(training=False)),
                     ("layer_norm", dict(normalized_shape=(6,))), ("max_pool1d", dict(kernel_size=2)),
                     ("avg_pool1d", dict(kernel_size=2)), ("adaptive_avg_pool1d", dict(output_size=2))]:
        ours = getattr(F, name)(input=tg.Tensor(x), **kw)
        ref = getattr(torch.nn.functional, name)(input=torch.tensor(x), **kw)
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# ================================================================ batch norm

@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (5, 3)), ("BatchNorm1d", (4, 3, 6)), ("BatchNorm2d", (3, 3, 4, 5))])
@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.3, eps=1e-3), dict(momentum=None), dict(affine=False),
                                dict(track_running_stats=False), dict(bias=False)])
def test_batch_norm_train_and_eval_match_torch(cls, shape, kw):
    ours, theirs = getattr(nn, cls)(3, **kw), getattr(torch.nn, cls)(3, **kw)
    if kw.get("affine", True):
        ours.weight.numpy()[...] = R.standard_normal(3)
    if ours.bias is not None:
        ours.bias.numpy()[...] = R.standard_normal(3)
    copy_weights(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for _ in range(3):  # training steps move the running statistics
        check_module(ours, theirs, R.standard_normal(shape) * 2 + 1, copy=False)
        ours.zero_grad(), theirs.zero_grad()
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-10, err_msg=k)
    ours.eval(), theirs.eval()
    check_module(ours, theirs, R.standard_normal(shape), copy=False)
    assert repr(ours) == repr(theirs)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(tg.zeros(3, 4, 5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(tg.zeros(1, 3))


@pytest.mark.parametrize("name,args,kw", [
    ("MaxPool1d", (3,), dict(stride=2, ceil_mode=True)), ("MaxPool2d", (2,), dict(return_indices=True)),
    ("AvgPool1d", (3,), dict()), ("AvgPool2d", (3,), dict(divisor_override=2, ceil_mode=True)),
    ("AdaptiveAvgPool1d", (3,), {}), ("AdaptiveAvgPool2d", ((2, None),), {}), ("Dropout1d", (0.2,), {}),
    ("Dropout2d", (), {}), ("Softmax2d", (), {}), ("Dropout", (0.1,), dict(inplace=True)),
    ("Embedding", (5, 3), dict(max_norm=1.0, scale_grad_by_freq=True, norm_type=1.0)),
    ("Conv1d", (2, 4, 3), dict(groups=2, padding_mode="reflect", padding=1)),
    ("BatchNorm2d", (3,), dict(momentum=None, affine=False))])
def test_new_module_reprs_equal_torch(name, args, kw):
    assert repr(getattr(nn, name)(*args, **kw)) == repr(getattr(torch.nn, name)(*args, **kw))


def test_forward_hooks_as_torch():
    def run(m):
        torch.manual_seed(0) if m is torch.nn else tg.manual_seed(0)
        net = m.Sequential(m.Linear(2, 3), m.ReLU(), m.Linear(3, 1))
        seen = []
        h1 = net[1].register_forward_hook(lambda mod, args, out: seen.append((type(mod).__name__, tuple(out.shape))))
        h2 = net[2].register_forward_pre_hook(lambda mod, args: (args[0] * 0,))  # replaces the input
        h3 = net[2].register_forward_hook(lambda mod, args, out: out + 1)  # replaces the output
        x = np.ones((4, 2), np.float32)
        out = net(tg.Tensor(x) if m is nn else torch.tensor(x))
        bias = net[2].bias.numpy() if m is nn else net[2].bias.detach().numpy()
        first = (np.asarray(out.detach().numpy() if m is torch.nn else out.numpy()), bias)
        h1.remove(), h2.remove(), h3.remove()
        out2 = net(tg.Tensor(x) if m is nn else torch.tensor(x))
        return seen, first, tuple(out2.shape)
    (seen, (out, bias), shape2), (tseen, _, tshape2) = run(nn), run(torch.nn)
    assert seen == tseen == [("ReLU", (4, 3))] and shape2 == tshape2
    np.testing.assert_allclose(out, np.broadcast_to(bias + 1, (4, 1)))  # zeroed input, then +1


@pytest.mark.parametrize("kw", [dict(), dict(is_causal=True), dict(scale=0.3)])
def test_functional_scaled_dot_product_attention_matches_torch(kw):
    q, k, v = R.standard_normal((2, 3, 4, 5)), R.standard_normal((2, 3, 4, 5)), R.standard_normal((2, 3, 4, 6))
    check_fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw),
             lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, **kw), q, k, v)
    mask = R.random((4, 4)) < 0.7
    mask[:, 0] = True
    check_fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
             lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(mask)),
             q, k, v)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        F.nope
