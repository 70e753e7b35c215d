"""`tinygrad-seq norms`: why Transformers use LayerNorm and not BatchNorm, made measurable.

Sentences of different lengths (3..`--max-len` tokens) are padded to a common length and fed to one small
classifier, token-wise  h = ReLU(Norm(W E[x_t]))  then the mean of h over the real tokens and a linear
head. The label: are more than a quarter of the tokens token "A"? Norm is
- LayerNorm(d): μ, σ² over one token's d features, so a token's output depends only on that token;
- BatchNorm1d(d) on (N, d, L): μ, σ² per feature over every sentence of the batch AND every position,
  padding included, so one sentence's output depends on what else is in the batch and how much padding
  there is (and eval, with running statistics, differs from training).

Measured for each model (LayerNorm at --batch-size, BatchNorm at --batch-size, BatchNorm at batch 2):
- held-out accuracy (eval mode);
- batch-composition sensitivity: the same probe sentences are put into --probe-batches random batches
  (random companions, random extra padding) and run in training mode; the number is the mean, over
  probes, of the standard deviation of their logit difference across batches, divided by the standard
  deviation of that logit difference across probes (0 = a sentence's output ignores its batch);
- the train/eval gap: mean |logit difference in training mode - in eval mode| / its std across probes.

Writes `<out>/<model>/metrics.jsonl`, `loss.png`, `checkpoint.npz`; `<out>/norms.png` and results.json.
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

from .common import (add_common_args, csv_choices, int_at_least, plot_curves, positive_int, print_table, progress,
                     require, resolve_args, RunDir, seed_everything, UsageError)

PAD, TOK_A, TOK_B = 0, 1, 2
VARIANTS = ("layernorm", "batchnorm", "batchnorm-b2")


# ------------------------------------------------------------------------------------------ data
def make_sentences(n: int, max_len: int, vocab: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """n token sequences of length 3..max_len over tokens 1..vocab-1 (0 is padding); label 1 when more
    than a quarter of the tokens are token A. Each sentence draws its own rate of A around 1/4, so
    many sentences lie near the threshold: a shift of the pooled features moves decisions."""
    if max_len < 3 or vocab < 3:
        raise ValueError(f"make_sentences: need max_len >= 3 and vocab >= 3, got {max_len}, {vocab}")
    sents, labels = [], []
    while len(sents) < n:
        L = int(rng.integers(3, max_len + 1))
        is_a = rng.random(L) < rng.uniform(0.05, 0.45)
        s = np.where(is_a, TOK_A, rng.integers(TOK_B, vocab, size=L))
        if 4 * is_a.sum() == L:
            continue  # no ties: the label is always defined by the sentence
        sents.append(s)
        labels.append(int(4 * is_a.sum() > L))
    return sents, np.array(labels)


def pad_batch(sents: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) padded ids and the (N, L) bool mask of real tokens; L = longest (or `length`)."""
    L = max(len(s) for s in sents) if length is None else length
    ids = np.full((len(sents), L), PAD, np.int64)
    for i, s in enumerate(sents):
        ids[i, :len(s)] = s
    return ids, ids != PAD


# ------------------------------------------------------------------------------------------ model
class PooledClassifier(tg.nn.Module):
    """logits = V mean_{t real}(ReLU(Norm(W E[x_t] + b))) + c, with Norm = LayerNorm(d) over each token's
    features or BatchNorm1d(d) over (batch, positions) per feature, padding included (the naive use)."""

    def __init__(self, vocab: int, emb: int, hidden: int, norm: str):
        super().__init__()
        if norm not in ("layernorm", "batchnorm"):
            raise ValueError(f"norm must be 'layernorm' or 'batchnorm', got {norm!r}")
        self.norm_kind = norm
        self.embed = tg.nn.Embedding(vocab, emb, padding_idx=PAD)
        self.proj = tg.nn.Linear(emb, hidden)
        self.norm = tg.nn.LayerNorm(hidden) if norm == "layernorm" else tg.nn.BatchNorm1d(hidden)
        self.head = tg.nn.Linear(hidden, 2)

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> tg.Tensor:
        h = self.proj(self.embed(tg.Tensor(ids)))  # (N, L, d)
        if self.norm_kind == "layernorm":
            h = self.norm(h)
        else:  # BatchNorm1d wants channels in dim 1: (N, d, L)
            h = self.norm(h.transpose(1, 2)).transpose(1, 2)
        m = tg.Tensor(mask[..., None].astype(h.dtype))
        pooled = (h.relu() * m).sum(1) / m.sum(1)
        return self.head(pooled)


