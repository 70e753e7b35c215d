"""Learning-rate schedulers against torch.optim.lr_scheduler: the same lr (and momentum) sequence over many
steps, get_last_lr(), state_dict()/load_state_dict() resuming mid-schedule, and torch's argument errors."""
import math

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.optim import lr_scheduler as S

torch = pytest.importorskip("torch")
TS = torch.optim.lr_scheduler


def _pair(opt="sgd", groups=2, **kw):
    """The same optimizer (two parameter groups with different lrs) in tinygrad_seq and torch."""
    lrs = [0.1, 0.02][:groups]
    ours = [{"params": [tg.nn.Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    theirs = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    if opt == "sgd":
        return tg.optim.SGD(ours, lr=0.1, momentum=0.9, **kw), torch.optim.SGD(theirs, lr=0.1, momentum=0.9, **kw)
    return tg.optim.Adam(ours, lr=0.1, **kw), torch.optim.Adam(theirs, lr=0.1, **kw)


CASES = [
    ("MultiStepLR", dict(milestones=[3, 7, 7, 12], gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.25, end_factor=0.5, total_iters=8)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.0, total_iters=10)),
    ("StepLR", dict(step_size=4, gamma=0.3)),
    ("StepLR", dict(step_size=1.0, gamma=0.95)),  # the Transformer tutorial's float step size
    ("StepLR", dict(step_size=2.5, gamma=0.5)),   # torch decays where epoch % 2.5 == 0: every 5
    ("StepLR", dict(step_size=0.75, gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),
    ("OneCycleLR", dict(max_lr=[0.5, 0.1], total_steps=30)),
    ("OneCycleLR", dict(max_lr=0.3, epochs=3, steps_per_epoch=10, anneal_strategy="linear", pct_start=0.4)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=30, three_phase=True, div_factor=10.0, final_div_factor=100.0)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=30, cycle_momentum=False)),
    ("ConstantLR", dict()),
    ("ConstantLR", dict(factor=0.5, total_iters=12)),
    ("PolynomialLR", dict(total_iters=15, power=2.0)),
    ("CosineAnnealingWarmRestarts", dict(T_0=5)),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.001)),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e + 0.01 * (e % 3))),
]


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_schedule_matches_torch(name, kw, opt):
    ours_opt, theirs_opt = _pair(opt)
    ours, theirs = getattr(S, name)(ours_opt, **kw), getattr(TS, name)(theirs_opt, **kw)
    steps = 29 if name == "OneCycleLR" else 40
    for _ in range(steps):
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12, atol=1e-15)
        for go, gt in zip(ours_opt.param_groups, theirs_opt.param_groups):
            assert go["lr"] == pytest.approx(gt["lr"], rel=1e-12, abs=1e-15)
            if opt == "sgd":
                assert go["momentum"] == pytest.approx(gt["momentum"], rel=1e-12)
            else:
                assert go["betas"][0] == pytest.approx(gt["betas"][0], rel=1e-12)
        ours_opt.step(), theirs_opt.step()
        ours.step(), theirs.step()


def test_onecycle_past_total_steps_raises():
    ours_opt, theirs_opt = _pair()
    ours = S.OneCycleLR(ours_opt, max_lr=0.1, total_steps=3)
    for _ in range(2):
        ours.step()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3"):
        ours.step(), ours.step()


def test_sequential_lr_matches_torch():
    ours_opt, theirs_opt = _pair()
    ours = S.SequentialLR(ours_opt, [S.LinearLR(ours_opt, start_factor=0.1, total_iters=4),
                                     S.ExponentialLR(ours_opt, gamma=0.8),
                                     S.MultiStepLR(ours_opt, milestones=[2, 5], gamma=0.5)], milestones=[4, 11])
    theirs = TS.SequentialLR(theirs_opt, [TS.LinearLR(theirs_opt, start_factor=0.1, total_iters=4),
                                          TS.ExponentialLR(theirs_opt, gamma=0.8),
                                          TS.MultiStepLR(theirs_opt, milestones=[2, 5], gamma=0.5)], milestones=[4, 11])
    for _ in range(25):
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
        np.testing.assert_allclose([g["lr"] for g in ours_opt.param_groups],
                                   [g["lr"] for g in theirs_opt.param_groups], rtol=1e-12)
        ours_opt.step(), theirs_opt.step()
        ours.step(), theirs.step()


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", factor=0.5, patience=2, cooldown=2, min_lr=[0.01, 0.005]),
                                dict(threshold_mode="abs", threshold=0.05, patience=1, eps=1e-3)])
