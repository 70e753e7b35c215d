"""tg.nn layers, containers and init: against PyTorch with copied weights (float64), the Module API
(names, state_dict round trips, load errors, dtype, train/eval, repr) and init statistics."""
import math

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq import nn
from tinygrad_seq.nn import init

R = np.random.default_rng(2)


def to_torch(module, torch_module):
    """Copy a (float64) tg module's state into an equivalent torch module, converted to float64."""
    torch = pytest.importorskip("torch")
    torch_module.double()
    torch_module.load_state_dict({k: torch.tensor(v) for k, v in module.state_dict().items()})
    return torch_module


def check_layer(layer, torch_layer, x: np.ndarray, atol=1e-10, x_grad=True):
    """Forward and every gradient (input and parameters) of `layer` vs `torch_layer` after copying weights."""
    torch = pytest.importorskip("torch")
    layer.to(np.float64)
    to_torch(layer, torch_layer)
    xt = tg.Tensor(x.copy(), requires_grad=x_grad)
    xp = torch.tensor(x.copy(), requires_grad=x_grad)
    out, ref = layer(xt), torch_layer(xp)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=atol)
    w = np.random.default_rng(0).standard_normal(ref.shape)
    (out * tg.Tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    if x_grad:
        np.testing.assert_allclose(xt.grad.numpy(), xp.grad.numpy(), atol=atol)
    theirs = dict(torch_layer.named_parameters())
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs[name].grad.numpy(), atol=atol, err_msg=name)


# ---------------------------------------------------------------- layers vs PyTorch

def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    check_layer(nn.Linear(4, 3), torch.nn.Linear(4, 3), R.standard_normal((2, 5, 4)))
    check_layer(nn.Linear(4, 3, bias=False), torch.nn.Linear(4, 3, bias=False), R.standard_normal((5, 4)))


def test_embedding_matches_torch_and_padding_row():
    torch = pytest.importorskip("torch")
    emb = nn.Embedding(6, 3, padding_idx=-2)
    assert emb.padding_idx == 4 and np.all(emb.weight.numpy()[4] == 0)
    idx = np.array([[0, 4, 5], [4, 4, 1]])
    emb.to(np.float64)
    ref = to_torch(emb, torch.nn.Embedding(6, 3, padding_idx=4))
    out, r = emb(idx), ref(torch.tensor(idx))
    np.testing.assert_allclose(out.numpy(), r.detach().numpy())
    w = R.standard_normal(out.shape)
    (out * tg.Tensor(w)).sum().backward()
    (r * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(emb.weight.grad.numpy(), ref.weight.grad.numpy())
    assert np.all(emb.weight.grad.numpy()[4] == 0)


@pytest.mark.parametrize("shape, affine, bias", [((5,), True, True), ((3, 5), True, True), ((5,), False, True),
                                                 ((5,), True, False)])
def test_layer_norm_matches_torch(shape, affine, bias):
    torch = pytest.importorskip("torch")
    ln = nn.LayerNorm(shape, eps=1e-4, elementwise_affine=affine, bias=bias)
    for p in ln.parameters():  # non-trivial affine parameters
        p.numpy()[...] = R.standard_normal(p.shape)
    check_layer(ln, torch.nn.LayerNorm(shape, eps=1e-4, elementwise_affine=affine, bias=bias),
                R.standard_normal((2, 4) + shape) * 2 + 1)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(padding="same", dilation=2),
                                dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1), bias=False)])
def test_conv2d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    check_layer(nn.Conv2d(3, 4, (3, 2), **kw), torch.nn.Conv2d(3, 4, (3, 2), **kw), R.standard_normal((2, 3, 8, 7)))


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=2, dilation=2), dict(padding="same")])
def test_conv1d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    check_layer(nn.Conv1d(3, 5, 3, **kw), torch.nn.Conv1d(3, 5, 3, **kw), R.standard_normal((2, 3, 10)))


@pytest.mark.parametrize("make", [
    lambda m: m.MaxPool2d(2), lambda m: m.MaxPool2d(3, stride=2, padding=1), lambda m: m.AvgPool2d(2),
    lambda m: m.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), lambda m: m.Flatten(),
    lambda m: m.Flatten(0, 2), lambda m: m.ReLU(), lambda m: m.GELU(), lambda m: m.GELU(approximate="tanh"),
    lambda m: m.Tanh(), lambda m: m.Sigmoid(), lambda m: m.Softplus(), lambda m: m.Softmax(dim=1),
    lambda m: m.LogSoftmax(dim=-1), lambda m: m.Identity(), lambda m: m.Dropout(0.4).eval()])
