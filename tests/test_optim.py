"""Optimizers and learning-rate schedules against torch.optim (float64, several steps), state_dict
round trips, dtype preservation and bad-input errors."""
import math

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.nn import Parameter

SHAPES = [(3, 4), (4,), (2, 3, 2)]

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("RMSprop", dict(lr=0.01, centered=True, eps=1e-4, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
]


def _init(dtype=np.float64, seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s).astype(dtype) for s in SHAPES]


def _grad(p: np.ndarray, k: int, i: int) -> np.ndarray:
    """A gradient that depends on the current parameter (so trajectories diverge if updates differ)."""
    noise = np.random.default_rng(1000 * k + i).standard_normal(p.shape)
    return (0.7 * p + np.sin(p) + noise).astype(p.dtype)


def _tg_run(params, opt, steps, start=0):
    for k in range(start, start + steps):
        for i, p in enumerate(params):
            p.grad = tg.Tensor(_grad(p.numpy(), k, i))
        opt.step()


def _torch_run(torch, params, opt, steps):
    for k in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(_grad(p.detach().numpy(), k, i))
        opt.step()


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    init = _init()
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    opt = getattr(tg.optim, name)(ours, **kw)
    topt = getattr(torch.optim, name)(theirs, **kw)
    steps = 6
    _tg_run(ours, opt, steps)
    _torch_run(torch, theirs, topt, steps)
    for p, q in zip(ours, theirs):
        assert p.numpy().dtype == np.float64
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12)
    # the optimizer state has torch's names and values
    ts = topt.state_dict()["state"]
    for idx, st in opt.state_dict()["state"].items():
        for key, val in st.items():
            ref = ts[idx][key]
            if key == "step":
                assert val == int(ref)
            else:
                np.testing.assert_allclose(val, ref.numpy(), rtol=1e-10, atol=1e-12)
        assert set(st) == {k for k, v in ts[idx].items() if v is not None}


def test_param_groups_match_torch():
    torch = pytest.importorskip("torch")
    init = _init()
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    opt = tg.optim.SGD([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.3, "momentum": 0.5}], lr=0.1)
    topt = torch.optim.SGD([{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.3, "momentum": 0.5}], lr=0.1)
    _tg_run(ours, opt, 4)
    _torch_run(torch, theirs, topt, 4)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert opt.param_groups[0]["momentum"] == 0.0 and opt.param_groups[1]["lr"] == 0.3


