"""`tinygrad-seq explore`: precompute a grid of vanishing-gradient measurements on the adding problem
and write the self-contained interactive page explore.html (viz/explore.py) next to the main demo's
index.html, which links to it."""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from .common import make_dir, nonnegative_int, output_dir, progress, require


def _int_list(least: int):
    """`type=` for a comma-separated list of integers >= `least` ("10,25,50"); returns them sorted."""
    def check(text: str) -> tuple[int, ...]:
        try:
            vals = sorted({int(v) for v in text.split(",")})  # an empty item ("1,,2") is a typo: refused
        except ValueError:
            vals = []
        if not vals or vals[0] < least:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers >= {least}, got {text!r}")
        return tuple(vals)
    check.__name__ = "comma-separated integers"
    return check


def register(subparsers) -> None:
    from tinygrad_seq.viz.explore import Grid
    d = Grid()
    p = subparsers.add_parser("explore", help="write explore.html: sliders over precomputed gradient-through-time curves",
                              description=run_explore.__doc__)
    p.add_argument("--out", type=output_dir, default=Path("out/vanishing"),
                   help="output directory (the main demo's, so its index.html links here)")
    p.add_argument("--seq-lens", type=_int_list(2), default=None, metavar="T,T",
                   help=f"sequence lengths T on the slider (default {','.join(map(str, d.seq_lens))})")
    p.add_argument("--hiddens", type=_int_list(1), default=None, metavar="H,H",
                   help=f"hidden sizes on the slider (default {','.join(map(str, d.hiddens))})")
    p.add_argument("--train-steps", type=_int_list(0), default=None, metavar="N,N",
                   help=f"Adam steps trained before measuring (default {','.join(map(str, d.train_steps))})")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (init and data)")
    p.add_argument("--quick", action="store_true", help="a tiny grid (seconds, for tests)")
    p.set_defaults(func=run_explore)


def run_explore(args: argparse.Namespace) -> int:
    """Measure ||dL/dh_t|| of a tanh RNN, an LSTM and a GRU probe on the adding problem (loss on the last
    step) for every setting of a grid -- sequence length, hidden size, the RNN's sigma_max(W_hh), the
    LSTM's forget-gate bias, Adam steps trained -- draw the unrolled graph for a subset, and write
    explore.html to --out: one file with the results embedded, no server or network needed."""
    require("graphviz")
    from tinygrad_seq.viz.explore import QUICK, Grid, precompute, write_explorer

    from .data import adding_problem

    t0 = time.time()
    grid = QUICK if args.quick else Grid()
    given = {k: v for k, v in (("seq_lens", args.seq_lens), ("hiddens", args.hiddens),
                               ("train_steps", args.train_steps)) if v is not None}
    grid = dataclasses.replace(grid, seed=args.seed, **given)
    if grid.graph_H not in grid.hiddens:
        grid = dataclasses.replace(grid, graph_H=min(grid.hiddens, key=lambda h: abs(h - grid.graph_H)))
    def data(n, T, rng):
        return adding_problem(n, T, rng, dtype=np.float64)

    with progress(grid.size(), desc="explore: models") as bar:
        result = precompute(grid, data, tick=lambda: bar.update(1))
    cmd = (f"tinygrad-seq explore --seq-lens {','.join(map(str, grid.seq_lens))} --hiddens "
           f"{','.join(map(str, grid.hiddens))} --train-steps {','.join(map(str, grid.train_steps))} --seed {grid.seed}")
    path = write_explorer(make_dir(args.out), result, cmd)
    n = len(result["runs"])
    print(f"measured {n} settings ({grid.size()} models), {len(result['graphs'])} graphs; "
          f"wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.1f} s")
    if result["graphs_missing"]:
        print(f"{result['graphs_missing']}; install Graphviz (sudo apt-get install graphviz) for them")
    print(f"outputs in {args.out}/: open {path}")
    return 0


__all__ = ["register", "run_explore"]
