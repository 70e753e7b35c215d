"""BLAS threads at demo sizes: one training step with NumPy's BLAS on 1 thread vs all cores, in one run.

    python benchmarks/bench_threads.py [--repeat 15]

What it times (float32, forward + backward, eager and tg.compile): models.LSTM at the recurrent demo's
size (B=64 T=30 D=64 H=64) and models.TransformerEncoderLayer at the seq2seq demo's transformer size
(B=64 L=20 E=64 heads=4 ff=128). The thread count is switched with threadpoolctl between the timed
calls (round-robin, so a busy phase of a shared machine hits both settings alike); wall time (threads
are what is measured), medians. Do NOT set OMP/OPENBLAS_NUM_THREADS for this one: OpenBLAS sizes its
pool from them at load time, and a pool of 1 cannot be widened.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinygrad_seq as tg  # noqa: E402
from tinygrad_seq import models  # noqa: E402


def lstm_case():
    tg.manual_seed(0)
    m = models.LSTM(64, 64)
    x = tg.randn(30, 64, 64)
    return m, x, lambda inp: (m(inp)[0] ** 2).mean()


def transformer_case():
    tg.manual_seed(0)
    m = models.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
    x = tg.randn(64, 20, 64)
    return m, x, lambda inp: (m(inp) ** 2).mean()


def step_fn(m, x, loss_fn, compiled: bool):
    f = tg.compile(loss_fn) if compiled else loss_fn

    def run():
        m.zero_grad()
        loss = f(x)
        loss.backward()
        return loss.item()
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits
    cores = len(os.sched_getaffinity(0))
    print(f"one training step, float32, wall time, median of {args.repeat} interleaved rounds; "
          f"BLAS threads 1 vs {cores} (all cores); numpy {np.__version__}")
    print(f"{'case':44} {'1 thread':>10} {f'{cores} threads':>11} {'all/1':>7}")
    for name, case in (("LSTM B=64 T=30 D=64 H=64", lstm_case),
                       ("TransformerEncoderLayer B=64 L=20 E=64 h=4 ff=128", transformer_case)):
        for compiled in (False, True):
            run = step_fn(*case(), compiled)
            times = {1: [], cores: []}
            for n in times:  # warm-up (a compiled step traces here)
                with threadpool_limits(limits=n, user_api="blas"):
                    run()
            for _ in range(args.repeat):
                for n in times:
                    with threadpool_limits(limits=n, user_api="blas"):
                        t0 = time.perf_counter()
                        run()
                        times[n].append(time.perf_counter() - t0)
            med = {n: sorted(v)[len(v) // 2] for n, v in times.items()}
            label = f"{name}{' (compiled)' if compiled else ''}"
            print(f"{label:44} {med[1]*1e3:8.2f}ms {med[cores]*1e3:9.2f}ms {med[cores]/med[1]:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
