"""Attention: score functions and attention variants (gradcheck), masked softmax (fully masked rows),
scaled_dot_product_attention and MultiheadAttention against PyTorch with copied weights (float64)."""
import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.models import attention as A

from conftest import leaf64


# ---------------------------------------------------------------- score functions

def _qk(rng, B=2, T=3, S=4, dq=5, dk=5):
    return leaf64(rng.standard_normal((B, T, dq))), leaf64(rng.standard_normal((B, S, dk)))


def test_dot_and_scaled_dot_scores_values(rng):
    q, k = _qk(rng)
    ref = np.einsum("btd,bsd->bts", q.numpy(), k.numpy())
    np.testing.assert_allclose(A.DotScore()(q, k).numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(A.ScaledDotScore()(q, k).numpy(), ref / np.sqrt(5), rtol=1e-12)


def test_general_and_additive_scores_values(rng):
    q, k = _qk(rng, dq=3, dk=5)
    g = A.GeneralScore(3, 5).double()
    W = g.W.weight.numpy()  # (query_dim, key_dim)
    np.testing.assert_allclose(g(q, k).numpy(), np.einsum("btd,de,bse->bts", q.numpy(), W, k.numpy()), rtol=1e-12)
    a = A.AdditiveScore(3, 5, attn_dim=6).double()
    Wq, Wk, bk, v = a.W_q.weight.numpy(), a.W_k.weight.numpy(), a.W_k.bias.numpy(), a.v.weight.numpy()[0]
    # vᵀ tanh(W [q; k] + b) with W = [W_q, W_k], evaluated pair by pair
    ref = np.empty((2, 3, 4))
    W = np.concatenate([Wq, Wk], axis=1)
    for b in range(2):
        for t in range(3):
            for s in range(4):
                ref[b, t, s] = v @ np.tanh(W @ np.concatenate([q.numpy()[b, t], k.numpy()[b, s]]) + bk)
    np.testing.assert_allclose(a(q, k).numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("name", ["dot", "scaled_dot", "general", "additive"])
def test_score_gradcheck(rng, name):
    tg.manual_seed(0)
    q, k = _qk(rng, dq=4, dk=4)
    score = A.make_score(name, 4, 4, 3).double()
    params = list(score.parameters())
    tg.gradcheck(lambda q, k, *p: score(q, k), [q, k, *params])


def test_make_score_rejects_unknown():
    with pytest.raises(ValueError, match="unknown score"):
        A.make_score("cosine")
    with pytest.raises(ValueError, match="query dim"):
        A.DotScore()(tg.zeros(1, 2, 3), tg.zeros(1, 4, 5))


# ---------------------------------------------------------------- masked softmax

def test_masked_softmax_matches_softmax_and_zeros_fully_masked_rows(rng):
    x = leaf64(rng.standard_normal((3, 5)))
    mask = np.zeros((3, 5), bool)
    mask[0, [1, 3]] = True
    mask[2] = True  # fully masked row
    y = A.masked_softmax(x, mask)
    e = np.exp(x.numpy() - x.numpy().max(1, keepdims=True)) * ~mask
    ref = e / np.where(e.sum(1, keepdims=True) == 0, 1, e.sum(1, keepdims=True))
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12)
    assert np.all(y.numpy()[2] == 0) and np.all(y.numpy()[0, [1, 3]] == 0)
    (y * tg.Tensor(rng.standard_normal((3, 5)))).sum().backward()
    assert np.isfinite(x.grad.numpy()).all() and np.all(x.grad.numpy()[2] == 0)
    tg.gradcheck(lambda x: A.masked_softmax(x, mask), [leaf64(x.numpy())])


def test_masked_softmax_handles_minus_inf_rows_without_nan(rng):
    x = leaf64(np.full((2, 4), -np.inf))
    x.numpy()[0, 1] = 0.5
    y = A.masked_softmax(x)
    np.testing.assert_array_equal(y.numpy(), [[0, 1, 0, 0], [0, 0, 0, 0]])
    y.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


# ---------------------------------------------------------------- soft, local, hard attention

def test_soft_attention_values_mask_and_gradcheck(rng):
    tg.manual_seed(1)
    att = A.SoftAttention("general", query_dim=4, key_dim=3).double()
    q, keys = leaf64(rng.standard_normal((2, 4))), leaf64(rng.standard_normal((2, 5, 3)))
    values = leaf64(rng.standard_normal((2, 5, 6)))
    mask = np.zeros((2, 5), bool)
    mask[1, 3:] = True
    ctx, w = att(q, keys, values, mask=mask)
    assert ctx.shape == (2, 6) and w.shape == (2, 5)
    s = np.einsum("bd,de,bse->bs", q.numpy(), att.score.W.weight.numpy(), keys.numpy())
    s[mask] = -np.inf
    ref_w = np.exp(s - s.max(1, keepdims=True))
    ref_w /= ref_w.sum(1, keepdims=True)
    np.testing.assert_allclose(w.numpy(), ref_w, rtol=1e-12)
    np.testing.assert_allclose(ctx.numpy(), np.einsum("bs,bsd->bd", ref_w, values.numpy()), rtol=1e-12)
    tg.gradcheck(lambda q, k, v: att(q, k, v, mask=mask)[0], [q, keys, values])


def test_fully_masked_row_gives_zero_context_and_finite_grads(rng):
    att = A.SoftAttention("dot")
    q, keys = leaf64(rng.standard_normal((2, 3, 4))), leaf64(rng.standard_normal((2, 5, 4)))
    mask = np.zeros((2, 5), bool)
    mask[0] = True
    ctx, w = att(q, keys, mask=mask)
    assert np.all(ctx.numpy()[0] == 0) and np.all(w.numpy()[0] == 0)
    assert np.isfinite(ctx.numpy()).all() and np.isfinite(w.numpy()).all()
    (ctx.sum() + w.sum()).backward()
    assert np.isfinite(q.grad.numpy()).all() and np.all(q.grad.numpy()[0] == 0)


def test_local_attention_window_gaussian_and_gradcheck(rng):
    tg.manual_seed(2)
    D, S = 2, 9
    att = A.LocalAttention(4, window=D, score="general").double()
    q, keys = leaf64(rng.standard_normal((3, 4))), leaf64(rng.standard_normal((3, S, 4)))
    mask = np.zeros((3, S), bool)
    mask[2, 6:] = True
    ctx, w = att(q, keys, mask=mask)
    p = att.last_position.numpy()
    lengths = np.array([S, S, 6])
    assert np.all((p >= 0) & (p <= lengths))
    # p_t = S σ(v_pᵀ tanh(W_p h_t))
    ref_p = lengths / (1 + np.exp(-(np.tanh(q.numpy() @ att.W_p.weight.numpy().T) @ att.v_p.weight.numpy().T)[:, 0]))
    np.testing.assert_allclose(p, ref_p, rtol=1e-12)
    pos = np.arange(S)
    outside = (np.abs(pos[None] - p[:, None]) > D) | mask
    assert np.all(w.numpy()[outside] == 0)
    s = np.einsum("bd,de,bse->bs", q.numpy(), att.score.W.weight.numpy(), keys.numpy())
    s[outside] = -np.inf
    align = np.exp(s - s.max(1, keepdims=True))
    align /= align.sum(1, keepdims=True)
    ref = align * np.exp(-((pos[None] - p[:, None]) ** 2) / (2 * (D / 2) ** 2))
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(ctx.numpy(), np.einsum("bs,bsd->bd", ref, keys.numpy()), rtol=1e-12)
    # differentiable in query (through p_t and the scores) and keys, away from window edges
    tg.gradcheck(lambda q, k: att(q, k, mask=mask)[0], [q, keys])


def test_local_monotonic_position(rng):
    att = A.LocalAttention(4, window=1, score="dot").double()
    q, keys = leaf64(rng.standard_normal((2, 3, 4))), leaf64(rng.standard_normal((2, 6, 4)))
    _, w = att(q, keys, position=np.array([[0, 2, 5], [1, 1, 4]]))
    nz = w.numpy() > 0
    assert nz[0, 0].tolist() == [True, True, False, False, False, False]
    assert nz[0, 1].tolist() == [False, True, True, True, False, False]
    assert nz[1, 2].tolist() == [False, False, False, True, True, True]


def test_gumbel_softmax_soft_gradcheck_and_straight_through(rng):
    logits = leaf64(rng.standard_normal((3, 6)))

    def soft(x):
        tg.manual_seed(5)  # the same Gumbel noise at every evaluation
        return A.gumbel_softmax(x, tau=0.7, hard=False)
    tg.gradcheck(soft, [logits])
    tg.manual_seed(5)
    y_soft = A.gumbel_softmax(logits, tau=0.7, hard=False)
    tg.manual_seed(5)
    y_hard = A.gumbel_softmax(logits, tau=0.7, hard=True)
    np.testing.assert_array_equal(y_hard.numpy().sum(1), 1)
    assert set(np.unique(y_hard.numpy())) <= {0.0, 1.0}
    np.testing.assert_array_equal(y_hard.numpy().argmax(1), y_soft.numpy().argmax(1))
    g = rng.standard_normal((3, 6))
    logits.grad = None
    y_soft.backward(g)
    gs = logits.grad.numpy().copy()
    logits.grad = None
    y_hard.backward(g)
    np.testing.assert_allclose(logits.grad.numpy(), gs, rtol=1e-12)  # straight-through = soft gradient


def test_hard_attention_train_and_eval(rng):
    tg.manual_seed(3)
    att = A.HardAttention("additive", query_dim=4, key_dim=4, tau=0.5).double()
    q, keys = leaf64(rng.standard_normal((2, 4))), leaf64(rng.standard_normal((2, 5, 4)))
    mask = np.zeros((2, 5), bool)
    mask[0, :2] = True
    ctx, w = att(q, keys, mask=mask)
    assert set(np.unique(w.numpy())) <= {0.0, 1.0} and np.all(w.numpy().sum(1) == 1) and np.all(w.numpy()[0, :2] == 0)
    chosen = w.numpy().argmax(1)
    np.testing.assert_allclose(ctx.numpy(), keys.numpy()[np.arange(2), chosen])
    ctx.sum().backward()
    assert att.score.v.weight.grad is not None and np.abs(att.score.v.weight.grad.numpy()).sum() > 0
    att.eval()
    _, w_eval = att(q, keys, mask=mask)
    scores = att.score(q.unsqueeze(1), keys).numpy()[:, 0]
    scores[mask] = -np.inf
    np.testing.assert_array_equal(w_eval.numpy().argmax(1), scores.argmax(1))
    # the relaxed (non straight-through) weights are differentiable: gradcheck with fixed noise
    att.train()
    att.straight_through = False

    def f(q, k):
        tg.manual_seed(9)
        return att(q, k, mask=mask)[0]
    tg.gradcheck(f, [q, keys])


# ---------------------------------------------------------------- PyTorch conformance

@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_scaled_dot_product_attention_matches_torch(rng, torch):
    q, k, v = (rng.standard_normal(s) for s in ((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)))
    bool_mask = rng.random((4, 6)) > 0.3
    bool_mask[:, 0] = True
    float_mask = rng.standard_normal((2, 1, 4, 6))
    for kw_t, kw_m in ((dict(), dict()), (dict(attn_mask=torch.tensor(bool_mask)), dict(attn_mask=bool_mask)),
                       (dict(attn_mask=torch.tensor(float_mask)), dict(attn_mask=float_mask)),
                       (dict(is_causal=True), dict(is_causal=True)), (dict(scale=0.3), dict(scale=0.3))):
        tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        mq, mk, mv = (leaf64(a) for a in (q, k, v))
        to = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, **kw_t)
        mo = A.scaled_dot_product_attention(mq, mk, mv, **kw_m)
        np.testing.assert_allclose(mo.numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
        g = rng.standard_normal(to.shape)
        to.backward(torch.tensor(g))
        mo.backward(g)
        for a, b in ((mq, tq), (mk, tk), (mv, tv)):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


def _copy(tm, m):
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})


