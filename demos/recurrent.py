"""`tinygrad-seq adding | digits | charlm`: training demos of the recurrent layers (RNN, LSTM, GRU).

- adding: the adding problem (values U[0,1], one marker in each half, target = sum of the marked
  values) at sequence length `--seq-len T`; held-out MSE per cell against the 1/6 of predicting 1.
  The tanh RNN's gradient through T steps is a product of T Jacobians and vanishes, so it stays at
  the baseline; the LSTM's cell path (chrono-initialised forget gate, `--lstm-init`) and the GRU's
  update gate carry it.
- digits: scikit-learn's 8x8 digits read one pixel per step (64 steps); a validation split chooses the
  epoch (and, by hand, the learning rate), the test set is scored once.

adding and digits take `--seeds 0,1,2` (one run per seed, mean and spread in summary.json). All three
run the model through tg.compile (`--eager` turns it off; the same numbers up to float32 rounding).
- charlm: character-level language model (Embedding + recurrent layer + Linear) with truncated BPTT,
  detached states carried across windows, gradient clipping and temperature sampling. The text splits
  90/5/5 into train / validation / test (in that order); the vocabulary comes from the training part
  only; the checkpoint with the lowest validation bits/char is kept (best.npz) and its test bits/char
  is reported against the unigram baseline.

Every demo writes `<out>/<cell>/metrics.jsonl`, `loss.png`, `checkpoint.npz` and `config.json` (see
common.py) and continues with `--resume`; `--quick` shrinks everything to seconds. adding and digits
merge their rows into `<out>/results.json`, so a re-run of some cells (`--cells lstm`) keeps the others.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq import optim
from tinygrad_seq.nn import functional as F
from tinygrad_seq.nn.utils import clip_grad_norm_

from .common import (RunDir, UsageError, add_common_args, add_compile_flag, compile_model, csv_choices, deprecated, existing_path, int_at_least, minibatches,
                     nonnegative_float, nonnegative_int, plot_curves, positive_float, probability, positive_int, print_table, progress,
                     read_results, require, resolve_args, seed_everything, write_results)
from .data import (ADDING_BASELINE_MSE, UNK_CHAR, CharCorpus, adding_problem, bptt_streams, bptt_window,
                   load_digits_splits, read_corpus)

CELLS = ("rnn", "lstm", "gru")


def make_recurrent(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                   lstm_init: dict | None = None) -> tg.nn.Module:
    """models.RNN (tanh) / models.LSTM / models.GRU with batch_first=True; `lstm_init` are the LSTM's
    init keywords (forget_bias= / chrono_init=; the other cells have no forget gate and ignore them)."""
    from tinygrad_seq import models  # the layers live in models/, imported when a demo runs

    classes = {"rnn": models.RNN, "lstm": models.LSTM, "gru": models.GRU}
    if cell not in classes:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    kw = dict(lstm_init or {}) if cell == "lstm" else {}
    return classes[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True, **kw)


class LastStateModel(tg.nn.Module):
    """ŷ = W h_T + b: a recurrent layer read out through its last hidden state (regression or logits)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, out_features: int,
                 lstm_init: dict | None = None):
        super().__init__()
        self.rnn = make_recurrent(cell, input_size, hidden_size, lstm_init=lstm_init)
        self.head = tg.nn.Linear(hidden_size, out_features)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def _train_step(model: tg.nn.Module, opt: optim.Optimizer, loss: tg.Tensor, clip: float) -> float:
    value = loss.item()
    if not math.isfinite(value):  # every later step would be NaN too: stop and say why
        lr = opt.param_groups[0]["lr"]
        raise UsageError(f"training diverged: the loss is {value} (learning rate {lr:g}); lower --lr or clip "
                         "with --clip")
    opt.zero_grad()
    loss.backward()
    if clip > 0:
        clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return value


def _outputs(out: Path, files: list[str]) -> None:
    print(f"outputs in {out}/: {', '.join(files)}")


# ============================================================================================ adding
# LSTM init "chrono" (Tallec & Ollivier 2018, chrono_init=T): b_f = log U(1, T-1), b_i = -b_f, so the
# cell starts out remembering over ~T steps. From PyTorch's init (b_f ~ U(-1/8, 1/8): f ~ 0.5, the cell
# halves every step) the LSTM sits at the 1/6 plateau at T=200, and forget bias 1 (f ~ 0.73) does not
# lift it within 2250 iterations either (seed 0); whether PyTorch's own init escapes is the luck of its
# draw: fed our weights and batches, torch follows our curve to 2e-7 (README, "adding at T=200").
LSTM_INITS = ("chrono", "forget1", "pytorch")
ADDING_DEFAULTS = dict(out="runs/adding", seq_len=100, iters=4000, lr=3e-3, hidden=64, batch_size=32,
                       clip=1.0, eval_every=100, test_size=1000, lstm_init="chrono")
