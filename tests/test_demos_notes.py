"""The issue-12 demos in --quick mode (`tinygrad-seq norms | forecast | glimpse | classify`): each learns
(beats its baseline where one exists), writes its metrics, plots and checkpoints, and the measured
effect is the one the notes describe."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tinygrad_seq.cli import UsageError

from tinygrad_seq.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG


# ============================================================================================ norms
def test_norms_data_and_layernorm_ignores_the_batch():
    from tinygrad_seq.demos import norms

    rng = np.random.default_rng(0)
    sents, y = norms.make_sentences(300, 12, 8, rng)
    assert all(3 <= len(s) <= 12 and s.min() >= 1 for s in sents)
    np.testing.assert_array_equal(y, [int(4 * (s == norms.TOK_A).sum() > len(s)) for s in sents])
    assert 0.3 < y.mean() < 0.7
    ids, mask = norms.pad_batch(sents[:4], 15)
    assert ids.shape == (4, 15) and mask.sum() == sum(len(s) for s in sents[:4])
    ln = norms.PooledClassifier(8, 6, 10, "layernorm")
    bn = norms.PooledClassifier(8, 6, 10, "batchnorm")
    ln.load_state_dict({k: v for k, v in bn.state_dict().items() if k in ln.state_dict()}, strict=False)
    a = [sents[0]] + sents[1:4]
    b = [sents[0]] + sents[10:17]
    # the same sentence, other companions and more padding: LayerNorm gives the same output, BatchNorm not
    np.testing.assert_allclose(norms.logit_margin(ln, a)[0], norms.logit_margin(ln, b, 30)[0], rtol=1e-5)
    assert abs(norms.logit_margin(bn, a)[0] - norms.logit_margin(bn, b, 30)[0]) > 1e-3


@pytest.mark.slow
def test_norms_quick_learns_and_measures_batch_sensitivity(tmp_path):
    assert main(["norms", "--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    rows = {r["model"]: r for r in res["rows"]}
    for r in rows.values():
        assert r["test accuracy"] > res["majority"] + 0.3, r
    assert rows["layernorm"]["sensitivity"] < 1e-6 and rows["layernorm"]["train/eval gap"] < 1e-5
    for v in ("batchnorm", "batchnorm-b2"):
        assert rows[v]["sensitivity"] > 0.02 and rows[v]["train/eval gap"] > 0.02, rows[v]
    assert _is_png(tmp_path / "norms.png") and _is_png(tmp_path / "batchnorm" / "loss.png")
    assert (tmp_path / "batchnorm-b2" / "checkpoint.npz").exists()
    assert rows["batchnorm-b2"]["iters"] == 16 * rows["batchnorm"]["iters"]  # same sentences seen


# ============================================================================================ forecast
def test_forecast_windows_seasonal_naive_and_csv(tmp_path):
    from tinygrad_seq.demos import forecast as FC

    y = np.arange(60, dtype=np.float64) ** 1.5
    months = np.arange(60) % 12
    o = np.array([30, 40])
    sn = FC.seasonal_naive(y, o, 14)
    np.testing.assert_array_equal(sn[0, :12], y[18:30])  # the same month one year earlier
    np.testing.assert_array_equal(sn[0, 12:], y[18:20])  # h >= 12: still the last observed year
    x, t, base = FC.make_windows(y, months, o, 12, 6, 2.0)
    assert x.shape == (2, 12, 4) and t.shape == (2, 6)
    np.testing.assert_allclose(x[0, -1, 0], 0)  # relative to the window's last value
    np.testing.assert_allclose(x[1, :, 1], (y[28:40] - y[16:28]) / 2, rtol=1e-6)
    np.testing.assert_allclose(base + 2 * t, y[[list(range(30, 36)), list(range(40, 46))]], rtol=1e-6)
    s = FC.scores(np.array([[1.0, 3.0]]), np.array([[2.0, 2.0]]))
    assert s == {"MAE": 1.0, "RMSE": 1.0, "MAPE %": 50.0}
    csv = tmp_path / "sales.csv"
    csv.write_text("month,sales\n" + "\n".join(f"2000-{i % 12 + 1:02d},{10 + i % 12 + 0.1 * i}" for i in range(72)))
    vals, m, _ = FC.load_series(csv=csv)
    assert len(vals) == 72 and vals[1] == pytest.approx(11.1) and m[13] == 1
    (tmp_path / "short.csv").write_text("1\n2\n3\n")
    with pytest.raises(UsageError, match="at least 48"):
        FC.load_series(csv=tmp_path / "short.csv")
    with pytest.raises(UsageError, match="--series must be one of"):
        FC.load_series("airline")


def test_forecast_bundled_series_load():
    pytest.importorskip("statsmodels")
    from tinygrad_seq.demos import forecast as FC

    for name, n in (("elec_equip", 257), ("co2", 526), ("elnino", 732)):
        y, m, desc = FC.load_series(name)
        assert len(y) == n and np.isfinite(y).all() and set(m) == set(range(12)), name
    y, m, _ = FC.load_series("elec_equip")
    assert m[0] == 0 and y[0] == pytest.approx(66.19)  # 1995-01


@pytest.mark.slow
def test_forecast_quick_beats_naive_baselines_and_reports_the_winner(tmp_path, capsys):
    pytest.importorskip("statsmodels")
    assert main(["forecast", "--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    rows = {r["model"]: r for r in res["rows"]}
    best_net = min(rows["LSTM"]["MAE"], rows["GRU"]["MAE"])
    assert best_net < 0.5 * rows["naive (last value)"]["MAE"]
    assert best_net < rows["seasonal naive"]["MAE"]
    winner = min(rows.values(), key=lambda r: r["MAE"])["model"]
    assert res["verdict"].startswith(f"best by MAE: {winner}")
    if winner == "Holt-Winters":
        assert "classical Holt-Winters baseline beats" in capsys.readouterr().out
    assert _is_png(tmp_path / "forecast.png") and (tmp_path / "lstm" / "checkpoint.npz").exists()


@pytest.mark.slow
def test_forecast_csv_runs(tmp_path):
    pytest.importorskip("statsmodels")
    t = np.arange(120)
    csv = tmp_path / "mine.csv"
    csv.write_text("\n".join(f"{v:.4f}" for v in 50 + 0.2 * t + 5 * np.sin(2 * np.pi * t / 12)))
    assert main(["forecast", "--csv", str(csv), "--quick", "--epochs", "3", "--cells", "gru", "--out",
                 str(tmp_path / "run")]) == 0
    rows = {r["model"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())["rows"]}
    assert rows["Holt-Winters"]["MAE"] < 0.5  # a noiseless trend + season: the classical model is exact


def test_forecast_scores_mape_as_undefined_where_a_true_value_is_zero():
    from tinygrad_seq.demos import forecast as FC
    s = FC.scores(np.array([[1.0, 3.0]]), np.array([[0.0, 2.0]]))
    assert s == {"MAE": 1.0, "RMSE": 1.0, "MAPE %": None}


@pytest.mark.slow
def test_forecast_with_zeros_in_the_truth_writes_valid_json_and_says_mape_is_na(tmp_path, capsys):
    """A series that touches 0 in its held-out tail: MAPE is n/a in the table and null in results.json (it
    was NaN, which strict JSON readers refuse), and one line says why."""
    pytest.importorskip("statsmodels")
    t = np.arange(120)
    v = np.maximum(0, 2 + 12 * np.sin(2 * np.pi * t / 12))  # zero for a few months of every year
    assert (v[-36:] == 0).any()
    csv = tmp_path / "zeros.csv"
    csv.write_text("\n".join(f"{x:.4f}" for x in v))
    assert main(["forecast", "--csv", str(csv), "--quick", "--epochs", "2", "--cells", "gru", "--out",
                 str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "MAPE n/a:" in out and "n/a" in out.split("MAPE n/a:")[0]
    text = (tmp_path / "run" / "results.json").read_text()
    rows = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))["rows"]
    assert all(r["MAPE %"] is None for r in rows) and all(np.isfinite(r["MAE"]) for r in rows)


# ============================================================================================ glimpse
def test_glimpse_batch_answers_the_item_at_the_largest_value():
    from tinygrad_seq.demos import glimpse as G

    f, target, pos = G.make_batch(50, 6, 4, np.random.default_rng(0))
    assert f.shape == (50, 6, 5)
    np.testing.assert_array_equal(pos, f[..., 0].argmax(1))
    np.testing.assert_array_equal(target, f[np.arange(50), pos, 1:].argmax(1))


@pytest.mark.slow
def test_glimpse_quick_learns_and_baseline_cuts_variance(tmp_path):
    assert main(["glimpse", "--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    rows = {r["method"]: r for r in res["rows"]}
    for m in ("soft", "gumbel", "reinforce"):
        assert rows[m]["test accuracy"] > res["chance"] + 0.4, rows[m]
    assert rows["soft"]["grad variance (init)"] == 0
    assert 0 < rows["reinforce"]["grad variance (init)"] < 0.2 * rows["reinforce-nobaseline"]["grad variance (init)"]
    assert _is_png(tmp_path / "attention.png") and _is_png(tmp_path / "accuracy.png")


def test_glimpse_with_fewer_test_examples_than_heatmap_rows_draws_them(tmp_path):
    # the heatmap shows up to 8 test rows; a one-example test set used to crash matplotlib's scatter
    assert main(["glimpse", "--quick", "--methods", "soft", "--iters", "2", "--eval-every", "1",
                 "--test-size", "1", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert rows[0]["test accuracy"] in (0.0, 1.0)  # one example: right or wrong
    assert _is_png(tmp_path / "attention.png")


@pytest.mark.slow
def test_glimpse_resume_continues_identically(tmp_path):
    import tinygrad_seq as tg

    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["glimpse", "--quick", "--methods", "reinforce", "--iters", "200", "--out", a]) == 0
    assert main(["glimpse", "--quick", "--methods", "reinforce", "--iters", "100", "--out", b]) == 0
    assert main(["glimpse", "--quick", "--methods", "reinforce", "--iters", "200", "--out", b, "--resume"]) == 0
    ca, cb = tg.load(tmp_path / "a" / "reinforce" / "checkpoint.npz"), tg.load(tmp_path / "b" / "reinforce" / "checkpoint.npz")
    assert ca["step"] == cb["step"] == 200
    for k in ca["model"]:
        np.testing.assert_array_equal(ca["model"][k], cb["model"][k], err_msg=k)


# ============================================================================================ classify
def test_classify_words_split_and_last_states_ignore_padding():
    pytest.importorskip("wordfreq")
    from tinygrad_seq.demos import classify as C

    words, labels = C.load_words(["en", "de"], 300)
    assert len(words) == len(set(words)) and all(w.isalpha() and len(w) >= 3 for w in words)
    assert set(labels) == {0, 1}
    tr, te = C.split(labels, 0.2, np.random.default_rng(0))
    assert len(set(tr) | set(te)) == len(labels) and not set(tr) & set(te)
    for c in (0, 1):
        assert abs((labels[te] == c).sum() / (labels == c).sum() - 0.2) < 0.02
    with pytest.raises(UsageError, match="no list for"):
        C.load_words(["xx"], 10)
    stoi = {c: i + 2 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
    for cell in ("lstm", "gru"):
        model = C.BiRNNClassifier(len(stoi) + 2, 5, 7, 3, cell)
        both = model(*C.encode(["cat", "elephant"], stoi)).numpy()
        alone = model(*C.encode(["cat"], stoi)).numpy()
        np.testing.assert_allclose(both[0], alone[0], rtol=1e-5, atol=1e-6)  # padding reaches neither direction


@pytest.mark.slow
def test_classify_quick_learns(tmp_path):
    pytest.importorskip("wordfreq")
    pytest.importorskip("sklearn")
    assert main(["classify", "--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    for r in res["rows"]:
        assert r["test accuracy"] > res["majority"] + 0.3, r
    m = np.array(res["confusion"]["BiLSTM"])
    assert m.shape == (4, 4) and np.trace(m) > 0.6 * m.sum()
    assert _is_png(tmp_path / "confusion.png")
