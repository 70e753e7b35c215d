"""BatchNorm1d/2d/3d and F.batch_norm against PyTorch in float64: outputs, input and parameter gradients,
running statistics over several training steps, eval outputs, momentum=None, affine=False,
track_running_stats=False, state_dict keys, reprs and errors."""
import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq import nn
from tinygrad_seq.nn import functional as F

torch = pytest.importorskip("torch")
R = np.random.default_rng(12)

CASES = [
    ("BatchNorm1d", (6, 3)),
    ("BatchNorm1d", (4, 3, 5)),
    ("BatchNorm2d", (3, 3, 4, 2)),
    ("BatchNorm3d", (2, 3, 2, 3, 2)),
]


def pair(name, *args, **kwargs):
    """The same layer in both libraries, float64, with random (non-identity) affine parameters."""
    ours = getattr(nn, name)(*args, **kwargs).double()
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    if ours.weight is not None:
        ours.weight.numpy()[...] = R.uniform(0.5, 2.0, ours.weight.shape)
    if ours.bias is not None:
        ours.bias.numpy()[...] = R.standard_normal(ours.bias.shape)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return ours, theirs


def step(ours, theirs, x):
    """One forward/backward through both; asserts equal outputs and gradients (then clears them)."""
    xo = tg.Tensor(x.copy(), requires_grad=True)
    xt = torch.tensor(x.copy(), requires_grad=True)
    yo, yt = ours(xo), theirs(xt)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = R.standard_normal(x.shape)
    (yo * tg.Tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    tp = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    ours.zero_grad()
    theirs.zero_grad()


def same_state(ours, theirs):
    sd_t = theirs.state_dict()
    sd_o = ours.state_dict()
    assert list(sd_o) == list(sd_t)
    for k, v in sd_o.items():
        np.testing.assert_allclose(v, sd_t[k].numpy(), rtol=1e-12, atol=1e-14, err_msg=k)
        assert v.dtype == sd_t[k].numpy().dtype, k


# ---------------------------------------------------------------- training and eval vs PyTorch

@pytest.mark.parametrize("name,shape", CASES)
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_training_steps_then_eval_match_torch(name, shape, momentum):
    ours, theirs = pair(name, shape[1], momentum=momentum)
    for i in range(4):  # batches with different statistics, so the running averages really move
        step(ours, theirs, R.standard_normal(shape) * (1 + i) + i)
        same_state(ours, theirs)
    assert int(ours.num_batches_tracked.numpy()) == 4
    ours.eval()
    theirs.eval()
    step(ours, theirs, R.standard_normal(shape) * 3 - 1)
    same_state(ours, theirs)  # eval leaves the running statistics and the counter alone
    assert int(ours.num_batches_tracked.numpy()) == 4


@pytest.mark.parametrize("name,shape", CASES[:3])
def test_affine_false_and_bias_false_match_torch(name, shape):
    for kw in ({"affine": False}, {"bias": False}):
        ours, theirs = pair(name, shape[1], **kw)
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
        for _ in range(2):
            step(ours, theirs, R.standard_normal(shape) + 2)
        same_state(ours, theirs)
        ours.eval()
        theirs.eval()
        step(ours, theirs, R.standard_normal(shape))


@pytest.mark.parametrize("name,shape", CASES[:3])
def test_no_running_stats_uses_batch_statistics_in_eval_too(name, shape):
    ours, theirs = pair(name, shape[1], track_running_stats=False)
    assert ours.running_mean is None and ours.running_var is None and ours.num_batches_tracked is None
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
    step(ours, theirs, R.standard_normal(shape))
    ours.eval()
    theirs.eval()
    x = R.standard_normal(shape) * 2 + 5
    step(ours, theirs, x)
    # still normalised by this batch's own statistics
    y = ours(tg.Tensor(x)).numpy()
    w, b = ours.weight.numpy(), ours.bias.numpy()
    xhat = (y - b.reshape((1, -1) + (1,) * (len(shape) - 2))) / w.reshape((1, -1) + (1,) * (len(shape) - 2))
    axes = (0,) + tuple(range(2, len(shape)))
    np.testing.assert_allclose(xhat.mean(axis=axes), 0, atol=1e-12)


def test_eval_output_of_one_sample_does_not_depend_on_the_batch():
    bn = nn.BatchNorm1d(3).double()
    bn(tg.Tensor(R.standard_normal((8, 3))))
    x = R.standard_normal((5, 3))
    train_a = bn(tg.Tensor(x)).numpy()[0]
    train_b = bn(tg.Tensor(np.concatenate([x[:1], R.standard_normal((5, 3)) + 4]))).numpy()[0]
    assert not np.allclose(train_a, train_b)  # in training the first row depends on the others
    bn.eval()
    eval_a = bn(tg.Tensor(x)).numpy()[0]
    eval_b = bn(tg.Tensor(np.concatenate([x[:1], R.standard_normal((5, 3)) + 4]))).numpy()[0]
    np.testing.assert_allclose(eval_a, eval_b)
    rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
    np.testing.assert_allclose(eval_a, (x[0] - rm) / np.sqrt(rv + 1e-5))


def test_running_var_is_unbiased_and_normalisation_biased():
    x = R.standard_normal((4, 2, 3))
    bn = nn.BatchNorm1d(2, momentum=1.0).double()
    y = bn(tg.Tensor(x)).numpy()
    flat = x.transpose(1, 0, 2).reshape(2, -1)
    np.testing.assert_allclose(bn.running_mean.numpy(), flat.mean(1))
    np.testing.assert_allclose(bn.running_var.numpy(), flat.var(1, ddof=1))
    np.testing.assert_allclose(y, (x - flat.mean(1)[None, :, None]) / np.sqrt(flat.var(1)[None, :, None] + 1e-5))


def test_gradcheck_training_and_eval():
    from conftest import leaf64
    x, w, b = leaf64(R.standard_normal((3, 2, 4))), leaf64(R.uniform(0.5, 2, 2)), leaf64(R.standard_normal(2))
    assert tg.gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    rm, rv = tg.Tensor(R.standard_normal(2)), tg.Tensor(R.uniform(0.5, 2, 2))
    assert tg.gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), [x, w, b])


