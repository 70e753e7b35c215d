"""Seq2seq: KV-cache decoding equals full recompute, beam 1 equals greedy, beam search finds better
sequences than greedy, teacher forcing, RNN encoder-decoder attention, and a tiny model learns to copy."""
import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.models import seq2seq as S

SOS, EOS = 1, 2


def _src(rng, B=3, L=7, V=11):
    src = rng.integers(3, V, (B, L))
    kpm = np.zeros((B, L), bool)
    kpm[1, 5:] = True
    src[kpm] = 0
    return src, kpm


@pytest.mark.parametrize("norm_first", [False, True])
def test_kv_cache_incremental_decoding_equals_full_recompute(rng, norm_first):
    tg.manual_seed(0)
    m = S.Seq2SeqTransformer(2, 2, 16, 2, 11, 13, 32, dropout=0.0, norm_first=norm_first).double().eval()
    src, kpm = _src(rng)
    tgt = np.concatenate([np.full((3, 1), SOS), rng.integers(3, 13, (3, 6))], 1)
    with tg.no_grad():
        memory = m.encode(src, src_key_padding_mask=kpm)
        full = m.generator(m.decode(tgt, memory, memory_key_padding_mask=kpm)).log_softmax(-1).numpy()
        cache, steps = None, []
        for t in range(tgt.shape[1]):
            lp, cache, _ = m.decode_step(tgt[:, t], t, memory, cache, kpm)
            steps.append(lp)
    np.testing.assert_allclose(np.stack(steps, 1), full, rtol=1e-10, atol=1e-12)
    # the cache holds one key/value per decoded position in every layer
    assert all(c["k"].shape == (3, 2, tgt.shape[1], 8) for c in cache)
    ids, attn = m.greedy_decode(src, 8, SOS, EOS, src_key_padding_mask=kpm, return_attention=True)
    ids_full, _ = m.greedy_decode(src, 8, SOS, EOS, src_key_padding_mask=kpm, use_cache=False)
    np.testing.assert_array_equal(ids, ids_full)
    np.testing.assert_allclose(attn.sum(-1), 1, rtol=1e-10)
    assert np.all(attn[1, :, 5:] == 0)  # padded source positions get no attention


def test_teacher_forced_forward_equals_encode_decode(rng):
    tg.manual_seed(1)
    m = S.Seq2SeqTransformer(1, 1, 8, 2, 11, 13, 16, dropout=0.0).double()
    src, kpm = _src(rng)
    tgt = rng.integers(3, 13, (3, 5))
    logits = m(src, tgt, src_key_padding_mask=kpm)
    assert logits.shape == (3, 5, 13)
    mem = m.encode(src, src_key_padding_mask=kpm)
    ref = m.generator(m.decode(tgt, mem, memory_key_padding_mask=kpm))
    np.testing.assert_allclose(logits.numpy(), ref.numpy(), rtol=1e-12)
    # sequence-first tokens give the transposed logits
    m.batch_first = False
    np.testing.assert_allclose(m(src.T, tgt.T, src_key_padding_mask=kpm).numpy(), logits.numpy().transpose(1, 0, 2),
                               rtol=1e-12)
    m.batch_first = True
    # causal: changing later target tokens leaves earlier logits unchanged
    tgt2 = tgt.copy()
    tgt2[:, 3:] = (tgt2[:, 3:] + 1 - 3) % 10 + 3
    l2 = m(src, tgt2, src_key_padding_mask=kpm)
    np.testing.assert_allclose(l2.numpy()[:, :3], logits.numpy()[:, :3], rtol=1e-12, atol=1e-12)
    assert np.abs(l2.numpy()[:, 3:] - logits.numpy()[:, 3:]).max() > 1e-6


def test_transformer_beam_one_equals_greedy(rng):
    tg.manual_seed(2)
    m = S.Seq2SeqTransformer(1, 2, 16, 4, 11, 13, 32, dropout=0.0).double().eval()
    src, kpm = _src(rng)
    greedy, _ = m.greedy_decode(src, 9, SOS, EOS, src_key_padding_mask=kpm)
    beam, score = m.beam_search(src, 1, 9, SOS, EOS, src_key_padding_mask=kpm)
    np.testing.assert_array_equal(beam, greedy)
    beam4, score4 = m.beam_search(src, 4, 9, SOS, EOS, src_key_padding_mask=kpm)
    assert np.all(score4 >= score - 1e-9)  # a wider beam never finds a worse sequence here


def _markov_step(table):
    """a fixed next-token distribution depending only on the previous token"""
    logp = np.log(table)

    def step(y, state):
        return logp[y], state
    return step


