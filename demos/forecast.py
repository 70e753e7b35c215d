"""`tinygrad-seq forecast`: monthly series forecasting (the notes: "sales over a period of time").

A real monthly series bundled with statsmodels (no download), chosen with `--series`:
- elec_equip: euro-area turnover index of electrical-equipment manufacturing, 1995-01..2016-05 (257
  months, not seasonally adjusted: trend + yearly season + the 2009 crash);
- co2: Mauna Loa CO2 (ppm), the weekly series averaged per month, 1958-03..2001-12 (526 months);
- elnino: monthly sea-surface temperature of the El Niño region, 1950..2010 (732 months);
or `--csv PATH` (one value per row; the last numeric column is used, rows in time order).

The last `--test` months are held out. From every origin o in the held-out tail the next `--horizon` H
months are forecast from y[:o] only, and MAE, RMSE and MAPE are averaged over all origins and steps.
- LSTM / GRU forecasters: a window of the last `--window` values, as changes from the window's last
  value and from 12 months earlier, divided by a scale fitted on the training part only (std of its
  monthly changes), plus the month as (sin, cos); the last hidden state -> Linear -> H corrections to
  the seasonal naive forecast (direct multi-step). Trained once, on windows that lie entirely in the
  training part.
- seasonal naive: ŷ_{o+h} = y_{o+h-12k}, the same month of the last observed year.
- naive: ŷ_{o+h} = y_{o-1}, the last observed value.
- Holt-Winters exponential smoothing (statsmodels ExponentialSmoothing, additive trend and season),
  its parameters fitted on the training part, then run over y[:o] from every origin.
The demo says which wins; the classical baseline often does on series this short.
"""
from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq import optim
from tinygrad_seq.nn import functional as F
from tinygrad_seq.nn.utils import clip_grad_norm_

from .common import (add_common_args, csv_choices, existing_path, minibatches, positive_float, positive_int,
                     print_table, progress, require, resolve_args, RunDir, seed_everything, UsageError)

SERIES = ("elec_equip", "co2", "elnino")
CELLS = ("lstm", "gru")
SEASON = 12