def _mha_case(torch, rng, batch_first=False, kdim=None, self_attn=True, attn_mask=None, kpm=None, need_weights=True,
              average=True, is_causal=False, bias=True, unbatched=False):
    E, H, N, L = 8, 2, 3, 4
    S = L if self_attn else 6
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H, bias=bias, kdim=kdim, vdim=kdim, batch_first=batch_first).double()
    m = A.MultiheadAttention(E, H, bias=bias, kdim=kdim, vdim=kdim, batch_first=batch_first).double()
    assert list(m.state_dict()) == list(tm.state_dict())
    _copy(tm, m)

    def shape(T, D):
        return (T, D) if unbatched else ((N, T, D) if batch_first else (T, N, D))
    q = rng.standard_normal(shape(L, E))
    kv = q if self_attn else rng.standard_normal(shape(S, kdim or E))
    # masks never block a whole row (see test_mha_fully_masked_rows_as_torch)
    am = None
    if attn_mask is not None:
        dims = (L, S) if attn_mask.endswith("2d") else (N * H, L, S)
        if attn_mask.startswith("bool"):
            am = rng.random(dims) < 0.3
            am[..., 0] = False
        elif attn_mask.startswith("causal"):
            am = np.triu(np.ones((L, S), bool), 1)
        else:
            am = rng.standard_normal(dims)
    kp = None
    if kpm is not None:
        kp = rng.random((N, S)) < 0.3
        kp[:, 0] = False
        if am is not None and am.dtype == bool:
            am[..., 0] = False
        if kpm == "float":
            kp = np.where(kp, -1e9, rng.standard_normal((N, S)))
        if unbatched:
            kp = kp[0]
    tq = torch.tensor(q, requires_grad=True)
    tkv = tq if self_attn else torch.tensor(kv, requires_grad=True)
    mq = leaf64(q)
    mkv = mq if self_attn else leaf64(kv)
    kw = dict(need_weights=need_weights, average_attn_weights=average, is_causal=is_causal)
    to, tw = tm(tq, tkv, tkv, key_padding_mask=None if kp is None else torch.tensor(kp),
                attn_mask=None if am is None else torch.tensor(am), **kw)
    mo, mw = m(mq, mkv, mkv, key_padding_mask=kp, attn_mask=am, **kw)
    np.testing.assert_allclose(mo.numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(to.shape)
    loss_t = (to * torch.tensor(g)).sum()
    loss_m = (mo * tg.Tensor(g)).sum()
    if need_weights:
        np.testing.assert_allclose(mw.numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12)
        gw = rng.standard_normal(tw.shape)
        loss_t = loss_t + (tw * torch.tensor(gw)).sum()
        loss_m = loss_m + (mw * tg.Tensor(gw)).sum()
    else:
        assert mw is None and tw is None
    loss_t.backward()
    loss_m.backward()
    np.testing.assert_allclose(mq.grad.numpy(), tq.grad.numpy(), rtol=1e-9, atol=1e-12)
    if not self_attn:
        np.testing.assert_allclose(mkv.grad.numpy(), tkv.grad.numpy(), rtol=1e-9, atol=1e-12)
    tp = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


MHA_CASES = {
    "self": dict(),
    "self_batch_first": dict(batch_first=True),
    "cross": dict(self_attn=False),
    "cross_kdim_vdim": dict(self_attn=False, kdim=5),
    "cross_kdim_batch_first": dict(self_attn=False, kdim=5, batch_first=True),
    "bool_2d": dict(attn_mask="bool2d"),
    "float_2d": dict(attn_mask="float2d", self_attn=False),
    "bool_3d": dict(attn_mask="bool3d", batch_first=True),
    "float_3d": dict(attn_mask="float3d", self_attn=False),
    "key_padding_bool": dict(kpm="bool", self_attn=False),
    "key_padding_float": dict(kpm="float", batch_first=True),
    "padding_and_mask": dict(kpm="bool", attn_mask="bool2d"),
    "no_weights": dict(need_weights=False, attn_mask="float2d", kpm="bool"),
    "per_head_weights": dict(average=False, self_attn=False, kpm="bool"),
    "is_causal": dict(attn_mask="causal2d", is_causal=True, need_weights=False),
    "no_bias": dict(bias=False, self_attn=False),
    "unbatched": dict(unbatched=True, self_attn=False, kpm="bool"),
}


@pytest.mark.filterwarnings("ignore:Support for mismatched")  # torch's own deprecation notice
@pytest.mark.parametrize("case", list(MHA_CASES))
def test_multihead_attention_matches_torch(rng, torch, case):
    _mha_case(torch, rng, **MHA_CASES[case])


def test_mha_is_causal_without_mask_builds_causal_mask(rng):
    m = A.MultiheadAttention(8, 2).double()
    x = leaf64(rng.standard_normal((5, 2, 8)))
    causal = np.triu(np.ones((5, 5), bool), 1)
    a, _ = m(x, x, x, is_causal=True, need_weights=False)
    b, _ = m(x, x, x, attn_mask=causal, need_weights=False)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


@pytest.mark.parametrize("split", [False, True])
def test_mha_fully_masked_rows_as_torch(rng, torch, split):
    """A query with every key blocked: torch's MultiheadAttention gives NaN output, weights and gradients with
    need_weights=True (its softmax path) and zero attention with need_weights=False (its SDPA path)."""
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(8, 2, batch_first=True).double()
    with torch.no_grad():
        tm.out_proj.bias.normal_()  # non-zero, so "zero attention" means out = out_proj.bias
    m = A.MultiheadAttention(8, 2, batch_first=True, split_heads=split).double()
    _copy(tm, m)
    q0, kv0 = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 4, 8))
    kp = np.zeros((2, 4), bool)
    kp[0, 1] = True
    kp[1] = True  # every key of example 1 blocked
    g = rng.standard_normal((2, 3, 8))
    for need in (True, False):
        tm.zero_grad()
        m.zero_grad()
        tq, tkv = torch.tensor(q0, requires_grad=True), torch.tensor(kv0, requires_grad=True)
        to, tw = tm(tq, tkv, tkv, key_padding_mask=torch.tensor(kp), need_weights=need)
        to.backward(torch.tensor(g))
        q, kv = leaf64(q0), leaf64(kv0)
        out, w = m(q, kv, kv, key_padding_mask=kp, need_weights=need)
        out.backward(g)
        assert np.isnan(out.numpy()[1]).all() == need and np.isfinite(out.numpy()[0]).all()
        if not need:
            np.testing.assert_allclose(out.numpy()[1], np.broadcast_to(m.out_proj.bias.numpy(), (3, 8)), rtol=1e-14)
        pairs = [(out, to), (q.grad, tq.grad), (kv.grad, tkv.grad), (m.in_proj_weight.grad, tm.in_proj_weight.grad),
                 (m.out_proj.weight.grad, tm.out_proj.weight.grad), (m.out_proj.bias.grad, tm.out_proj.bias.grad)]
        if need:
            pairs.append((w, tw))
        else:
            assert w is None and tw is None
        for ours, ref in pairs:  # NaN exactly where torch has NaN, the same values elsewhere
            ref = ref.detach().numpy()
            assert np.array_equal(np.isnan(ours.numpy()), np.isnan(ref))
            np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_mha_dropout_on_weights_and_init(rng):
    tg.manual_seed(0)
    m = A.MultiheadAttention(16, 4, dropout=0.5)
    a = np.sqrt(6 / (16 + 48))
    assert np.abs(m.in_proj_weight.numpy()).max() <= a and np.all(m.in_proj_bias.numpy() == 0)
    assert np.all(m.out_proj.bias.numpy() == 0)
    x = tg.Tensor(rng.standard_normal((5, 2, 16)).astype(np.float32))
    _, w = m(x, x, x, average_attn_weights=False)
    vals = np.unique(np.round(w.numpy(), 6))
    assert (w.numpy() == 0).any() and w.numpy().max() > 1.0 - 1e-6  # dropped and rescaled (x2) weights
    m.eval()
    _, w = m(x, x, x)
    np.testing.assert_allclose(w.numpy().sum(-1), 1, rtol=1e-5)
    assert len(vals) > 1