def test_reduce_on_plateau_matches_torch(kw):
    ours_opt, theirs_opt = _pair()
    ours, theirs = S.ReduceLROnPlateau(ours_opt, **kw), TS.ReduceLROnPlateau(theirs_opt, **kw)
    metrics = np.random.default_rng(0).normal(size=80).cumsum() * 0.1
    for i, m in enumerate(metrics):
        metric = tg.tensor(m) if i % 2 else float(m)  # a 0-d tensor works too, as in torch
        ours.step(metric), theirs.step(float(metric))
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
        assert (ours.num_bad_epochs, ours.cooldown_counter, ours.best) == (
            theirs.num_bad_epochs, theirs.cooldown_counter, theirs.best)
    assert ours.get_last_lr() != [0.1, 0.02]  # the metrics did plateau: the test saw reductions


@pytest.mark.parametrize("make", [
    lambda o: S.MultiStepLR(o, milestones=[3, 6], gamma=0.5),
    lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=30),
    lambda o: S.SequentialLR(o, [S.ExponentialLR(o, 0.9), S.LinearLR(o, total_iters=3)], milestones=[5]),
    lambda o: S.LinearLR(o, total_iters=10),
])
def test_state_dict_resumes_the_schedule(make):
    opt_a, _ = _pair()
    a = make(opt_a)
    for _ in range(8):
        a.step()
    saved_sd, saved_groups = a.state_dict(), [dict(g, params=None) for g in opt_a.param_groups]
    seq_a = []
    for _ in range(10):
        a.step()
        seq_a.append(a.get_last_lr())
    opt_b, _ = _pair()
    b = make(opt_b)
    b.load_state_dict(saved_sd)
    for g, sg in zip(opt_b.param_groups, saved_groups):
        g.update({k: v for k, v in sg.items() if k != "params"})
    seq_b = []
    for _ in range(10):
        b.step()
        seq_b.append(b.get_last_lr())
    np.testing.assert_allclose(seq_a, seq_b, rtol=1e-12)


def test_reduce_on_plateau_state_dict():
    opt, _ = _pair()
    a = S.ReduceLROnPlateau(opt, patience=1)
    for m in (1.0, 1.0, 1.0, 0.5):
        a.step(m)
    sd = a.state_dict()
    assert "optimizer" not in sd and sd["best"] == 0.5
    opt2, _ = _pair()
    b = S.ReduceLROnPlateau(opt2)
    b.load_state_dict(sd)
    assert (b.best, b.patience, b.num_bad_epochs) == (0.5, 1, 0)


@pytest.mark.parametrize("call,match", [
    (lambda o: S.LinearLR(o, start_factor=0.0), "Starting multiplicative factor"),
    (lambda o: S.ConstantLR(o, factor=2.0), "Constant multiplicative factor"),
    (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=0), "Expected positive integer T_0"),
    (lambda o: S.LinearLR(o, end_factor=1.5), "Ending multiplicative factor"),
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), "Factor should be < 1.0"),
    (lambda o: S.ReduceLROnPlateau(o, mode="up"), "mode up is unknown"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1]), "expected 2 min_lrs, got 1"),
    (lambda o: S.OneCycleLR(o, max_lr=0.1), "You must define either total_steps"),
    (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1), "Expected float between 0 and 1"),
    (lambda o: S.OneCycleLR(o, max_lr=[0.1], total_steps=10), "max_lr must have the same length"),
    (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="exp"), "anneal_strategy"),
    (lambda o: S.SequentialLR(o, [S.ExponentialLR(o, 0.9)], milestones=[3]), "one more than the number"),
    (lambda o: S.SequentialLR(o, [S.ExponentialLR(o, 0.9), S.ReduceLROnPlateau(o)], milestones=[3]),
     "does not support `ReduceLROnPlateau`"),
])
def test_argument_errors_as_torch(call, match):
    opt, _ = _pair()
    with pytest.raises(ValueError, match=match):
        call(opt)


def test_onecycle_needs_momentum_or_betas():
    opt = tg.optim.Adagrad([tg.nn.Parameter(np.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        S.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    S.OneCycleLR(opt, max_lr=0.1, total_steps=10, cycle_momentum=False)  # fine without momentum cycling
    assert math.isclose(opt.param_groups[0]["lr"], 0.1 / 25)


def test_warm_restarts_with_explicit_fractional_epochs_matches_torch():
    ours_opt, theirs_opt = _pair()
    ours = S.CosineAnnealingWarmRestarts(ours_opt, T_0=4, T_mult=2)
    theirs = TS.CosineAnnealingWarmRestarts(theirs_opt, T_0=4, T_mult=2)
    for epoch in np.arange(0, 30, 0.25):  # the per-batch idiom: scheduler.step(epoch + i / iters)
        ours.step(float(epoch)), theirs.step(float(epoch))
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
