"""`tinygrad-seq glimpse`: hard attention trained three ways, on a task where the model must pick one position.

Each example has S positions; position i holds a value x_i ~ U(0, 1) and an item y_i (one of C, one-hot).
The answer is the item at the position of the largest value. A scorer s_i = v·tanh(W f_i + b) rates each
position from its features f_i = [x_i, onehot(y_i)], the model takes ONE glimpse c = Σ_i w_i f_i and a
linear head classifies c. The weights w come from
- soft: w = softmax(s) (differentiable; every position is read a little);
- gumbel: w = the straight-through Gumbel-softmax one-hot sample (relaxed gradient, temperature --tau);
- reinforce: w = one_hot(k), k ~ softmax(s); the scorer learns from the score-function estimate
  (L - b) ∇ log softmax(s)_k with a moving-average baseline b and an entropy bonus (models/reinforce.py),
  the head by ordinary backprop;
- reinforce-nobaseline: the same with b = 0.
At evaluation the hard models read the argmax position. Reported: held-out accuracy (answer), pointer
accuracy (argmax of s is the largest value), and the variance of the scorer's gradient over repeated
draws on one fixed batch at the same (initial) parameters: the cost of each estimator's noise.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq import optim
from tinygrad_seq.nn import functional as F

from .common import (add_common_args, csv_choices, int_at_least, nonnegative_float, plot_curves, positive_float,
                     positive_int, print_table, progress, require, resolve_args, RunDir, seed_everything, UsageError)

METHODS = ("soft", "gumbel", "reinforce", "reinforce-nobaseline")


def make_batch(n: int, positions: int, items: int, rng: np.random.Generator):
    """features (n, S, 1 + C), the answer item (n,), the position of the largest value (n,)"""
    x = rng.random((n, positions))
    y = rng.integers(0, items, (n, positions))
    f = np.concatenate([x[..., None], np.eye(items)[y]], -1).astype(np.float32)
    pos = x.argmax(1)
    return f, y[np.arange(n), pos], pos


class Glimpse(tg.nn.Module):
    """s_i = v·tanh(W f_i + b);  c = Σ_i w_i f_i;  logits = U c + d"""

    def __init__(self, features: int, hidden: int, items: int):
        super().__init__()
        self.score_in = tg.nn.Linear(features, hidden)
        self.score_out = tg.nn.Linear(hidden, 1)
        self.head = tg.nn.Linear(features, items)
        self.last_ce = float("nan")

    def scores(self, f: tg.Tensor) -> tg.Tensor:
        return self.score_out(self.score_in(f).tanh()).squeeze(-1)

    def read(self, f: tg.Tensor, w) -> tg.Tensor:
        w = w if isinstance(w, tg.Tensor) else tg.Tensor(w.astype(np.float32))
        return self.head((w.unsqueeze(-1) * f).sum(1))


def method_loss(model: Glimpse, method: str, f: np.ndarray, target: np.ndarray, args, baseline) -> tg.Tensor:
    """The training loss of one batch (its gradient is each method's estimate; for REINFORCE its value
    is not the cross-entropy: read that from `model.last_ce`)."""
    from tinygrad_seq.models import gumbel_softmax, reinforce

    ft = tg.Tensor(f)
    s = model.scores(ft)
    if method == "soft":
        ce = F.cross_entropy(model.read(ft, s.softmax(-1)), target)
    elif method == "gumbel":
        ce = F.cross_entropy(model.read(ft, gumbel_softmax(s, args.tau, hard=True)), target)
    if method in ("soft", "gumbel"):
        model.last_ce = ce.item()
        return ce
    k = reinforce.sample_categorical(s)
    per = F.cross_entropy(model.read(ft, np.eye(f.shape[1])[k]), target, reduction="none")
    b = 0.0 if baseline is None else baseline(per.numpy())
    model.last_ce = float(per.numpy().mean())
    return per.mean() + reinforce.reinforce_loss(s, k, per, b, args.entropy)


def evaluate(model: Glimpse, method: str, data) -> tuple[float, float, np.ndarray]:
    f, target, pos = data
    ft = tg.Tensor(f)
    with tg.no_grad():
        s = model.scores(ft)
        alpha = s.softmax(-1).numpy()
        w = alpha if method == "soft" else np.eye(f.shape[1])[alpha.argmax(1)]
        pred = model.read(ft, w).numpy().argmax(1)
    return float((pred == target).mean()), float((alpha.argmax(1) == pos).mean()), alpha


def gradient_variance(model: Glimpse, method: str, data, args, draws: int) -> float:
    """Σ over scorer parameters of the variance of their gradient across `draws` noisy evaluations of
    the same batch's loss (0 for soft attention, which draws nothing)."""
    f, target, _ = data
    params = [model.score_in.weight, model.score_in.bias, model.score_out.weight, model.score_out.bias]
    base = None
    if method == "reinforce":  # the baseline at its steady value: this batch's expected loss
        with tg.no_grad():
            ft = tg.Tensor(f)
            b0 = F.cross_entropy(model.read(ft, model.scores(ft).softmax(-1)), target).item()
        base = lambda L: b0  # noqa: E731
    grads = []
    for _ in range(draws):
        model.zero_grad()
        method_loss(model, method, f, target, args, base).backward()
        grads.append(np.concatenate([p.grad.numpy().ravel() for p in params]))
    model.zero_grad()
    return float(np.var(np.array(grads, np.float64), axis=0).sum())


