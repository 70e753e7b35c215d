"""Recurrent layers and cells on their own: gradchecks (incl. peephole LSTM and the Cho GRU), lengths=
equal to running each sequence alone, init options, input checks, the visualizer's graph contract."""
import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq import models

D, H = 3, 4


def _f64(*shape, seed=0, requires_grad=True):
    return tg.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad)


# ------------------------------------------------------------------------------------------ gradcheck

@pytest.mark.parametrize("make", [
    lambda: models.RNNCell(D, H, dtype=np.float64),
    lambda: models.RNNCell(D, H, nonlinearity="relu", dtype=np.float64),
    lambda: models.LSTMCell(D, H, dtype=np.float64),
    lambda: models.LSTMCell(D, H, peephole=True, dtype=np.float64),
    lambda: models.GRUCell(D, H, dtype=np.float64),
    lambda: models.GRUCell(D, H, variant="cho", dtype=np.float64),
], ids=["rnn_tanh", "rnn_relu", "lstm", "lstm_peephole", "gru", "gru_cho"])
def test_cell_gradcheck(make):
    tg.manual_seed(0)
    cell = make()
    lstm = isinstance(cell, models.LSTMCell)
    x, h = _f64(2, D, seed=1), _f64(2, H, seed=2)
    c = _f64(2, H, seed=3)
    params = list(cell.parameters())

    def f(x, h, c, *ps):
        # two steps, so each weight is reached through the recurrence too
        s = (h, c) if lstm else h
        for _ in range(2):
            s = cell(x, s)
        return (s[0] * s[1]).sum() if lstm else (s * s).sum()
    assert tg.gradcheck(f, [x, h, c] + params)


@pytest.mark.parametrize("kind", ["lstm_peephole", "gru_cho"])
def test_layer_gradcheck_extensions(kind):
    """The layers' peephole / Cho paths (bidirectional, two layers, padded) against finite differences."""
    tg.manual_seed(0)
    m = (models.LSTM(D, H, num_layers=2, bidirectional=True, peephole=True, dtype=np.float64) if kind == "lstm_peephole"
         else models.GRU(D, H, num_layers=2, bidirectional=True, variant="cho", dtype=np.float64))
    x = _f64(4, 2, D, seed=4)
    params = list(m.parameters())
    assert any(k.startswith("weight_ci_l1_reverse") for k, _ in m.named_parameters()) or kind == "gru_cho"

    def f(x, *ps):
        out, _ = m(x, lengths=[4, 2])
        return (out * out).sum()
    assert tg.gradcheck(f, [x] + params)


# ------------------------------------------------------------------------------------------ lengths

@pytest.mark.parametrize("cls,kw", [(models.RNN, {}), (models.LSTM, {}), (models.LSTM, {"proj_size": 2}),
                                    (models.GRU, {}), (models.LSTM, {"peephole": True}),
                                    (models.GRU, {"variant": "cho"})])
def test_lengths_equal_running_each_sequence_alone(cls, kw):
    tg.manual_seed(0)
    m = cls(D, H, num_layers=2, bidirectional=True, dtype=np.float64, **kw)
    lengths = [5, 2, 4]
    x = _f64(5, 3, D, seed=5)
    lstm = cls is models.LSTM
    hout = kw.get("proj_size") or H
    h0 = _f64(4, 3, hout, seed=6)
    c0 = _f64(4, 3, H, seed=7)
    hx = (h0, c0) if lstm else h0
    out, hn = m(x, hx, lengths=lengths)
    loss = (out * _f64(*out.shape, seed=8, requires_grad=False)).sum()
    loss.backward()
    gx_batch = x.grad.numpy().copy()
    for b, n in enumerate(lengths):
        xb = tg.Tensor(x.numpy()[:n, b:b + 1], requires_grad=True)
        hxb = (tg.Tensor(h0.numpy()[:, b:b + 1]), tg.Tensor(c0.numpy()[:, b:b + 1])) if lstm else tg.Tensor(h0.numpy()[:, b:b + 1])
        ob, hnb = m(xb, hxb)
        np.testing.assert_allclose(out.numpy()[:n, b:b + 1], ob.numpy(), rtol=1e-12, atol=1e-12)
        assert not out.numpy()[n:, b].any(), "outputs at padded steps must be zero"
        for a, a1 in zip(hn if lstm else (hn,), hnb if lstm else (hnb,)):
            np.testing.assert_allclose(a.numpy()[:, b:b + 1], a1.numpy(), rtol=1e-12, atol=1e-12)
        (ob * tg.Tensor(_f64(*out.shape, seed=8, requires_grad=False).numpy()[:n, b:b + 1])).sum().backward()
        np.testing.assert_allclose(gx_batch[:n, b:b + 1], xb.grad.numpy(), rtol=1e-10, atol=1e-12)
        assert not gx_batch[n:, b].any(), "padded inputs must get no gradient"