def test_parameterless_layers_match_torch(make):
    torch = pytest.importorskip("torch")
    check_layer(make(nn), make(torch.nn), R.standard_normal((2, 3, 6, 5)))


@pytest.mark.parametrize("name, args, kw", [
    ("MSELoss", (), {}), ("L1Loss", (), dict(reduction="sum")), ("HuberLoss", (), dict(delta=0.5)),
    ("SmoothL1Loss", (), dict(beta=0.5)), ("KLDivLoss", (), dict(reduction="batchmean", log_target=True)),
    ("BCEWithLogitsLoss", (), dict(pos_weight=[2.0, 0.5, 1.0])), ("BCELoss", (), dict(weight=[2.0, 0.5, 1.0])),
    ("CrossEntropyLoss", (), dict(weight=[1.0, 2.0, 0.5], label_smoothing=0.1, ignore_index=0)),
    ("NLLLoss", (), dict(weight=[1.0, 2.0, 0.5])), ("MultiMarginLoss", (), dict(p=2, margin=0.5, weight=[1.0, 2.0, 0.5])),
])
def test_loss_modules_match_torch(name, args, kw):
    torch = pytest.importorskip("torch")
    x = R.standard_normal((4, 3))
    index_target = name in ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss")
    y = np.array([0, 2, 1, 2]) if index_target else R.random((4, 3))
    if name == "BCELoss":
        x = 1 / (1 + np.exp(-x))
    ours = getattr(nn, name)(*args, **{k: np.asarray(v) if isinstance(v, list) else v for k, v in kw.items()})
    theirs = getattr(torch.nn, name)(*args, **{k: torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v
                                                for k, v in kw.items()})
    xt, xp = tg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    a, b = ours(xt, y), theirs(xp, torch.tensor(y))
    a.backward()
    b.backward()
    np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), xp.grad.numpy(), atol=1e-12)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # class weights are buffers, as in torch


# ---------------------------------------------------------------- Module API against PyTorch

def make_model(m):
    """The same architecture built from tg.nn or torch.nn (nested containers, shared naming rules)."""
    class Net(m.Module):
        def __init__(self):
            super().__init__()
            self.emb = m.Embedding(11, 6, padding_idx=0)
            self.blocks = m.ModuleList([m.Sequential(m.Linear(6, 6), m.GELU(), m.LayerNorm(6)) for _ in range(2)])
            self.heads = m.ModuleDict({"cls": m.Linear(6, 3), "reg": m.Linear(6, 1, bias=False)})
            self.conv = m.Conv1d(6, 4, 3, padding=1)
            self.drop = m.Dropout(0.5)

        def forward(self, idx):
            h = self.emb(idx)
            for b in self.blocks:
                h = h + b(h)
            h = self.drop(h)
            c = self.conv(h.transpose(1, 2)).transpose(1, 2)
            return self.heads["cls"](h).sum() + self.heads["reg"](h).sum() + c.sum()
    return Net()


def test_named_parameters_and_state_dict_keys_equal_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = make_model(nn), make_model(torch.nn)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]


def test_state_dict_round_trip_with_torch_and_same_outputs():
    torch = pytest.importorskip("torch")
    ours = make_model(nn).to(np.float64).eval()
    theirs = to_torch(ours, make_model(torch.nn)).eval()
    idx = R.integers(0, 11, (2, 5))
    out = ours(idx)
    ref = theirs(torch.tensor(idx))
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-10)
    out.backward()
    ref.backward()
    theirs_p = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_p[name].grad.numpy(), atol=1e-10, err_msg=name)
    # torch -> tg: a fresh tg model takes torch's tensors and reproduces the output
    back = make_model(nn).to(np.float64).eval()
    back.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert back(idx).item() == pytest.approx(out.item(), rel=1e-12)
    for k, v in back.state_dict().items():
        np.testing.assert_array_equal(v, ours.state_dict()[k])


def test_load_state_dict_reports_every_problem_and_changes_nothing():
    model = make_model(nn)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    sd = {k: np.zeros_like(v) for k, v in before.items()}
    del sd["emb.weight"], sd["heads.reg.weight"]
    sd["blocks.0.0.weight"] = np.zeros((5, 6), np.float32)
    sd["conv.bias"] = np.zeros(7, np.float32)
    sd["extra.weight"] = np.zeros(2)
    with pytest.raises(RuntimeError) as e:
        model.load_state_dict(sd)
    msg = str(e.value)
    for key in ("emb.weight", "heads.reg.weight", "blocks.0.0.weight", "conv.bias", "extra.weight"):
        assert key in msg
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    sd = {k: np.zeros_like(v) for k, v in before.items() if k != "emb.weight"}
    result = model.load_state_dict(dict(sd, extra=np.zeros(1)), strict=False)
    assert result.missing_keys == ["emb.weight"] and result.unexpected_keys == ["extra"]
    assert np.all(model.heads["cls"].weight.numpy() == 0) and np.any(model.emb.weight.numpy() != 0)