ADDING_QUICK = dict(seq_len=10, iters=300, lr=1e-2, hidden=32, eval_every=50, test_size=256)


def _seeds(args: argparse.Namespace) -> list[int]:
    return list(args.seeds) if args.seeds else [args.seed]


def _cell_runs(args: argparse.Namespace) -> list[tuple[str, int, Path]]:
    """(cell, seed, run directory) of every run: OUT/<cell> for --seed, OUT/seed<k>/<cell> with --seeds."""
    return [(cell, seed, args.out / f"seed{seed}" / cell if args.seeds else args.out / cell)
            for seed in _seeds(args) for cell in args.cells]


def _begin_cell(cell: str, seed: int, path: Path, args: argparse.Namespace, input_size: int, out_features: int,
                config_keys: tuple):
    """(data generator, model, Adam, run directory, step) of one cell: seeded, and restored from its
    checkpoint with --resume; a fresh run saves `config_keys` of args as its config.json."""
    data_rng = seed_everything(seed)
    model = LastStateModel(cell, input_size, args.hidden, out_features, _lstm_init(args))
    model = compile_model(model, args)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    run = RunDir(path)
    config = {k: getattr(args, k) for k in config_keys}
    config["seed"] = seed
    step, _ = run.begin(model, opt, {"data": data_rng}, resume=args.resume, config=config)
    return data_rng, model, opt, run, step


def _lstm_init(args: argparse.Namespace) -> dict:
    how = getattr(args, "lstm_init", "pytorch")  # digits: PyTorch's init
    if how == "chrono":
        return {"chrono_init": max(3.0, float(args.seq_len))}  # chrono_init needs T_max > 2
    return {"forget_bias": 1.0} if how == "forget1" else {}


