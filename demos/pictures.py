"""`tinygrad-seq vanishing` (RNN vs LSTM vs GRU gradient pictures) and `tinygrad-seq graph` (draw any
model from the registry in drawables.py). The measuring and drawing live in viz; the data (the adding
problem) comes from data.py."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .common import (DEMO_BLAS_THREADS, UsageError, cap_blas_threads, csv_choices, deprecated, finite_float,
                     int_at_least, make_dir, nonnegative_int, output_dir, positive_int, progress, read_results,
                     require, write_results)
from .drawables import DEFAULT_DEPTH, DRAWABLE, build_graph_model

CELL_NAMES = ("rnn", "lstm", "gru")
FORMATS = ("svg", "png", "pdf")
# what the rows of a vanishing run's results.json must share to be shown together
_RUN_KEYS = ("T", "H", "seed", "batch_size", "forget_bias", "train")


def register(subparsers) -> None:
    p = subparsers.add_parser("vanishing", help="pictures of gradients vanishing through time: RNN vs LSTM vs GRU",
                              description=run_vanishing.__doc__)
    p.add_argument("--seq-len", type=int_at_least(2), default=100, metavar="T", help="sequence length T")
    deprecated(p, "--steps", "--seq-len", "seq_len", type=int_at_least(2), metavar="T")
    p.add_argument("--hidden", type=positive_int, default=32, help="hidden size")
    p.add_argument("--cells", type=csv_choices(CELL_NAMES), default=list(CELL_NAMES), metavar="CELLS",
                   help=f"comma-separated cells to draw, from {','.join(CELL_NAMES)} (default "
                        f"{','.join(CELL_NAMES)}); a re-run of some cells merges into results.json")
    p.add_argument("--train", type=nonnegative_int, default=0, metavar="N",
                   help="train N Adam iterations on the adding problem first and show before/after")
    p.add_argument("--batch-size", type=positive_int, default=8, help="sequences in the measured batch")
    deprecated(p, "--batch", "--batch-size", "batch_size", type=positive_int, metavar="N")
    p.add_argument("--forget-bias", type=finite_float, default=1.0, help="LSTM forget-gate bias at init")
    p.add_argument("--keep-steps", type=nonnegative_int, default=2,
                   help="time steps kept at each end of a folded run")
    p.add_argument("--out", type=output_dir, default=Path("out/vanishing"), help="output directory")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed")
    p.add_argument("--quick", action="store_true", help="short sequences and small sweeps (for tests)")
    p.set_defaults(func=run_vanishing)

    g = subparsers.add_parser("graph", help="draw the computation graph of a small model, coloured by gradient",
                              description=run_graph.__doc__)
    g.add_argument("--model", choices=list(DRAWABLE), default="lstm", help="which example model to draw")
    g.add_argument("--seq-len", type=positive_int, default=20, metavar="T", help="sequence length")
    deprecated(g, "--steps", "--seq-len", "seq_len", type=positive_int, metavar="T")
    g.add_argument("--hidden", type=positive_int, default=16, help="hidden / model size")
    g.add_argument("--keep-steps", type=nonnegative_int, default=3, help="time steps kept at each end of a folded run")
    g.add_argument("--no-fold", action="store_true", help="draw every time step")
    g.add_argument("--format", type=csv_choices(FORMATS), default=["svg", "png"], metavar="FORMATS",
                   help=f"comma-separated picture formats, from {','.join(FORMATS)} (default svg,png)")
    g.add_argument("--out", type=output_dir, default=Path("out/graph"), help="output directory")
    g.add_argument("--batched-heads", action="store_true",
                   help="attention/transformer: draw all heads as one batched computation instead of one "
                        "cluster per head")
    g.add_argument("--depth", type=_depth, default=None, metavar="N|all",
                   help="draw modules at depth N (encoder = 1, encoder.layers.0 = 2, ...) as one box each with "
                        "the gradient flowing in and out; 'all' draws every op (default: the model's own choice, "
                        "a module-level picture for the transformer, every op for the others)")
    g.add_argument("--expand", type=lambda v: [x for x in v.split(",") if x], default=[], metavar="MODULES",
                   help="comma-separated modules drawn op by op inside a --depth picture, e.g. "
                        "encoder.layers.0.self_attn")
    g.add_argument("--train", type=nonnegative_int, default=0, metavar="N",
                   help="attention/transformer: N Adam steps on the task before drawing (default: at init)")
    g.add_argument("--layers", type=positive_int, default=None, metavar="N",
                   help="transformer: N encoder and N decoder layers (default 2)")
    g.add_argument("--seed", type=nonnegative_int, default=0, help="random seed")
    g.set_defaults(func=run_graph)


def _depth(v: str) -> int | str:
    if v == "all":
        return v
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int or 'all', got {v!r}")
    return n


def _earlier_cells(out: Path, run: dict) -> list[dict]:
    """Rows of an earlier run in `out` with the same settings (another subset of cells); others are dropped."""
    rows = read_results(out / "results.json", "cell")
    same = [r for r in rows if all(r.get(k) == run[k] for k in _RUN_KEYS) and "rows" in r and "graph" in r]
    if len(same) < len(rows):
        print(f"{out / 'results.json'}: earlier cells with other settings are replaced")
    return same


def run_vanishing(args: argparse.Namespace) -> int:
    """Measure ||dL/dh_t|| through T steps of a tanh RNN, an LSTM and a GRU (loss on the last step of
    the adding problem), print a table with the measured per-step decay and the theory, and write
    rnn.svg, lstm.svg, gru.svg (+ .png), gradient_flow.png, the sweep plots, results.json and
    index.html to --out. Without the Graphviz `dot` program the graphs are written as DOT source."""
    require("graphviz", "matplotlib")
    cap_blas_threads(DEMO_BLAS_THREADS)  # small matrices, as in every demo (common.py)
    import tinygrad_seq as tg
    from tinygrad_seq.viz import experiments as E
    from tinygrad_seq.viz.graph import INSTALL_HINT, draw_graph, render
    from tinygrad_seq.viz.plots import CELL_COLOURS, plot_gradient_flow
    from tinygrad_seq.viz.report import write_index
    from tinygrad_seq.viz.style import fmt

    from .data import adding_problem

    t_start = time.time()
    cells = args.cells
    T, H = (min(args.seq_len, 30), min(args.hidden, 16)) if args.quick else (args.seq_len, args.hidden)
    out = Path(args.out)
    run = {"T": T, "H": H, "seed": args.seed, "batch_size": args.batch_size, "forget_bias": args.forget_bias,
           "train": args.train}
    earlier = _earlier_cells(out, run)  # a corrupt results.json stops here, before anything is written
    make_dir(out)
    x, y = adding_problem(args.batch_size, T, np.random.default_rng(args.seed), dtype=np.float64)
    back = [k for k in (0, 10, 25, 50, T - 1) if k < T]
    header = ["cell"] + [f"t={T - 1 - k}" for k in back] + list(TABLE_THEORY_HEADER)
    new = []
    for cell in cells:
        tg.manual_seed(args.seed)
        kw = {"forget_bias": args.forget_bias} if cell == "lstm" else {}
        model = E.Probe(cell, H, **kw)
        name = cell.upper() + (f" (forget bias {args.forget_bias:g})" if cell == "lstm" and args.forget_bias else "")
        res = {"cell": cell, **run, "rows": [], "curves": {}, "styles": {}, "theory": []}
        colour = CELL_COLOURS[cell]
        suffix = ""
        if args.train:
            before = E.measure(model, x, y)
            res["rows"].append(_row(f"{name}, before training", before, back, fmt))
            res["theory"].append({"when": "before training", **before.theory.as_dict()})
            res["curves"][f"{cell.upper()} before training"] = before.h.tolist()
            res["styles"][f"{cell.upper()} before training"] = {"color": colour, "ls": "-", "lw": 1.5}
            train_rng = np.random.default_rng(args.seed + 1)
            with progress(args.train, desc=f"vanishing {cell}: training") as bar:
                losses = E.train(model, _batches(adding_problem, args.train, T, train_rng, bar))
            print(f"{cell}: trained {args.train} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
            suffix = f", after {args.train} steps"
        meas = E.measure(model, x, y)
        res["rows"].append(_row(name + suffix, meas, back, fmt))
        res["theory"].append({"when": f"after {args.train} steps" if args.train else "at init", **meas.theory.as_dict()})
        res["curves"][cell.upper() + suffix] = meas.h.tolist()
        res["styles"][cell.upper() + suffix] = {"color": colour, "ls": "--" if args.train else "-", "lw": 2}
        loss, _ = E.probe_loss(model, x, y)
        g = draw_graph(loss, model=model, keep_steps=args.keep_steps, theory=meas.theory,
                       title=f"{name}: T={T}, loss on the last step{', after training' if args.train else ''}")
        # quiet: without `dot` each picture falls back to DOT source; one line at the end says so
        svg = render(g, out / f"{cell}.svg", quiet=True)
        render(g, out / f"{cell}.png", quiet=True)
        res["graph"] = [name, svg.name]
        new.append(res)
    results = write_results(out / "results.json", earlier, new, "cell", CELL_NAMES)

    table = [row for r in results for row in r["rows"]]
    curves = {k: np.asarray(v) for r in results for k, v in r["curves"].items()}
    styles = {k: v for r in results for k, v in r["styles"].items()}
    graphs = [tuple(r["graph"]) for r in results]
    plot_gradient_flow(curves, styles=styles, path=out / "gradient_flow.png",
                       title=f"‖∂L/∂h_t‖, adding problem, loss on the last step (T={T}, H={H})"
                             + (f"\nsolid: before training, dashed: after {args.train} steps" if args.train else ""))
    fb = E.sweep_forget_bias(x, y, hidden=H, seed=args.seed)
    plot_gradient_flow(fb, path=out / "sweep_forget_bias.png",
                       title=f"LSTM: forget bias b, added to the forget slice of b_ih at init (T={T})")
    sc, sb = E.sweep_sigma(x, y, hidden=H, seed=args.seed)
    plot_gradient_flow(sc, bounds=sb, path=out / "sweep_sigma.png",
                       title=f"tanh RNN: W_hh = σ·orthogonal (T={T}); dashed = Pascanu bound")
    cmd = (f"tinygrad-seq vanishing --seq-len {T} --hidden {H} --cells {','.join(r['cell'] for r in results)} "
           f"--train {args.train} --batch-size {args.batch_size} --forget-bias {args.forget_bias:g} --seed {args.seed}")
    index = write_index(out, graphs, [("gradient flow", "gradient_flow.png"),
                                      ("forget-bias sweep", "sweep_forget_bias.png"),
                                      ("σ_max sweep", "sweep_sigma.png")], table, header, cmd)
    _print_table(header, table)
    no_dot = any(f.endswith(".dot") for _, f in graphs)
    print(f"wrote {', '.join(f for _, f in graphs)}{'' if no_dot else ' (+ .png)'}, gradient_flow.png, "
          f"sweep_forget_bias.png, sweep_sigma.png, results.json and {index.name} in {time.time() - t_start:.1f} s")
    if no_dot:
        print(f"no pictures from Graphviz `dot`: the graphs were written as DOT source; {INSTALL_HINT}")
    print(f"outputs in {out}/: open {index}")
    return 0


def _batches(adding_problem, n: int, T: int, rng: np.random.Generator, bar):
    """`n` training batches of the adding problem (32 sequences), advancing the progress bar per batch."""
    for _ in range(n):
        yield adding_problem(32, T, rng, dtype=np.float64)
        bar.update(1)


TABLE_THEORY_HEADER = ("∂L/∂h ×r per step", "half-life", "mean-field ×r", "half-life", "condition / lane")


def _row(name: str, m, back: list[int], fmt) -> list[str]:
    """One table row: ‖∂L/∂h_t‖ at a few t, then the Theory in its one wording (grads.DEFINITIONS)."""
    from tinygrad_seq.viz.grads import fmt_hl, fmt_rate
    T, th = len(m.h), m.theory
    return [name] + [fmt(float(m.h[T - 1 - k])) for k in back] + [
        fmt_rate(th.rate), fmt_hl(th.half_life), fmt_rate(th.predicted_rate), fmt_hl(th.predicted_half_life),
        th.summary()]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    w = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for r in [header, ["-" * x for x in w]] + rows:
        print("  ".join(c.ljust(w[i]) if i == 0 or i == len(w) - 1 else c.rjust(w[i]) for i, c in enumerate(r)))


def run_graph(args: argparse.Namespace) -> int:
    """Build a small example model (registry: demos/drawables.py) and draw the graph behind its loss,
    coloured by ||dL/dv||, to --out/<model>.<format>: the recurrent cells on the adding problem (loss on the
    last step), attention and the Transformer with a cross-entropy task (reverse / copy a token batch, at
    init or after --train N Adam steps; the title says which). The Transformer is drawn at module level
    (--depth 3: each sublayer one box, the residual path and a per-layer strip of ||dL/dx||); --depth all
    draws every op, --expand opens modules. Without the Graphviz `dot` program the graph is written as
    DOT source."""
    require("graphviz")
    from tinygrad_seq.viz.graph import INSTALL_HINT, draw_graph, render

    try:
        loss, model, title = build_graph_model(args.model, args.seq_len, args.hidden, args.seed,
                                               split_heads=not args.batched_heads, train=args.train,
                                               layers=args.layers)
    except ValueError as e:
        raise UsageError(str(e)) from None
    depth = DEFAULT_DEPTH.get(args.model) if args.depth is None else (None if args.depth == "all" else args.depth)
    t0 = time.perf_counter()
    try:
        g = draw_graph(loss, model=model, fold=not args.no_fold, keep_steps=args.keep_steps, title=title,
                       depth=depth, expand=args.expand)
    except ValueError as e:  # an --expand naming no module
        raise UsageError(str(e)) from None
    out = make_dir(args.out)
    written = list(dict.fromkeys(render(g, out / f"{args.model}.{f}", quiet=True) for f in args.format))
    print(f"{title}: {g.stats['nodes']} nodes (depth={'all' if depth is None else depth}), built and rendered in "
          f"{time.perf_counter() - t0:.2f} s; wrote {', '.join(str(w) for w in written)}")
    if any(w.suffix == ".dot" for w in written):
        print(f"no pictures from Graphviz `dot`: wrote the DOT source instead; {INSTALL_HINT}")
    print(f"outputs in {out}/: {', '.join(w.name for w in written)}")
    return 0


__all__ = ["register", "run_vanishing", "run_graph", "UsageError"]
