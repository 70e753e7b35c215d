"""Losses (tinygrad_seq.losses, re-exported by F): gradchecks, PyTorch comparisons over every option,
stability at extreme logits, and strict shape / dtype errors."""
import warnings

import numpy as np
import pytest
from test_functional import torch_check

import tinygrad_seq as tg
import tinygrad_seq.nn.functional as F

R = np.random.default_rng(1)
REDUCTIONS = ["none", "mean", "sum"]


def leaf(*shape, scale=1.0):
    return tg.Tensor(R.standard_normal(shape) * scale, requires_grad=True)


def probs(*shape):
    p = R.random(shape) + 0.1
    return p / p.sum(1, keepdims=True)


def targets(n, c, ignore=()):
    t = R.integers(0, c, n)
    t[list(ignore)] = -100
    return t


# ---------------------------------------------------------------- gradchecks (float64 finite differences)

GRADCHECKS = {
    "mse": lambda x, y: F.mse_loss(x, y),
    "l1": lambda x, y: F.l1_loss(x, y, reduction="sum"),
    "huber": lambda x, y: F.huber_loss(x, y, delta=0.7),
    "smooth_l1": lambda x, y: F.smooth_l1_loss(x, y, reduction="none", beta=0.5),
    "bce_logits": lambda x, y: F.binary_cross_entropy_with_logits(x, y.sigmoid(), pos_weight=np.array([0.5, 2.0, 1.0])),
    "kl_log_target": lambda x, y: F.kl_div(x.log_softmax(1), y.log_softmax(1), reduction="batchmean", log_target=True),
    "kl": lambda x, y: F.kl_div(x.log_softmax(1), y.softmax(1), reduction="sum"),
    "ce_prob": lambda x, y: F.cross_entropy(x, y.softmax(1), label_smoothing=0.1, weight=np.array([1.0, 2.0, 0.5])),
}


@pytest.mark.parametrize("name", list(GRADCHECKS))
def test_two_input_losses_gradcheck(name):
    x, y = leaf(4, 3), leaf(4, 3)
    y.numpy()[np.abs(x.numpy() - y.numpy()) < 0.05] += 0.3  # keep |x - y| off the kinks of l1/huber
    assert tg.gradcheck(GRADCHECKS[name], [x, y])


@pytest.mark.parametrize("kw", [dict(), dict(reduction="sum"), dict(reduction="none", label_smoothing=0.2),
                                dict(weight=np.array([0.3, 1.0, 2.0, 0.5]), label_smoothing=0.1, ignore_index=1)])
def test_cross_entropy_gradcheck(kw):
    t = np.array([0, 1, -100, 3, 1]) if "ignore_index" not in kw else np.array([0, 1, 2, 3, 1])
    assert tg.gradcheck(lambda x: F.cross_entropy(x, t, **kw), [leaf(5, 4)])


def test_cross_entropy_spatial_gradcheck():
    t = R.integers(0, 3, (2, 2, 3))
    assert tg.gradcheck(lambda x: F.cross_entropy(x, t, label_smoothing=0.1), [leaf(2, 3, 2, 3)])


def test_nll_and_multi_margin_gradcheck():
    t = targets(5, 4, ignore=[0])
    w = np.array([0.3, 1.0, 2.0, 0.5])
    assert tg.gradcheck(lambda x: F.nll_loss(x, t, weight=w), [leaf(5, 4)])
    t = R.integers(0, 4, 5)
    for p in (1, 2):
        assert tg.gradcheck(lambda x: F.multi_margin_loss(x, t, p=p, margin=0.8, weight=w), [leaf(5, 4)])


def test_bce_gradcheck_in_input_and_target():
    p = tg.Tensor(R.uniform(0.1, 0.9, (3, 4)), requires_grad=True)
    y = tg.Tensor(R.uniform(0, 1, (3, 4)), requires_grad=True)
    assert tg.gradcheck(lambda p, y: F.binary_cross_entropy(p, y, weight=np.arange(1.0, 5.0)), [p, y])