def train_adding(cell: str, seed: int, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train one cell on the adding problem; returns its row of the results table."""
    data_rng, model, opt, run, step = _begin_cell(cell, seed, path, args, 2, 1, ADDING_CONFIG)
    # the held-out set has its own generator: identical for every cell, run and resume
    x_test, y_test = adding_problem(args.test_size, args.seq_len, np.random.default_rng([seed, 2]))
    x_test, y_test = tg.Tensor(x_test), tg.Tensor(y_test)

    def test_mse() -> float:
        model.eval()
        with tg.no_grad():
            mse = F.mse_loss(model(x_test), y_test).item()
        model.train()
        return mse

    log_every = max(1, args.eval_every // 5)
    window: list[float] = []
    t0 = time.perf_counter()
    with progress(args.iters, desc=f"adding {cell} T={args.seq_len} seed {seed}", initial=step) as bar:
        while step < args.iters:
            x, y = adding_problem(args.batch_size, args.seq_len, data_rng)
            window.append(_train_step(model, opt, F.mse_loss(model(tg.Tensor(x)), tg.Tensor(y)), args.clip))
            step += 1
            bar.update(1)
            if step % log_every == 0 or step == args.iters:
                run.log(step, "train", loss=float(np.mean(window)))
                bar.set_postfix(loss=float(np.mean(window)))
                window = []
            if step % args.eval_every == 0 or step == args.iters:
                run.log(step, "test", loss=test_mse())
                run.save_checkpoint(step, model, opt, {"data": data_rng})
    run.plot(title=f"adding problem, {cell.upper()}, T={args.seq_len}", logy=True, baseline=ADDING_BASELINE_MSE)
    return {"cell": cell, "seed": seed, "T": args.seq_len, "test MSE": test_mse(), "baseline": ADDING_BASELINE_MSE,
            "iters": step, "seconds": round(time.perf_counter() - t0, 1), "dir": str(path.relative_to(args.out))}


# what a resumed run must share with the checkpoint it continues (saved as config.json)
ADDING_CONFIG = ("seq_len", "hidden", "seed", "test_size", "lstm_init")


def _run_key(row: dict) -> str:
    return f"{row['cell']}/seed{row.get('seed', 0)}"


def _preflight(args: argparse.Namespace, keys: tuple) -> list[dict]:
    """Everything that can be the user's mistake, checked before any cell trains: the earlier
    results.json and, with --resume, every cell's run config, checkpoint and metrics."""
    previous = read_results(args.out / "results.json", "cell")
    for row in previous:
        row["run"] = _run_key(row)
    for cell, seed, path in _cell_runs(args):
        args.seed = seed
        RunDir(path).check_resume(args, keys, args.resume)
    args.seed = _seeds(args)[0]
    return previous


def _merge_results(args: argparse.Namespace, previous: list[dict], rows: list[dict]) -> list[dict]:
    for r in rows:
        r["run"] = _run_key(r)
    order = [f"{c}/seed{s}" for s in sorted({r.get("seed", 0) for r in previous + rows}) for c in CELLS]
    merged = write_results(args.out / "results.json", previous, rows, "run", order)
    return merged


def _seed_summary(rows: list[dict], metric: str, args: argparse.Namespace, title: str) -> list[dict]:
    """Mean and sample standard deviation of `metric` over the seeds of each cell; printed, and saved as
    OUT/summary.json with --seeds."""
    out = []
    for cell in CELLS:
        vals = [r[metric] for r in rows if r["cell"] == cell]
        if vals:
            out.append({"cell": cell, "seeds": ",".join(str(r.get("seed", 0)) for r in rows if r["cell"] == cell),
                        f"mean {metric}": float(np.mean(vals)),
                        "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                        "min": float(min(vals)), "max": float(max(vals))})
    if args.seeds:
        print_table(out, title=title)
        (args.out / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def _merged_curves(args: argparse.Namespace, rows: list[dict], x: str, y: str, split: str = "test") -> dict:
    """Held-out curves of every run in results.json (this run's and earlier ones)."""
    curves = {}
    multi = len({r.get("seed", 0) for r in rows}) > 1
    for r in rows:
        recs = [q for q in RunDir(args.out / r.get("dir", r["cell"])).records(split) if x in q and y in q]
        label = r["cell"].upper() + (f" seed {r.get('seed', 0)}" if multi else "")
        curves[label] = ([q[x] for q in recs], [q[y] for q in recs])
    return curves


def run_adding(args: argparse.Namespace) -> int:
    args = resolve_args(args)
    if "lstm_init" in args._explicit and "lstm" not in args.cells:  # it would be silently ignored
        raise UsageError(f"--lstm-init sets the LSTM's gate biases, and --cells {','.join(args.cells)} trains no LSTM")
    require("matplotlib")
    previous = _preflight(args, ADDING_CONFIG)
    rows = [train_adding(cell, seed, path, args) for cell, seed, path in _cell_runs(args)]
    rows = _merge_results(args, [r for r in previous if r.get("T") == args.seq_len], rows)
    plot_curves(_merged_curves(args, rows, "step", "loss"), args.out / "adding.png",
                title=f"adding problem, T={args.seq_len}: held-out MSE",
                xlabel="iteration", ylabel="test MSE", logy=True, baseline=ADDING_BASELINE_MSE)
    print_table([{k: v for k, v in r.items() if k not in ("run", "dir")} for r in rows],
                title=f"adding problem, T={args.seq_len} (predicting 1 gives MSE {ADDING_BASELINE_MSE:.3f})")
    _seed_summary(rows, "test MSE", args, f"adding problem, T={args.seq_len}: held-out MSE over seeds")
    _outputs(args.out, ["results.json", "adding.png"] + (["summary.json"] if args.seeds else []) +
             [f"{r['dir']}/{{metrics.jsonl,loss.png,checkpoint.npz}}" for r in rows if r["cell"] in args.cells
              and r.get("seed", 0) in _seeds(args)])
    return 0


# ============================================================================================ digits
# lr chosen on the validation split (seed 0, see the README): 3e-3. The epoch reported is the one with
# the best validation accuracy (its weights are kept in best.npz); the test set is scored once, there.
DIGITS_DEFAULTS = dict(out="runs/digits", epochs=20, lr=3e-3, hidden=64, batch_size=32, clip=1.0)
DIGITS_QUICK = dict(epochs=3, hidden=32, lr=1e-2)


def train_digits(cell: str, seed: int, path: Path, args: argparse.Namespace, data: tuple) -> dict[str, Any]:
    """Train one cell on pixel-by-pixel digits, keep the epoch of best validation accuracy, score the test
    set once with it; returns its row of the results table."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data
    data_rng, model, opt, run, step = _begin_cell(cell, seed, path, args, 1, 10, DIGITS_CONFIG)
    per_epoch = math.ceil(len(x_tr) / args.batch_size)
    best_path = run.path / "best.npz"

    def evaluate(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        model.eval()
        with tg.no_grad():
            logits = model(tg.Tensor(x))
            loss = F.cross_entropy(logits, y).item()
        model.train()
        return loss, float((logits.numpy().argmax(-1) == y).mean())

    def best_so_far() -> tuple[float, int]:
        best = (-1.0, 0)
        for r in run.records("valid"):  # earliest epoch wins a tie
            if r["accuracy"] > best[0]:
                best = (r["accuracy"], r["epoch"])
        return best

    run.drop("test")  # a resumed run scores the test set again, at its own end
    best_acc, best_epoch = best_so_far()
    t0 = time.perf_counter()
    with progress(args.epochs * per_epoch, desc=f"digits {cell} seed {seed}", initial=step) as bar:
        for epoch in range(step // per_epoch, args.epochs):
            losses = []
            for idx in minibatches(len(x_tr), args.batch_size, data_rng):
                logits = model(tg.Tensor(x_tr[idx]))
                losses.append(_train_step(model, opt, F.cross_entropy(logits, y_tr[idx]), args.clip))
                step += 1
                bar.update(1)
            val_loss, acc = evaluate(x_va, y_va)
            run.log(step, "train", loss=float(np.mean(losses)), epoch=epoch + 1)
            run.log(step, "valid", loss=val_loss, accuracy=acc, epoch=epoch + 1)
            bar.set_postfix(loss=float(np.mean(losses)), valid_acc=acc)
            if acc > best_acc:
                best_acc, best_epoch = acc, epoch + 1
                tg.save(dict(model.state_dict()), best_path)
            run.save_checkpoint(step, model, opt, {"data": data_rng})
    run.plot(title=f"digits pixel by pixel, {cell.upper()}", baseline=math.log(10))
    run.plot("accuracy.png", key="accuracy", title=f"digits pixel by pixel, {cell.upper()}: validation",
             baseline=0.1)
    model.load_state_dict(tg.load(best_path))
    test_loss, test_acc = evaluate(x_te, y_te)  # the one look at the test set
    run.log(step, "test", loss=test_loss, accuracy=test_acc, epoch=best_epoch)
    return {"cell": cell, "seed": seed, "best epoch": best_epoch, "valid accuracy": best_acc,
            "test accuracy": test_acc, "test loss": test_loss, "epochs": step // per_epoch,
            "seconds": round(time.perf_counter() - t0, 1), "dir": str(path.relative_to(args.out))}


# batch_size too: a resumed run continues at an epoch boundary of the same number of batches
DIGITS_CONFIG = ("hidden", "seed", "batch_size", "train_size")


def run_digits(args: argparse.Namespace) -> int:
    args = resolve_args(args)
    require("sklearn", "matplotlib")
    previous = _preflight(args, DIGITS_CONFIG)
    (x_tr, y_tr), valid, test = load_digits_splits()
    if args.train_size > len(x_tr):
        raise UsageError(f"--train-size {args.train_size}: the training split has {len(x_tr)} images (0 = all)")
    if args.train_size:
        x_tr, y_tr = x_tr[:args.train_size], y_tr[:args.train_size]
    rows = [train_digits(cell, seed, path, args, ((x_tr, y_tr), valid, test)) for cell, seed, path in _cell_runs(args)]
    rows = _merge_results(args, previous, rows)
    plot_curves(_merged_curves(args, rows, "epoch", "accuracy", split="valid"), args.out / "digits.png",
                title="8x8 digits read pixel by pixel: validation accuracy",
                xlabel="epoch", ylabel="validation accuracy", baseline=0.1)
    print_table([{k: v for k, v in r.items() if k not in ("run", "dir")} for r in rows],
                title=f"digits, 64 steps of 1 pixel, hidden {args.hidden} ({len(x_tr)} train / {len(valid[0])} "
                      f"validation / {len(test[0])} test images, chance 0.1; test scored once, at the best "
                      "validation epoch)")
    _seed_summary(rows, "test accuracy", args, "digits: test accuracy over seeds")
    _outputs(args.out, ["results.json", "digits.png"] + (["summary.json"] if args.seeds else []) +
             [f"{r['dir']}/{{metrics.jsonl,loss.png,accuracy.png,checkpoint.npz,best.npz}}" for r in rows
              if r["cell"] in args.cells and r.get("seed", 0) in _seeds(args)])
    return 0


# ============================================================================================ charlm
# The defaults fit ~20 min of one shared CPU core. With 1 MB of text the 1-layer LSTM 256 overfits after
# ~5 passes (validation bits/char bottoms near step 2250, then rises), so the default reads the whole 4.7 MB
# of top-level standard-library sources, halves the learning rate whenever an evaluation does not improve
# on the best validation bits/char, and keeps that best checkpoint (best.npz): its *test* bits/char is the
# reported number.
CHARLM_DEFAULTS = dict(out="runs/charlm", iters=5000, lr=3e-3, hidden=256, batch_size=32, clip=1.0,
                       cell="lstm", layers=1, emb=64, bptt=64, max_bytes=5_000_000, eval_every=250,
                       eval_chars=100_000, temperature=0.8, sample_len=400, prompt="def ", dropout=0.0,
                       stdlib_packages=False)
CHARLM_QUICK = dict(iters=150, hidden=64, emb=16, bptt=32, batch_size=16, lr=1e-2, max_bytes=40_000,
                    eval_every=50, eval_chars=4000, sample_len=80)
# `--full`: the char-rnn setting (Karpathy, Johnson & Fei-Fei 2015: 3-layer LSTM 512, dropout, ~100-char
# windows); hours on this machine, not measured here
CHARLM_FULL = dict(iters=100_000, hidden=512, layers=3, emb=64, bptt=100, batch_size=64, lr=2e-3,
                   dropout=0.25, eval_every=1000)
# what fixes the model's shape (and the data): saved in config.json beside the checkpoint, with the
# vocabulary, so --sample-only needs no corpus and --resume refuses a model of another shape
_CHARLM_SHAPE = ("cell", "layers", "emb", "hidden")
_CHARLM_CONFIG = _CHARLM_SHAPE + ("seed", "bptt", "batch_size", "max_bytes", "dropout", "stdlib_packages")
STDLIB_ALL_BYTES = 50_000_000  # more than the whole --stdlib-packages set (~9.9 MB on Python 3.11)
_CHARLM_ABSENT = {"stdlib_packages": False}  # what runs saved before the flag existed trained with


class CharLM(tg.nn.Module):
    """p(x_{t+1} | x_{≤t}) = softmax(W drop(h_t) + b), h_t = cell(drop(E[x_t]), h_{t-1}); dropout only on the
    non-recurrent connections (Zaremba et al. 2014), none between time steps."""

    def __init__(self, vocab_size: int, emb: int, hidden: int, num_layers: int = 1, cell: str = "lstm",
                 dropout: float = 0.0):
        super().__init__()
        self.embed = tg.nn.Embedding(vocab_size, emb)
        self.rnn = make_recurrent(cell, emb, hidden, num_layers)
        self.drop = tg.nn.Dropout(dropout)
        self.head = tg.nn.Linear(hidden, vocab_size)

    def forward(self, ids: np.ndarray, hx: Any = None) -> tuple[tg.Tensor, Any]:
        """ids (B, T) ints -> logits (B, T, V) and the final state (h_n, or (h_n, c_n) for the LSTM)."""
        out, hn = self.rnn(self.drop(self.embed(tg.Tensor(ids))), hx)
        return self.head(self.drop(out)), hn


def _detach_state(hn: Any) -> Any:
    return tuple(h.detach() for h in hn) if isinstance(hn, tuple) else hn.detach()


def _state_arrays(hn: Any) -> dict[str, np.ndarray]:
    if hn is None:
        return {}
    return {"h": hn[0].numpy(), "c": hn[1].numpy()} if isinstance(hn, tuple) else {"h": hn.numpy()}


def _state_from_arrays(extra: dict) -> Any:
    if "h" not in extra:
        return None
    h = tg.Tensor(np.asarray(extra["h"]))
    return (h, tg.Tensor(np.asarray(extra["c"]))) if "c" in extra else h


def charlm_bpc(model: CharLM, ids: np.ndarray, batch_size: int, bptt: int) -> float:
    """Bits per character of `ids` under the model: mean next-character cross-entropy / ln 2, with the
    state carried across windows of `bptt` characters in `batch_size` parallel streams."""
    streams = bptt_streams(ids, min(batch_size, max(1, (len(ids) - 1) // (bptt + 1))))
    model.eval()
    total, count, hx = 0.0, 0, None
    with tg.no_grad():
        for s in range(0, streams.shape[1] - 1, bptt):
            x, y = streams[:, s:s + bptt], streams[:, s + 1:s + 1 + bptt]
            x = x[:, :y.shape[1]]
            logits, hx = model(x, hx)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += y.size
    model.train()
    return total / count / math.log(2)


def sample(model: CharLM, corpus_itos: list[str], prompt: str, length: int, temperature: float,
           rng: np.random.Generator) -> str:
    """Feed the prompt, then draw each next character from softmax(logits / temperature)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    lut = {c: i for i, c in enumerate(corpus_itos)}
    unknown = sorted(set(prompt) - set(lut))
    if unknown:
        raise UsageError(f"--prompt {prompt!r} has characters {unknown!r} that are not in the vocabulary")
    ids = [lut[c] for c in prompt] or [lut.get("\n", 0)]
    out, hx = [], None
    model.eval()
    with tg.no_grad():
        x = np.array([ids])
        for _ in range(length):
            logits, hx = model(x, hx)
            z = logits.numpy()[0, -1].astype(np.float64) / temperature
            if not np.isfinite(z).all():
                raise UsageError("the model's next-character scores are not finite (NaN or inf): its weights "
                                 "diverged in training; train again with a lower --lr")
            p = np.exp(z - z.max())
            nxt = int(rng.choice(len(p), p=p / p.sum()))
            out.append(nxt)
            x = np.array([[nxt]])
    model.train()
    return prompt + "".join(corpus_itos[i] for i in out)


def _read_corpus(args: argparse.Namespace) -> CharCorpus:
    """The corpus split, checked against the window sizes before anything is written."""
    if args.corpus is not None and args.stdlib_packages:
        raise UsageError("--stdlib-packages chooses the default corpus; it does not apply to --corpus")
    which = (f"--corpus {args.corpus}" if args.corpus is not None else
             f"the default corpus (--max-bytes {args.max_bytes}{' --stdlib-packages' * args.stdlib_packages})")
    try:
        corpus = CharCorpus.from_text(read_corpus(args.corpus, args.max_bytes, args.stdlib_packages))
    except (ValueError, OSError) as e:  # an empty, tiny or unreadable --corpus
        raise UsageError(f"{which}: {e}") from None
    per_stream = len(corpus.train) // args.batch_size
    if per_stream < args.bptt + 1:
        raise UsageError(f"{which}: {len(corpus.train)} training characters in --batch-size {args.batch_size} "
                         f"streams are {per_stream} each, shorter than --bptt {args.bptt} + 1; use a smaller "
                         "--batch-size or --bptt, or more text")
    if min(len(corpus.valid), args.eval_chars, len(corpus.test)) < 2:
        raise UsageError(f"{which}: {len(corpus.valid)} validation / {len(corpus.test)} test characters, "
                         f"--eval-chars {args.eval_chars}: each needs at least 2 to score")
    return corpus


def run_charlm(args: argparse.Namespace) -> int:
    if getattr(args, "full", False):
        if args.quick:
            raise UsageError("--full and --quick exclude each other")
        for k, v in CHARLM_FULL.items():
            if getattr(args, k, None) is None:
                setattr(args, k, v)
    args = resolve_args(args)
    if args.stdlib_packages and not args.quick and "max_bytes" not in args._explicit:
        args.max_bytes = STDLIB_ALL_BYTES  # the flag asks for more text than the default cap holds
    require("matplotlib")
    run = RunDir(args.out)
    sample_rng = np.random.default_rng([args.seed, 3])
    if args.sample_only:
        if not (run.has_checkpoint() and run.config_path.exists()):
            raise UsageError(f"--sample-only: no trained model in {run.path} (expected checkpoint.npz and "
                             "config.json: train first, or check --out)")
        cfg = run.check_resume(args, _CHARLM_SHAPE, resume=True)
        itos = cfg.get("itos")
        if not isinstance(itos, list):
            raise UsageError(f"--sample-only: {run.config_path} has no vocabulary; train the run again")
        seed_everything(args.seed)
        model = CharLM(len(itos), args.emb, args.hidden, args.layers, args.cell)
        try:
            step, _ = run.load_checkpoint(model, None)
            if run.path.joinpath(_BEST).exists():  # sample from the model the run reports
                step = _load_best(run, model)["step"]
        except (KeyError, ValueError) as e:
            raise UsageError(f"--sample-only: {run.checkpoint_path} does not fit {run.config_path} ({e})") from None
        text = sample(model, itos, args.prompt, args.sample_len, args.temperature, sample_rng)
        print(f"[{run.checkpoint_path}, step {step}, temperature {args.temperature}]")
        print(text)
        return 0

    cfg = run.check_resume(args, _CHARLM_CONFIG, args.resume, absent=_CHARLM_ABSENT)
    corpus = _read_corpus(args)
    if cfg is not None and cfg.get("itos") != corpus.itos:
        raise UsageError(f"--resume: the corpus vocabulary differs from the one in {run.config_path} "
                         "(another --corpus or --max-bytes?)")
    unknown = sorted(set(args.prompt) - set(corpus.itos))
    if unknown:  # found now, not after training
        raise UsageError(f"--prompt {args.prompt!r} has characters {unknown!r} that are not in the vocabulary")
    itos = corpus.itos
    data_rng = seed_everything(args.seed)
    model = compile_model(CharLM(len(itos), args.emb, args.hidden, args.layers, args.cell, args.dropout), args)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    config = {**{k: getattr(args, k) for k in _CHARLM_CONFIG}, "itos": itos}
    step, extra = run.begin(model, opt, {"data": data_rng}, resume=args.resume, config=config)
    hx = _state_from_arrays(extra)
    streams = bptt_streams(corpus.train, args.batch_size)
    valid = corpus.valid[:args.eval_chars]
    best = _load_best(run, None) if args.resume and run.path.joinpath(_BEST).exists() else None
    baseline = corpus.unigram_bpc("test")
    n_unk = {k: int((getattr(corpus, k) == corpus.unk_index).sum()) for k in ("valid", "test")}
    print(f"corpus: {len(corpus.train)} train / {len(corpus.valid)} validation / {len(corpus.test)} test "
          f"characters, vocabulary {corpus.vocab_size} (from the training text; held-out characters it lacks "
          f"-> {UNK_CHAR!r}: {n_unk['valid']} validation, {n_unk['test']} test), unigram baseline "
          f"{baseline:.3f} bits/char; model {args.cell.upper()} layers={args.layers} hidden={args.hidden} "
          f"emb={args.emb} dropout={args.dropout}, {sum(p.numpy().size for p in model.parameters())} parameters")

    window: list[float] = []
    log_every = max(1, args.eval_every // 5)
    t0 = time.perf_counter()
    with progress(args.iters, desc=f"charlm {args.cell}", initial=step) as bar:
        while step < args.iters:
            x, y, new_pass = bptt_window(streams, step, args.bptt)
            if new_pass:
                hx = None  # the streams wrap around: the carried state belongs to other text
            logits, hn = model(x, hx)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            window.append(_train_step(model, opt, loss, args.clip))
            hx = _detach_state(hn)  # truncated BPTT: carry the value, cut the graph
            step += 1
            bar.update(1)
            if step % log_every == 0 or step == args.iters:
                bpc = float(np.mean(window)) / math.log(2)
                run.log(step, "train", loss=bpc)
                bar.set_postfix(bpc=bpc)
                window = []
            if step % args.eval_every == 0 or step == args.iters:
                v = charlm_bpc(model, valid, args.batch_size, args.bptt)
                run.log(step, "valid", loss=v)
                if best is None or v < best["valid_bpc"]:
                    best = {"step": step, "valid_bpc": v}
                    tg.save({"model": dict(model.state_dict()), **best}, run.path / _BEST)
                elif step % args.eval_every == 0:  # no better than the best: halve the step size
                    for g in opt.param_groups:   # (lr lives in the optimizer state: --resume keeps it)
                        g["lr"] = max(g["lr"] * 0.5, args.lr / 64)
                run.save_checkpoint(step, model, opt, {"data": data_rng}, **_state_arrays(hx))
    run.plot(title=f"char LM ({args.cell.upper()}): bits per character", baseline=baseline)
    last_valid = run.records("valid")[-1]["loss"]
    _load_best(run, model)  # report the checkpoint validation chose, not the last one
    bpc = charlm_bpc(model, corpus.test, args.batch_size, args.bptt)
    rows = [{"model": f"{args.cell.upper()} h={args.hidden}", "checkpoint": f"best, step {best['step']}",
             "valid bpc": best["valid_bpc"], "test bpc": bpc, "steps": step,
             "seconds": round(time.perf_counter() - t0, 1)},
            {"model": "", "checkpoint": f"last, step {step}", "valid bpc": last_valid, "test bpc": "",
             "steps": "", "seconds": ""},
            {"model": "unigram baseline", "checkpoint": "", "valid bpc": corpus.unigram_bpc("valid"),
             "test bpc": baseline, "steps": "", "seconds": ""}]
    print_table(rows, title=f"character LM, {len(corpus.valid)} validation (first {len(valid)} scored during "
                            f"training) / {len(corpus.test)} test characters")
    text = sample(model, itos, args.prompt, args.sample_len, args.temperature, sample_rng)
    print(f"--- sample of the best checkpoint (temperature {args.temperature}) ---\n{text}\n---")
    (run.path / "results.json").write_text(json.dumps(
        {"bpc": bpc, "unigram_bpc": baseline, "best_step": best["step"], "valid_bpc": best["valid_bpc"],
         "last_valid_bpc": last_valid, "steps": step, "sample": text}, indent=1))
    _outputs(run.path, ["results.json", "metrics.jsonl", "loss.png", "checkpoint.npz (last)",
                        f"{_BEST} (lowest validation bits/char)", "config.json"])
    return 0


_BEST = "best.npz"


def _load_best(run: RunDir, model: CharLM | None) -> dict:
    """{"step", "valid_bpc"} of the run's best checkpoint; its weights go into `model` when given."""
    obj = tg.load(run.path / _BEST)
    if model is not None:
        model.load_state_dict(obj["model"])
    return {"step": int(obj["step"]), "valid_bpc": float(obj["valid_bpc"])}


# ============================================================================================ CLI
def _cells_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cells", type=csv_choices(CELLS), default=list(CELLS), metavar="CELLS",
                   help=f"comma-separated cells to train, from {','.join(CELLS)} (default {','.join(CELLS)}); "
                        "a re-run of some cells merges into results.json")


def _seeds_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=_seed_list, default=None, metavar="SEEDS",
                   help="comma-separated seeds, one run of every cell each (OUT/seed<k>/<cell>), with the mean "
                        "and spread over them in summary.json (default: the one --seed, in OUT/<cell>)")


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}")
    return list(dict.fromkeys(seeds))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `adding`, `digits` and `charlm` subcommands."""
    p = subparsers.add_parser("adding", help="adding problem: RNN vs LSTM vs GRU at sequence length T",
                              description=__doc__.split("\n\n")[1].split("- digits")[0].strip().removeprefix("- "))
    add_common_args(p, ADDING_DEFAULTS, ADDING_QUICK, {"iters": "training iterations (batches) per cell"})
    deprecated(p, "--steps", "--seq-len", "seq_len", type=int_at_least(2), metavar="T")
    _cells_flag(p)
    p.add_argument("--clip", type=nonnegative_float, default=None,
                   help="gradient-norm clipping, 0 disables (default 1.0)")
    p.add_argument("--eval-every", type=positive_int, default=None, help="iterations between held-out evaluations "
                                                                         "and checkpoints (default 100, --quick 50)")
    p.add_argument("--test-size", type=positive_int, default=None,
                   help="held-out sequences (default 1000, --quick 256)")
    p.add_argument("--lstm-init", choices=LSTM_INITS, default=None,
                   help="LSTM gate biases at init: chrono (b_f = log U(1, T-1), b_i = -b_f), forget1 (b_f += 1) "
                        "or pytorch (U(-1/sqrt(H), 1/sqrt(H)) like the weights) (default chrono)")
    _seeds_flag(p)
    add_compile_flag(p)
    p.set_defaults(func=run_adding)

    p = subparsers.add_parser("digits", help="8x8 digits read pixel by pixel: RNN vs LSTM vs GRU")
    add_common_args(p, {**DIGITS_DEFAULTS, "train_size": 0}, DIGITS_QUICK)
    _cells_flag(p)
    p.add_argument("--clip", type=nonnegative_float, default=None,
                   help="gradient-norm clipping, 0 disables (default 1.0)")
    p.add_argument("--train-size", type=nonnegative_int, default=None,
                   help="use only the first N training images, 0 = all 1149 (default 0)")
    _seeds_flag(p)
    add_compile_flag(p)
    p.set_defaults(func=run_digits)

    p = subparsers.add_parser("charlm", help="character-level language model with truncated BPTT")
    add_common_args(p, {**CHARLM_DEFAULTS, "corpus": None}, CHARLM_QUICK,
                    {"iters": "training iterations (windows of --bptt characters)"})
    p.add_argument("--corpus", type=existing_path, default=None, help="text file or directory (default: Python "
                                                                      "standard-library sources on this machine)")
    p.add_argument("--stdlib-packages", action="store_true", default=None,
                   help="default corpus: after the top-level files, also read the standard library's packages "
                        "(without test suites, site-packages and generated tables: ~9.9 MB on Python 3.11); "
                        f"--max-bytes then defaults to {STDLIB_ALL_BYTES}")
    p.add_argument("--max-bytes", type=positive_int, default=None,
                   help=f"characters of corpus to use (default {CHARLM_DEFAULTS['max_bytes']}, --quick {CHARLM_QUICK['max_bytes']})")
    p.add_argument("--cell", choices=CELLS, default=None, help="recurrent cell (default lstm)")
    p.add_argument("--layers", type=positive_int, default=None, help="stacked recurrent layers (default 1)")
    p.add_argument("--emb", type=positive_int, default=None, help="character embedding size (default 64, --quick 16)")
    p.add_argument("--bptt", type=positive_int, default=None,
                   help="truncated-BPTT window length (default 64, --quick 32)")
    p.add_argument("--clip", type=nonnegative_float, default=None,
                   help="gradient-norm clipping, 0 disables (default 1.0)")
    p.add_argument("--eval-every", type=positive_int, default=None, help="iterations between held-out evaluations "
                                                                         "and checkpoints (default 250, --quick 50)")
    p.add_argument("--eval-chars", type=positive_int, default=None, help="held-out characters scored during "
                   "training (default 100000, --quick 4000; the final score uses all)")
    p.add_argument("--temperature", type=positive_float, default=None, help="sampling temperature (default 0.8)")
    p.add_argument("--sample-len", type=positive_int, default=None,
                   help="characters to sample (default 400, --quick 80)")
    p.add_argument("--prompt", default=None, help="text the sample starts from (default 'def ')")
    p.add_argument("--sample-only", action="store_true", help="load the best checkpoint in --out and only sample")
    p.add_argument("--dropout", type=probability, default=None,
                   help="dropout on the embedding and the recurrent output (default 0, --full 0.25)")
    p.add_argument("--full", action="store_true", help="the char-rnn setting: 3-layer LSTM 512, dropout 0.25, "
                   "windows of 100, 100k steps (hours on a CPU; explicit flags still win)")
    add_compile_flag(p)
    p.set_defaults(func=run_charlm)