def test_training_with_engine_backward_matches_torch():
    """Adam on a least-squares problem, gradients from tg's backward vs torch's autograd."""
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(3)
    x, y, w0 = r.standard_normal((16, 5)), r.standard_normal((16, 2)), r.standard_normal((5, 2))
    w = Parameter(w0.copy())
    tw = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt, topt = tg.optim.Adam([w], lr=0.05), torch.optim.Adam([tw], lr=0.05)
    losses = []
    for _ in range(10):
        loss = ((tg.Tensor(x) @ w - tg.Tensor(y)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        tloss = ((torch.from_numpy(x) @ tw - torch.from_numpy(y)) ** 2).mean()
        topt.zero_grad()
        tloss.backward()
        topt.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name,kw", [CASES[3], CASES[7], CASES[10], CASES[13], CASES[16]],
                         ids=["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_state_dict_resume_gives_identical_trajectory(name, kw, tmp_path):
    init = _init()
    full = [Parameter(a.copy()) for a in init]
    opt = getattr(tg.optim, name)(full, **kw)
    _tg_run(full, opt, 7)

    first = [Parameter(a.copy()) for a in init]
    opt1 = getattr(tg.optim, name)(first, **kw)
    _tg_run(first, opt1, 3)
    path = tmp_path / "ckpt.npz"
    tg.save({"params": [p.numpy() for p in first], "optim": opt1.state_dict()}, path)
    _tg_run(first, opt1, 1, start=3)  # keeps training after saving: the checkpoint must not change

    ck = tg.load(path)
    resumed = [Parameter(a) for a in ck["params"]]
    opt2 = getattr(tg.optim, name)(resumed, lr=123.0)  # hyperparameters come from the checkpoint
    opt2.load_state_dict(ck["optim"])
    assert opt2.param_groups[0]["lr"] == kw["lr"]
    _tg_run(resumed, opt2, 4, start=3)
    for p, q in zip(full, resumed):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_float32_stays_float32_and_grad_untouched(name, kw):
    params = [Parameter(a) for a in _init(np.float32)]
    arrays = [p.numpy() for p in params]
    opt = getattr(tg.optim, name)(params, **kw)
    grads = []
    for k in range(2):
        for i, p in enumerate(params):
            p.grad = tg.Tensor(_grad(p.numpy(), k, i))
        grads = [(p.grad.numpy(), p.grad.numpy().copy()) for p in params]
        before = [p.numpy().copy() for p in params]
        opt.step()
    for p, a, b in zip(params, arrays, before):
        assert p.numpy() is a and p.numpy().dtype == np.float32  # updated in place
        assert not np.array_equal(p.numpy(), b)
    for g, g0 in grads:
        np.testing.assert_array_equal(g, g0)
    for st in opt.state.values():
        for v in st.values():
            if isinstance(v, np.ndarray):
                assert v.dtype == np.float32


def test_load_state_dict_casts_to_param_dtype():
    p64 = [Parameter(a) for a in _init()]
    opt = tg.optim.Adam(p64, lr=0.01)
    _tg_run(p64, opt, 2)
    p32 = [Parameter(a.astype(np.float32)) for a in _init()]
    opt32 = tg.optim.Adam(p32, lr=0.01)
    opt32.load_state_dict(opt.state_dict())
    assert all(v.dtype == np.float32 for st in opt32.state.values() for v in st.values() if isinstance(v, np.ndarray))


def test_zero_grad():
    p = Parameter(np.ones(3))
    g = np.full(3, 2.0)
    p.grad = tg.Tensor(g)
    opt = tg.optim.SGD([p], lr=0.1)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), np.zeros(3))
    np.testing.assert_array_equal(g, np.full(3, 2.0))  # a new array: the old one may be shared
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradient: nothing happens
    np.testing.assert_array_equal(p.numpy(), np.ones(3))


def test_closure_and_add_param_group():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = tg.optim.SGD([a], lr=0.5)
    opt.add_param_group({"params": b, "lr": 0.25})
    a.grad, b.grad = tg.Tensor(np.ones(2)), tg.Tensor(np.ones(2))
    assert opt.step(lambda: 3.0) == 3.0
    np.testing.assert_allclose(a.numpy(), 0.5)
    np.testing.assert_allclose(b.numpy(), 0.75)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [Parameter(np.ones(1))], "lr": -1.0})
    assert len(opt.param_groups) == 2