# ---------------------------------------------------------------- against PyTorch (float64)

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_indices_matches_torch(reduction, label_smoothing, weighted):
    torch = pytest.importorskip("torch")
    t = targets(7, 5, ignore=[1, 4])
    w = R.random(5) + 0.2 if weighted else None
    tw = None if w is None else torch.tensor(w)
    torch_check(lambda x: F.cross_entropy(x, t, weight=w, reduction=reduction, label_smoothing=label_smoothing),
                lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(t), weight=tw, reduction=reduction,
                                                            label_smoothing=label_smoothing),
                R.standard_normal((7, 5)) * 2)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probabilities_matches_torch(reduction, label_smoothing, weighted):
    torch = pytest.importorskip("torch")
    w = R.random(4) + 0.2 if weighted else None
    tw = None if w is None else torch.tensor(w)
    torch_check(lambda x, y: F.cross_entropy(x, y, weight=w, reduction=reduction, label_smoothing=label_smoothing),
                lambda x, y: torch.nn.functional.cross_entropy(x, y, weight=tw, reduction=reduction,
                                                               label_smoothing=label_smoothing),
                R.standard_normal((6, 4)), probs(6, 4))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_spatial_and_custom_ignore_index_match_torch(reduction):
    torch = pytest.importorskip("torch")
    t = R.integers(0, 4, (2, 3, 5))
    t[0, 1, :2] = 3
    w = R.random(4) + 0.5
    torch_check(lambda x: F.cross_entropy(x, t, weight=w, ignore_index=3, reduction=reduction, label_smoothing=0.1),
                lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(t), weight=torch.tensor(w), ignore_index=3,
                                                            reduction=reduction, label_smoothing=0.1),
                R.standard_normal((2, 4, 3, 5)))


def test_cross_entropy_unbatched_matches_torch():
    torch = pytest.importorskip("torch")
    for red in REDUCTIONS:
        torch_check(lambda x: F.cross_entropy(x, np.array(2), reduction=red),
                    lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(2), reduction=red), R.standard_normal(5))


