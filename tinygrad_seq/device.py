"""The device idiom on a CPU-only engine: `tg.device("cpu")`, `device=` arguments, `tg.cuda.is_available()`.

Everything runs on NumPy, so "cpu" is the only device. A "cuda"/"mps" device object can be built (as in
PyTorch without a GPU), but using one anywhere raises the one `DeviceError` below.
"""
from __future__ import annotations

import sys
import types

import numpy as np

_KNOWN = ("cpu", "cuda", "mps", "xpu", "meta", "hip", "xla")


class DeviceError(RuntimeError):
    """A non-CPU device was asked for."""


def _unavailable(name: str) -> DeviceError:
    return DeviceError(f"device '{name}' is not available: tinygrad_seq runs on NumPy (CPU) only. "
                       "Use 'cpu' (e.g. device = tg.device('cuda' if tg.cuda.is_available() else 'cpu')).")


class device:
    """torch.device: `device("cpu")`, `device("cuda", 0)`, `device("cuda:0")`; `.type`, `.index`."""
    __slots__ = ("type", "index")

    def __init__(self, type: "str | device" = "cpu", index: int | None = None):
        if isinstance(type, device):
            type, index = type.type, type.index
        elif isinstance(type, int):  # torch.device(0) means cuda:0
            type, index = "cuda", type
        elif not isinstance(type, str):
            raise TypeError(f"device(): expected a string or a device, got {type!r}")
        name = type
        if ":" in name:
            name, _, idx = name.partition(":")
            if index is not None or not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(idx)
        if name not in _KNOWN:
            raise RuntimeError(f"Expected one of {', '.join(_KNOWN)} device type at start of device string: {type}")
        object.__setattr__(self, "type", name)
        object.__setattr__(self, "index", index)

    def __setattr__(self, k, v):
        raise AttributeError("device is immutable")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        idx = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{idx})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):  # device("cpu") == "cpu" (PyTorch says False; friendlier here)
            try:
                other = device(other)
            except RuntimeError:
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    # `with tg.device("cpu"):` (PyTorch 2's default-device context) is accepted and does nothing on CPU
    def __enter__(self):
        check(self)
        return self

    def __exit__(self, *exc) -> None:
        return None


CPU = device("cpu")


def check(d) -> device:
    """The device `d` names (None means cpu); raises DeviceError for any other device."""
    if d is None:
        return CPU
    dev = d if isinstance(d, device) else device(d)
    if dev.type != "cpu":
        raise _unavailable(str(dev))
    return CPU


def is_device_like(v) -> bool:
    """True for a device object or a string that names a device ("cpu", "cuda:0"): `.to()` tells a
    device argument from a dtype one with this."""
    if isinstance(v, device):
        return True
    if isinstance(v, str):
        return v.partition(":")[0] in _KNOWN
    return isinstance(v, int) and not isinstance(v, bool)


def parse_to(args: tuple, kwargs: dict, where: str = "to"):
    """The dtype (or None) asked for by `.to(...)`'s forms: to(dtype), to(device), to(device, dtype),
    to(other_tensor), to(dtype=..., device=..., non_blocking=..., copy=...); the device must be the CPU.
    Returns (dtype or None, copy)."""
    from .dtypes import to_dtype
    kw = dict(kwargs)
    dt, dev = kw.pop("dtype", None), kw.pop("device", None)
    copy = bool(kw.pop("copy", False))
    kw.pop("non_blocking", None)
    kw.pop("memory_format", None)
    if kw:
        raise TypeError(f"{where}() got unexpected keyword arguments {sorted(kw)}")
    for a in args:
        if a is None:
            continue
        if is_device_like(a):
            dev = a
        elif not isinstance(a, (str, type, np.dtype)) and hasattr(a, "dtype"):  # to(other): its dtype
            dt = a.dtype
        else:
            dt = a
    check(dev)
    return (None if dt is None else to_dtype(dt)), copy


# ---------------------------------------------------------------- tg.cuda, tg.backends

def _raise_cuda(*args, **kwargs):
    raise _unavailable("cuda")


def _noop(*args, **kwargs) -> None:
    return None


def _false(*args, **kwargs) -> bool:
    return False


cuda = types.ModuleType("tinygrad_seq.cuda", "No CUDA here: is_available() is False, seeding is a no-op (as PyTorch).")
cuda.is_available = _false
cuda.is_initialized = _false
cuda.device_count = lambda: 0
cuda.manual_seed = cuda.manual_seed_all = cuda.empty_cache = cuda.synchronize = _noop
cuda.current_device = cuda.get_device_name = cuda.set_device = _raise_cuda

backends = types.ModuleType("tinygrad_seq.backends", "No GPU backends; cudnn flags are accepted and ignored.")
backends.mps = types.ModuleType("tinygrad_seq.backends.mps")
backends.mps.is_available = backends.mps.is_built = _false
backends.cuda = types.ModuleType("tinygrad_seq.backends.cuda")
backends.cuda.is_built = _false
backends.cudnn = types.ModuleType("tinygrad_seq.backends.cudnn")
backends.cudnn.is_available = _false
backends.cudnn.enabled = True
backends.cudnn.deterministic = False
backends.cudnn.benchmark = False

for _m in (cuda, backends, backends.mps, backends.cuda, backends.cudnn):
    sys.modules.setdefault(_m.__name__, _m)  # `import tinygrad_seq.cuda` works too
