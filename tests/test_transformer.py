"""Transformer layers against torch.nn with copied weights (float64: outputs, input and parameter gradients),
positional encodings, masks and causality."""
import copy

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.models import transformer as T

from conftest import leaf64

E, H, FF = 8, 2, 16

# torch's own notices about its mask types and nested-tensor fast path
pytestmark = [pytest.mark.filterwarnings("ignore:Support for mismatched"),
              pytest.mark.filterwarnings("ignore:enable_nested_tensor")]


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _compare(torch, tm, m, inputs, kw_t, kw_m, rng):
    """Copy tm's weights into m; compare outputs, input gradients and every parameter gradient."""
    tm = tm.double()
    m = m.double()
    assert list(m.state_dict()) == list(tm.state_dict())
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    ti = [torch.tensor(x, requires_grad=True) for x in inputs]
    mi = [leaf64(x) for x in inputs]
    to, mo = tm(*ti, **kw_t), m(*mi, **kw_m)
    np.testing.assert_allclose(mo.numpy(), to.detach().numpy(), rtol=1e-9, atol=1e-11)
    g = rng.standard_normal(to.shape)
    to.backward(torch.tensor(g))
    mo.backward(g)
    for a, b in zip(mi, ti):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-10)
    tp = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)


def _masks(torch, rng, L, S, N, bool_masks: bool):
    causal = T.generate_square_subsequent_mask(L, np.float64).numpy()
    kpm = np.zeros((N, S), bool)
    kpm[0, S - 2:] = True
    if bool_masks:
        causal = causal == -np.inf
    return causal, kpm


VARIANTS = [(False, "relu"), (True, "gelu"), (False, "gelu"), (True, "relu")]


@pytest.mark.parametrize("norm_first,activation", VARIANTS)
def test_encoder_layer_matches_torch(torch, rng, norm_first, activation):
    batch_first = norm_first  # cover both layouts
    tm = torch.nn.TransformerEncoderLayer(E, H, FF, 0.0, activation, batch_first=batch_first, norm_first=norm_first)
    m = T.TransformerEncoderLayer(E, H, FF, 0.0, activation, batch_first=batch_first, norm_first=norm_first)
    N, L = 3, 5
    x = rng.standard_normal((N, L, E) if batch_first else (L, N, E))
    mask, kpm = _masks(torch, rng, L, L, N, bool_masks=activation == "gelu")
    _compare(torch, tm, m, [x], dict(src_mask=torch.tensor(mask), src_key_padding_mask=torch.tensor(kpm)),
             dict(src_mask=mask, src_key_padding_mask=kpm), rng)


@pytest.mark.parametrize("norm_first,activation", VARIANTS)
def test_decoder_layer_matches_torch(torch, rng, norm_first, activation):
    tm = torch.nn.TransformerDecoderLayer(E, H, FF, 0.0, activation, batch_first=True, norm_first=norm_first)
    m = T.TransformerDecoderLayer(E, H, FF, 0.0, activation, batch_first=True, norm_first=norm_first)
    N, L, S = 2, 4, 6
    tgt, mem = rng.standard_normal((N, L, E)), rng.standard_normal((N, S, E))
    mask, _ = _masks(torch, rng, L, L, N, bool_masks=False)
    mem_kpm = np.zeros((N, S), bool)
    mem_kpm[1, 4:] = True
    memory_mask = rng.standard_normal((L, S))
    _compare(torch, tm, m, [tgt, mem],
             dict(tgt_mask=torch.tensor(mask), memory_mask=torch.tensor(memory_mask),
                  memory_key_padding_mask=torch.tensor(mem_kpm), tgt_is_causal=True),
             dict(tgt_mask=mask, memory_mask=memory_mask, memory_key_padding_mask=mem_kpm, tgt_is_causal=True), rng)


def test_encoder_and_decoder_stacks_match_torch(torch, rng):
    tl = torch.nn.TransformerEncoderLayer(E, H, FF, 0.0, batch_first=False)
    te = torch.nn.TransformerEncoder(tl, 2, norm=torch.nn.LayerNorm(E))
    me = T.TransformerEncoder(T.TransformerEncoderLayer(E, H, FF, 0.0), 2, norm=tg.nn.LayerNorm(E))
    x = rng.standard_normal((5, 2, E))
    kpm = np.zeros((2, 5), bool)
    kpm[1, 3:] = True
    _compare(torch, te, me, [x], dict(src_key_padding_mask=torch.tensor(kpm)), dict(src_key_padding_mask=kpm), rng)
    dl = torch.nn.TransformerDecoderLayer(E, H, FF, 0.0, activation="gelu", norm_first=True)
    td = torch.nn.TransformerDecoder(dl, 2)
    md = T.TransformerDecoder(T.TransformerDecoderLayer(E, H, FF, 0.0, activation="gelu", norm_first=True), 2)
    tgt, mem = rng.standard_normal((4, 2, E)), rng.standard_normal((5, 2, E))
    mask = T.generate_square_subsequent_mask(4, np.float64).numpy()
    tkpm = np.zeros((2, 4), bool)
    tkpm[0, 3] = True
    _compare(torch, td, md, [tgt, mem], dict(tgt_mask=torch.tensor(mask), tgt_key_padding_mask=torch.tensor(tkpm)),
             dict(tgt_mask=mask, tgt_key_padding_mask=tkpm), rng)


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_transformer_matches_torch(torch, rng, norm_first, activation):
    kw = dict(d_model=E, nhead=H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF, dropout=0.0,
              activation=activation, norm_first=norm_first, batch_first=norm_first)
    tm, m = torch.nn.Transformer(**kw), T.Transformer(**kw)
    N, S, L = 2, 6, 4
    shape = (lambda n: (N, n, E)) if norm_first else (lambda n: (n, N, E))
    src, tgt = rng.standard_normal(shape(S)), rng.standard_normal(shape(L))
    tgt_mask = T.Transformer.generate_square_subsequent_mask(L).numpy().astype(np.float64)
    src_kpm = np.zeros((N, S), bool)
    src_kpm[1, 4:] = True
    _compare(torch, tm, m, [src, tgt],
             dict(tgt_mask=torch.tensor(tgt_mask), src_key_padding_mask=torch.tensor(src_kpm),
                  memory_key_padding_mask=torch.tensor(src_kpm)),
             dict(tgt_mask=tgt_mask, src_key_padding_mask=src_kpm, memory_key_padding_mask=src_kpm), rng)


