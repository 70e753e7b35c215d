"""`set_heap_reuse` / `heap_reuse`: keep the memory one training step frees for the next (glibc only).

An eager training step builds its graph (tens of MB of intermediates at B=32 T=64 H=256) and backward()
frees it at once. glibc's malloc then hands the freed top of its heap back to the OS (trim) and serves
arrays of 128 KiB or more with mmap/munmap, so the next step touches fresh pages and the kernel zero-fills
each one again: measured with benchmarks/bench_heap.py, an eager GRU step (B=32 T=64 D=128 H=256) took
~11,000 minor page faults and about 30% of its time that way; an LSTM step at the demos' size
(B=64 T=30 H=64) about a third.

The default, applied at the first backward pass: arrays up to 32 MiB come from the heap (glibc's own
ceiling for its adaptive threshold) and up to 1 GiB of freed heap stays mapped for reuse
(`mallopt(M_MMAP_THRESHOLD)`, `mallopt(M_TRIM_THRESHOLD)`). The process's resident memory then stays near
its largest step's, as a caching allocator's does. The default changes nothing when glibc's malloc tunables
are set in the environment (MALLOC_*_ variables or glibc.malloc in GLIBC_TUNABLES: you chose; an explicit
`set_heap_reuse(True)` still applies), on other C libraries, or after `set_heap_reuse(False)`: before the
first backward that leaves glibc untouched; after it, glibc's initial thresholds come back (its adaptive
raising of them stays off once mallopt has set them: glibc's rule).
"""
from __future__ import annotations

import os
import sys

from .autograd import STATE

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
REUSE = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 1 << 30}
GLIBC_DEFAULTS = {_M_MMAP_THRESHOLD: 128 << 10, _M_TRIM_THRESHOLD: 128 << 10}
_ENV_VARS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_environ = os.environ  # read only; a module attribute so tests can substitute it without touching the env
_active = False


def _mallopt():
    """glibc's mallopt, or None on another platform or C library."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.mallopt if hasattr(libc, "gnu_get_libc_version") else None
    except OSError:  # musl and others
        return None


def _user_tuned() -> bool:
    return any(_environ.get(v, "").strip() for v in _ENV_VARS) or "glibc.malloc." in _environ.get("GLIBC_TUNABLES", "")


def set_heap_reuse(enabled: bool, /) -> bool:
    """True: keep freed memory for reuse between steps. False: leave glibc's malloc as it is (if reuse was on,
    put its initial thresholds back). Either cancels the default at the first backward. Returns whether
    reuse is now on (never where glibc's mallopt is not available)."""
    global _active
    if not isinstance(enabled, bool):
        raise TypeError(f"set_heap_reuse expects a bool, got {type(enabled).__name__}")
    STATE.heap_hook = None
    if not enabled and not _active:
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    for param, value in (REUSE if enabled else GLIBC_DEFAULTS).items():
        mallopt(param, value)
    _active = enabled
    return _active


def heap_reuse() -> bool:
    """Whether this process keeps freed memory for the next step (see the module's docstring)."""
    return _active


def apply_default() -> None:
    """The default (reuse on) unless the environment tunes glibc's malloc. Runs once, at the first backward."""
    STATE.heap_hook = None
    if not _user_tuned():
        set_heap_reuse(True)


STATE.heap_hook = apply_default