DEFAULTS = dict(out="runs/glimpse", iters=1500, lr=3e-3, hidden=32, batch_size=64, positions=8, items=5,
                tau=1.0, entropy=0.01, test_size=1000, eval_every=100, draws=50)
QUICK = dict(iters=400, test_size=400, draws=20)


def train_method(method: str, args: argparse.Namespace, test) -> tuple[dict[str, Any], np.ndarray]:
    from tinygrad_seq.models.reinforce import MovingAverageBaseline

    data_rng = seed_everything(args.seed)
    model = Glimpse(1 + args.items, args.hidden, args.items)
    # the gradient noise of each estimator, at the same initial parameters (same seed) for every method
    probe = make_batch(args.batch_size, args.positions, args.items, np.random.default_rng([args.seed, 4]))
    var0 = gradient_variance(model, method, probe, args, args.draws if method != "soft" else 2)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    baseline = MovingAverageBaseline(0.9) if method == "reinforce" else None
    run = RunDir(args.out / method)
    step, extra = run.begin(model, opt, {"data": data_rng}, resume=args.resume)
    if baseline is not None and "baseline" in extra:
        baseline.load_state_dict({"value": extra["baseline"]})
    t0, window = time.perf_counter(), []
    with progress(args.iters, desc=f"glimpse {method}", initial=step) as bar:
        while step < args.iters:
            f, target, _ = make_batch(args.batch_size, args.positions, args.items, data_rng)
            loss = method_loss(model, method, f, target, args, baseline)
            opt.zero_grad()
            loss.backward()
            opt.step()
            window.append(model.last_ce)
            step += 1
            bar.update(1)
            if step % args.eval_every == 0 or step == args.iters:
                acc, ptr, _ = evaluate(model, method, test)
                run.log(step, "train", loss=float(np.mean(window)))
                run.log(step, "test", accuracy=acc, pointer=ptr)
                bar.set_postfix(loss=float(np.mean(window)), acc=acc)
                window = []
                state = {} if baseline is None else {"baseline": baseline.state_dict()["value"]}
                run.save_checkpoint(step, model, opt, {"data": data_rng}, **state)
    run.plot(title=f"glimpse: {method}")
    acc, ptr, alpha = evaluate(model, method, test)
    return {"method": method, "test accuracy": acc, "pointer accuracy": ptr, "grad variance (init)": var0,
            "iters": step, "seconds": round(time.perf_counter() - t0, 1)}, alpha


def plot_attention(path, alphas: dict[str, np.ndarray], test, n: int = 8) -> None:
    from matplotlib.figure import Figure

    f, _, pos = test
    n = min(n, len(pos))  # a test set smaller than n rows draws what it has
    fig = Figure(figsize=(3.2 * len(alphas), 3.6), dpi=100)
    axes = np.atleast_1d(fig.subplots(1, len(alphas)))
    for ax, (name, a) in zip(axes, alphas.items()):
        ax.imshow(a[:n], cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.scatter(pos[:n], np.arange(n), marker="x", color="red", s=30, label="largest value")
        ax.set_title(f"{name}: α = softmax(s)", fontsize=9)
        ax.set_xlabel("position")
        ax.set_ylabel("test example")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, format="png")


def run_glimpse(args: argparse.Namespace) -> int:
    args = resolve_args(args)
    require("matplotlib")
    test = make_batch(args.test_size, args.positions, args.items, np.random.default_rng([args.seed, 2]))
    rows, alphas = [], {}
    for m in args.methods:
        row, alphas[m] = train_method(m, args, test)
        rows.append(row)
    plot_attention(args.out / "attention.png", alphas, test)
    curves = {}
    for m in args.methods:
        recs = RunDir(args.out / m).records("test")
        curves[m] = ([r["step"] for r in recs], [r["accuracy"] for r in recs])
    plot_curves(curves, args.out / "accuracy.png", title="glimpse: held-out accuracy", ylabel="accuracy",
                baseline=1.0 / args.items)
    print_table(rows, title=f"glimpse: pick the item at the largest of {args.positions} values "
                            f"({args.items} items, chance {1 / args.items:.2f})")
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "chance": 1 / args.items}, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("glimpse", help="hard attention: soft vs Gumbel-softmax vs REINFORCE on a "
                                              "pick-one-position task", description=__doc__.split("\n\n")[0])
    add_common_args(p, DEFAULTS, QUICK)
    p.add_argument("--methods", type=csv_choices(METHODS), default=list(METHODS), metavar="METHODS",
                   help=f"comma-separated methods, from {','.join(METHODS)} (default {','.join(METHODS)})")
    for flag, typ, text in (("positions", positive_int, "positions per example"),
                            ("items", int_at_least(2), "number of items (classes)"),
                            ("tau", positive_float, "Gumbel-softmax temperature"),
                            ("entropy", nonnegative_float, "REINFORCE entropy bonus β"),
                            ("test-size", positive_int, "held-out examples"),
                            ("eval-every", positive_int, "steps between evaluations"),
                            ("draws", int_at_least(2), "gradient draws for the variance")):
        p.add_argument("--" + flag, type=typ, default=None, help=f"{text} (default {DEFAULTS[flag.replace('-', '_')]})")
    p.set_defaults(func=run_glimpse)