def test_lengths_forms_and_full_length_is_plain_run():
    tg.manual_seed(0)
    m = models.GRU(D, H, batch_first=True, dtype=np.float64)
    x = _f64(3, 4, D, seed=9, requires_grad=False)
    ref = m(x)[0].numpy()
    for lengths in ([4, 4, 4], np.array([4, 4, 4]), tg.Tensor(np.array([4, 4, 4]))):
        np.testing.assert_array_equal(m(x, lengths=lengths)[0].numpy(), ref)
    out = m(x, lengths=tg.Tensor(np.array([2, 4, 3])))[0].numpy()
    assert not out[0, 2:].any() and not out[2, 3:].any()
    np.testing.assert_allclose(out[1], ref[1])


# ------------------------------------------------------------------------------------------ init

def test_init_is_pytorch_uniform():
    tg.manual_seed(0)
    m = models.LSTM(10, 64, num_layers=2, bidirectional=True, proj_size=8)
    k = 1 / np.sqrt(64)
    for name, p in m.named_parameters():
        assert p.dtype == np.float32, name
        assert np.abs(p.numpy()).max() <= k, name
        assert np.abs(p.numpy()).max() > 0.9 * k, name  # spread over the whole interval, not a constant


def test_forget_bias_and_chrono_init():
    tg.manual_seed(0)
    base = models.LSTM(D, H, num_layers=2)
    tg.manual_seed(0)
    fb = models.LSTM(D, H, num_layers=2, forget_bias=1.0)
    for sfx in ("_l0", "_l1"):
        delta = fb.state_dict()["bias_ih" + sfx] - base.state_dict()["bias_ih" + sfx]
        np.testing.assert_allclose(delta, np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)], atol=1e-6)
    cell = models.LSTMCell(D, H, forget_bias=2.0)
    assert np.all(cell.bias_ih.numpy()[H:2 * H] > 2.0 - 1 / np.sqrt(H) - 1e-6)

    t_max = 50
    ch = models.LSTM(D, 100, chrono_init=t_max, bidirectional=True)
    for sfx in ("_l0", "_l0_reverse"):
        b_ih, b_hh = ch.state_dict()["bias_ih" + sfx], ch.state_dict()["bias_hh" + sfx]
        bf, bi = b_ih[100:200], b_ih[:100]
        assert np.all(bf >= 0) and np.all(bf <= np.log(t_max - 1) + 1e-6)
        np.testing.assert_array_equal(bi, -bf)
        assert not b_hh[:200].any()  # so the effective biases are exactly the chrono values
        assert np.exp(bf).std() > 5  # log of a uniform draw over [1, 49], not a constant
    with pytest.raises(ValueError, match="bias=True"):
        models.LSTM(D, H, bias=False, forget_bias=1.0)
    with pytest.raises(ValueError, match="T_max"):
        models.LSTMCell(D, H, chrono_init=2)


# ------------------------------------------------------------------------------------------ bad input

def test_bad_input_raises_clear_errors():
    m = models.LSTM(D, H, num_layers=2)
    x = tg.randn(5, 2, D)
    with pytest.raises(ValueError, match="input_size"):
        m(tg.randn(5, 2, D + 1))
    with pytest.raises(ValueError, match="dims"):
        m(tg.randn(5, 2, 1, D))
    with pytest.raises(ValueError, match="h_0"):
        m(x, (tg.zeros(1, 2, H), tg.zeros(2, 2, H)))
    with pytest.raises(ValueError, match="c_0"):
        m(x, (tg.zeros(2, 2, H), tg.zeros(2, 3, H)))
    with pytest.raises(ValueError, match="tuple"):
        m(x, tg.zeros(2, 2, H))
    with pytest.raises(ValueError, match="lengths"):
        m(x, lengths=[5, 6])
    with pytest.raises(ValueError, match="lengths"):
        m(x, lengths=[5, 0])
    with pytest.raises(ValueError, match="lengths"):
        m(x, lengths=[5, 4, 3])
    with pytest.raises(TypeError, match="dtype"):
        m(tg.Tensor(np.zeros((5, 2, D))))
    with pytest.raises(ValueError, match="h_0"):
        models.GRUCell(D, H)(tg.randn(2, D), tg.randn(3, H))
    with pytest.raises(ValueError, match="input_size"):
        models.RNNCell(D, H)(tg.randn(2, D + 1))
    with pytest.raises(ValueError, match="nonlinearity"):
        models.RNN(D, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="proj_size"):
        models.LSTM(D, H, proj_size=H)
    with pytest.raises(ValueError, match="variant"):
        models.GRU(D, H, variant="minimal")
    with pytest.raises(ValueError, match="hidden_size"):
        models.GRU(D, 0)


# ------------------------------------------------------------------------------------------ graph contract

