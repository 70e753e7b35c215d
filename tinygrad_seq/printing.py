"""Tensors print as PyTorch prints them: the same digits, column widths, line breaks, `...` summaries and
suffixes (`dtype=`, `grad_fn=`, `requires_grad=True`), so a tutorial's printed output reads the same here.

The rules (torch's): one format for the whole tensor, chosen from its nonzero finite values (of the summary,
when summarised): integers-only floats print as `1.`; scientific (`1.0000e-05`) when max/min > 1000,
max > 1e8 or min < 1e-4; else fixed with `precision` digits. Every entry is right-aligned to the widest.
More than `threshold` elements: `edgeitems` at each end of every dimension, `...` between. Rows wrap at
`linewidth`. `set_printoptions` / `printoptions` change the options (and `profile="default"|"short"|"full"`).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import numpy as np

from . import dtypes


@dataclass
class _Options:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


OPTS = _Options()
_PROFILES = {"default": (4, 1000, 3, 80), "short": (2, 1000, 2, 80), "full": (4, math.inf, 3, 80)}


def set_printoptions(precision: int | None = None, threshold: float | None = None, edgeitems: int | None = None,
                     linewidth: int | None = None, profile: str | None = None, sci_mode: bool | None = None) -> None:
    """As torch.set_printoptions: `profile` first resets the four numbers, explicit options then win;
    `sci_mode` is always set (None = choose per tensor)."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(_PROFILES)}, got {profile!r}")
        OPTS.precision, OPTS.threshold, OPTS.edgeitems, OPTS.linewidth = _PROFILES[profile]
    for name, v in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                    ("linewidth", linewidth)):
        if v is not None:
            setattr(OPTS, name, v)
    OPTS.sci_mode = sci_mode


def get_printoptions() -> dict:
    return asdict(OPTS)


@contextlib.contextmanager
def printoptions(**kwargs):
    """Options for a `with` block only (torch.printoptions)."""
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


class _Formatter:
    """One number format for a whole tensor, and the width every entry is padded to."""

    def __init__(self, a: np.ndarray):
        self.floating = a.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.width = True, False, 1
        flat = a.reshape(-1)
        if not self.floating:
            self.width = max([1] + [len(str(v)) for v in flat.tolist()])
            return
        vals = flat[np.isfinite(flat) & (flat != 0)]
        if vals.size == 0:
            return
        mags = np.abs(vals).astype(np.float64)
        lo, hi = mags.min(), mags.max()
        self.int_mode = bool(np.all(vals == np.ceil(vals)))
        self.sci_mode = (hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4) if OPTS.sci_mode is None else OPTS.sci_mode
        p, py = OPTS.precision, vals.tolist()
        if self.sci_mode:
            self.width = max(len(f"{v:.{p}e}") for v in py)
        elif self.int_mode:
            self.width = max(len(f"{v:.0f}") + 1 for v in py)  # + 1: the "." that marks a float
        else:
            self.width = max(len(f"{v:.{p}f}") for v in py)

    def format(self, v) -> str:
        if not self.floating:
            s = f"{v}"
        elif self.sci_mode:
            s = f"{v:{self.width}.{OPTS.precision}e}"
        elif self.int_mode:
            s = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
        else:
            s = f"{v:.{OPTS.precision}f}"
        return " " * (self.width - len(s)) + s


def _summary(a: np.ndarray) -> np.ndarray:
    """The entries a summarised print shows (its format is chosen from these alone)."""
    e = OPTS.edgeitems
    if a.ndim == 0:
        return a
    if a.ndim == 1:
        return np.concatenate((a[:e], a[-e:])) if a.shape[0] > 2 * e else a  # (a[-0:] is all of a, as in torch)
    if not e:
        return np.empty((0,) * a.ndim, a.dtype)
    rows = [*range(e), *range(len(a) - e, len(a))] if len(a) > 2 * e else range(len(a))
    return np.stack([_summary(a[i]) for i in rows])


def _lines(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    e = OPTS.edgeitems
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        per_line = max(1, (OPTS.linewidth - indent) // (fmt.width + 2))
        if summarize and not e:
            data = ["..."]
        elif summarize and a.shape[0] > 2 * e:
            data = [fmt.format(v) for v in a[:e].tolist()] + [" ..."] + [fmt.format(v) for v in a[-e:].tolist()]
        else:
            data = [fmt.format(v) for v in a.tolist()]
        rows = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(rows) + "]"
    if summarize and len(a) > 2 * e:
        parts = ([_lines(a[i], indent + 1, summarize, fmt) for i in range(e)] + ["..."]
                 + [_lines(a[i], indent + 1, summarize, fmt) for i in range(len(a) - e, len(a))])
    else:
        parts = [_lines(a[i], indent + 1, summarize, fmt) for i in range(len(a))]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _with_suffixes(text: str, suffixes: list, indent: int) -> str:
    """`, dtype=...` etc. after the values, on a new line when the last line would pass `linewidth`."""
    out = [text]
    last = len(text) - text.rfind("\n") + 1
    for s in suffixes:
        if last + len(s) + 2 > OPTS.linewidth:
            out.append(",\n" + " " * indent + s)
            last = indent + len(s)
        else:
            out.append(", " + s)
            last += len(s) + 2
    return "".join(out) + ")"


def tensor_repr(a: np.ndarray, grad_fn: str | None = None, requires_grad: bool = False,
                prefix: str = "tensor(") -> str:
    """torch's repr of a CPU tensor holding `a`: values, then dtype unless it is the default float dtype,
    int64 or bool (an empty tensor shows any non-default dtype, and its size unless it is 1-D), then
    `grad_fn=<name>` or `requires_grad=True`."""
    indent, suffixes, default = len(prefix), [], dtypes.get_default_dtype()
    if a.size == 0:
        if a.ndim != 1:
            suffixes.append(f"size={tuple(a.shape)}")
        if a.dtype != default:
            suffixes.append(f"dtype={a.dtype}")
        body = "[]"
    else:
        if not OPTS.edgeitems:
            suffixes.append(f"size={tuple(a.shape)}")
        if a.dtype not in (default, dtypes.int64, dtypes.bool_):
            suffixes.append(f"dtype={a.dtype}")
        summarize = a.size > OPTS.threshold
        body = _lines(a, indent, summarize, _Formatter(_summary(a) if summarize else a))
    if grad_fn is not None:
        suffixes.append(f"grad_fn=<{grad_fn}>")
    elif requires_grad:
        suffixes.append("requires_grad=True")
    return _with_suffixes(prefix + body, suffixes, indent)