def test_mha_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        A.MultiheadAttention(10, 3)
    m = A.MultiheadAttention(8, 2)
    x = tg.zeros(4, 2, 8)
    with pytest.raises(RuntimeError, match="2D attn_mask"):
        m(x, x, x, attn_mask=np.zeros((3, 4), bool))
    with pytest.raises(RuntimeError, match="3D attn_mask"):
        m(x, x, x, attn_mask=np.zeros((3, 4, 4), bool))
    with pytest.raises(RuntimeError, match="key_padding_mask"):
        m(x, x, x, key_padding_mask=np.zeros((4, 2), bool))
    with pytest.raises(ValueError, match="feature sizes"):
        m(x, x, tg.zeros(4, 2, 7))


def test_mha_dropout_fused_path_equals_weights_path(rng):
    m = A.MultiheadAttention(8, 2, dropout=0.3, batch_first=True).double()
    q, kv = leaf64(rng.standard_normal((2, 3, 8))), leaf64(rng.standard_normal((2, 5, 8)))
    kp = np.zeros((2, 5), bool)
    kp[0, 3:] = True
    grads = []
    for need in (True, False):
        tg.manual_seed(11)  # the same dropout mask in both paths
        q.grad = kv.grad = None
        out, _ = m(q, kv, kv, key_padding_mask=kp, need_weights=need)
        out.backward(np.cos(np.arange(out.numpy().size)).reshape(out.shape))
        grads.append((out.numpy(), q.grad.numpy(), kv.grad.numpy()))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    tg.manual_seed(12)
    out2, _ = m(q, kv, kv, key_padding_mask=kp, need_weights=False)
    assert np.abs(out2.numpy() - grads[1][0]).max() > 1e-6  # another mask, another output


