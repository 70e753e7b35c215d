"""Shared infrastructure of the `tinygrad-seq` training demos (recurrent and seq2seq).

Conventions every demo follows: a run directory `--out DIR` holding `metrics.jsonl` (one JSON object
per line: `{"step", "split", "loss", ...}`), a loss-curve PNG and `checkpoint.npz`; `--resume`
continues from the checkpoint (model, optimizer, step and random generators restored, so a resumed
run reproduces the uninterrupted one exactly); `--seed`; `--quick` (tiny sizes, seconds, used by
tests). matplotlib and tqdm are imported lazily, only when a demo runs.

API
---
add_common_args(parser, defaults, quick=None, help_text=None)
    Adds `--out --seed --quick --resume` and, for each key present in `defaults`, the flags
    `--steps --epochs --iters --lr --hidden --batch-size`. Their parsed value is None until
    `resolve_args(args)` fills every None attribute named in `defaults` from `quick` (with --quick)
    or `defaults`; so a flag given explicitly always wins over --quick. Extra keys in `defaults`
    work for demo-specific flags added with `default=None`. `help_text` overrides flag help texts
    (e.g. `--steps` means the sequence length T in the adding demo).
resolve_args(args) -> args
seed_everything(seed) -> np.random.Generator
    `tg.manual_seed(seed)` (parameter init, dropout, sampling) and returns a separate data generator
    (seeded from `[seed, 1]`), so changing the model does not change the data stream.
RunDir(out)
    .path                              the directory (created)
    .begin(model, optim, rngs, resume) -> (step, extra)
                                       fresh start (step 0, metrics cleared) or, with resume and an
                                       existing checkpoint, restore model/optim/rngs and drop metric
                                       lines logged after the checkpoint's step
    .log(step, split, **metrics)       append one line to metrics.jsonl (also echoed to .records)
    .records(split=None) -> list[dict]
    .save_checkpoint(step, model, optim, rngs, **extra)   atomic (`tg.save`)
    .plot(filename="loss.png", key="loss", title=None, logy=False, baseline=None) -> Path
    `rngs` is a dict name -> np.random.Generator; `tg.rng()` is always saved as "tg".
plot_curves(curves, path, title="", xlabel="step", ylabel="loss", logy=False, baseline=None)
    One PNG with several labelled curves: `curves` maps label -> (xs, ys).
progress(total, desc="", initial=0) -> bar
    tqdm on a terminal; otherwise plain lines every ~10% (for logs). `bar.update(n)`,
    `bar.set_postfix(**kw)`, `bar.close()`; usable as a context manager.
minibatches(n, batch_size, rng=None, drop_last=False) -> iterator of index arrays
    A random permutation per call when `rng` is given, else in order.
print_table(rows, columns=None, title=None, file=None) -> str
    Aligned text table from a list of dicts (floats with 4 significant digits); returns and prints it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

import tinygrad_seq as tg

__all__ = ["add_common_args", "resolve_args", "seed_everything", "RunDir", "plot_curves", "progress",
           "minibatches", "print_table"]

# flag -> (type, help) for the flags added only when the demo gives them a default
_OPTIONAL_FLAGS: dict[str, tuple[type, str]] = {
    "steps": (int, "number of training steps"),
    "epochs": (int, "number of training epochs"),
    "iters": (int, "number of training iterations"),
    "lr": (float, "learning rate (Adam)"),
    "hidden": (int, "hidden size"),
    "batch_size": (int, "batch size"),
}


# ------------------------------------------------------------------------------------------ arguments
def add_common_args(parser: argparse.ArgumentParser, defaults: Mapping[str, Any],
                    quick: Mapping[str, Any] | None = None,
                    help_text: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Add the flags shared by all demos; see the module docstring."""
    quick, helps = dict(quick or {}), dict(help_text or {})
    unknown = set(quick) - set(defaults)
    if unknown:
        raise ValueError(f"add_common_args: quick keys {sorted(unknown)} have no entry in defaults")
    parser.add_argument("--out", type=Path, default=None,
                        help=helps.get("out", f"run directory (default {defaults.get('out', 'runs/<demo>')})"))
    parser.add_argument("--seed", type=int, default=None, help=helps.get("seed", "random seed (default 0)"))
    parser.add_argument("--quick", action="store_true",
                        help=helps.get("quick", "tiny configuration that runs in seconds (used by tests)"))
    parser.add_argument("--resume", action="store_true",
                        help=helps.get("resume", "continue from the checkpoint in --out"))
    for key, (typ, text) in _OPTIONAL_FLAGS.items():
        if key in defaults:
            hint = f" (default {defaults[key]}" + (f", --quick {quick[key]})" if key in quick else ")")
            parser.add_argument("--" + key.replace("_", "-"), type=typ, default=None,
                                help=helps.get(key, text) + hint)
    parser.set_defaults(_defaults={"seed": 0, **defaults}, _quick=quick)
    return parser


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every attribute that is still None from the quick or normal defaults (in place)."""
    defaults, quick = getattr(args, "_defaults", {}), getattr(args, "_quick", {})
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, quick.get(key, value) if args.quick else value)
    if isinstance(args.out, str):
        args.out = Path(args.out)
    return args


def seed_everything(seed: int) -> np.random.Generator:
    """Seed the library generator (`tg.manual_seed`) and return an independent data generator."""
    tg.manual_seed(seed)
    return np.random.default_rng([seed, 1])


# ------------------------------------------------------------------------------------------ run dir
def _rng_to_array(gen: np.random.Generator) -> np.ndarray:
    # bit_generator.state holds 128-bit ints, which .npz cannot store without pickle: JSON bytes can
    return np.frombuffer(json.dumps(gen.bit_generator.state).encode(), dtype=np.uint8).copy()


def _rng_from_array(gen: np.random.Generator, arr: np.ndarray) -> None:
    gen.bit_generator.state = json.loads(np.asarray(arr, dtype=np.uint8).tobytes().decode())


class RunDir:
    """One training run's directory: metrics.jsonl, checkpoint.npz and plots."""

    METRICS = "metrics.jsonl"
    CHECKPOINT = "checkpoint.npz"

    def __init__(self, out: str | os.PathLike):
        self.path = Path(out)
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.path / self.METRICS
        self.checkpoint_path = self.path / self.CHECKPOINT
        self._records: list[dict] = self._read_metrics()

    def _read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        with open(self.metrics_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def _rewrite_metrics(self) -> None:
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in self._records)
        os.replace(tmp, self.metrics_path)

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def begin(self, model: tg.nn.Module, optim: Any, rngs: Mapping[str, np.random.Generator] | None = None,
              resume: bool = False) -> tuple[int, dict]:
        """Start the run: returns (step, extra). Without `resume` (or without a checkpoint) the step is 0
        and old metrics are discarded; with it, model, optimizer and generators are restored in place."""
        if not (resume and self.has_checkpoint()):
            if resume:
                print(f"[resume] no checkpoint in {self.path}, starting from scratch", file=sys.stderr)
            self._records = []
            self._rewrite_metrics()
            return 0, {}
        step, extra = self.load_checkpoint(model, optim, rngs)
        self._records = [r for r in self._records if r.get("step", 0) <= step]
        self._rewrite_metrics()
        return step, extra

    def log(self, step: int, split: str, **metrics: Any) -> dict:
        """Append {"step", "split", **metrics} to metrics.jsonl (numpy scalars become Python numbers)."""
        rec = {"step": int(step), "split": split}
        for k, v in metrics.items():
            rec[k] = v.item() if isinstance(v, np.generic) else v
        self._records.append(rec)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        return rec

    def records(self, split: str | None = None) -> list[dict]:
        return [r for r in self._records if split is None or r["split"] == split]

    def save_checkpoint(self, step: int, model: tg.nn.Module, optim: Any,
                        rngs: Mapping[str, np.random.Generator] | None = None, **extra: Any) -> Path:
        """Write model, optimizer, step, generators and `extra` (arrays/numbers) atomically."""
        gens = {"tg": _rng_to_array(tg.rng())}
        gens.update({k: _rng_to_array(g) for k, g in (rngs or {}).items()})
        obj = {"model": dict(model.state_dict()), "step": int(step), "rng": gens}
        if optim is not None:
            obj["optim"] = optim.state_dict()
        if extra:
            obj["extra"] = dict(extra)
        tg.save(obj, self.checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(self, model: tg.nn.Module, optim: Any,
                        rngs: Mapping[str, np.random.Generator] | None = None) -> tuple[int, dict]:
        """Restore model, optimizer and generators in place from checkpoint.npz; returns (step, extra)."""
        obj = tg.load(self.checkpoint_path)
        missing = [k for k in ("tg", *(rngs or {})) if k not in obj["rng"]]
        if missing:
            raise RuntimeError(f"{self.checkpoint_path}: checkpoint has no state for generator(s) {missing}")
        model.load_state_dict(obj["model"])
        if optim is not None:
            if "optim" not in obj:
                raise RuntimeError(f"{self.checkpoint_path}: checkpoint has no optimizer state")
            optim.load_state_dict(obj["optim"])
        _rng_from_array(tg.rng(), obj["rng"]["tg"])
        for k, g in (rngs or {}).items():
            _rng_from_array(g, obj["rng"][k])
        return int(obj["step"]), dict(obj.get("extra", {}))

    def plot(self, filename: str = "loss.png", key: str = "loss", title: str | None = None,
             logy: bool = False, baseline: float | None = None) -> Path:
        """Plot `key` against step, one curve per split, into the run directory."""
        curves: dict[str, tuple[list, list]] = {}
        for r in self._records:
            if key in r:
                xs, ys = curves.setdefault(r["split"], ([], []))
                xs.append(r["step"])
                ys.append(r[key])
        return plot_curves(curves, self.path / filename, title=title or self.path.name, ylabel=key,
                           logy=logy, baseline=baseline)


# ------------------------------------------------------------------------------------------ plots
def plot_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | os.PathLike,
                title: str = "", xlabel: str = "step", ylabel: str = "loss", logy: bool = False,
                baseline: float | None = None) -> Path:
    """Save labelled curves as a PNG. Uses matplotlib's Figure directly (Agg canvas, no pyplot), so
    it neither needs a display nor changes anyone's backend."""
    from matplotlib.figure import Figure  # lazy: matplotlib is a demos extra

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.subplots()
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None, markersize=3)
    if baseline is not None:
        ax.axhline(baseline, color="gray", linestyle="--", linewidth=1, label=f"baseline {baseline:.3g}")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if curves or baseline is not None:
        ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


