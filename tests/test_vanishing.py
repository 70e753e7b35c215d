"""`tinygrad-seq vanishing` / `graph`, the gradient-flow plots and the sweeps behind them."""
import numpy as np
import pytest

import tinygrad_seq as tg

pytest.importorskip("graphviz")
pytest.importorskip("matplotlib")
from tinygrad_seq.cli import main  # noqa: E402
from tinygrad_seq.viz import plot_gradient_flow  # noqa: E402
from tinygrad_seq.viz import experiments as E  # noqa: E402
from tinygrad_seq.demos.data import adding_problem  # noqa: E402


def test_vanishing_quick_writes_all_files(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["vanishing", "--quick", "--out", str(out), "--seed", "1"]) == 0
    for cell in ("rnn", "lstm", "gru"):
        assert (out / f"{cell}.svg").exists() or (out / f"{cell}.dot").exists()
        assert (out / f"{cell}.png").exists() or (out / f"{cell}.dot").exists()
    for f in ("gradient_flow.png", "sweep_forget_bias.png", "sweep_sigma.png"):
        assert (out / f).read_bytes()[:4] == b"\x89PNG"
    html = (out / "index.html").read_text()
    ext = "svg" if (out / "rnn.svg").exists() else "dot"  # the index links the files actually written
    for ref in (f"rnn.{ext}", f"lstm.{ext}", f"gru.{ext}", "gradient_flow.png", "Pascanu"):
        assert ref in html
    text = capsys.readouterr().out
    rows = [ln for ln in text.splitlines() if ln.startswith(("RNN", "LSTM", "GRU"))]
    assert len(rows) == 3 and "σ_max(W_hh)·γ" in text and "half-life" in text


def test_vanishing_without_dot_writes_dot_source_and_one_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `dot` anywhere
    out = tmp_path / "v"
    assert main(["vanishing", "--quick", "--out", str(out)]) == 0
    for cell in ("rnn", "lstm", "gru"):
        assert (out / f"{cell}.dot").read_text().startswith("digraph")
        assert not (out / f"{cell}.svg").exists() and not (out / f"{cell}.png").exists()
    html = (out / "index.html").read_text()
    assert 'href="rnn.dot"' in html and "rnn.svg" not in html and "apt-get install graphviz" in html
    text = capsys.readouterr().out
    hints = [ln for ln in text.splitlines() if "install Graphviz" in ln]
    assert len(hints) == 1 and "rnn.dot, lstm.dot, gru.dot, gradient_flow.png" in text

    assert main(["graph", "--model", "gru", "--seq-len", "4", "--hidden", "4", "--out", str(tmp_path / "g")]) == 0
    text = capsys.readouterr().out
    assert sum("install Graphviz" in ln for ln in text.splitlines()) == 1 and "gru.dot" in text


def test_vanishing_train_before_after(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["vanishing", "--quick", "--cells", "lstm", "--train", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "before training" in text and "after 3 steps" in text and "trained 3 steps" in text
    assert not (out / "rnn.svg").exists()
    assert main(["vanishing", "--cells", "lstm,tcn", "--out", str(out)]) == 2


@pytest.mark.parametrize("model", ["rnn", "gru", "attention", "transformer"])
def test_graph_command(tmp_path, model, capsys):
    assert main(["graph", "--model", model, "--seq-len", "6", "--hidden", "8", "--format", "svg",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / f"{model}.svg").exists() or (tmp_path / f"{model}.dot").exists()
    assert "nodes" in capsys.readouterr().out


def test_plot_gradient_flow_lines_and_errors(tmp_path):
    curves = {"a": 0.5 ** np.arange(10)[::-1], "b": np.ones(10)}
    fig = plot_gradient_flow(curves, bounds={"a": 0.5}, path=tmp_path / "f.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 3  # two curves + one dashed bound
    np.testing.assert_allclose(ax.lines[1].get_ydata(), curves["a"])  # the bound is exact for a
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="empty"):
        plot_gradient_flow({})
    with pytest.raises(ValueError, match="1-D"):
        plot_gradient_flow({"x": np.ones((2, 3))})


def test_forget_bias_sweep_keeps_more_gradient():
    x, y = adding_problem(4, 25, np.random.default_rng(0), dtype=np.float64)
    curves = E.sweep_forget_bias(x, y, biases=(0.0, 3.0), hidden=8)
    (lo, hi) = curves.values()
    assert hi[0] > 10 * lo[0]  # a forget gate near 1 carries the gradient back to t = 0


def test_sigma_sweep_respects_bound():
    x, y = adding_problem(4, 25, np.random.default_rng(0), dtype=np.float64)
    curves, bounds = E.sweep_sigma(x, y, sigmas=(0.5, 0.9), hidden=8)
    for label, h in curves.items():
        ratios = h[:-1] / h[1:]
        assert np.all(ratios <= bounds[label] * (1 + 1e-9))
    small, big = curves.values()
    assert small[0] < big[0]


def test_measure_matches_autograd_grad():
    tg.manual_seed(0)
    x, y = adding_problem(3, 12, np.random.default_rng(0), dtype=np.float64)
    m = E.Probe("gru", 6)
    meas = E.measure(m, x, y)
    loss, states = E.probe_loss(m, x, y)
    gs = tg.autograd.grad(loss, states["h"][0])
    np.testing.assert_allclose(meas.h, [np.linalg.norm(g.numpy()) for g in gs], rtol=1e-10)
    assert meas.mean_gate is not None and 0 < meas.mean_gate < 1
    with pytest.raises(ValueError, match="cell"):
        E.Probe("tcn", 4)