@pytest.mark.parametrize("name", ["dot", "general", "additive"])
def test_prepared_keys_give_the_same_attention(rng, name):
    att = A.SoftAttention(name, query_dim=4, key_dim=4).double()
    q, keys = leaf64(rng.standard_normal((2, 4))), leaf64(rng.standard_normal((2, 5, 4)))
    c1, w1 = att(q, keys)
    c2, w2 = att(q, keys, prepared=att.score.prepare(keys))
    np.testing.assert_allclose(c2.numpy(), c1.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w2.numpy(), w1.numpy(), rtol=1e-12)


# ---------------------------------------------------------------- split_heads: one name scope per head

def _graph_scopes(root) -> set:
    """Module paths recorded by every op node behind `root`."""
    from tinygrad_seq.viz.grads import topo_order
    return {t._ctx.scope[0] for t in topo_order(root) if t._ctx is not None}


def _mha_run(m, q, kv, self_attn, kp, am, kw, seed=None):
    """outputs, weights and every input/parameter gradient of one forward/backward (float64)."""
    for p in m.parameters():
        p.grad = None
    mq = leaf64(q)
    mkv = mq if self_attn else leaf64(kv)
    if seed is not None:
        tg.manual_seed(seed)
    out, w = m(mq, mkv, mkv, key_padding_mask=kp, attn_mask=am, **kw)
    loss = (out * tg.Tensor(np.cos(np.arange(out.numpy().size)).reshape(out.shape))).sum()
    if w is not None:
        loss = loss + (w * tg.Tensor(np.sin(np.arange(w.numpy().size)).reshape(w.shape))).sum()
    scopes = _graph_scopes(loss)
    loss.backward()
    res = {"out": out.numpy(), "q.grad": mq.grad.numpy()}
    if w is not None:
        res["weights"] = w.numpy()
    if not self_attn:
        res["kv.grad"] = mkv.grad.numpy()
    res.update({f"{n}.grad": p.grad.numpy() for n, p in m.named_parameters()})
    return res, scopes