def test_to_float64_and_dtype_argument():
    model = make_model(nn)
    assert all(p.dtype == np.float32 for p in model.parameters())
    model.to(np.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model(np.array([[1, 2, 3]])).dtype == np.float64
    for layer in (nn.Linear(2, 3, dtype=np.float64), nn.Embedding(4, 2, dtype=np.float64),
                  nn.LayerNorm(3, dtype=np.float64), nn.Conv1d(2, 2, 2, dtype=np.float64),
                  nn.Conv2d(2, 2, 2, dtype=np.float64)):
        assert all(p.dtype == np.float64 for p in layer.parameters()), layer


def test_train_eval_switches_dropout():
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5))
    x = tg.randn(16, 8)
    model.eval()
    assert not model[1].training
    np.testing.assert_array_equal(model(x).numpy(), model[0](x).numpy())
    model.train()
    assert all(m.training for m in model.modules())
    y, full = model(x).numpy(), model[0](x).numpy()
    dropped = y == 0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(y[~dropped], 2 * full[~dropped], rtol=1e-6)


def test_repr_equals_torch():
    torch = pytest.importorskip("torch")

    def build(m):
        return m.Sequential(m.Conv2d(3, 8, 3, padding=1), m.ReLU(), m.MaxPool2d(2), m.Conv2d(8, 8, 3, stride=2, bias=False),
                            m.AvgPool2d(2), m.Flatten(), m.Linear(8, 4), m.LayerNorm(4), m.GELU(approximate="tanh"),
                            m.Dropout(0.1), m.Embedding(5, 4, padding_idx=1), m.Conv1d(4, 4, 3, padding="same", dilation=2),
                            m.Softmax(dim=1), m.LogSoftmax(dim=-1), m.Tanh(), m.Sigmoid(), m.Identity(),
                            m.ModuleList([m.Linear(2, 2)]), m.ModuleDict({"a": m.LayerNorm((2, 3), elementwise_affine=False)}),
                            m.MSELoss(), m.CrossEntropyLoss())
    assert repr(build(nn)) == repr(build(torch.nn))


# ---------------------------------------------------------------- containers

def test_sequential_indexing_len_iteration_append():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and seq[0].out_features == 4
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is seq[0]
    assert head(tg.randn(5, 3)).shape == (5, 4)
    seq.append(nn.Tanh())
    assert len(seq) == 4 and [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    with pytest.raises(IndexError):
        seq[4]
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.ReLU()))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml.append(nn.Linear(2, 3))
    ml.extend([nn.ReLU(), nn.Linear(3, 1)])
    ml += [nn.Tanh()]
    assert len(ml) == 5 and isinstance(ml[-1], nn.Tanh) and isinstance(ml[1:3], nn.ModuleList)
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    x = tg.randn(4, 2)
    for m in ml:
        x = m(x)
    assert x.shape == (4, 1)
    ml[0] = nn.Linear(2, 2, bias=False)
    assert "0.bias" not in dict(ml.named_parameters())
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2", "3", "4"]  # replaced in place, order kept
    with pytest.raises(TypeError):
        ml.append(lambda x: x)
    md = nn.ModuleDict({"a": nn.Linear(2, 2)})
    md["b"] = nn.ReLU()
    md["a"] = nn.Linear(2, 2)
    assert list(md) == ["a", "b"] and len(md) == 2 and "a" in md and list(md.keys()) == ["a", "b"]
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias"]
    del md["a"]
    assert list(md.values())[0].__class__ is nn.ReLU
    with pytest.raises(KeyError, match="no module named 'zz'"):
        md["zz"]


# ---------------------------------------------------------------- shape errors name the layer

