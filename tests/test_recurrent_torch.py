"""The recurrent layers and cells against PyTorch with copied weights, in float64: outputs, h_n/c_n, the
input and initial-state gradients and every parameter gradient (incl. padded batches via
pack_padded_sequence / pad_packed_sequence)."""
import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq import models

torch = pytest.importorskip("torch")

T, B, D, H = 5, 3, 4, 5
TOL = dict(rtol=1e-9, atol=1e-10)

KINDS = {  # name -> (our class, torch class, extra kwargs)
    "rnn_tanh": ("RNN", {"nonlinearity": "tanh"}),
    "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
    "lstm": ("LSTM", {}),
    "lstm_proj": ("LSTM", {"proj_size": 3}),
    "gru": ("GRU", {}),
}
# (num_layers, bidirectional, batch_first, initial state, lengths, bias)
CONFIGS = [
    (1, False, False, False, None, True),
    (2, True, True, True, None, True),
    (3, True, False, False, [5, 2, 4], True),
    (2, False, True, True, [3, 5, 1], True),
    (1, True, False, True, [2, 2, 5], False),
]


def _pair(kind: str, num_layers=1, bidirectional=False, batch_first=False, bias=True, seed=0):
    name, extra = KINDS[kind]
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, name)(D, H, num_layers=num_layers, bidirectional=bidirectional,
                                     batch_first=batch_first, bias=bias, dtype=torch.float64, **extra)
    ours = getattr(models, name)(D, H, num_layers=num_layers, bidirectional=bidirectional,
                                 batch_first=batch_first, bias=bias, dtype=np.float64, **extra)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _run_both(kind, num_layers, bidirectional, batch_first, with_h0, lengths, bias, unbatched=False):
    ours, theirs = _pair(kind, num_layers, bidirectional, batch_first, bias)
    rng = np.random.default_rng(1)
    nd = 2 if bidirectional else 1
    hout = KINDS[kind][1].get("proj_size") or H
    xs = (T, D) if unbatched else ((B, T, D) if batch_first else (T, B, D))
    x = rng.standard_normal(xs)
    lead = (num_layers * nd,) if unbatched else (num_layers * nd, B)
    h0 = [rng.standard_normal(lead + (hout,))] + ([rng.standard_normal(lead + (H,))] if kind.startswith("lstm") else [])
    out_shape = xs[:-1] + (nd * hout,)
    w_out = rng.standard_normal(out_shape)
    w_h = [rng.standard_normal(a.shape) for a in h0]

    # ours
    xo = tg.Tensor(x, requires_grad=True)
    h0o = [tg.Tensor(a, requires_grad=True) for a in h0]
    hx = None if not with_h0 else (h0o[0] if len(h0o) == 1 else tuple(h0o))
    out, hn = ours(xo, hx, lengths=lengths)
    hn = hn if isinstance(hn, tuple) else (hn,)
    loss = (out * tg.Tensor(w_out)).sum()
    for a, w in zip(hn, w_h):
        loss = loss + (a * tg.Tensor(w)).sum()
    loss.backward()

    # torch
    xt = torch.tensor(x, requires_grad=True)
    h0t = [torch.tensor(a, requires_grad=True) for a in h0]
    hxt = None if not with_h0 else (h0t[0] if len(h0t) == 1 else tuple(h0t))
    if lengths is None:
        outt, hnt = theirs(xt, hxt)
    else:
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
        packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        outp, hnt = theirs(packed, hxt)
        outt, _ = pad_packed_sequence(outp, batch_first=batch_first, total_length=T)
    hnt = hnt if isinstance(hnt, tuple) else (hnt,)
    losst = (outt * torch.tensor(w_out)).sum()
    for a, w in zip(hnt, w_h):
        losst = losst + (a * torch.tensor(w)).sum()
    losst.backward()

    np.testing.assert_allclose(out.numpy(), outt.detach().numpy(), **TOL)
    for a, b in zip(hn, hnt):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **TOL)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), **TOL)
    if with_h0:
        for a, b in zip(h0o, h0t):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **TOL)
    tp = dict(theirs.named_parameters())
    names = [k for k, _ in ours.named_parameters()]
    assert names == list(tp), "parameter names and order must be PyTorch's"
    for k, p in ours.named_parameters():
        assert p.shape == tuple(tp[k].shape), k
        np.testing.assert_allclose(p.grad.numpy(), tp[k].grad.numpy(), err_msg=k, **TOL)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "L{}{}{}{}{}{}".format(
    c[0], "_bi" if c[1] else "", "_bf" if c[2] else "", "_h0" if c[3] else "", "_len" if c[4] else "",
    "" if c[5] else "_nobias"))
@pytest.mark.parametrize("kind", list(KINDS))
def test_layer_matches_torch(kind, config):
    _run_both(kind, *config)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("with_h0", [False, True])
def test_unbatched_matches_torch(kind, with_h0):
    _run_both(kind, 2, True, False, with_h0, None, True, unbatched=True)


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("unbatched", [False, True])
def test_cell_matches_torch(name, with_h0, unbatched):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, name)(D, H, dtype=torch.float64)
    ours = getattr(models, name)(D, H, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(2)
    lead = () if unbatched else (B,)
    x = rng.standard_normal(lead + (D,))
    n = 2 if name == "LSTMCell" else 1
    h0 = [rng.standard_normal(lead + (H,)) for _ in range(n)]
    w = [rng.standard_normal(lead + (H,)) for _ in range(n)]
    xo, h0o = tg.Tensor(x, requires_grad=True), [tg.Tensor(a, requires_grad=True) for a in h0]
    xt, h0t = torch.tensor(x, requires_grad=True), [torch.tensor(a, requires_grad=True) for a in h0]
    arg_o = None if not with_h0 else (h0o[0] if n == 1 else tuple(h0o))
    arg_t = None if not with_h0 else (h0t[0] if n == 1 else tuple(h0t))
    ro, rt = ours(xo, arg_o), theirs(xt, arg_t)
    ro, rt = (ro if n == 2 else (ro,)), (rt if n == 2 else (rt,))
    sum((a * tg.Tensor(c)).sum() for a, c in zip(ro, w)).backward()
    sum((a * torch.tensor(c)).sum() for a, c in zip(rt, w)).backward()
    for a, b in zip(ro, rt):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **TOL)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), **TOL)
    if with_h0:
        for a, b in zip(h0o, h0t):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **TOL)
    tp = dict(theirs.named_parameters())
    assert [k for k, _ in ours.named_parameters()] == list(tp)
    for k, p in ours.named_parameters():
        if p.grad is None:  # hx=None: a zero state never meets weight_hh (torch reports a zero gradient)
            assert not with_h0 and k == "weight_hh" and not tp[k].grad.numpy().any(), k
            continue
        np.testing.assert_allclose(p.grad.numpy(), tp[k].grad.numpy(), err_msg=k, **TOL)


def test_dropout_eval_matches_torch_and_train_differs():
    ours, theirs = _pair("lstm", num_layers=2)
    ours2 = models.LSTM(D, H, num_layers=2, dropout=0.5, dtype=np.float64)
    ours2.load_state_dict(ours.state_dict())
    x = np.random.default_rng(3).standard_normal((T, B, D))
    ref = theirs(torch.tensor(x))[0].detach().numpy()
    np.testing.assert_allclose(ours2.eval()(tg.Tensor(x))[0].numpy(), ref, **TOL)
    tg.manual_seed(0)
    train_out = ours2.train()(tg.Tensor(x))[0].numpy()
    assert not np.allclose(train_out, ref)


