"""`tinygrad-seq vanishing` (RNN vs LSTM vs GRU gradient pictures) and `tinygrad-seq graph` (draw any
model from the registry in drawables.py). The measuring and drawing live in viz; the data (the adding
problem) comes from data.py."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .drawables import DRAWABLE, build_graph_model


def register(subparsers) -> None:
    p = subparsers.add_parser("vanishing", help="pictures of gradients vanishing through time: RNN vs LSTM vs GRU",
                              description=run_vanishing.__doc__)
    p.add_argument("--steps", type=int, default=100, help="sequence length T (default 100)")
    p.add_argument("--hidden", type=int, default=32, help="hidden size (default 32)")
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated subset of rnn,lstm,gru")
    p.add_argument("--train", type=int, default=0, metavar="N",
                   help="train N Adam steps on the adding problem first and show before/after")
    p.add_argument("--batch", type=int, default=8, help="sequences in the measured batch (default 8)")
    p.add_argument("--forget-bias", type=float, default=1.0, help="LSTM forget-gate bias at init (default 1)")
    p.add_argument("--keep-steps", type=int, default=2, help="time steps kept at each end of a folded run (default 2)")
    p.add_argument("--out", default="out/vanishing", help="output directory (default out/vanishing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="short sequences and small sweeps (for tests)")
    p.set_defaults(func=run_vanishing)

    g = subparsers.add_parser("graph", help="draw the computation graph of a small model, coloured by gradient")
    g.add_argument("--model", choices=list(DRAWABLE), default="lstm")
    g.add_argument("--steps", type=int, default=20, help="sequence length (default 20)")
    g.add_argument("--hidden", type=int, default=16, help="hidden / model size (default 16)")
    g.add_argument("--keep-steps", type=int, default=3)
    g.add_argument("--no-fold", action="store_true", help="draw every time step")
    g.add_argument("--format", default="svg,png", help="comma-separated: svg, png, pdf")
    g.add_argument("--out", default="out/graph", help="output directory (default out/graph)")
    g.add_argument("--batched-heads", action="store_true",
                   help="attention/transformer: draw all heads as one batched computation instead of one "
                        "cluster per head")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=run_graph)


def _cells(spec: str) -> list[str]:
    from tinygrad_seq.viz.experiments import CELL_NAMES
    cells = [c.strip().lower() for c in spec.split(",") if c.strip()]
    bad = [c for c in cells if c not in CELL_NAMES]
    if not cells or bad:
        raise SystemExit(f"--cells: expected a comma-separated subset of {','.join(CELL_NAMES)}, got {spec!r}")
    return cells


def _theory(m) -> str:
    from tinygrad_seq.viz.style import fmt
    if m.bound is not None:
        v = f", {len(m.violations)} steps break it" if m.violations else ""
        return f"σ_max(W_hh)·γ = {m.bound:.3g}{v}"
    if m.mean_gate is not None:
        g = "f̄" if m.cell == "lstm" else "z̄"
        return f"{g} = {m.mean_gate:.3g}, half-life {fmt(m.half_life)} steps"
    return ""


def run_vanishing(args: argparse.Namespace) -> int:
    """Measure ||dL/dh_t|| through T steps of a tanh RNN, an LSTM and a GRU (loss on the last step of
    the adding problem), print a table with the measured per-step decay and the theory, and write
    rnn.svg, lstm.svg, gru.svg (+ .png), gradient_flow.png, the sweep plots and index.html to --out."""
    import tinygrad_seq as tg
    from tinygrad_seq.viz import experiments as E
    from tinygrad_seq.viz.graph import INSTALL_HINT, draw_graph, render
    from tinygrad_seq.viz.plots import plot_gradient_flow
    from tinygrad_seq.viz.report import write_index
    from tinygrad_seq.viz.style import fmt

    from .data import adding_problem

    t_start = time.time()
    cells = _cells(args.cells)
    T, H = (min(args.steps, 30), min(args.hidden, 16)) if args.quick else (args.steps, args.hidden)
    if T < 2 or H < 1 or args.batch < 1 or args.train < 0 or args.keep_steps < 0:
        raise SystemExit("vanishing: need --steps >= 2, --hidden >= 1, --batch >= 1, --train >= 0, --keep-steps >= 0")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = adding_problem(args.batch, T, np.random.default_rng(args.seed), dtype=np.float64)
    back = [k for k in (0, 10, 25, 50, T - 1) if k < T]
    header = ["cell"] + [f"t={T - 1 - k}" for k in back] + ["per step (measured)", "theory"]
    table, curves, styles, graphs = [], {}, {}, []
    for cell in cells:
        tg.manual_seed(args.seed)
        kw = {"forget_bias": args.forget_bias} if cell == "lstm" else {}
        model = E.Probe(cell, H, **kw)
        name = cell.upper() + (f" (forget bias {args.forget_bias:g})" if cell == "lstm" and args.forget_bias else "")
        runs = [("", model)]
        if args.train:
            before = E.measure(model, x, y)
            table.append(_row(f"{name}, before training", before, back, fmt))
            curves[f"{cell.upper()} before training"] = before.h
            styles[f"{cell.upper()} before training"] = {"ls": ":", "lw": 1.5}
            train_rng = np.random.default_rng(args.seed + 1)
            batches = (adding_problem(32, T, train_rng, dtype=np.float64) for _ in range(args.train))
            losses = E.train(model, batches)
            print(f"{cell}: trained {args.train} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
            runs = [(f", after {args.train} steps", model)]
        for suffix, m in runs:
            meas = E.measure(m, x, y)
            table.append(_row(name + suffix, meas, back, fmt))
            curves[cell.upper() + suffix] = meas.h
        loss, _ = E.probe_loss(model, x, y)
        g = draw_graph(loss, model=model, keep_steps=args.keep_steps,
                       title=f"{name}: T={T}, loss on the last step{', after training' if args.train else ''}")
        # quiet: without `dot` each picture falls back to DOT source; one line at the end says so
        svg = render(g, out / f"{cell}.svg", quiet=True)
        render(g, out / f"{cell}.png", quiet=True)
        graphs.append((name, svg.name))

    plot_gradient_flow(curves, styles=styles, path=out / "gradient_flow.png",
                       title=f"‖∂L/∂h_t‖, adding problem, loss on the last step (T={T}, H={H})")
    sweep_T = T
    fb = E.sweep_forget_bias(x, y, hidden=H, seed=args.seed)
    plot_gradient_flow(fb, path=out / "sweep_forget_bias.png", title=f"LSTM: forget-gate bias b_f (T={sweep_T})")
    sc, sb = E.sweep_sigma(x, y, hidden=H, seed=args.seed)
    plot_gradient_flow(sc, bounds=sb, path=out / "sweep_sigma.png",
                       title=f"tanh RNN: W_hh = σ·orthogonal (T={sweep_T}); dashed = Pascanu bound")
    cmd = (f"tinygrad-seq vanishing --steps {T} --hidden {H} --cells {','.join(cells)} --train {args.train} "
           f"--batch {args.batch} --forget-bias {args.forget_bias:g} --seed {args.seed}")
    index = write_index(out, graphs, [("gradient flow", "gradient_flow.png"),
                                      ("forget-bias sweep", "sweep_forget_bias.png"),
                                      ("σ_max sweep", "sweep_sigma.png")], table, header, cmd)
    _print_table(header, table)
    no_dot = any(f.endswith(".dot") for _, f in graphs)
    print(f"wrote {', '.join(f for _, f in graphs)}{'' if no_dot else ' (+ .png)'}, gradient_flow.png, "
          f"sweep_forget_bias.png, sweep_sigma.png and {index} in {time.time() - t_start:.1f} s")
    if no_dot:
        print(f"no pictures from Graphviz `dot`: the graphs were written as DOT source; {INSTALL_HINT}")
    return 0


def _row(name: str, m, back: list[int], fmt) -> list[str]:
    T = len(m.h)
    return [name] + [fmt(float(m.h[T - 1 - k])) for k in back] + [f"×{fmt(m.mean_ratio)}", _theory(m)]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    w = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for r in [header, ["-" * x for x in w]] + rows:
        print("  ".join(c.ljust(w[i]) if i == 0 or i == len(w) - 1 else c.rjust(w[i]) for i, c in enumerate(r)))


def run_graph(args: argparse.Namespace) -> int:
    from tinygrad_seq.viz.graph import INSTALL_HINT, draw_graph, render

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("svg", "png", "pdf")]
    if not formats or bad:
        raise SystemExit(f"--format: expected svg, png and/or pdf, got {args.format!r}")
    if args.steps < 1 or args.hidden < 1:
        raise SystemExit("graph: --steps and --hidden must be >= 1")
    loss, model, title = build_graph_model(args.model, args.steps, args.hidden, args.seed,
                                           split_heads=not args.batched_heads)
    g = draw_graph(loss, model=model, fold=not args.no_fold, keep_steps=args.keep_steps, title=title)
    out = Path(args.out)
    written = list(dict.fromkeys(render(g, out / f"{args.model}.{f}", quiet=True) for f in formats))
    print(f"{title}: {g.stats['nodes']} nodes; wrote {', '.join(str(w) for w in written)}")
    if any(w.suffix == ".dot" for w in written):
        print(f"no pictures from Graphviz `dot`: wrote the DOT source instead; {INSTALL_HINT}")
    return 0