# ---------------------------------------------------------------- F.batch_norm vs PyTorch

@pytest.mark.parametrize("training", [True, False])
def test_functional_matches_torch_and_updates_buffers_in_place(training):
    x = R.standard_normal((5, 3, 4)) * 2 + 1
    rm, rv, w, b = R.standard_normal(3), R.uniform(0.5, 2, 3), R.uniform(0.5, 2, 3), R.standard_normal(3)
    ours = [tg.Tensor(a.copy()) for a in (rm, rv)]
    theirs = [torch.tensor(a.copy()) for a in (rm, rv)]
    keep = ours[0].numpy()
    xo, wo, bo = (tg.Tensor(a.copy(), requires_grad=True) for a in (x, w, b))
    xt, wt, bt = (torch.tensor(a.copy(), requires_grad=True) for a in (x, w, b))
    yo = F.batch_norm(xo, *ours, wo, bo, training=training, momentum=0.2, eps=1e-3)
    yt = torch.nn.functional.batch_norm(xt, *theirs, wt, bt, training=training, momentum=0.2, eps=1e-3)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10)
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), t.numpy(), rtol=1e-12)
    assert ours[0].numpy() is keep  # updated in place, as torch's buffers
    g = R.standard_normal(x.shape)
    (yo * tg.Tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    for o, t in ((xo, xt), (wo, wt), (bo, bt)):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_float32_stays_float32():
    bn = nn.BatchNorm2d(3)
    y = bn(tg.randn(2, 3, 4, 4))
    assert y.dtype == np.float32 and bn.running_var.dtype == np.float32
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()


# ---------------------------------------------------------------- module API

def test_names_state_dict_repr_and_load_from_torch():
    for kw in ({}, {"momentum": None}, {"affine": False}, {"bias": False}, {"track_running_stats": False},
               {"eps": 1e-3, "affine": False, "track_running_stats": False}):
        ours, theirs = nn.BatchNorm1d(4, **kw), torch.nn.BatchNorm1d(4, **kw)
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    theirs = torch.nn.BatchNorm2d(3).double()
    theirs(torch.randn(4, 3, 2, 2, dtype=torch.float64) * 3)
    ours = nn.BatchNorm2d(3).double()
    ours.load_state_dict(theirs.state_dict())
    same_state(ours, theirs)
    ours.eval()
    theirs.eval()
    step(ours, theirs, R.standard_normal((2, 3, 2, 2)))


def test_reset_running_stats_and_train_eval_switch():
    bn = nn.BatchNorm1d(2)
    bn(tg.randn(4, 2) * 3 + 1)
    assert int(bn.num_batches_tracked.numpy()) == 1 and not np.allclose(bn.running_mean.numpy(), 0)
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)
    assert int(bn.num_batches_tracked.numpy()) == 0
    with tg.no_grad():
        bn(tg.randn(4, 2))  # no_grad does not stop the update: only eval() does
    assert int(bn.num_batches_tracked.numpy()) == 1


def test_batchnorm_inside_sequential_trains_with_sgd():
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    opt = tg.optim.SGD(model.parameters(), lr=0.1)
    x = tg.randn(32, 3)
    y = x.sum(1, keepdim=True)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert "1.running_mean" in model.state_dict()


# ---------------------------------------------------------------- errors (as torch: type and meaning)

def test_bad_input_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4.*expected 2D or 3D input \(got 4D input"):
        nn.BatchNorm1d(4)(tg.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(4)(tg.randn(4))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input"):
        nn.BatchNorm2d(4)(tg.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"expected 5D input \(got 4D input"):
        nn.BatchNorm3d(4)(tg.randn(2, 4, 3, 3))
    with pytest.raises(RuntimeError, match=r"running_mean should contain 5 elements not 4.*\(3, 5\)"):
        nn.BatchNorm1d(4)(tg.randn(3, 5))
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input size \(1, 4\)"):
        nn.BatchNorm1d(4)(tg.randn(1, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(4)(tg.randn(1, 4, 1, 1))
    bn = nn.BatchNorm2d(4).eval()
    assert bn(tg.randn(1, 4, 1, 1)).shape == (1, 4, 1, 1)  # one value is fine in eval, as torch


def test_functional_errors():
    x = tg.randn(3, 4)
    with pytest.raises(RuntimeError, match="must be defined in evaluation mode"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="both be None or neither"):
        F.batch_norm(x, tg.zeros(4), None, training=True)
    with pytest.raises(RuntimeError, match="weight should contain 4 elements not 3"):
        F.batch_norm(x, None, None, weight=tg.ones(3), training=True)
    with pytest.raises(RuntimeError, match="running_var should contain 4 elements not 2"):
        F.batch_norm(x, tg.zeros(4), tg.ones(2), training=True)
    with pytest.raises(IndexError, match=r"channel dim 1.*\(3,\)"):
        F.batch_norm(tg.randn(3), None, None, training=True)
    with pytest.raises(TypeError, match="momentum must be a float"):
        F.batch_norm(x, tg.zeros(4), tg.ones(4), training=True, momentum=None)
    with pytest.raises(ValueError, match="device"):
        nn.BatchNorm1d(4, device="cuda")