def test_cross_entropy_all_ignored_mean_is_nan_like_torch():
    torch = pytest.importorskip("torch")
    x = R.standard_normal((3, 4))
    t = np.full(3, -100)
    ours = F.cross_entropy(tg.Tensor(x), t).item()
    ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t)).item()
    assert np.isnan(ours) and np.isnan(ref)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    t = targets(6, 4, ignore=[3])
    w = R.random(4) + 0.2
    torch_check(lambda x: F.nll_loss(x.log_softmax(1), t, weight=w, reduction=reduction),
                lambda x: torch.nn.functional.nll_loss(x.log_softmax(1), torch.tensor(t), weight=torch.tensor(w),
                                                       reduction=reduction), R.standard_normal((6, 4)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_matches_torch(reduction, weighted):
    torch = pytest.importorskip("torch")
    w = R.random(3) if weighted else None
    p = R.uniform(0.02, 0.98, (4, 3))
    p[0, 0], p[1, 1] = 0.0, 1.0  # PyTorch clamps the logs at -100
    torch_check(lambda p, y: F.binary_cross_entropy(p, y, weight=w, reduction=reduction),
                lambda p, y: torch.nn.functional.binary_cross_entropy(p, y, weight=None if w is None else torch.tensor(w),
                                                                      reduction=reduction),
                p, R.random((4, 3)), grad_of=[True, False], rtol=1e-6)  # torch's target grad is ±inf at p ∈ {0, 1}
    q = R.uniform(0.02, 0.98, (4, 3))
    torch_check(lambda p, y: F.binary_cross_entropy(p, y, weight=w, reduction=reduction),
                lambda p, y: torch.nn.functional.binary_cross_entropy(p, y, weight=None if w is None else torch.tensor(w),
                                                                      reduction=reduction), q, R.random((4, 3)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", [(False, False), (True, False), (False, True), (True, True)])
def test_bce_with_logits_matches_torch(reduction, weights):
    torch = pytest.importorskip("torch")
    w = R.random((1, 3)) if weights[0] else None
    pw = R.random(3) * 3 if weights[1] else None
    tt = (lambda a: None if a is None else torch.tensor(a))
    torch_check(lambda x, y: F.binary_cross_entropy_with_logits(x, y, weight=w, reduction=reduction, pos_weight=pw),
                lambda x, y: torch.nn.functional.binary_cross_entropy_with_logits(x, y, weight=tt(w), reduction=reduction,
                                                                                  pos_weight=tt(pw)),
                R.standard_normal((4, 3)) * 4, R.random((4, 3)))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(reduction, log_target):
    torch = pytest.importorskip("torch")
    y = probs(4, 5)
    if log_target:
        y = np.log(y)
    else:
        y[0, 1] = 0.0  # 0 · ln 0 = 0 (torch's target gradient there is NaN; ours is finite, so not compared)
    with warnings.catch_warnings():  # torch's UserWarning about reduction='mean'
        warnings.simplefilter("ignore", UserWarning)
        torch_check(lambda x, y: F.kl_div(x, y, reduction=reduction, log_target=log_target),
                    lambda x, y: torch.nn.functional.kl_div(x, y, reduction=reduction, log_target=log_target),
                    np.log(probs(4, 5)), y, grad_of=[True, log_target])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_loss_matches_torch(reduction, p):
    torch = pytest.importorskip("torch")
    t = R.integers(0, 5, 6)
    w = R.random(5) + 0.2
    torch_check(lambda x: F.multi_margin_loss(x, t, p=p, margin=0.6, weight=w, reduction=reduction),
                lambda x: torch.nn.functional.multi_margin_loss(x, torch.tensor(t), p=p, margin=0.6,
                                                                weight=torch.tensor(w), reduction=reduction),
                R.standard_normal((6, 5)))
    torch_check(lambda x: F.multi_margin_loss(x, t, p=p, reduction=reduction),
                lambda x: torch.nn.functional.multi_margin_loss(x, torch.tensor(t), p=p, reduction=reduction),
                R.standard_normal((6, 5)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"])
def test_regression_losses_match_torch(name, reduction):
    torch = pytest.importorskip("torch")
    kw = {"huber_loss": dict(delta=0.6), "smooth_l1_loss": dict(beta=0.4)}.get(name, {})
    x, y = R.standard_normal((3, 4, 2)), R.standard_normal((3, 4, 2))
    torch_check(lambda x, y: getattr(F, name)(x, y, reduction=reduction, **kw),
                lambda x, y: getattr(torch.nn.functional, name)(x, y, reduction=reduction, **kw), x, y)


def test_kl_div_target_gradient_matches_torch():
    torch = pytest.importorskip("torch")
    torch_check(lambda x, y: F.kl_div(x, y, reduction="batchmean"),
                lambda x, y: torch.nn.functional.kl_div(x, y, reduction="batchmean"), np.log(probs(3, 4)), probs(3, 4))


def test_smooth_l1_beta_zero_is_l1():
    x, y = tg.randn(5, dtype=np.float64), tg.randn(5, dtype=np.float64)
    assert F.smooth_l1_loss(x, y, beta=0.0).item() == pytest.approx(F.l1_loss(x, y).item())


# ---------------------------------------------------------------- stability at extreme logits

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_finite_at_extreme_logits_without_warnings(dtype):
    x = tg.Tensor(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype), requires_grad=True)
    t = np.array([1, 1])
    y = tg.Tensor(np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0]], dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        losses = [F.cross_entropy(x, t), F.cross_entropy(x, t, label_smoothing=0.1),
                  F.nll_loss(x.log_softmax(1), t), F.binary_cross_entropy_with_logits(x, y, pos_weight=np.full(3, 2.0, dtype)),
                  F.multi_margin_loss(x, t), F.kl_div(x.log_softmax(1), y.softmax(1), reduction="batchmean"),
                  F.binary_cross_entropy(x.sigmoid(), y)]
        for loss in losses:
            x.grad = None
            loss.backward()
            assert np.isfinite(loss.item()), loss
            assert np.all(np.isfinite(x.grad.numpy()))
    # the sample whose target logit is -1e4 below the best costs 2e4 nats
    assert F.cross_entropy(x, t, reduction="none").numpy()[0] == pytest.approx(2e4, rel=1e-6)


def test_extreme_logits_match_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]])
    y = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]])
    torch_check(lambda x, y: F.binary_cross_entropy_with_logits(x, y), torch.nn.functional.binary_cross_entropy_with_logits,
                x, y, grad_of=[True, False])
    torch_check(lambda x: F.cross_entropy(x, np.array([0, 2])),
                lambda x: torch.nn.functional.cross_entropy(x, torch.tensor([0, 2])), x)