@pytest.mark.parametrize("make,match", [
    (lambda ps: tg.optim.SGD(ps, lr=-0.1), "lr"),
    (lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=-0.5), "momentum"),
    (lambda ps: tg.optim.SGD(ps, lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda ps: tg.optim.SGD(ps, lr=0.1, nesterov=True), "Nesterov"),
    (lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda ps: tg.optim.Adam(ps, lr=-1e-3), "lr"),
    (lambda ps: tg.optim.Adam(ps, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda ps: tg.optim.Adam(ps, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda ps: tg.optim.Adam(ps, eps=-1e-8), "eps"),
    (lambda ps: tg.optim.AdamW(ps, weight_decay=-0.1), "weight_decay"),
    (lambda ps: tg.optim.RMSprop(ps, alpha=-0.9), "alpha"),
    (lambda ps: tg.optim.RMSprop(ps, momentum=-0.9), "momentum"),
    (lambda ps: tg.optim.Adagrad(ps, lr_decay=-1.0), "lr_decay"),
    (lambda ps: tg.optim.Adagrad(ps, initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda ps: tg.optim.SGD(ps + ps[:1], lr=0.1), "more than once"),
    (lambda ps: tg.optim.SGD([{"params": ps[:1]}, {"params": ps}], lr=0.1), "more than one parameter group"),
    (lambda ps: tg.optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda ps: tg.optim.SGD([{"params": ps, "lr": float("nan")}], lr=0.1), "lr"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make([Parameter(np.ones(2)), Parameter(np.ones(3))])


def test_bad_params_type():
    with pytest.raises(TypeError, match="iterable"):
        tg.optim.SGD(Parameter(np.ones(2)), lr=0.1)
    with pytest.raises(TypeError, match="params"):
        tg.optim.SGD([np.ones(2)], lr=0.1)
    x = tg.Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        tg.optim.SGD([x * 2], lr=0.1)


def test_wrong_grad_shape_changes_nothing():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(3))
    opt = tg.optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = tg.Tensor(np.ones(2)), tg.Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        opt.step()
    np.testing.assert_array_equal(a.numpy(), np.ones(2))
    assert not opt.state


def test_load_state_dict_mismatch_raises_and_changes_nothing():
    ps = [Parameter(a) for a in _init()]
    opt = tg.optim.Adam(ps, lr=0.01)
    _tg_run(ps, opt, 1)
    sd = opt.state_dict()
    before = opt.state_dict()
    other = tg.optim.Adam([Parameter(np.ones(2))], lr=0.5)
    with pytest.raises(ValueError, match="parameters"):
        opt.load_state_dict(other.state_dict())
    bad = opt.state_dict()
    bad["state"][0]["exp_avg"] = np.zeros((9,))
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="groups"):
        opt.load_state_dict({"state": {}, "param_groups": sd["param_groups"] * 2})
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i in before["state"]:
        np.testing.assert_array_equal(after["state"][i]["exp_avg"], before["state"][i]["exp_avg"])


# ---------------------------------------------------------------- schedulers

def _lrs(sched, opt, n):
    out = []
    for _ in range(n):
        out.append([g["lr"] for g in opt.param_groups])
        assert sched.get_last_lr() == out[-1]
        opt.step()
        sched.step()
    return np.array(out)


def _opt_pair(torch, lrs=(0.5, 0.1)):
    ours = tg.optim.SGD([{"params": [Parameter(np.ones(1))], "lr": lr} for lr in lrs], lr=lrs[0])
    theirs = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.ones(1))], "lr": lr} for lr in lrs], lr=lrs[0])
    return ours, theirs


def _noam(d_model, warmup, factor):
    return lambda e: factor * d_model ** -0.5 * min((e + 1) ** -0.5, (e + 1) * warmup ** -1.5)


SCHEDULES = {
    "StepLR": (lambda o, m: m.StepLR(o, step_size=3, gamma=0.5), None),
    "CosineAnnealingLR": (lambda o, m: m.CosineAnnealingLR(o, T_max=7, eta_min=0.01), None),
    "LambdaLR": (lambda o, m: m.LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 1.0 / (e + 1)]), None),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_scheduler_matches_torch(name):
    torch = pytest.importorskip("torch")
    make, _ = SCHEDULES[name]
    ours, theirs = _opt_pair(torch)
    a = _lrs(make(ours, tg.optim.lr_scheduler), ours, 20)
    b = _lrs(make(theirs, torch.optim.lr_scheduler), theirs, 20)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_noam_matches_torch_lambda_and_formula():
    torch = pytest.importorskip("torch")
    ours, theirs = _opt_pair(torch, lrs=(1.0, 1.0))
    a = _lrs(tg.optim.lr_scheduler.NoamLR(ours, d_model=64, warmup_steps=5, factor=2.0), ours, 20)
    b = _lrs(torch.optim.lr_scheduler.LambdaLR(theirs, _noam(64, 5, 2.0)), theirs, 20)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    s = np.arange(1, 21)
    np.testing.assert_allclose(a[:, 0], 2.0 / 8.0 * np.minimum(s ** -0.5, s * 5 ** -1.5), rtol=1e-12)
    assert a[:, 0].argmax() == 4  # the peak is at step number warmup_steps