def test_beam_search_beats_greedy_on_a_trap():
    # from SOS: token 3 (p .6) then anything (max .4), or token 4 (p .4) then EOS (p 1): .24 < .4
    V = 6
    t = np.full((V, V), 1e-9)
    t[SOS, 3], t[SOS, 4] = 0.6, 0.4
    t[3, [3, 4, 5]] = [0.4, 0.3, 0.3]
    t[4, EOS] = 1.0
    t[5, EOS] = 1.0
    t[EOS, EOS] = 1.0
    t /= t.sum(1, keepdims=True)
    step = _markov_step(t)

    def greedy_step(y, st):
        lp, st = step(y, st)
        return lp, st, None
    g, _ = S._greedy(greedy_step, None, 1, 4, SOS, EOS)
    b1, _ = S.beam_search(step, None, 1, 1, 4, SOS, EOS, lambda st, rows: st)
    b2, s2 = S.beam_search(step, None, 1, 2, 4, SOS, EOS, lambda st, rows: st)
    np.testing.assert_array_equal(b1, g)
    assert g[0, :2].tolist() == [3, 3]
    assert b2[0, :2].tolist() == [4, EOS]
    np.testing.assert_allclose(s2[0], np.log(0.4), rtol=1e-6)


@pytest.mark.parametrize("cell,attention,bidirectional", [("gru", "bahdanau", True), ("lstm", "luong", True),
                                                          ("gru", "dot", False)])
def test_rnn_seq2seq_attention_beam_and_teacher_forcing(rng, cell, attention, bidirectional):
    tg.manual_seed(3)
    m = S.RNNSeq2Seq(11, 13, 8, 12, cell=cell, attention=attention, bidirectional=bidirectional,
                     pad_idx=0).double()
    src, kpm = _src(rng)
    tgt = np.concatenate([np.full((3, 1), SOS), rng.integers(3, 13, (3, 4))], 1)
    logits, w = m(src, tgt)
    assert logits.shape == (3, 5, 13) and w.shape == (3, 5, 7)
    np.testing.assert_allclose(w.numpy().sum(-1), 1, rtol=1e-10)
    assert np.all(w.numpy()[1, :, 5:] == 0)
    # src_lengths gives the same padding as pad_idx
    l2, _ = m(src, tgt, src_lengths=(~kpm).sum(1))
    np.testing.assert_allclose(l2.numpy(), logits.numpy(), rtol=1e-12)
    logits.sum().backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if "tgt_embedding" not in n)
    m.eval()
    greedy, attn = m.greedy_decode(src, 6, SOS, EOS)
    assert attn.shape == greedy.shape + (7,)
    beam, _ = m.beam_search(src, 1, 6, SOS, EOS)
    np.testing.assert_array_equal(beam, greedy)
    # teacher_forcing_ratio=0 feeds the model's own argmax: the logits' argmax is the greedy output
    T = min(greedy.shape[1], 4)
    lo, _ = m(src, np.concatenate([np.full((3, 1), SOS), greedy[:, :T - 1]], 1), teacher_forcing_ratio=0.0)
    np.testing.assert_array_equal(lo.numpy().argmax(-1), greedy[:, :T])


def test_rnn_seq2seq_gradcheck_small(rng):
    tg.manual_seed(4)
    m = S.RNNSeq2Seq(6, 7, 3, 4, cell="gru", attention="bahdanau", pad_idx=0).double()
    src, _ = _src(rng, B=2, L=4, V=6)
    tgt = rng.integers(3, 7, (2, 3))
    params = [m.attention.score.W_q.weight, m.attention.score.v.weight, m.bridge.weight]
    tg.gradcheck(lambda *p: m(src, tgt)[0], params)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dot attention"):
        S.RNNSeq2Seq(5, 5, 4, 6, attention="dot", bidirectional=True)
    with pytest.raises(ValueError, match="attention must be"):
        S.RNNSeq2Seq(5, 5, attention="cosine")
    m = S.Seq2SeqTransformer(1, 1, 8, 2, 5, 5, 16)
    with pytest.raises(TypeError, match="integers"):
        m(np.zeros((2, 3)), np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="beam_size"):
        m.beam_search(np.ones((1, 3), np.int64), 0, 4, SOS, EOS)


@pytest.mark.slow
def test_transformer_learns_to_copy():
    tg.manual_seed(0)
    data = np.random.default_rng(0)
    m = S.Seq2SeqTransformer(1, 1, 32, 4, 8, 8, 64, dropout=0.0, norm_first=True)
    opt = tg.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        seq = data.integers(3, 8, (64, 4))
        tgt = np.concatenate([np.full((64, 1), SOS), seq, np.full((64, 1), EOS)], 1)
        logits = m(seq, tgt[:, :-1])
        loss = tg.nn.functional.cross_entropy(logits.reshape(-1, 8), tgt[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    m.eval()
    test = data.integers(3, 8, (256, 4))
    out, _ = m.greedy_decode(test, 5, SOS, EOS)
    acc = (out[:, :4] == test).all(1).mean()
    assert np.mean(losses[-10:]) < 0.1 * np.mean(losses[:10])
    assert acc > 0.9, (acc, losses[-1])  # chance: 5^-4
