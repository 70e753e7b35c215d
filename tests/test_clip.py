"""clip_grad_norm_ / clip_grad_value_ against torch.nn.utils."""
import math

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.nn import Parameter
from tinygrad_seq.nn.utils import clip_grad_norm_, clip_grad_value_

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def _pair(torch, scale=1.0, dtype=np.float64, seed=0):
    r = np.random.default_rng(seed)
    grads = [(scale * r.standard_normal(s)).astype(dtype) for s in SHAPES]
    ours, theirs = [], []
    for g in grads:
        p = Parameter(np.zeros(g.shape, dtype))
        p.grad = tg.Tensor(g)
        ours.append(p)
        q = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
        q.grad = torch.from_numpy(g.copy())
        theirs.append(q)
    return ours, theirs, grads


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    ours, theirs, grads = _pair(torch)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, tg.Tensor) and total.dtype == np.float64
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-12)
    for p, q, g in zip(ours, theirs, grads):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12, atol=1e-15)
    new_total = np.linalg.norm(np.concatenate([p.grad.numpy().ravel() for p in ours]), ord=norm_type)
    assert new_total <= max_norm * (1 + 1e-9)
    if max_norm > 1e2:  # nothing to clip
        for p, g in zip(ours, grads):
            np.testing.assert_array_equal(p.grad.numpy(), g)


def test_clip_grad_norm_does_not_write_into_grad_arrays():
    torch = pytest.importorskip("torch")
    ours, _, grads = _pair(torch, scale=10.0)
    arrays = [p.grad.numpy() for p in ours]
    copies = [a.copy() for a in arrays]
    clip_grad_norm_(ours, 1.0)
    for p, a, c in zip(ours, arrays, copies):
        np.testing.assert_array_equal(a, c)  # the old array (maybe shared) is untouched
        assert p.grad.numpy() is not a


def test_clip_grad_norm_float32_and_single_tensor():
    torch = pytest.importorskip("torch")
    ours, theirs, _ = _pair(torch, scale=5.0, dtype=np.float32)
    total = clip_grad_norm_(ours[0], 1.0)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs[0], 1.0)
    assert total.dtype == np.float32 and ours[0].grad.dtype == np.float32
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-6)
    np.testing.assert_allclose(ours[0].grad.numpy(), theirs[0].grad.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(ours[1].grad.numpy(), theirs[1].grad.numpy())  # not passed: unchanged


def test_clip_grad_norm_nonfinite():
    p = Parameter(np.zeros(3))
    p.grad = tg.Tensor(np.array([1.0, np.inf, 2.0]))
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad.numpy(), [1.0, np.inf, 2.0])
    total = clip_grad_norm_([p], 1.0)  # like torch: scaled by 0 -> nan where inf, no warning
    assert total.item() == np.inf
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, np.nan, 0.0])


def test_clip_grad_norm_skips_missing_grads_and_empty():
    a, b = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    a.grad = tg.Tensor(np.array([3.0, 4.0]))
    total = clip_grad_norm_([a, b], 1.0)
    np.testing.assert_allclose(total.item(), 5.0)
    np.testing.assert_allclose(a.grad.numpy(), np.array([3.0, 4.0]) / (5.0 + 1e-6))
    assert b.grad is None
    assert clip_grad_norm_([b], 1.0).item() == 0.0


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 10.0])
def test_clip_grad_value_matches_torch(clip_value):
    torch = pytest.importorskip("torch")
    ours, theirs, grads = _pair(torch)
    arrays = [p.grad.numpy() for p in ours]
    clip_grad_value_(ours, clip_value)
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    for p, q, a, g in zip(ours, theirs, arrays, grads):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
        np.testing.assert_array_equal(a, g)


def test_bad_arguments():
    p = Parameter(np.zeros(2))
    p.grad = tg.Tensor(np.ones(2))
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([p], -1.0)
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_([p], -0.1)
    with pytest.raises(TypeError, match="parameters"):
        clip_grad_norm_([np.ones(2)], 1.0)
    np.testing.assert_array_equal(p.grad.numpy(), np.ones(2))


def test_clip_inside_training_step():
    """Gradients from backward are clipped before the optimizer step (the usual RNN training loop)."""
    w = Parameter(np.array([3.0, -4.0]))
    ((w * w).sum() * 10.0).backward()
    total = clip_grad_norm_([w], 1.0)
    np.testing.assert_allclose(total.item(), 100.0)
    tg.optim.SGD([w], lr=1.0).step()
    np.testing.assert_allclose(w.numpy(), np.array([3.0, -4.0]) * (1 - 20.0 / (100.0 + 1e-6)))  # grad = 20 w