def test_warmup_cosine_matches_torch_sequential():
    """Linear warmup (LinearLR from 1/w) followed by cosine annealing to eta_min at total_steps."""
    torch = pytest.importorskip("torch")
    w, total, eta_min = 4, 15, 0.01
    ours, theirs = _opt_pair(torch)
    a = _lrs(tg.optim.lr_scheduler.WarmupCosineLR(ours, warmup_steps=w, total_steps=total, eta_min=eta_min),
             ours, total)
    ts = torch.optim.lr_scheduler
    warm = ts.LinearLR(theirs, start_factor=1 / w, end_factor=1.0, total_iters=w - 1)
    cos = ts.CosineAnnealingLR(theirs, T_max=total - w, eta_min=eta_min)
    b = _lrs(ts.SequentialLR(theirs, [warm, cos], milestones=[w - 1]), theirs, total)
    np.testing.assert_allclose(a, b, rtol=1e-10)
    np.testing.assert_allclose(a[w - 1], [0.5, 0.1])  # peak = base lr
    ours2 = tg.optim.SGD([Parameter(np.ones(1))], lr=0.5)
    s2 = tg.optim.lr_scheduler.WarmupCosineLR(ours2, warmup_steps=w, total_steps=total, eta_min=eta_min)
    tail = _lrs(s2, ours2, total + 5)[total - 1:, 0]
    np.testing.assert_allclose(tail, eta_min)  # stays at eta_min after total_steps


def test_scheduler_state_dict_resume():
    opt = tg.optim.Adam([Parameter(np.ones(2))], lr=0.1)
    sched = tg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    ref = _lrs(sched, opt, 12)
    opt = tg.optim.Adam([Parameter(np.ones(2))], lr=0.1)
    sched = tg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    first = _lrs(sched, opt, 5)
    state = {"o": opt.state_dict(), "s": sched.state_dict()}
    opt2 = tg.optim.Adam([Parameter(np.ones(2))], lr=0.1)
    sched2 = tg.optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    opt2.load_state_dict(state["o"])
    sched2.load_state_dict(state["s"])
    assert sched2.last_epoch == 5 and sched2.get_last_lr() == [opt2.param_groups[0]["lr"]]
    np.testing.assert_array_equal(np.concatenate([first, _lrs(sched2, opt2, 7)]), ref)


def test_scheduler_resume_from_last_epoch_and_errors():
    opt = tg.optim.SGD([Parameter(np.ones(1))], lr=1.0)
    with pytest.raises(KeyError, match="initial_lr"):
        tg.optim.lr_scheduler.StepLR(opt, step_size=2, last_epoch=4)
    opt.param_groups[0]["initial_lr"] = 1.0
    s = tg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5, last_epoch=4)
    assert s.last_epoch == 5 and math.isclose(opt.param_groups[0]["lr"], 0.25)
    for bad in (lambda: tg.optim.lr_scheduler.StepLR(opt, step_size=0),
                lambda: tg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=-1),
                lambda: tg.optim.lr_scheduler.NoamLR(opt, d_model=8, warmup_steps=0),
                lambda: tg.optim.lr_scheduler.WarmupCosineLR(opt, warmup_steps=5, total_steps=5),
                lambda: tg.optim.lr_scheduler.LambdaLR(opt, [lambda e: 1.0] * 2)):
        with pytest.raises(ValueError):
            bad()


def test_load_torch_state_dict_and_continue():
    """A torch.optim.Adam state_dict (tensors) loads into tg.optim.Adam and training continues identically."""
    torch = pytest.importorskip("torch")
    init = _init()
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    topt = torch.optim.Adam(theirs, lr=0.02, amsgrad=True)
    _torch_run(torch, theirs, topt, 3)
    ours = [Parameter(q.detach().numpy().copy()) for q in theirs]
    opt = tg.optim.Adam(ours, lr=0.02, amsgrad=True)
    opt.load_state_dict(topt.state_dict())
    assert opt.state[ours[0]]["step"] == 3
    _tg_run(ours, opt, 3, start=3)
    for k in range(3, 6):
        for i, p in enumerate(theirs):
            p.grad = torch.from_numpy(_grad(p.detach().numpy(), k, i))
        topt.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12)