# ------------------------------------------------------------------------------------------ measures
def logit_margin(model: PooledClassifier, sents: list[np.ndarray], length: int | None = None) -> np.ndarray:
    ids, mask = pad_batch(sents, length)
    with tg.no_grad():
        z = model(ids, mask).numpy()
    return z[:, 1] - z[:, 0]


def batch_sensitivity(model: PooledClassifier, probes: list[np.ndarray], pool: list[np.ndarray],
                      batch_size: int, n_batches: int, max_len: int, rng: np.random.Generator) -> dict[str, float]:
    """Put each probe into n_batches random training-mode batches (random companions from `pool`, padded
    to a random length between the longest member and 2·max_len); see the module docstring."""
    state = {k: v.copy() for k, v in model.state_dict().items()}  # training mode moves running stats
    model.train()
    outs = np.zeros((len(probes), n_batches))
    for j in range(n_batches):
        for i, p in enumerate(probes):
            others = [pool[k] for k in rng.choice(len(pool), size=batch_size - 1, replace=False)]
            batch = [p] + others
            longest = max(len(s) for s in batch)
            outs[i, j] = logit_margin(model, batch, int(rng.integers(longest, 2 * max_len + 1)))[0]
    model.load_state_dict(state)
    model.eval()
    evals = logit_margin(model, probes)
    model.train()
    spread = float(outs.mean(1).std()) or 1.0
    return {"sensitivity": float(outs.std(1).mean() / spread),
            "train/eval gap": float(np.abs(outs.mean(1) - evals).mean() / spread)}


def accuracy(model: PooledClassifier, sents: list[np.ndarray], labels: np.ndarray, batch: int = 256) -> float:
    model.eval()
    preds = np.concatenate([logit_margin(model, sents[i:i + batch]) > 0 for i in range(0, len(sents), batch)])
    model.train()
    return float((preds == labels).mean())


# ------------------------------------------------------------------------------------------ run
DEFAULTS = dict(out="runs/norms", iters=1500, lr=3e-3, hidden=32, batch_size=32, emb=16, vocab=12, max_len=20,
                train_size=4000, test_size=1000, probes=24, probe_batches=12, eval_every=250)
QUICK = dict(iters=200, train_size=1000, test_size=400, probes=12, probe_batches=6, eval_every=100)


