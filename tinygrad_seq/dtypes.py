"""dtypes as NumPy dtype objects (`tg.float32 == np.dtype("float32")`), the default float dtype, and
PyTorch's type promotion (`result_type`, `promote_types`), which every arithmetic entry point follows.

PyTorch's rule in short: categories bool < integer < float. Operands fall into three groups: tensors
with dims, 0-d tensors, Python scalars. A group only matters if its category is higher than the
groups above it: `float32 tensor * float64 0-d tensor` stays float32, `int tensor + 2.5` becomes the
default float dtype, `bool tensor + 2` becomes int64. A Python float counts as the default dtype.
"""
from __future__ import annotations

import builtins
import numbers
from typing import Any

import numpy as np

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
uint8 = np.dtype(np.uint8)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
dtype = np.dtype  # `isinstance(t.dtype, tg.dtype)`
finfo = np.finfo
iinfo = np.iinfo

# PyTorch's aliases, exported from the package as tg.float, tg.double, ... (not bound here: they
# would shadow the builtins in this module)
ALIASES = {"float": float32, "double": float64, "half": float16, "long": int64, "int": int32,
           "short": int16, "bool": bool_}

# dtype -> PyTorch's C type name, used in its messages ("Got: Long") and legacy type names
# ("torch.LongTensor")
_TORCH_NAMES = {float16: "Half", float32: "Float", float64: "Double", uint8: "Byte", int8: "Char",
                int16: "Short", int32: "Int", int64: "Long", bool_: "Bool"}
_SUPPORTED = tuple(_TORCH_NAMES)

_default = float32


def get_default_dtype() -> np.dtype:
    """The dtype of Python floats and of float factories (float32 unless `set_default_dtype`)."""
    return _default


def set_default_dtype(d) -> None:
    """Set the default float dtype (float32 or float64, as PyTorch also accepts float16)."""
    global _default
    dt = to_dtype(d)
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the default type, got {dt}")
    _default = dt


def to_dtype(d) -> np.dtype:
    """Normalise a dtype argument: tg.float32, np.float32, "float32", "torch.float32", Python float/int/bool
    (float64/int64/bool, as PyTorch), a legacy type (tg.LongTensor) or its name ("torch.LongTensor")."""
    if isinstance(d, np.dtype) and d in _TORCH_NAMES:
        return d
    if type(d).__module__ == "torch":  # a real torch.float32, from code that also imports torch
        d = str(d)
    legacy = getattr(d, "_tg_dtype", None)
    if legacy is not None:
        return legacy
    if isinstance(d, str):
        name = d[6:] if d.startswith("torch.") else d[13:] if d.startswith("tinygrad_seq.") else d
        if name.endswith("Tensor"):
            for dt, n in _TORCH_NAMES.items():
                if n + "Tensor" == name:
                    return dt
        d = ALIASES.get(name, name)
    try:
        dt = np.dtype(d)
    except TypeError:
        raise TypeError(f"not a dtype: {d!r} (use tg.float32, tg.int64, tg.bool, ...)") from None
    if dt not in _TORCH_NAMES:
        raise TypeError(f"unsupported dtype {dt}: tinygrad_seq supports "
                        f"{', '.join(str(t) for t in _SUPPORTED)}")
    return dt


def torch_name(dt: np.dtype) -> str:
    """PyTorch's name for a dtype in its messages: float32 -> "Float", int64 -> "Long"."""
    return _TORCH_NAMES.get(dt, str(dt))


def is_floating(dt: np.dtype) -> bool:
    return dt.kind == "f"


def _category(dt: np.dtype) -> int:
    return 2 if dt.kind == "f" else 0 if dt.kind == "b" else 1


def promote_types(a, b) -> np.dtype:
    """The smallest dtype both convert to (torch.promote_types): as NumPy within a category, but an int
    meeting a float gives that float (int32 + float16 -> float16; NumPy would say float64)."""
    a, b = to_dtype(a), to_dtype(b)
    if a is b:
        return a
    fa, fb = a.kind == "f", b.kind == "f"
    if fa != fb:
        return a if fa else b
    return np.promote_types(a, b)


def _combine(higher: np.dtype | None, lower: np.dtype | None) -> np.dtype | None:
    """PyTorch's combine_categories: the lower group only counts if it is of a higher category."""
    if higher is None:
        return lower
    if lower is None or higher.kind == "f":
        return higher
    if higher.kind == "b" or lower.kind == "f":
        return promote_types(higher, lower)
    return higher


def scalar_dtype(v) -> np.dtype:
    """The dtype a Python (or NumPy) scalar counts as: bool, int64, or the default float dtype."""
    if isinstance(v, (builtins.bool, np.bool_)):
        return bool_
    if isinstance(v, (numbers.Integral, np.integer)):
        return int64
    if isinstance(v, numbers.Real):
        return _default
    raise TypeError(f"expected a Tensor or a number, got {type(v).__name__}")


def result_type(*operands: Any) -> np.dtype:
    """The dtype of an arithmetic op on `operands` (tensors, arrays or Python scalars), as torch.result_type."""
    dim = zero = wrapped = None
    for o in operands:
        dt = getattr(o, "dtype", None)
        if dt is None or isinstance(o, np.generic):  # a Python or NumPy scalar
            wrapped = scalar_dtype(o) if wrapped is None else promote_types(wrapped, scalar_dtype(o))
        elif o.ndim == 0:
            zero = dt if zero is None else promote_types(zero, dt)
        else:
            dim = dt if dim is None else promote_types(dim, dt)
    out = _combine(dim, _combine(zero, wrapped))
    if out is None:
        raise TypeError("result_type: expected at least one operand")
    return out
