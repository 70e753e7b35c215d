"""Cost against sequence length: per-step time of one eager (and compiled) LSTM training step at T=32 and
T=2048, and its peak memory, in one run.

    python benchmarks/bench_scaling.py [--repeat 5] [--sizes 32,256,2048] [--compiled]

models.LSTM(16, 32), B=8, float32, loss = mean(output²), 1 BLAS thread (set before NumPy loads), process
CPU time, medians of --repeat interleaved rounds. Peak memory: tracemalloc's peak of one step (NumPy
reports its allocations to tracemalloc), which should grow linearly with T.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import tinygrad_seq as tg  # noqa: E402
from tinygrad_seq import models  # noqa: E402


def step(m, x, f):
    m.zero_grad()
    loss = f(x)
    loss.backward()
    return loss.item()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="32,256,2048")
    ap.add_argument("--compiled", action="store_true", help="also tg.compile (a T=2048 trace takes ~20 s once)")
    args = ap.parse_args(argv)
    Ts = [int(t) for t in args.sizes.split(",")]
    tg.manual_seed(0)
    m = models.LSTM(16, 32)
    xs = {T: tg.randn(T, 8, 16) for T in Ts}
    eager = lambda x: (m(x)[0] ** 2).mean()  # noqa: E731
    comp = tg.compile(eager)
    rows = {}
    for name, f in (("eager", eager), ("compiled", comp))[:2 if args.compiled else 1]:
        for T in Ts:
            step(m, xs[T], f)  # warm-up (traces)
        times = {T: [] for T in Ts}
        for _ in range(args.repeat):
            for T in Ts:
                t0 = time.process_time()
                step(m, xs[T], f)
                times[T].append(time.process_time() - t0)
        peak = {}
        for T in Ts:
            tracemalloc.start()
            step(m, xs[T], f)
            peak[T] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        rows[name] = ({T: sorted(v)[len(v) // 2] / T for T, v in times.items()}, peak)
    print(f"LSTM(16, 32) B=8 training step, float32, 1 thread, median of {args.repeat} rounds, process CPU time")
    for name, (per, peak) in rows.items():
        base = per[Ts[0]]
        print(f"{name:9}" + "".join(f"  T={T}: {per[T]*1e6:7.1f} us/step ({per[T]/base:4.2f}x), peak {peak[T]/2**20:7.1f} MiB"
                                    f" ({peak[T]/T/1024:5.1f} KiB/step)" for T in Ts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