def train_variant(variant: str, args: argparse.Namespace, data: tuple) -> dict[str, Any]:
    tr_s, tr_y, te_s, te_y = data
    data_rng = seed_everything(args.seed)
    norm = "layernorm" if variant == "layernorm" else "batchnorm"
    bs = 2 if variant == "batchnorm-b2" else args.batch_size
    model = PooledClassifier(args.vocab, args.emb, args.hidden, norm)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    run = RunDir(args.out / variant)
    step, _ = run.begin(model, opt, {"data": data_rng}, resume=args.resume)
    t0, window = time.perf_counter(), []
    # the same number of sentences seen by every variant: batch 2 takes more, smaller steps
    iters = args.iters * args.batch_size // bs
    every = max(1, args.eval_every * args.batch_size // bs)
    with progress(iters, desc=f"norms {variant}", initial=step) as bar:
        while step < iters:
            idx = data_rng.choice(len(tr_s), size=bs, replace=False)
            ids, mask = pad_batch([tr_s[i] for i in idx])
            loss = F.cross_entropy(model(ids, mask), tr_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            window.append(loss.item())
            step += 1
            bar.update(1)
            if step % every == 0 or step == iters:
                acc = accuracy(model, te_s, te_y)
                run.log(step, "train", loss=float(np.mean(window)), sentences=step * bs)
                run.log(step, "test", accuracy=acc, sentences=step * bs)
                bar.set_postfix(loss=float(np.mean(window)), test_acc=acc)
                window = []
                run.save_checkpoint(step, model, opt, {"data": data_rng})
    run.plot(title=f"norms: {variant}")
    probe_rng = np.random.default_rng([args.seed, 3])  # the same probes and batches for every variant
    sens = batch_sensitivity(model, te_s[:args.probes], tr_s, min(bs, 16), args.probe_batches, args.max_len,
                             probe_rng)
    return {"model": variant, "batch": bs, "test accuracy": accuracy(model, te_s, te_y), **sens,
            "iters": step, "seconds": round(time.perf_counter() - t0, 1)}


def plot_summary(rows: list[dict], args: argparse.Namespace) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=100)
    axes = fig.subplots(1, 3)
    names = [r["model"] for r in rows]
    for ax, key in zip(axes[:2], ("sensitivity", "train/eval gap")):
        ax.bar(names, [r[key] for r in rows], color=["tab:blue", "tab:orange", "tab:green"][:len(rows)])
        ax.set_title("batch-composition sensitivity" if key == "sensitivity" else "train/eval gap")
        ax.tick_params(axis="x", labelsize=8)
    for r in rows:
        recs = RunDir(args.out / r["model"]).records("test")
        axes[2].plot([q["sentences"] for q in recs], [q["accuracy"] for q in recs], label=r["model"])
    axes[2].set_xlabel("training sentences")
    axes[2].set_title("held-out accuracy (eval mode)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "norms.png", format="png")


def run_norms(args: argparse.Namespace) -> int:
    args = resolve_args(args)
    require("matplotlib")
    if args.batch_size < 2:
        raise UsageError("--batch-size must be >= 2 (BatchNorm needs more than one sentence)")
    if args.batch_size > args.train_size:
        raise UsageError(f"--batch-size {args.batch_size} is larger than --train-size {args.train_size}")
    drng = np.random.default_rng([args.seed, 2])
    tr_s, tr_y = make_sentences(args.train_size, args.max_len, args.vocab, drng)
    te_s, te_y = make_sentences(args.test_size, args.max_len, args.vocab, drng)
    rows = [train_variant(v, args, (tr_s, tr_y, te_s, te_y)) for v in args.variants]
    plot_summary(rows, args)
    majority = max(te_y.mean(), 1 - te_y.mean())
    print_table(rows, title=f"norms: padded sentences of 3..{args.max_len} tokens, label #A > L/4 "
                            f"(majority class {majority:.3f}); sensitivity 0 = output ignores its batch")
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "majority": float(majority)}, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("norms", help="LayerNorm vs BatchNorm on padded sentences: accuracy and "
                                            "batch-composition sensitivity",
                              description=__doc__.split("\n\n")[1])
    add_common_args(p, DEFAULTS, QUICK, {"iters": "training steps at --batch-size (batch 2 gets as many sentences)"})
    p.add_argument("--variants", type=csv_choices(VARIANTS), default=list(VARIANTS), metavar="VARIANTS",
                   help=f"comma-separated models, from {','.join(VARIANTS)} (default {','.join(VARIANTS)})")
    for flag, typ, text in (("emb", positive_int, "embedding size"),
                            ("vocab", int_at_least(3), "vocabulary size incl. padding"),
                            ("max-len", int_at_least(3), "longest sentence"),
                            ("train-size", positive_int, "training sentences"),
                            ("test-size", positive_int, "held-out sentences"),
                            ("probes", positive_int, "probe sentences for the sensitivity"),
                            ("probe-batches", positive_int, "random batches per probe"),
                            ("eval-every", positive_int, "steps between evaluations")):
        p.add_argument("--" + flag, type=typ, default=None,
                       help=f"{text} (default {DEFAULTS[flag.replace('-', '_')]})")
    p.set_defaults(func=run_norms)
