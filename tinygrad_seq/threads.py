"""`set_num_threads` / `get_num_threads`: the engine's only parallelism is NumPy's BLAS (matmul, einsum),
so these control the BLAS thread pool, as torch's control its intra-op pool.

threadpoolctl (an optional extra: `pip install threadpoolctl`) does the work; it is imported on first
use so that `import tinygrad_seq` stays light. Environment variables are never changed.

Default: 1 BLAS thread, set at the engine's first BLAS op (matmul, linear, einsum, conv) or first
get_num_threads(), when threadpoolctl is installed and none of OPENBLAS_NUM_THREADS / MKL_NUM_THREADS /
OMP_NUM_THREADS is set. Measured with benchmarks/bench_threads.py at the demos' sizes
(LSTM B=64 T=30 H=64, TransformerEncoderLayer B=64 L=20 E=64): on an idle 2-core machine all cores
changed a training step by 0.93-1.14x (nothing to gain: the GEMMs are too small to split, PyTorch too
only parallelises above a grain size), and on a busy one they made it 5-23x slower (OpenBLAS threads
wait for busy cores). `tg.set_num_threads(n)` overrides it.
"""
from __future__ import annotations

import numbers
import os

from .autograd import STATE

_HINT = "pip install threadpoolctl (or the 'demos'/'dev' extra of tinygrad_seq)"
# BLAS libraries read these at load time, in this order of precedence (OpenBLAS, MKL, then OpenMP)
_ENV_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
_environ = os.environ  # read only; a module attribute so tests can substitute it without touching the env


DEFAULT_THREADS = 1


def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    import numpy  # noqa: F401  (its BLAS must be loaded for threadpoolctl to see it)
    return ThreadpoolController()


def _blas_pools(controller) -> list:
    return [lib for lib in controller.lib_controllers if lib.user_api == "blas"]


def set_num_threads(n: int, /) -> None:
    """Set the number of threads every loaded BLAS library (NumPy's included) uses, as
    `torch.set_num_threads` (positional-only there too). Needs threadpoolctl; raises ImportError naming
    it otherwise."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    if n <= 0:
        raise RuntimeError(f"set_num_threads expects a positive integer, got {n}")
    STATE.blas_hook = None
    controller = _controller()
    if controller is None:
        raise ImportError(f"set_num_threads needs threadpoolctl to reach NumPy's BLAS threads: {_HINT}")
    if not _blas_pools(controller):
        raise RuntimeError("set_num_threads: threadpoolctl finds no BLAS library loaded by NumPy")
    # the returned limiter is dropped on purpose: the limit stays until the next call, as torch's does
    controller.limit(limits=int(n), user_api="blas")


def get_num_threads() -> int:
    """The number of threads NumPy's BLAS uses (the largest over loaded BLAS libraries).

    Without threadpoolctl the count cannot be read from the library; then the value the BLAS was
    told through OPENBLAS_NUM_THREADS / MKL_NUM_THREADS / OMP_NUM_THREADS is returned, and when none is
    set, the number of CPUs this process may run on (the default of OpenBLAS, which NumPy's wheels ship)."""
    if STATE.blas_hook is not None:
        apply_default()
    controller = _controller()
    if controller is not None:
        pools = _blas_pools(controller)
        if pools:
            return max(lib.num_threads for lib in pools)
    for var in _ENV_VARS:
        value = _environ.get(var, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def blas_kernels() -> str | None:
    """The BLAS library NumPy loaded and the CPU kernel set it chose, e.g. "openblas SkylakeX" (None without
    threadpoolctl). A training run's figures depend on it: OpenBLAS's GEMM kernels for AVX2 (Haswell) and
    AVX-512 (SkylakeX) round differently (OPENBLAS_CORETYPE=Haswell picks the AVX2 ones anywhere)."""
    controller = _controller()
    if controller is None:
        return None
    libs = [f"{lib.internal_api} {getattr(lib, 'architecture', None) or '?'}" for lib in _blas_pools(controller)]
    return ", ".join(libs) or None


def apply_default() -> None:
    """NumPy's BLAS on DEFAULT_THREADS threads, unless the environment chose a count (or threadpoolctl,
    an optional extra, is missing: then nothing changes). Runs once."""
    STATE.blas_hook = None
    if any(_environ.get(v, "").strip() for v in _ENV_VARS):
        return
    controller = _controller()
    if controller is not None and _blas_pools(controller):
        controller.limit(limits=DEFAULT_THREADS, user_api="blas")


STATE.blas_hook = apply_default