def test_defaults_names_and_mask(torch):
    m = T.Transformer()
    tm = torch.nn.Transformer()
    assert list(m.state_dict()) == list(tm.state_dict())
    assert {k: v.shape for k, v in m.state_dict().items()} == {k: tuple(v.shape) for k, v in tm.state_dict().items()}
    layer = m.encoder.layers[0]
    assert layer.linear1.out_features == 2048 and layer.dropout.p == 0.1 and layer.norm1.eps == 1e-5
    assert not layer.norm_first and not layer.self_attn.batch_first
    np.testing.assert_array_equal(T.Transformer.generate_square_subsequent_mask(5).numpy(),
                                  torch.nn.Transformer.generate_square_subsequent_mask(5).numpy())
    # every matrix is xavier-initialised, the copies are independent
    a = np.sqrt(6 / (512 + 2048))
    assert np.abs(layer.linear1.weight.numpy()).max() <= a
    assert m.encoder.layers[0].linear1.weight is not m.encoder.layers[1].linear1.weight
    assert not np.array_equal(m.encoder.layers[0].linear1.weight.numpy(), m.encoder.layers[1].linear1.weight.numpy())


def test_activation_callable_and_bad_activation(rng):
    x = leaf64(rng.standard_normal((3, 2, E)))
    a = T.TransformerEncoderLayer(E, H, FF, 0.0, activation="gelu").double()
    b = copy.deepcopy(a)
    b.activation = lambda t: t.gelu()
    np.testing.assert_allclose(a(x).numpy(), b(x).numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="relu/gelu"):
        T.TransformerEncoderLayer(E, H, activation="swish")


def test_causal_mask_future_targets_do_not_change_earlier_outputs(rng):
    tg.manual_seed(0)
    m = T.Transformer(E, H, 1, 2, FF, 0.0, batch_first=True).double()
    src = leaf64(rng.standard_normal((2, 5, E)), False)
    tgt = rng.standard_normal((2, 6, E))
    mask = T.Transformer.generate_square_subsequent_mask(6, np.float64)
    out = m(src, tg.Tensor(tgt), tgt_mask=mask).numpy()
    tgt2 = tgt.copy()
    tgt2[:, 4:] = rng.standard_normal((2, 2, E))  # change positions 4, 5
    out2 = m(src, tg.Tensor(tgt2), tgt_mask=mask).numpy()
    np.testing.assert_allclose(out2[:, :4], out[:, :4], rtol=1e-12, atol=1e-12)
    assert np.abs(out2[:, 4:] - out[:, 4:]).max() > 1e-3
    out3 = m(src, tg.Tensor(tgt2)).numpy()  # without the mask the earlier positions do see the change
    assert np.abs(out3[:, :4] - out[:, :4]).max() > 1e-3


def test_positional_encoding_sinusoid_and_learned(rng):
    d, L = 6, 7
    pe = T.PositionalEncoding(d, dropout=0.0, max_len=20)
    x = tg.zeros(2, L, d)
    out = pe(x).numpy()
    pos, i = np.arange(L)[:, None], np.arange(0, d, 2)[None]
    ref = np.zeros((L, d))
    ref[:, 0::2] = np.sin(pos / 10000 ** (i / d))
    ref[:, 1::2] = np.cos(pos / 10000 ** (i / d))
    np.testing.assert_allclose(out, np.broadcast_to(ref, (2, L, d)), rtol=1e-5, atol=1e-6)
    assert "pe" not in pe.state_dict()
    seq_first = T.PositionalEncoding(d, dropout=0.0, max_len=20, batch_first=False)
    np.testing.assert_allclose(seq_first(tg.zeros(L, 2, d)).numpy(), out.transpose(1, 0, 2), rtol=1e-6)
    with pytest.raises(ValueError, match="max_len"):
        pe(tg.zeros(1, 21, d))
    learned = T.PositionalEncoding(d, dropout=0.0, max_len=20, learned=True).double()
    y = learned(leaf64(np.zeros((2, L, d))))
    np.testing.assert_allclose(y.numpy()[0], learned.pe.weight.numpy()[:L])
    y.sum().backward()
    np.testing.assert_allclose(learned.pe.weight.grad.numpy()[:L], 2)
    assert np.all(learned.pe.weight.grad.numpy()[L:] == 0)


def test_token_embedding_scaled(rng):
    emb = T.TokenEmbedding(10, 16)
    ids = np.array([[1, 2, 3]])
    np.testing.assert_allclose(emb(ids).numpy(), emb.embedding.weight.numpy()[ids] * 4.0, rtol=1e-6)


def test_token_embedding_scale_matches_positions(rng):
    emb = T.TokenEmbedding(50, 64, padding_idx=0)
    out = emb(np.arange(50)[None]).numpy()[0, 1:]
    assert 0.8 < out.std() < 1.2  # E ~ N(0, 1/d): scaled rows are ~N(0, 1) like sin/cos positions
    assert np.all(emb.embedding.weight.numpy()[0] == 0)
