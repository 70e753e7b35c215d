"""models.reinforce: the score-function estimate agrees with the exact gradient of the expected loss
within sampling error, a baseline leaves it unbiased and lowers its variance, the entropy term is
exact, and the sampler draws from softmax(logits)."""
import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.models import reinforce as R

K = 5
THETA = np.array([0.3, -1.0, 0.8, 0.0, -0.4])
COST = 10.0 + np.array([1.0, -2.0, 0.5, 3.0, -1.0])  # a large common offset: where a baseline matters


def exact_gradient() -> np.ndarray:
    """∇_θ Σ_k softmax(θ)_k c_k, by the engine's own backprop through the expectation."""
    th = tg.Tensor(THETA.copy(), requires_grad=True)
    (th.softmax(-1) * tg.Tensor(COST)).sum().backward()
    return th.grad.numpy()


def per_sample_grads(n: int, baseline, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The surrogate's gradient averaged over n draws, and the n single-draw gradients (for the error)."""
    th = tg.Tensor(THETA.copy(), requires_grad=True)
    logits = th.reshape(1, K).expand(n, K)
    k = R.sample_categorical(logits, rng=np.random.default_rng(seed))
    R.reinforce_loss(logits, k, COST[k], baseline).backward()
    p = np.exp(THETA - THETA.max())
    p /= p.sum()
    single = (COST[k] - baseline)[:, None] * (np.eye(K)[k] - p)  # (L - b) ∇ log α_k, per draw
    return th.grad.numpy(), single


@pytest.mark.parametrize("baseline", [0.0, 9.0, float(np.dot(np.exp(THETA) / np.exp(THETA).sum(), COST))])
def test_estimate_matches_exact_gradient_within_sampling_error(baseline):
    est, single = per_sample_grads(40_000, baseline, seed=1)
    np.testing.assert_allclose(est, single.mean(0), rtol=1e-6, atol=1e-9)  # the graph computes the formula
    se = single.std(0, ddof=1) / np.sqrt(len(single))
    assert np.all(np.abs(est - exact_gradient()) < 4 * se + 1e-12), (est, exact_gradient(), se)


def test_baseline_reduces_variance_without_bias():
    _, none = per_sample_grads(20_000, 0.0, seed=2)
    mean_cost = float(np.dot(np.exp(THETA) / np.exp(THETA).sum(), COST))
    _, good = per_sample_grads(20_000, mean_cost, seed=2)
    assert good.var(0).sum() < 0.1 * none.var(0).sum()
    # a moving-average baseline fed with batch means converges to E[L] and gives the same reduction
    ma = R.MovingAverageBaseline(0.9)
    rng = np.random.default_rng(3)
    p = np.exp(THETA) / np.exp(THETA).sum()
    for _ in range(200):
        b = ma(COST[rng.choice(K, size=64, p=p)])
    assert abs(b - mean_cost) < 0.3
    _, ma_grads = per_sample_grads(20_000, b, seed=2)
    assert ma_grads.var(0).sum() < 0.1 * none.var(0).sum()


def test_entropy_bonus_gradient_is_exact():
    th = tg.Tensor(THETA.copy(), requires_grad=True)
    logits = th.reshape(1, K).expand(8, K)
    k = R.sample_categorical(logits, rng=np.random.default_rng(0))
    R.reinforce_loss(logits, k, np.zeros(8), 0.0, entropy_coef=0.5).backward()
    p = np.exp(THETA) / np.exp(THETA).sum()
    lp = np.log(p)
    dH = -p * (lp - (p * lp).sum())  # ∂H/∂θ_j = -p_j (log p_j + H)
    np.testing.assert_allclose(th.grad.numpy(), -0.5 * dH, rtol=1e-6, atol=1e-7)
    assert abs(R.entropy(tg.Tensor(THETA)).item() + (p * lp).sum()) < 1e-6


def test_sampler_frequencies_mask_and_errors():
    logits = tg.Tensor(np.tile(THETA, (50_000, 1)))
    k = R.sample_categorical(logits, rng=np.random.default_rng(4))
    p = np.exp(THETA) / np.exp(THETA).sum()
    freq = np.bincount(k, minlength=K) / len(k)
    assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / len(k)))
    mask = np.zeros((50_000, K), bool)
    mask[:, 2] = True
    k = R.sample_categorical(logits, mask, rng=np.random.default_rng(5))
    assert not np.any(k == 2)
    assert R.log_prob(tg.Tensor(THETA[None]), np.array([2]), mask[:1]).item() < -1e8
    with pytest.raises(ValueError, match="do not fit logits"):
        R.log_prob(tg.Tensor(THETA[None]), np.array([1, 2]))
    with pytest.raises(ValueError, match="per-sample loss of shape"):
        R.reinforce_loss(tg.Tensor(THETA[None]), np.array([1]), np.zeros(3))
    with pytest.raises(ValueError, match="decay"):
        R.MovingAverageBaseline(1.0)


def test_learned_baseline_fits_the_expected_loss_per_context():
    tg.manual_seed(0)
    rng = np.random.default_rng(6)
    base = R.LearnedBaseline(2)
    opt = tg.optim.Adam(base.parameters(), lr=0.05)
    for _ in range(300):
        f = rng.standard_normal((64, 2)).astype(np.float32)  # the layer is float32: linear does not promote (torch)
        target = 3 * f[:, 0] - f[:, 1] + 2 + rng.standard_normal(64) * 0.1
        opt.zero_grad()
        base.loss(base(tg.Tensor(f)), target).backward()
        opt.step()
    np.testing.assert_allclose(base.fc.weight.numpy()[0], [3, -1], atol=0.1)
    np.testing.assert_allclose(base.fc.bias.numpy(), [2], atol=0.1)
