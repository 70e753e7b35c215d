"""Demo infrastructure (demos/common.py): flags and --quick defaults, seeding, metrics file,
checkpoint round trip (model, optimizer, generators) and resume truncation, plots, progress, batches,
tables."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq import optim
from tinygrad_seq.demos import common as C


def _parser(**kw) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    C.add_common_args(p, {"out": "runs/x", "iters": 100, "lr": 1e-3, "hidden": 8, "width": 3},
                      {"iters": 5, "width": 1}, **kw)
    p.add_argument("--width", type=int, default=None)
    return p


def test_flags_quick_defaults_and_explicit_values_win():
    p = _parser()
    a = C.resolve_args(p.parse_args([]))
    assert (a.iters, a.lr, a.hidden, a.width, a.seed, a.quick, a.resume) == (100, 1e-3, 8, 3, 0, False, False)
    assert str(a.out) == "runs/x"
    a = C.resolve_args(p.parse_args(["--quick"]))
    assert (a.iters, a.lr, a.width) == (5, 1e-3, 1)  # quick overrides only what it names
    a = C.resolve_args(p.parse_args(["--quick", "--iters", "7", "--width", "9", "--seed", "3", "--resume"]))
    assert (a.iters, a.width, a.seed, a.resume) == (7, 9, 3, True)
    # flags without a default are not added at all
    with pytest.raises(SystemExit):
        p.parse_args(["--epochs", "3"])


def test_flags_help_override_and_bad_quick_key():
    p = argparse.ArgumentParser()
    C.add_common_args(p, {"seq_len": 100}, help_text={"seq_len": "length of each sequence"})
    assert "length of each sequence (default 100)" in " ".join(p.format_help().split())
    with pytest.raises(ValueError, match="quick keys"):
        C.add_common_args(argparse.ArgumentParser(), {"lr": 1.0}, {"iters": 3})


def test_seed_everything_reproduces_library_and_data_streams():
    g1 = C.seed_everything(5)
    a, d1 = tg.randn(3).numpy().copy(), g1.random(4)
    g2 = C.seed_everything(5)
    np.testing.assert_array_equal(tg.randn(3).numpy(), a)
    np.testing.assert_array_equal(g2.random(4), d1)
    assert not np.array_equal(C.seed_everything(6).random(4), d1)


def _model_and_opt(seed: int):
    tg.manual_seed(seed)
    model = tg.nn.Linear(3, 2)
    return model, optim.Adam(model.parameters(), lr=0.1)


def _train(model, opt, rng, steps):
    for _ in range(steps):
        x = tg.Tensor(rng.standard_normal((4, 3)).astype(np.float32))
        loss = (model(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def test_checkpoint_round_trip_restores_model_optimizer_and_generators(tmp_path):
    model, opt = _model_and_opt(0)
    data = np.random.default_rng(1)
    _train(model, opt, data, 3)
    run = C.RunDir(tmp_path / "run")
    run.save_checkpoint(3, model, opt, {"data": data}, note=np.arange(3))
    # continue the original for reference
    ref_tg, ref_data = tg.rng().random(2), data.random(2)
    ref_loss = _train(model, opt, data, 2)
    ref_params = [p.numpy().copy() for p in model.parameters()]

    model2, opt2 = _model_and_opt(99)  # different init, fresh optimizer, different generators
    data2 = np.random.default_rng(42)
    step, extra = C.RunDir(tmp_path / "run").load_checkpoint(model2, opt2, {"data": data2})
    assert step == 3
    np.testing.assert_array_equal(extra["note"], np.arange(3))
    np.testing.assert_array_equal(tg.rng().random(2), ref_tg)
    np.testing.assert_array_equal(data2.random(2), ref_data)
    assert _train(model2, opt2, data2, 2) == ref_loss  # Adam moments restored: bitwise same steps
    for p, q in zip(model2.parameters(), ref_params):
        np.testing.assert_array_equal(p.numpy(), q)


def test_missing_generator_in_checkpoint_is_an_error(tmp_path):
    model, opt = _model_and_opt(0)
    run = C.RunDir(tmp_path)
    run.save_checkpoint(1, model, opt)
    with pytest.raises(RuntimeError, match="generator"):
        run.load_checkpoint(model, opt, {"data": np.random.default_rng(0)})


def test_begin_fresh_clears_metrics_and_resume_drops_lines_after_checkpoint(tmp_path):
    model, opt = _model_and_opt(0)
    run = C.RunDir(tmp_path)
    assert run.begin(model, opt) == (0, {})
    for s in (1, 2, 3):
        run.log(s, "train", loss=np.float32(1.0 / s))
    run.save_checkpoint(2, model, opt)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0] == {"step": 1, "split": "train", "loss": 1.0} and len(lines) == 3

    again = C.RunDir(tmp_path)  # a new process reads the file back
    assert [r["step"] for r in again.records("train")] == [1, 2, 3]
    step, _ = again.begin(model, opt, resume=True)
    assert step == 2
    assert [r["step"] for r in again.records()] == [1, 2]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2

    assert C.RunDir(tmp_path).begin(model, opt, resume=False) == (0, {})
    assert (tmp_path / "metrics.jsonl").read_text() == ""
    # resume without a checkpoint starts from scratch
    assert C.RunDir(tmp_path / "empty").begin(model, opt, resume=True) == (0, {})


def test_plots_are_png(tmp_path):
    pytest.importorskip("matplotlib")
    run = C.RunDir(tmp_path)
    for s in range(1, 6):
        run.log(s, "train", loss=1.0 / s)
        run.log(s, "test", loss=2.0 / s, accuracy=0.1 * s)
    for path in (run.plot(logy=True, baseline=0.5), run.plot("acc.png", key="accuracy"),
                 C.plot_curves({"a": ([1, 2], [3, 4])}, tmp_path / "c.png", title="t")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plain_progress_prints_about_ten_lines(capsys, monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    with C.progress(100, desc="train", initial=20) as bar:
        for _ in range(80):
            bar.update(1)
            bar.set_postfix(loss=0.25)
    lines = capsys.readouterr().out.strip().splitlines()
    assert 5 <= len(lines) <= 10
    assert lines[-1].startswith("train 100/100") and "loss=0.25" in lines[-1]


def test_minibatches_cover_every_index_once(rng):
    batches = list(C.minibatches(10, 4, rng))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    assert [b.tolist() for b in C.minibatches(10, 4, drop_last=True)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="batch_size"):
        next(C.minibatches(3, 0))


def test_print_table_aligns_columns(capsys):
    text = C.print_table([{"cell": "lstm", "mse": 0.001234, "n": 3}, {"cell": "rnn", "mse": 0.1667, "n": 10}],
                         title="results")
    assert capsys.readouterr().out.strip() == text
    lines = text.splitlines()
    assert lines[0] == "results"
    assert len({len(line) for line in lines[1:]}) == 1  # every row equally wide
    assert lines[3].split() == ["lstm", "0.001234", "3"] and lines[4].split() == ["rnn", "0.1667", "10"]


def test_the_blas_note_names_the_kernel_set_the_figures_depend_on(monkeypatch):
    """The demos' [..; BLAS threads 1, openblas SkylakeX kernels] line: the architecture threadpoolctl reads
    off the loaded BLAS (OpenBLAS picks its GEMM kernels per CPU, and they round differently)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        pytest.skip("no BLAS library visible to threadpoolctl")
    want = f"{blas[0]['internal_api']} {blas[0].get('architecture') or '?'}"
    assert C.blas_kernels().startswith(want)
    assert C.cap_blas_threads(1) == f"BLAS threads 1, {C.blas_kernels()} kernels"
    monkeypatch.setitem(__import__("sys").modules, "threadpoolctl", None)  # as if not installed
    assert C.blas_kernels() is None
