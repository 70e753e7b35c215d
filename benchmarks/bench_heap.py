"""Heap reuse between training steps (tinygrad_seq/heap.py): eager LSTM/GRU training steps with the default
(`tg.set_heap_reuse(True)` at the first backward) and with glibc's malloc left as it is
(`tg.set_heap_reuse(False)` first), beside the NumPy floor and the same cells composed from PyTorch ops.

    python benchmarks/bench_heap.py              # the demos' size, the issue's large size, H=512
    python benchmarks/bench_heap.py --repeat 5

Each (setting, contender, layer, size) runs in a fresh process of its own, as a training program would (so one
contender's allocations never warm the heap for another, and torch is imported only where it runs);
the two settings alternate, over --repeat rounds. Each process runs one settling step and then --steps
back-to-back steps, timed in process CPU time (which counts the kernel's page-fault handling), with the
minor page faults counted. Medians over the rounds; 1 BLAS thread (set before NumPy loads), float32.
The floor and torch use the same malloc setting as ours in their column.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinygrad_seq as tg  # noqa: E402

SIZES = [(64, 30, 64, 64), (32, 64, 128, 256), (32, 100, 64, 512)]  # (B, T, D, H)
KINDS = ("LSTM", "GRU")
CONTENDERS = ("ours", "floor", "torch")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def child(reuse: bool, contender: str, kind: str, size: tuple, steps: int) -> tuple:
    """One process, one layer and size: (seconds, minor faults) per step (the setting made first)."""
    tg.set_heap_reuse(reuse)
    from tinygrad_seq import models
    from bench_recurrent import gru_train_step, lstm_floor, ours_step, torch_composed
    if contender == "torch":
        import torch
        torch.set_num_threads(1)
        if reuse:  # the floor and torch never run a backward of ours: apply the setting they are measured under
            tg.heap.apply_default()
    elif contender == "floor" and reuse:
        tg.heap.apply_default()
    cls, floor = (models.LSTM, lstm_floor) if kind == "LSTM" else (models.GRU, gru_train_step)
    B, T, D, H = size
    tg.manual_seed(0)
    m = cls(D, H)
    x = tg.randn(T, B, D)
    w = [p.numpy().copy() for p in m.parameters()]
    if contender == "ours":
        fn = lambda: ours_step(m)(x)  # noqa: E731
    elif contender == "floor":
        fn = lambda: floor(x.numpy(), *w)  # noqa: E731
    else:
        fn = torch_composed(torch, kind, x.numpy(), w)
    fn()
    f0, t0 = _faults(), time.process_time()
    for _ in range(steps):
        fn()
    return (time.process_time() - t0) / steps, (_faults() - f0) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--child", nargs=7, help=argparse.SUPPRESS)  # on|off CONTENDER KIND B T D H
    args = ap.parse_args(argv)
    if args.child:
        setting, contender, kind, *size = args.child
        print(json.dumps(child(setting == "on", contender, kind, tuple(map(int, size)), args.steps)))
        return 0
    if tg.heap._mallopt() is None:
        print("glibc's mallopt is not available here: heap reuse does nothing on this platform")
        return 0
    try:
        import torch  # noqa: F401
        contenders = CONTENDERS
    except ImportError:
        contenders = CONTENDERS[:2]
        print("torch not installed: the PyTorch column is skipped")
    runs: dict = {}
    cells = [(k, size, c) for k in KINDS for size in SIZES for c in contenders]
    for _ in range(args.repeat):
        for kind, size, c in cells:
            for setting in ("on", "off"):
                res = subprocess.run([sys.executable, os.path.abspath(__file__), "--steps", str(args.steps),
                                      "--child", setting, c, kind, *map(str, size)],
                                     capture_output=True, text=True, check=True)
                key = f"{kind} {' '.join(map(str, size))}"
                runs.setdefault((setting, c, key), []).append(json.loads(res.stdout.splitlines()[-1]))
    med = {k: (float(np.median([r[0] for r in v])), float(np.median([r[1] for r in v]))) for k, v in runs.items()}
    nan = (float("nan"), float("nan"))
    print(f"eager training step (forward over T + backward, loss = mean(h²)), one layer, float32, 1 thread; median "
          f"of {args.repeat} fresh processes per cell, {args.steps} steps each, process CPU time; flt = minor page "
          "faults per step")
    print(f"{'size (kind B T D H)':22} {'heap reuse':>10} | {'ours':>16} {'numpy floor':>16} {'torch eager':>16} | "
          f"{'ours/floor':>10} {'ours/torch':>10} | ours on/off")
    for kind in KINDS:
        for size in SIZES:
            key = f"{kind} {' '.join(map(str, size))}"
            for setting in ("on", "off"):
                cells = [med.get((setting, c, key), nan) for c in CONTENDERS]
                row = " ".join(f"{t * 1e3:7.2f}ms {f:6.0f}flt" for t, f in cells)
                gain = f"{med['on', 'ours', key][0] / med['off', 'ours', key][0]:.2f}" if setting == "on" else ""
                print(f"{key:22} {setting:>10} | {row} | {cells[0][0] / cells[1][0]:10.2f} "
                      f"{cells[0][0] / cells[2][0]:10.2f} | {gain}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
