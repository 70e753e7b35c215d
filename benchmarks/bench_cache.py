"""Warm vs cold caches: the small compiled LSTM/GRU training step against the NumPy floor, timed three ways
in one run: back to back ("alone"), alternating with each other ("interleaved"), and each call after a
32 MB array sweep that evicts the caches ("after sweep").

    python benchmarks/bench_cache.py [--calls 60] [--rounds 3]

1 BLAS thread (set before NumPy loads), float32, process CPU time, medians of --calls per round. The
floor is a short loop over freshly allocated arrays; a compiled replay is straight-line code over
preallocated arrays, so it depends more on what the caches still hold.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinygrad_seq as tg  # noqa: E402
from tinygrad_seq import models  # noqa: E402

from bench_recurrent import compiled_step, gru_train_step, lstm_floor  # noqa: E402


def _t(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    B, T, D, H = 8, 32, 16, 32
    sweep = np.random.default_rng(0).random(4_000_000)  # 32 MB
    print(f"B={B} T={T} D={D} H={H}, float32, 1 thread, median ms of {args.calls} calls (cmp = compiled)")
    for kind, cls, floor in (("LSTM", models.LSTM, lstm_floor), ("GRU", models.GRU, gru_train_step)):
        tg.manual_seed(0)
        m = cls(D, H)
        x = tg.randn(T, B, D)
        xs, w = x.numpy(), [p.numpy().copy() for p in m.parameters()]
        cmp_, flo = compiled_step(m), (lambda: floor(xs, *w))
        cmp_(x)
        for r in range(args.rounds):
            a = [_t(lambda: cmp_(x)) for _ in range(args.calls)]
            b = [_t(flo) for _ in range(args.calls)]
            c, d, e, f = [], [], [], []
            for _ in range(args.calls):
                c.append(_t(lambda: cmp_(x)))
                d.append(_t(flo))
            for _ in range(args.calls):
                sweep.sum()
                e.append(_t(lambda: cmp_(x)))
                sweep.sum()
                f.append(_t(flo))
            md = [1e3 * float(np.median(v)) for v in (a, b, c, d, e, f)]
            print(f"{kind} round {r}: alone cmp {md[0]:.2f} floor {md[1]:.2f} ({md[0] / md[1]:.2f}x) | "
                  f"interleaved cmp {md[2]:.2f} floor {md[3]:.2f} ({md[2] / md[3]:.2f}x) | "
                  f"after sweep cmp {md[4]:.2f} floor {md[5]:.2f} ({md[4] / md[5]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