@pytest.mark.parametrize("cls", [models.RNN, models.LSTM, models.GRU])
def test_states_named_scoped_and_differentiable(cls):
    tg.manual_seed(0)
    T = 4
    m = cls(D, H, num_layers=2, bidirectional=True, dtype=np.float64)
    x = _f64(T, 2, D, seed=10)
    out, _, states = m(x, return_states=True)
    keys = {"h", "c"} if cls is models.LSTM else {"h"}
    assert set(states) == keys
    for key in keys:
        assert len(states[key]) == 4 and all(len(s) == T for s in states[key])
        for k, per_t in enumerate(states[key]):
            layer, d = divmod(k, 2)
            for t, s in enumerate(per_t):
                assert s.name == key and s.shape == (2, H)
                path, step = s._ctx.scope
                assert step == t
                assert path == f"{cls.__name__}/l{layer}" + ("_reverse" if d else "")
    # the last layer's per-step h are the output slices, and dL/dh_t is reachable through them
    np.testing.assert_array_equal(out.numpy()[2, :, :H], states["h"][2][2].numpy())
    np.testing.assert_array_equal(out.numpy()[1, :, H:], states["h"][3][1].numpy())
    loss = out[-1].sum()
    grads = tg.autograd.grad(loss, states["h"][0], retain_graph=True, allow_unused=True)
    norms = [0.0 if g is None else float(np.linalg.norm(g.numpy())) for g in grads]
    assert all(n > 0 for n in norms)  # layer 0 feeds the last output at every step (via both directions)


def test_lengths_states_carry_and_repr():
    m = models.LSTM(D, H, bidirectional=True, proj_size=2, peephole=True)
    assert "proj_size=2" in repr(m) and "peephole=True" in repr(m)
    out, (h, c), st = m(tg.randn(5, 2, D), lengths=[5, 3], return_states=True)
    assert h.shape == (2, 2, 2) and c.shape == (2, 2, H) and out.shape == (5, 2, 4)
    # forward direction: after its last step the padded sequence's state is carried unchanged
    np.testing.assert_array_equal(st["h"][0][4].numpy()[1], st["h"][0][2].numpy()[1])
    np.testing.assert_array_equal(h.numpy()[0, 1], st["h"][0][2].numpy()[1])
    # reverse direction: h_n is its state at t=0
    np.testing.assert_array_equal(h.numpy()[1], st["h"][1][0].numpy())


# ------------------------------------------------------------------------------------------ formulas by hand

def _sig(a):
    return 1 / (1 + np.exp(-a))


def test_peephole_lstm_and_cho_gru_follow_their_formulas():
    """The two variants PyTorch lacks, against the formulas written out in NumPy."""
    tg.manual_seed(0)
    rng = np.random.default_rng(11)
    x, h, c = rng.standard_normal((2, D)), rng.standard_normal((2, H)), rng.standard_normal((2, H))

    cell = models.LSTMCell(D, H, peephole=True, dtype=np.float64)
    p = {k: v.numpy() for k, v in cell.named_parameters()}
    a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    ai, af, ag, ao = np.split(a, 4, axis=1)
    i, f = _sig(ai + p["weight_ci"] * c), _sig(af + p["weight_cf"] * c)
    c_ref = f * c + i * np.tanh(ag)
    h_ref = _sig(ao + p["weight_co"] * c_ref) * np.tanh(c_ref)
    h1, c1 = cell(tg.Tensor(x), (tg.Tensor(h), tg.Tensor(c)))
    np.testing.assert_allclose(c1.numpy(), c_ref, rtol=1e-12)
    np.testing.assert_allclose(h1.numpy(), h_ref, rtol=1e-12)

    cell = models.GRUCell(D, H, variant="cho", dtype=np.float64)
    p = {k: v.numpy() for k, v in cell.named_parameters()}
    wi, wh, bi, bh = (np.split(p[k], 3, axis=0) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    r = _sig(x @ wi[0].T + bi[0] + h @ wh[0].T + bh[0])
    z = _sig(x @ wi[1].T + bi[1] + h @ wh[1].T + bh[1])
    n = np.tanh(x @ wi[2].T + bi[2] + (r * h) @ wh[2].T + bh[2])
    np.testing.assert_allclose(cell(tg.Tensor(x), tg.Tensor(h)).numpy(), (1 - z) * n + z * h, rtol=1e-12)
    # the same weights in PyTorch's form differ (r applied after the matmul)
    torch_form = models.GRUCell(D, H, dtype=np.float64)
    torch_form.load_state_dict(cell.state_dict())
    assert not np.allclose(torch_form(tg.Tensor(x), tg.Tensor(h)).numpy(), (1 - z) * n + z * h)


def test_benchmark_floors_agree_with_the_layers():
    """benchmarks/bench_recurrent.py's hand-written NumPy BPTT (LSTM, GRU) gives our gradients."""
    import os
    import sys
    bench = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")
    if not os.path.isfile(os.path.join(bench, "bench_recurrent.py")):
        pytest.skip("benchmarks/ not present")
    sys.path.insert(0, bench)
    try:
        import bench_recurrent
    finally:
        sys.path.remove(bench)
    bench_recurrent.check_floors()
