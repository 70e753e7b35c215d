"""Recurrent demos: data generators (adding problem, digits, character corpus, BPTT windows) and the
`--quick` mode of `tinygrad-seq adding | digits | charlm`: it learns (clearly below its baseline),
writes metrics.jsonl and PNGs, and `--resume` continues from the checkpoint exactly as an
uninterrupted run."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.cli import main
from tinygrad_seq.demos import data as D

PNG = b"\x89PNG\r\n\x1a\n"


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG


def _same_checkpoint(a: Path, b: Path) -> None:
    ca, cb = tg.load(a), tg.load(b)
    assert ca["step"] == cb["step"]
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        np.testing.assert_array_equal(ca["model"][k], cb["model"][k], err_msg=k)


# ============================================================================================ data
def test_adding_problem_one_marker_per_half_and_target_is_their_sum(rng):
    for T in (2, 3, 10, 101):
        x, y = D.adding_problem(500, T, rng)
        assert x.shape == (500, T, 2) and y.shape == (500, 1) and x.dtype == np.float32
        values, markers = x[..., 0], x[..., 1]
        assert ((values >= 0) & (values < 1)).all()
        assert np.isin(markers, (0.0, 1.0)).all()
        half = T // 2
        np.testing.assert_array_equal(markers[:, :half].sum(1), 1)
        np.testing.assert_array_equal(markers[:, half:].sum(1), 1)
        np.testing.assert_allclose(y[:, 0], (values * markers).sum(1), rtol=1e-6)
    # every position of each half gets a marker sometimes (uniform placement)
    x, _ = D.adding_problem(4000, 8, rng)
    assert (x[..., 1].sum(0) > 0).all()
    with pytest.raises(ValueError, match="T must be >= 2"):
        D.adding_problem(4, 1, rng)


def test_adding_constant_prediction_baseline_is_one_sixth(rng):
    _, y = D.adding_problem(200_000, 20, rng, dtype=np.float64)
    assert abs(((y - 1.0) ** 2).mean() - D.ADDING_BASELINE_MSE) < 3e-3
    assert abs(D.ADDING_BASELINE_MSE - 0.167) < 1e-3


def test_digits_sequences_fixed_stratified_split():
    pytest.importorskip("sklearn")
    x_tr, y_tr, x_te, y_te = D.load_digits_sequences()
    assert x_tr.shape[1:] == (64, 1) and x_te.shape[1:] == (64, 1) and len(x_tr) + len(x_te) == 1797
    assert x_tr.min() == 0.0 and x_tr.max() == 1.0 and x_tr.dtype == np.float32
    assert abs(len(x_te) / 1797 - 0.2) < 0.01
    assert np.bincount(y_te, minlength=10).min() >= 30  # stratified: every class held out
    x_tr2, _, x_te2, y_te2 = D.load_digits_sequences()
    np.testing.assert_array_equal(x_te, x_te2)
    np.testing.assert_array_equal(y_te, y_te2)
    from sklearn.datasets import load_digits
    raw = load_digits()
    # pixel order is the image's row-major order, scaled by 1/16
    k = int(np.flatnonzero((raw.data / 16.0 == x_te[0, :, 0].astype(np.float64)).all(1))[0])
    np.testing.assert_allclose(raw.images[k].reshape(-1) / 16.0, x_te[0, :, 0], rtol=1e-6)


def test_char_corpus_vocab_split_and_unigram_baseline():
    text = "abracadabra\n" * 20 + "zzz"
    c = D.CharCorpus.from_text(text, valid_fraction=0.2, test_fraction=0.1)
    cut_v, cut_t = int(len(text) * 0.7), int(len(text) * 0.9)
    assert c.itos == sorted(set(text[:cut_v])) + [D.UNK_CHAR] and c.vocab_size == 7
    assert (len(c.train), len(c.valid), len(c.test)) == (cut_v, cut_t - cut_v, len(text) - cut_t)
    # "z" occurs only in the test part: it is not in the vocabulary and reads as UNK_CHAR
    assert "z" not in c.itos and c.decode(c.test) == text[cut_t:].replace("z", D.UNK_CHAR)
    assert c.decode(np.concatenate([c.train, c.valid])) == text[:cut_t]
    assert c.decode(c.encode("cab")) == "cab"
    with pytest.raises(ValueError, match="not in the corpus vocabulary"):
        c.encode("q")
    counts = np.array([text[:cut_v].count(ch) for ch in c.itos]) + 1.0  # UNK_CHAR: never in training
    p = counts / counts.sum()
    expected = -np.mean([math.log2(p[c.itos.index(ch if ch in c.itos else D.UNK_CHAR)]) for ch in text[cut_t:]])
    assert c.unigram_bpc("test") == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="too small"):
        D.CharCorpus.from_text("short")


def test_char_corpus_validation_only_character_maps_to_unk():
    text = "ab" * 90 + "Q" + "ab" * 9   # "Q" lies in the validation part only
    c = D.CharCorpus.from_text(text, valid_fraction=0.1, test_fraction=0.0)
    assert c.itos == ["a", "b", D.UNK_CHAR] and len(c.test) == 0
    assert int((c.valid == c.unk_index).sum()) == 1 and not (c.train == c.unk_index).any()


def test_default_corpus_is_deterministic_stdlib_sources(tmp_path):
    files = D.default_corpus_files(300_000)
    assert files == D.default_corpus_files(300_000) and files == sorted(files)
    assert all(f.suffix == ".py" for f in files)
    assert sum(f.stat().st_size for f in files) >= 300_000
    text = D.read_corpus(None, 50_000)
    assert len(text) == 50_000 and text == D.read_corpus(None, 50_000)
    (tmp_path / "b.txt").write_text("second ")
    (tmp_path / "a.py").write_text("first ")
    assert D.read_corpus(tmp_path) == "first second "
    assert D.read_corpus(tmp_path / "b.txt") == "second "
    with pytest.raises(ValueError, match="no such file"):
        D.read_corpus(tmp_path / "missing")


def test_default_corpus_with_packages_extends_the_top_level_files():
    import sysconfig
    from pathlib import Path
    root = Path(sysconfig.get_paths()["stdlib"])
    top = D.default_corpus_files(10**9)
    files = D.default_corpus_files(10**9, packages=True)
    assert files == D.default_corpus_files(10**9, packages=True)
    assert files[:len(top)] == top and len(files) > len(top) + 50   # the same start: the default is unchanged
    rest = [f.relative_to(root).parts for f in files[len(top):]]
    assert all(len(r) > 1 and r[-1].endswith(".py") for r in rest) and rest == sorted(rest)
    skipped = {"test", "tests", "idle_test", "site-packages", "encodings", "pydoc_data"}
    assert not any(skipped & set(r[:-1]) for r in rest)
    assert ("json", "decoder.py") in rest
    assert D.read_corpus(None, 50_000, packages=True) == D.read_corpus(None, 50_000)


def test_charlm_stdlib_packages_flag(tmp_path, capsys):
    assert main(["charlm", "--quick", "--stdlib-packages", "--corpus", str(tmp_path)]) == 2
    assert "--stdlib-packages" in capsys.readouterr().err
    out = tmp_path / "run"
    common = ["charlm", "--quick", "--eager", "--eval-every", "2", "--out", str(out)]
    assert main(common + ["--iters", "2", "--stdlib-packages"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["stdlib_packages"] is True and cfg["max_bytes"] == 40_000  # --quick keeps its small cap
    # a run saved before the flag existed trained on the top-level files: it resumes as such
    del cfg["stdlib_packages"]
    (out / "config.json").write_text(json.dumps(cfg))
    assert main(common + ["--iters", "4", "--resume", "--stdlib-packages"]) == 2
    assert "--stdlib-packages False" in capsys.readouterr().err
    assert main(common + ["--iters", "4", "--resume"]) == 0


def test_bptt_streams_and_windows_are_contiguous():
    ids = np.arange(103)
    s = D.bptt_streams(ids, 4)
    assert s.shape == (4, 25)
    np.testing.assert_array_equal(s[1], np.arange(25, 50))
    x0, y0, new0 = D.bptt_window(s, 0, 10)
    x1, y1, new1 = D.bptt_window(s, 1, 10)
    assert new0 and not new1 and x0.shape == y0.shape == (4, 10)
    np.testing.assert_array_equal(y0, x0 + 1)  # targets are the next characters
    np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # the next window continues each stream
    x2, _, new2 = D.bptt_window(s, 2, 10)  # (25 - 1) // 10 = 2 windows: window 2 wraps to window 0
    assert new2 and np.array_equal(x2, x0)
    with pytest.raises(ValueError, match="shorter than bptt"):
        D.bptt_window(s, 0, 30)
    with pytest.raises(ValueError, match="too few"):
        D.bptt_streams(np.arange(5), 4)


# ============================================================================================ demos
@pytest.fixture(scope="module")
def adding_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("adding")
    assert main(["adding", "--quick", "--cells", "lstm,gru", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_adding_quick_lstm_gru_beat_constant_baseline(adding_run):
    rows = {r["cell"]: r for r in json.loads((adding_run / "results.json").read_text())}
    for cell in ("lstm", "gru"):
        # predicting 1 gives 1/6; a model that learned the task is far below
        assert rows[cell]["test MSE"] < D.ADDING_BASELINE_MSE / 4, rows[cell]
        recs = _metrics(adding_run / cell / "metrics.jsonl")
        test = [r for r in recs if r["split"] == "test"]
        assert [r["step"] for r in test] == list(range(50, 301, 50))
        assert test[-1]["loss"] == pytest.approx(rows[cell]["test MSE"], rel=1e-6)
        assert {r["split"] for r in recs} == {"train", "test"}
        assert _is_png(adding_run / cell / "loss.png")
        assert tg.load(adding_run / cell / "checkpoint.npz")["step"] == 300
    assert _is_png(adding_run / "adding.png")


@pytest.mark.slow
def test_adding_resume_continues_identically(tmp_path):
    # eager: a compiled run's first call after a resume is the (eager) trace, whose float32 rounding
    # differs from the replay's (GEMM and reduction order), so only eager runs are bit-identical
    full, out = str(tmp_path / "full"), str(tmp_path / "parts")
    common = ["adding", "--quick", "--cells", "gru", "--eager"]
    assert main(common + ["--out", full]) == 0
    assert main(common + ["--out", out, "--iters", "150"]) == 0
    assert tg.load(tmp_path / "parts" / "gru" / "checkpoint.npz")["step"] == 150
    assert main(common + ["--out", out, "--resume"]) == 0
    recs = _metrics(tmp_path / "parts" / "gru" / "metrics.jsonl")
    assert recs == _metrics(tmp_path / "full" / "gru" / "metrics.jsonl")  # same losses at the same steps
    _same_checkpoint(tmp_path / "parts" / "gru" / "checkpoint.npz", tmp_path / "full" / "gru" / "checkpoint.npz")
    # resuming a finished run trains nothing more
    assert main(common + ["--out", out, "--resume"]) == 0
    assert _metrics(tmp_path / "parts" / "gru" / "metrics.jsonl") == recs


@pytest.mark.slow
def test_adding_resume_compiled_matches_uninterrupted_run(adding_run, tmp_path):
    out = str(tmp_path)
    assert main(["adding", "--quick", "--cells", "gru", "--out", out, "--iters", "150"]) == 0
    assert main(["adding", "--quick", "--cells", "gru", "--out", out, "--resume"]) == 0
    a, b = _metrics(tmp_path / "gru" / "metrics.jsonl"), _metrics(adding_run / "gru" / "metrics.jsonl")
    assert [(r["step"], r["split"]) for r in a] == [(r["step"], r["split"]) for r in b]
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-4)


def test_adding_rejects_bad_arguments(tmp_path, capsys):
    for flag, value in (("--cells", "lstmm"), ("--seq-len", "1"), ("--lr", "0")):
        assert main(["adding", "--quick", flag, value, "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert f"argument {flag}" in err and repr(value) in err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("digits")
    assert main(["digits", "--quick", "--cells", "gru", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_digits_quick_learns_and_scores_test_once_at_the_best_validation_epoch(digits_run):
    (row,) = json.loads((digits_run / "results.json").read_text())
    assert row["cell"] == "gru" and row["epochs"] == 3 and row["seed"] == 0
    assert row["test accuracy"] > 0.3  # chance is 0.1
    recs = _metrics(digits_run / "gru" / "metrics.jsonl")
    valid = [r for r in recs if r["split"] == "valid"]
    assert [r["epoch"] for r in valid] == [1, 2, 3]
    best = max(valid, key=lambda r: (r["accuracy"], -r["epoch"]))  # earliest best
    assert row["best epoch"] == best["epoch"] and row["valid accuracy"] == best["accuracy"]
    (test,) = [r for r in recs if r["split"] == "test"]  # the test set is looked at once
    assert test["epoch"] == row["best epoch"] and test["accuracy"] == row["test accuracy"]
    assert test["loss"] < math.log(10)  # below the uniform-prediction loss
    # the reported weights are the best epoch's: best.npz scores the validation accuracy logged then
    from tinygrad_seq.demos.recurrent import LastStateModel
    model = LastStateModel("gru", 1, 32, 10)
    model.load_state_dict(tg.load(digits_run / "gru" / "best.npz"))
    _, (x_va, y_va), _ = D.load_digits_splits()
    model.eval()
    with tg.no_grad():
        acc = float((model(tg.Tensor(x_va)).numpy().argmax(-1) == y_va).mean())
    assert acc == pytest.approx(best["accuracy"])
    for png in ("gru/loss.png", "gru/accuracy.png", "digits.png"):
        assert _is_png(digits_run / png)


def test_digits_validation_split_is_carved_from_training_only():
    pytest.importorskip("sklearn")
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = D.load_digits_splits()
    _, _, x_te0, y_te0 = D.load_digits_sequences()
    np.testing.assert_array_equal(x_te, x_te0)  # the test set is the one it always was
    np.testing.assert_array_equal(y_te, y_te0)
    assert (len(x_tr), len(x_va), len(x_te)) == (1149, 288, 360)
    assert np.bincount(y_va, minlength=10).min() >= 25  # stratified
    rows = lambda x: {r.tobytes() for r in x.reshape(len(x), -1)}  # noqa: E731
    # no image in two splits (the digits data has no exact duplicates across them)
    assert not rows(x_tr) & rows(x_va) and not rows(x_tr) & rows(x_te) and not rows(x_va) & rows(x_te)


@pytest.mark.slow
def test_seeds_give_one_run_per_seed_and_their_mean_and_spread(tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["adding", "--quick", "--iters", "40", "--cells", "gru,rnn", "--seeds", "0,1", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [(r["cell"], r["seed"]) for r in rows] == [("rnn", 0), ("gru", 0), ("rnn", 1), ("gru", 1)]
    for r in rows:
        recs = _metrics(out / f"seed{r['seed']}" / r["cell"] / "metrics.jsonl")
        assert recs[-1]["split"] == "test" and recs[-1]["loss"] == pytest.approx(r["test MSE"], rel=1e-6)
    summary = {s["cell"]: s for s in json.loads((out / "summary.json").read_text())}
    for cell in ("rnn", "gru"):
        vals = [r["test MSE"] for r in rows if r["cell"] == cell]
        assert vals[0] != vals[1]  # other seeds, other runs
        assert summary[cell]["mean test MSE"] == pytest.approx(np.mean(vals))
        assert summary[cell]["sd"] == pytest.approx(np.std(vals, ddof=1))
        assert summary[cell]["seeds"] == "0,1"
    assert "over seeds" in capsys.readouterr().out


@pytest.mark.slow
def test_compiled_and_eager_runs_agree_and_say_which(tmp_path, capsys):
    """tg.compile is the default (and says so); --eager gives the same numbers."""
    res = {}
    for flag in ([], ["--eager"]):
        out = tmp_path / ("eager" if flag else "compiled")
        assert main(["adding", "--quick", "--iters", "30", "--cells", "lstm", "--out", str(out), *flag]) == 0
        said = capsys.readouterr().out.splitlines()[0]
        assert said.startswith("[eager (--eager)" if flag else "[tg.compile on (--eager to turn it off)"), said
        res[bool(flag)] = _metrics(out / "lstm" / "metrics.jsonl")
    assert [r["step"] for r in res[True]] == [r["step"] for r in res[False]]
    for a, b in zip(res[True], res[False]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-7)


def test_lstm_init_chrono_sets_forget_and_input_biases(tmp_path):
    from tinygrad_seq.demos.recurrent import LastStateModel
    tg.manual_seed(0)
    m = LastStateModel("lstm", 2, 16, 1, {"chrono_init": 200.0})
    H = 16
    b = m.rnn.bias_ih_l0.numpy() + m.rnn.bias_hh_l0.numpy()
    bf, bi = b[H:2 * H], b[:H]
    # b_f = log U(1, T-1): forget gates start between sigmoid(0) and sigmoid(log 199)
    assert (bf >= 0).all() and (bf <= math.log(199) + 1e-6).all() and bf.mean() > 3
    np.testing.assert_allclose(bi, -bf, atol=1e-6)


@pytest.mark.slow
def test_digits_resume_continues_identically(tmp_path):
    pytest.importorskip("sklearn")
    # eager, for bit-identity (see test_adding_resume_continues_identically)
    full, out = str(tmp_path / "full"), str(tmp_path / "parts")
    common = ["digits", "--quick", "--cells", "gru", "--eager"]
    assert main(common + ["--out", full]) == 0
    assert main(common + ["--out", out, "--epochs", "1"]) == 0
    assert main(common + ["--out", out, "--resume"]) == 0
    assert _metrics(tmp_path / "parts" / "gru" / "metrics.jsonl") == _metrics(tmp_path / "full" / "gru" / "metrics.jsonl")
    _same_checkpoint(tmp_path / "parts" / "gru" / "checkpoint.npz", tmp_path / "full" / "gru" / "checkpoint.npz")


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("charlm")
    assert main(["charlm", "--quick", "--iters", "100", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_charlm_quick_beats_unigram_baseline_and_samples(charlm_run, capsys):
    res = json.loads((charlm_run / "results.json").read_text())
    assert res["steps"] == 100
    assert res["bpc"] < res["unigram_bpc"] - 0.5, res
    assert res["sample"].startswith("def ") and len(res["sample"]) == len("def ") + 80
    valid = [r for r in _metrics(charlm_run / "metrics.jsonl") if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [50, 100]
    # the reported checkpoint is the validation minimum, and best.npz holds its weights
    low = min(valid, key=lambda r: r["loss"])
    assert (res["best_step"], res["valid_bpc"]) == (low["step"], low["loss"])
    assert res["last_valid_bpc"] == valid[-1]["loss"]
    from tinygrad_seq.demos import recurrent as R
    itos = json.loads((charlm_run / "config.json").read_text())["itos"]
    model = R.CharLM(len(itos), 16, 64, 1, "lstm")
    model.load_state_dict(tg.load(charlm_run / "best.npz")["model"])
    corpus = D.CharCorpus.from_text(D.read_corpus(None, 40_000))
    assert corpus.itos == itos
    assert R.charlm_bpc(model, corpus.valid[:4000], 16, 32) == pytest.approx(res["valid_bpc"], rel=1e-6)
    assert _is_png(charlm_run / "loss.png")
    capsys.readouterr()
    # sampling from the checkpoint alone (model shape and vocabulary come from the run directory)
    assert main(["charlm", "--out", str(charlm_run), "--resume", "--sample-only", "--prompt", "import ",
                 "--sample-len", "30", "--temperature", "0.5"]) == 0
    text = capsys.readouterr().out.strip().splitlines()
    assert "step 100" in text[0]
    assert "\n".join(text[1:]).startswith("import ")
    assert main(["charlm", "--out", str(charlm_run), "--sample-only", "--prompt", "\x00"]) == 2
    assert "--prompt" in capsys.readouterr().err


@pytest.mark.slow
def test_charlm_resume_continues_identically(charlm_run, tmp_path):
    # eager for bit-identity (see test_adding_resume_continues_identically); the compiled run (charlm_run)
    # agrees with the eager one up to float32 rounding
    full, out = tmp_path / "full", tmp_path / "parts"
    common = ["charlm", "--quick", "--eager"]
    assert main(common + ["--iters", "100", "--out", str(full)]) == 0
    assert main(common + ["--iters", "60", "--out", str(out)]) == 0
    ckpt = tg.load(out / "checkpoint.npz")
    assert ckpt["step"] == 60 and "h" in ckpt["extra"] and "c" in ckpt["extra"]  # carried LSTM state saved
    assert main(common + ["--iters", "100", "--out", str(out), "--resume"]) == 0
    a, b = _metrics(out / "metrics.jsonl"), _metrics(full / "metrics.jsonl")
    # the short run also evaluated at its last step (60); everything else matches the uninterrupted run
    assert [r for r in a if (r["split"], r["step"]) != ("valid", 60)] == b
    _same_checkpoint(out / "checkpoint.npz", full / "checkpoint.npz")
    assert json.loads((out / "results.json").read_text()) == json.loads((full / "results.json").read_text())
    c = _metrics(charlm_run / "metrics.jsonl")
    assert [(r["step"], r["split"]) for r in c] == [(r["step"], r["split"]) for r in b]
    assert [r["loss"] for r in c] == pytest.approx([r["loss"] for r in b], rel=1e-4)


def test_charlm_sample_only_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert main(["charlm", "--out", str(tmp_path), "--sample-only"]) == 2
    assert "no trained model" in capsys.readouterr().err


def test_charlm_full_excludes_quick(capsys):
    assert main(["charlm", "--full", "--quick"]) == 2
    assert "--full and --quick" in capsys.readouterr().err
