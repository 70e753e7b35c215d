"""Timing shared by the benchmarks: best of N runs, process CPU time by default.

Every contender runs single-threaded, so process CPU time measures the same work as wall time while not
counting the time other processes hold the CPU on a shared machine; `use_clock("wall")` switches to
time.perf_counter.
"""
from __future__ import annotations

import time

_clock = time.process_time


def use_clock(name: str) -> None:
    global _clock
    _clock = time.process_time if name == "cpu" else time.perf_counter


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = _clock()
        fn()
        times.append(_clock() - t0)
    return min(times)


def interleaved_medians(fns: dict, repeat: int, block: int = 1) -> dict:
    """Median time per call of each contender, run round-robin so that slow phases of a shared machine hit
    every contender alike. Each round runs `block` consecutive calls of one contender, then the next's.

    block=1 alternates single calls: each contender then starts with the caches the previous one left (an
    eager step allocates and frees thousands of arrays; a compiled step reuses one preallocated arena,
    which the others have evicted). block=10 is a training loop's steady state, steps back to back."""
    for fn in fns.values():
        fn()  # warm-up (a compiled contender traces here)
    times: dict = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = _clock()
            for _ in range(block):
                fn()
            times[k].append((_clock() - t0) / block)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}