# ------------------------------------------------------------------------------------------ progress
class _PlainProgress:
    """tqdm stand-in for logs and pipes: one line per ~10% of the run (and at the end)."""

    def __init__(self, total: int, desc: str, initial: int, file=None):
        self.total, self.desc, self.n = total, desc, initial
        self.file = file or sys.stdout
        self.postfix: dict[str, Any] = {}
        self._every = max(1, math.ceil(total / 10)) if total else 1
        self._next = (initial // self._every + 1) * self._every
        self._t0 = time.perf_counter()
        self._n0 = initial

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n >= self._next or self.n == self.total:
            self._next = (self.n // self._every + 1) * self._every
            self._print()

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kw: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kw}

    def _print(self) -> None:
        rate = (self.n - self._n0) / max(time.perf_counter() - self._t0, 1e-9)
        post = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc} {self.n}/{self.total} [{rate:.1f} it/s] {post}".strip(), file=self.file, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int, desc: str = "", initial: int = 0):
    """A progress bar: tqdm when stderr is a terminal and tqdm is installed, else periodic lines."""
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm  # lazy: tqdm is a demos extra
            return tqdm(total=total, desc=desc, initial=initial, dynamic_ncols=True)
        except ImportError:
            pass
    return _PlainProgress(total, desc, initial)


# ------------------------------------------------------------------------------------------ data
def minibatches(n: int, batch_size: int, rng: np.random.Generator | None = None,
                drop_last: bool = False) -> Iterator[np.ndarray]:
    """Index arrays covering range(n) in batches: shuffled with `rng` (one permutation drawn now), else in
    order; the last short batch is dropped with `drop_last`."""
    if batch_size < 1:
        raise ValueError(f"minibatches: batch_size must be >= 1, got {batch_size}")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        yield order[i:i + batch_size]


# ------------------------------------------------------------------------------------------ tables
def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.1f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def print_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None,
                title: str | None = None, file=None) -> str:
    """Print an aligned table (first column left-aligned, the rest right-aligned); returns its text."""
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[str(c) for c in columns]] + [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row: list[str]) -> str:
        return "  ".join(s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(row, widths)))

    out = [line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]]
    if title:
        out.insert(0, title)
    text = "\n".join(out)
    print(text, file=file or sys.stdout, flush=True)
    return text