# ---------------------------------------------------------------- bad input: clear errors, nothing broadcast

def test_regression_shape_mismatch_raises_naming_both_shapes():
    x, y = tg.randn(4, 1), tg.randn(4)
    for fn in (F.mse_loss, F.l1_loss, F.huber_loss, F.smooth_l1_loss, F.kl_div, F.binary_cross_entropy_with_logits):
        with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
            fn(x, y)
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        F.binary_cross_entropy(x.sigmoid(), y)


def test_class_loss_target_errors():
    x = tg.randn(4, 3)
    with pytest.raises(ValueError, match=r"target shape \(4,\).*got \(4, 1\)"):
        F.cross_entropy(x, np.zeros((4, 1), np.int64))
    with pytest.raises(ValueError, match="probability target shape"):
        F.cross_entropy(x, np.zeros((4, 2)))
    with pytest.raises(TypeError, match="integer class indices"):
        F.nll_loss(x, np.zeros(4))
    with pytest.raises(TypeError, match="dtype bool"):
        F.cross_entropy(x, np.zeros(4, bool))
    with pytest.raises(ValueError, match="out of bounds"):
        F.cross_entropy(x, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="out of bounds"):
        F.multi_margin_loss(x, np.array([0, 1, -1, 0]))
    with pytest.raises(ValueError, match=r"weight shape \(4,\)"):
        F.cross_entropy(x, np.array([0, 1, 2, 0]), weight=np.ones(4))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, np.array([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, np.array([0, 1, 2, 0]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="p == 1 and p == 2"):
        F.multi_margin_loss(x, np.array([0, 1, 2, 0]), p=3)


def test_dtype_and_range_errors():
    x = tg.randn(3)
    with pytest.raises(TypeError, match="target must be floating point"):
        F.mse_loss(x, np.arange(3))
    with pytest.raises(TypeError, match="input must be floating point"):
        F.mse_loss(tg.Tensor(np.arange(3)), x)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(tg.Tensor([0.5, 1.5, 0.2]), x.sigmoid())
    with pytest.raises(ValueError, match="pos_weight shape"):
        F.binary_cross_entropy_with_logits(x, x.sigmoid(), pos_weight=np.ones(4))
    with pytest.raises(ValueError, match="delta"):
        F.huber_loss(x, x, delta=0.0)
    with pytest.raises(ValueError, match="batchmean"):
        F.mse_loss(x, x, reduction="batchmean")


def test_constant_float_target_cast_to_input_dtype():
    x = tg.Tensor(np.array([0.5, 1.0]), requires_grad=True)  # float64
    loss = F.mse_loss(x, tg.Tensor([0.0, 0.0]))  # float32 target
    assert loss.dtype == np.float64
    assert loss.item() == pytest.approx(0.625)
