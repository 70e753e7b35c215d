"""Gradient-flow plots: ||dL/dh_t|| against t on a log axis (matplotlib, imported lazily; Agg canvas,
so no pyplot state and no display is needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

_PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
# one colour per cell in every plot (before/after training: same colour, solid vs dashed)
CELL_COLOURS = {"rnn": _PALETTE[0], "lstm": _PALETTE[1], "gru": _PALETTE[2]}


def _figure(figsize=(7.5, 4.2)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_gradient_flow(curves: Mapping[str, Sequence[float]], *, path: str | Path | None = None,
                       title: str = "‖∂L/∂h_t‖ for a loss on the last step", bounds: Mapping[str, float] | None = None,
                       styles: Mapping[str, dict] | None = None, ax=None):
    """One line per model: ||dL/dh_t|| (y, log scale) against t (x), several models on one figure.

    `curves`: label -> per-step norms (index = t). `bounds`: label -> per-step factor r; draws the
    dashed prediction ||dL/dh_(T-1)|| · r^(T-1-t) (e.g. the Pascanu bound σ_max(W_hh)·γ).
    `styles`: label -> extra matplotlib line kwargs. Returns the Figure (saved to `path` if given).
    """
    if not curves:
        raise ValueError("plot_gradient_flow: curves is empty")
    fig = ax.figure if ax is not None else _figure()
    ax = ax if ax is not None else fig.add_subplot(1, 1, 1)
    tiny = np.finfo(np.float64).tiny
    pos = [v for ys in curves.values() for v in np.ravel(np.asarray(ys, dtype=np.float64)) if v > 0]
    for i, (label, ys) in enumerate(curves.items()):
        ys = np.asarray(ys, dtype=np.float64)
        if ys.ndim != 1:
            raise ValueError(f"plot_gradient_flow: curve {label!r} must be 1-D (norm per step), got shape {ys.shape}")
        col = _PALETTE[i % len(_PALETTE)]
        kw = {"color": col, "lw": 2}
        kw.update((styles or {}).get(label, {}))
        t = np.arange(len(ys))
        ax.plot(t, np.maximum(ys, tiny), label=label, **kw)
        if bounds and label in bounds and ys[-1] > 0:
            r = bounds[label]
            with np.errstate(over="ignore", under="ignore"):
                pred = ys[-1] * np.power(float(r), (len(ys) - 1 - t).astype(np.float64))
            ax.plot(t, np.clip(pred, tiny, 1e300), ls="--", lw=1, color=kw["color"], alpha=0.8)
    ax.set_yscale("log")
    if pos:  # dashed predictions may run off by decades: keep the measured curves in view
        ax.set_ylim(min(pos) / 30, max(pos) * 30)
    ax.set_xlabel("time step t  (loss at t = T-1)")
    ax.set_ylabel("‖∂L/∂h_t‖")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best", frameon=False)
    if bounds:
        ax.text(0.01, 0.01, "dashed: bound ‖∂L/∂h_(T-1)‖·(σ_max·γ)^(T-1-t)", transform=ax.transAxes,
                fontsize=7, color="#555555", va="bottom")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    return fig