def test_layer_shape_errors_name_layer_and_shapes():
    cases = [(nn.Linear(3, 4), tg.randn(2, 5), r"Linear\(in_features=3.*\(2, 5\)"),
             (nn.Conv2d(3, 4, 3), tg.randn(1, 2, 5, 5), r"Conv2d\(3, 4.*\(1, 2, 5, 5\)"),
             (nn.Conv1d(3, 4, 3), tg.randn(2, 3, 4, 4), r"Conv1d\(3, 4.*\(2, 3, 4, 4\)"),
             (nn.LayerNorm(4), tg.randn(2, 5), r"LayerNorm\(\(4,\).*\(2, 5\)"),
             (nn.MaxPool2d(2), tg.randn(4, 4), r"MaxPool2d\(kernel_size=2.*\(4, 4\)"),
             (nn.AvgPool2d(3), tg.randn(1, 1, 2, 2), r"AvgPool2d\(kernel_size=3.*\(1, 1, 2, 2\)"),
             (nn.Flatten(2), tg.randn(3, 4), r"Flatten\(start_dim=2.*\(3, 4\)"),
             (nn.Softmax(dim=2), tg.randn(3, 4), r"Softmax\(dim=2\).*\(3, 4\)")]
    for layer, x, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            layer(x)
    for bad in ([3], [-1]):
        with pytest.raises(IndexError, match="out of range"):
            nn.Embedding(3, 2)(np.array(bad))
    with pytest.raises(ValueError, match=r"MSELoss\(\): mse_loss: input shape \(3, 1\) and target shape \(3,\)"):
        nn.MSELoss()(tg.randn(3, 1), tg.randn(3))
    with pytest.raises(TypeError, match="integers"):
        nn.Embedding(3, 2)(tg.Tensor([1.0]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(3, 2, padding_idx=3)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


# ---------------------------------------------------------------- init

def test_default_inits_follow_pytorch_bounds():
    tg.manual_seed(0)
    lin, conv = nn.Linear(200, 300), nn.Conv2d(8, 16, 5)
    assert np.abs(lin.weight.numpy()).max() <= 1 / math.sqrt(200) and np.abs(lin.bias.numpy()).max() <= 1 / math.sqrt(200)
    assert np.abs(lin.weight.numpy()).max() > 0.95 / math.sqrt(200)
    assert np.abs(conv.weight.numpy()).max() <= 1 / math.sqrt(8 * 25) and np.abs(conv.bias.numpy()).max() <= 1 / math.sqrt(8 * 25)
    emb = nn.Embedding(1000, 50)
    assert abs(emb.weight.numpy().std() - 1) < 0.02 and abs(emb.weight.numpy().mean()) < 0.02
    ln = nn.LayerNorm(7)
    assert np.all(ln.weight.numpy() == 1) and np.all(ln.bias.numpy() == 0)


def test_xavier_and_kaiming_statistics():
    w = tg.zeros(300, 500, dtype=np.float64)
    a = math.sqrt(6 / 800) * 2.0
    assert init.xavier_uniform_(w, gain=2.0) is w
    assert np.abs(w.numpy()).max() <= a and np.abs(w.numpy()).max() > 0.99 * a
    assert abs(w.numpy().std() - a / math.sqrt(3)) < 0.01 * a
    init.xavier_normal_(w)
    assert abs(w.numpy().std() - math.sqrt(2 / 800)) < 0.01 * math.sqrt(2 / 800)
    c = tg.zeros(64, 16, 3, 3)  # fan_in = 144, fan_out = 576
    init.kaiming_uniform_(c, a=0, mode="fan_in", nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / 144)
    assert np.abs(c.numpy()).max() <= bound + 1e-7 and np.abs(c.numpy()).max() > 0.99 * bound
    init.kaiming_normal_(c, mode="fan_out", nonlinearity="relu")
    assert abs(c.numpy().std() - math.sqrt(2 / 576)) < 0.03 * math.sqrt(2 / 576)
    assert c.dtype == np.float32


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (8, 2, 3)])
def test_orthogonal(shape):
    w = tg.zeros(*shape, dtype=np.float64)
    init.orthogonal_(w, gain=1.5)
    m = w.numpy().reshape(shape[0], -1)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, 1.5 ** 2 * np.eye(gram.shape[0]), atol=1e-12)


def test_simple_inits_gain_and_reproducibility():
    torch = pytest.importorskip("torch")
    for nl, param in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
                      ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:
        assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")
    p = nn.Parameter(np.empty((3, 4), np.float32))
    data = p.numpy()
    init.constant_(p, 0.25)
    assert p.numpy() is data and np.all(p.numpy() == 0.25)
    assert np.all(init.zeros_(p).numpy() == 0) and np.all(init.ones_(p).numpy() == 1)
    np.testing.assert_array_equal(init.eye_(tg.zeros(3, 4)).numpy(), np.eye(3, 4))
    init.uniform_(p, -2, -1)
    assert p.numpy().min() >= -2 and p.numpy().max() <= -1
    tg.manual_seed(7)
    a = init.normal_(tg.zeros(5), 1.0, 0.1).numpy().copy()
    tg.manual_seed(7)
    np.testing.assert_array_equal(init.normal_(tg.zeros(5), 1.0, 0.1).numpy(), a)
    with pytest.raises(ValueError, match="fan in and fan out"):
        init.xavier_uniform_(tg.zeros(5))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(tg.zeros(2, 2), mode="fan_avg")