# ------------------------------------------------------------------------------------------ data
def load_series(name: str | None = None, csv: Path | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(values float64, month of year 0..11, description) of a bundled series or a CSV file."""
    if csv is not None:
        return _load_csv(Path(csv))
    if name not in SERIES:
        raise UsageError(f"--series must be one of {SERIES}, got {name!r}")
    try:
        from statsmodels import datasets
    except ImportError:
        raise ImportError("tinygrad-seq forecast needs statsmodels (pip install statsmodels, or the 'demos' "
                          "extra) for its bundled series and the exponential-smoothing baseline") from None
    if name == "elec_equip":
        from statsmodels.datasets import elec_equip
        s = elec_equip.load().data.iloc[:, 0]
        desc = "euro-area electrical-equipment turnover index (statsmodels elec_equip), monthly"
    elif name == "co2":
        s = datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
        desc = "Mauna Loa CO2 ppm (statsmodels co2, weekly averaged per month)"
    else:
        df = datasets.elnino.load_pandas().data
        vals = df.drop(columns="YEAR").to_numpy().reshape(-1)
        return vals.astype(np.float64), np.arange(len(vals)) % SEASON, "El Niño region SST (statsmodels elnino), monthly"
    months = np.asarray(s.index.month) - 1
    return s.to_numpy(np.float64), months, desc


def _load_csv(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    if not path.is_file():
        raise UsageError(f"--csv {path}: {'is a directory' if path.is_dir() else 'no such file'}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--csv {path}: cannot read it as text ({e})") from None
    rows = []
    for line in text.splitlines():
        nums = []
        for cell in line.replace(";", ",").split(","):
            try:
                nums.append(float(cell))
            except ValueError:
                pass
        nums = [v for v in nums if math.isfinite(v)]  # "nan"/"inf" cells are missing values, not numbers
        if nums:
            rows.append(nums[-1])
    if len(rows) < 4 * SEASON:
        raise UsageError(f"--csv {path}: need at least {4 * SEASON} numeric rows, found {len(rows)}")
    vals = np.array(rows, np.float64)
    return vals, np.arange(len(vals)) % SEASON, f"{path.name} ({len(vals)} rows, month of year taken as row % 12)"


def make_windows(y: np.ndarray, months: np.ndarray, ends: np.ndarray, window: int, horizon: int, scale: float):
    """Inputs (B, window, 4): [(y_t - y_last)/scale, (y_t - y_{t-12})/scale, sin, cos of the month];
    targets (B, H): (future - seasonal naive forecast)/scale (zeros where the future is past the data),
    so the network learns a correction to "same month last year". `ends` are the forecast origins o:
    the window is y[o-window:o] (and needs o - window >= 12). Also returns the seasonal naive forecast."""
    idx = ends[:, None] + np.arange(-window, 0)[None, :]
    last = y[ends - 1][:, None]
    ang = 2 * np.pi * months[idx] / SEASON
    x = np.stack([(y[idx] - last) / scale, (y[idx] - y[idx - SEASON]) / scale, np.sin(ang), np.cos(ang)], -1)
    fut = ends[:, None] + np.arange(horizon)[None, :]
    base = seasonal_naive(y, ends, horizon)
    tgt = (y[np.minimum(fut, len(y) - 1)] - base) / scale
    return x.astype(np.float32), tgt.astype(np.float32), base


# ------------------------------------------------------------------------------------------ models
class Forecaster(tg.nn.Module):
    """ŷ_{o+h} = y_{o+h-12} + scale · (W h_T + b)_h, h_T the last state of an LSTM/GRU over the window"""

    def __init__(self, cell: str, hidden: int, horizon: int):
        super().__init__()
        from tinygrad_seq import models

        self.rnn = (models.LSTM if cell == "lstm" else models.GRU)(4, hidden, batch_first=True)
        self.head = tg.nn.Linear(hidden, horizon)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def seasonal_naive(y: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    h = np.arange(horizon)
    back = SEASON * (h // SEASON + 1)
    return y[origins[:, None] + h[None, :] - back[None, :]]


def naive_last(y: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    return np.repeat(y[origins - 1][:, None], horizon, axis=1)


def holt_winters(y: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Additive Holt-Winters fitted (smoothing and initial states) on y[:origins[0]], the training part;
    from each later origin the same model is run over y[:o] with those parameters fixed."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    kw = dict(trend="add", seasonal="add", seasonal_periods=SEASON)
    with warnings.catch_warnings():  # convergence chatter of the optimiser on short series
        warnings.simplefilter("ignore")
        p = ExponentialSmoothing(y[:origins[0]], initialization_method="estimated", **kw).fit().params
        out = []
        for o in origins:
            m = ExponentialSmoothing(y[:o], initialization_method="known", initial_level=p["initial_level"],
                                     initial_trend=p["initial_trend"], initial_seasonal=p["initial_seasons"], **kw)
            fit = m.fit(smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
                        smoothing_seasonal=p["smoothing_seasonal"], optimized=False)
            out.append(np.asarray(fit.forecast(horizon)))
    return np.array(out)


def scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE and MAPE; MAPE is None (n/a in the table, null in results.json) where a true value is 0,
    since |err / truth| is undefined there."""
    err = pred - truth
    return {"MAE": float(np.abs(err).mean()), "RMSE": float(np.sqrt((err ** 2).mean())),
            "MAPE %": float(100 * np.abs(err / truth).mean()) if np.all(truth != 0) else None}


# ------------------------------------------------------------------------------------------ run
DEFAULTS = dict(out="runs/forecast", epochs=150, lr=3e-3, hidden=32, batch_size=16, clip=1.0, window=36,
                horizon=12, test=36, series="elec_equip")
QUICK = dict(epochs=40, hidden=16)


def train_cell(cell: str, args, y, months, n_train, scale, origins) -> tuple[dict, np.ndarray]:
    data_rng = seed_everything(args.seed)
    ends = np.arange(args.window + SEASON, n_train - args.horizon + 1)  # every window and target inside the training part
    x_tr, t_tr, _ = make_windows(y, months, ends, args.window, args.horizon, scale)
    model = Forecaster(cell, args.hidden, args.horizon)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    run = RunDir(args.out / cell)
    step, _ = run.begin(model, opt, {"data": data_rng}, resume=args.resume)
    per_epoch = math.ceil(len(ends) / args.batch_size)
    x_te, _, base = make_windows(y, months, origins, args.window, args.horizon, scale)
    truth = y[origins[:, None] + np.arange(args.horizon)[None, :]]

    def predict() -> np.ndarray:
        model.eval()
        with tg.no_grad():
            z = model(tg.Tensor(x_te)).numpy().astype(np.float64)
        model.train()
        return base + scale * z

    t0 = time.perf_counter()
    with progress(args.epochs * per_epoch, desc=f"forecast {cell}", initial=step) as bar:
        for epoch in range(step // per_epoch, args.epochs):
            losses = []
            for idx in minibatches(len(ends), args.batch_size, data_rng):
                loss = F.mse_loss(model(tg.Tensor(x_tr[idx])), tg.Tensor(t_tr[idx]))
                opt.zero_grad()
                loss.backward()
                clip_grad_norm_(model.parameters(), args.clip)
                opt.step()
                losses.append(loss.item())
                step += 1
                bar.update(1)
            if (epoch + 1) % max(1, args.epochs // 15) == 0 or epoch + 1 == args.epochs:
                run.log(step, "train", loss=float(np.mean(losses)), epoch=epoch + 1)
                run.log(step, "test", loss=scores(predict(), truth)["MAE"], epoch=epoch + 1)
                bar.set_postfix(loss=float(np.mean(losses)))
                run.save_checkpoint(step, model, opt, {"data": data_rng})
    run.plot(title=f"forecast {cell.upper()}: train MSE (scaled) and held-out MAE")
    pred = predict()
    return {"model": cell.upper(), **scores(pred, truth), "seconds": round(time.perf_counter() - t0, 1)}, pred


def plot_forecasts(path: Path, y: np.ndarray, n_train: int, origins: np.ndarray, preds: dict[str, np.ndarray],
                   horizon: int, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=100)
    ax = fig.subplots()
    lo = max(0, n_train - 4 * SEASON)
    ax.plot(np.arange(lo, len(y)), y[lo:], color="black", linewidth=1.5, label="truth")
    ax.axvline(n_train, color="gray", linestyle=":", linewidth=1)
    o = origins[0]  # the first origin's whole horizon, and the 1-step-ahead forecast from every origin
    for (name, p), c in zip(preds.items(), ("tab:blue", "tab:orange", "tab:gray", "tab:green", "tab:red", "tab:purple")):
        ax.plot(np.arange(o, o + horizon), p[0], color=c, linestyle="--", label=f"{name} (from month {o})")
        ax.plot(origins, p[:, 0], color=c, linewidth=0.8, alpha=0.6)  # thin: 1 step ahead from every origin
    ax.set_title(title)
    ax.set_xlabel("month index (dotted: end of training part)")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")


def run_forecast(args: argparse.Namespace) -> int:
    args = resolve_args(args)
    require("statsmodels", "matplotlib")
    if args.csv is not None and "series" in args._explicit:
        raise UsageError(f"give --series or --csv, not both (got --series {args.series} --csv {args.csv})")
    y, months, desc = load_series(args.series, args.csv)
    n_train = len(y) - args.test
    if args.test < args.horizon:
        raise UsageError(f"--test ({args.test}) must be at least --horizon ({args.horizon})")
    if n_train < args.window + args.horizon + 3 * SEASON:
        raise UsageError(f"series of {len(y)} values is too short for --test {args.test}, --window "
                         f"{args.window}, --horizon {args.horizon}")
    origins = np.arange(n_train, len(y) - args.horizon + 1)
    scale = float(np.diff(y[:n_train]).std())  # fitted on the training part only
    if not scale > 0:
        raise UsageError(f"{desc}: the training part is constant, there is nothing to forecast")
    truth = y[origins[:, None] + np.arange(args.horizon)[None, :]]
    rows, preds = [], {}
    for cell in args.cells:
        row, preds[cell.upper()] = train_cell(cell, args, y, months, n_train, scale, origins)
        rows.append(row)
    for name, fn in (("naive (last value)", naive_last), ("seasonal naive", seasonal_naive),
                     ("Holt-Winters", holt_winters)):
        t0 = time.perf_counter()
        preds[name] = fn(y, origins, args.horizon)
        rows.append({"model": name, **scores(preds[name], truth), "seconds": round(time.perf_counter() - t0, 1)})
    best = min(rows, key=lambda r: r["MAE"])
    nets = [r for r in rows if r["model"] in ("LSTM", "GRU")]
    classical = [r for r in rows if r["model"] == "Holt-Winters"][0]
    plot_forecasts(args.out / "forecast.png", y, n_train, origins, preds, args.horizon,
                   f"{args.csv.name if args.csv else args.series}: {args.horizon}-month forecasts on the held-out tail")
    print_table(rows, title=f"{desc}: {len(y)} months, last {args.test} held out, horizon {args.horizon}, "
                            f"{len(origins)} origins")
    if any(r["MAPE %"] is None for r in rows):
        print(f"MAPE n/a: {int((truth == 0).sum())} held-out true values are 0, where the percentage error is undefined")
    verdict = f"best by MAE: {best['model']}"
    if nets and classical["MAE"] <= min(r["MAE"] for r in nets):
        verdict += " -- the classical Holt-Winters baseline beats the recurrent forecasters here"
    print(verdict)
    (args.out / "results.json").write_text(json.dumps({"series": desc, "rows": rows, "verdict": verdict}, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("forecast", help="monthly series: LSTM/GRU vs seasonal naive vs Holt-Winters",
                              description=__doc__.split("\n\n")[0])
    add_common_args(p, {**DEFAULTS, "csv": None}, QUICK)
    p.add_argument("--series", choices=SERIES, default=None, help="bundled series (default elec_equip)")
    p.add_argument("--csv", type=existing_path, default=None, help="your own series: one value per row, last numeric column (default: none, the --series one)")
    p.add_argument("--cells", type=csv_choices(CELLS), default=list(CELLS), metavar="CELLS",
                   help=f"comma-separated recurrent forecasters, from {','.join(CELLS)} (default {','.join(CELLS)})")
    for flag, text in (("window", "input months"), ("horizon", "months forecast from each origin"),
                       ("test", "held-out months at the end")):
        p.add_argument("--" + flag, type=positive_int, default=None, help=f"{text} (default {DEFAULTS[flag]})")
    p.add_argument("--clip", type=positive_float, default=None, help="gradient-norm clipping (default 1.0)")
    p.set_defaults(func=run_forecast)