SPLIT_CASES = {
    "self": dict(),
    "self_batch_first": dict(batch_first=True),
    "cross_kdim": dict(self_attn=False, kdim=5),
    "bool_2d": dict(attn_mask="bool2d"),
    "float_2d": dict(attn_mask="float2d", self_attn=False),
    "bool_3d": dict(attn_mask="bool3d", batch_first=True),
    "float_3d": dict(attn_mask="float3d", self_attn=False),
    "key_padding_bool": dict(kpm="bool", self_attn=False),
    "key_padding_float_and_bool_mask": dict(kpm="float", attn_mask="bool2d", batch_first=True),
    "is_causal": dict(is_causal=True),
    "is_causal_no_weights": dict(is_causal=True, need_weights=False),
    "no_weights_masks": dict(need_weights=False, attn_mask="float3d", kpm="bool", self_attn=False),
    "per_head_weights": dict(average=False, attn_mask="bool3d", kpm="bool"),
    "no_bias": dict(bias=False, self_attn=False),
    "unbatched": dict(unbatched=True, self_attn=False, kpm="bool"),
    "dropout_training": dict(dropout=0.4, kpm="bool", self_attn=False),
    "dropout_training_fused": dict(dropout=0.4, need_weights=False, batch_first=True),
}


@pytest.mark.parametrize("case", list(SPLIT_CASES))
def test_mha_split_heads_equals_batched(rng, case):
    c = dict(batch_first=False, kdim=None, self_attn=True, attn_mask=None, kpm=None, need_weights=True,
             average=True, is_causal=False, bias=True, unbatched=False, dropout=0.0) | SPLIT_CASES[case]
    E, H, N, L = 12, 3, 2, 4
    S = L if c["self_attn"] else 5
    m = A.MultiheadAttention(E, H, dropout=c["dropout"], bias=c["bias"], kdim=c["kdim"], vdim=c["kdim"],
                             batch_first=c["batch_first"]).double()
    if c["bias"]:  # non-zero biases, so their gradients are checked through every head
        m.in_proj_bias.numpy()[...] = rng.standard_normal(3 * E)
        m.out_proj.bias.numpy()[...] = rng.standard_normal(E)

    def shape(T, D):
        return (T, D) if c["unbatched"] else ((N, T, D) if c["batch_first"] else (T, N, D))
    q = rng.standard_normal(shape(L, E))
    kv = q if c["self_attn"] else rng.standard_normal(shape(S, c["kdim"] or E))
    am = None
    if c["attn_mask"] is not None:
        dims = (L, S) if c["attn_mask"].endswith("2d") else (N * H, L, S)
        am = rng.random(dims) < 0.4 if c["attn_mask"].startswith("bool") else rng.standard_normal(dims)
    kp = None
    if c["kpm"] is not None:
        kp = rng.random((N, S)) < 0.4
        kp[0, :] = True  # one fully blocked example: NaN with need_weights=True, zeros without (as torch)
        if c["kpm"] == "float":
            kp = np.where(kp, -np.inf, rng.standard_normal((N, S)))
        if c["unbatched"]:
            kp = kp[1]
    kw = dict(need_weights=c["need_weights"], average_attn_weights=c["average"], is_causal=c["is_causal"])
    seed = 5 if c["dropout"] else None  # the same dropout draw in both paths
    batched, scopes_b = _mha_run(m, q, kv, c["self_attn"], kp, am, kw, seed)
    m.split_heads = True
    split, scopes_s = _mha_run(m, q, kv, c["self_attn"], kp, am, kw, seed)
    assert batched.keys() == split.keys()
    nan_rows = c["kpm"] is not None and c["need_weights"] and not c["unbatched"]  # unbatched: kp[1], not kp[0]
    assert np.isnan(batched["out"]).any() == nan_rows
    for k in batched:
        assert nan_rows or np.isfinite(batched[k]).all(), k
        assert np.array_equal(np.isnan(split[k]), np.isnan(batched[k])), k
        np.testing.assert_allclose(split[k], batched[k], rtol=1e-12, atol=1e-13, err_msg=k)
    assert not [p for p in scopes_b if "/head" in p]  # the default path records no head scopes
    assert {p for p in scopes_s if "/head" in p} == {f"MultiheadAttention/head{i}" for i in range(H)}
    if c["dropout"]:
        assert (batched["out"] != _mha_run(m, q, kv, c["self_attn"], kp, am, kw, seed + 1)[0]["out"]).any()


def test_mha_split_heads_flag_repr_and_set_split_heads():
    from tinygrad_seq.models import Transformer, set_split_heads
    m = A.MultiheadAttention(8, 2, split_heads=True)
    assert m.split_heads and "split_heads=True" in repr(m) and "split_heads" not in repr(A.MultiheadAttention(8, 2))
    assert "split_heads" not in m.state_dict()
    t = Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8, dropout=0.0)
    mhas = [x for x in t.modules() if isinstance(x, A.MultiheadAttention)]
    assert len(mhas) == 3 and not any(x.split_heads for x in mhas)
    assert set_split_heads(t) is t and all(x.split_heads for x in mhas)
    set_split_heads(t, False)
    assert not any(x.split_heads for x in mhas)
