"""`save` / `load`: checkpoints (nested dicts, lists and tuples of arrays, numbers, strings) as `.npz`.

Every array is one `.npy` entry of the zip, named after its place in the structure ("data/model/fc.weight");
the entry "manifest" holds JSON describing the structure, so a checkpoint can be read back without
pickle (`np.load(..., allow_pickle=False)`) and is also readable by plain NumPy. Writing is atomic: a
temporary file in the same directory, fsync, then `os.replace`, so a crash leaves the old file intact.
As in PyTorch, a Tensor loads back as a Tensor (keeping `requires_grad`, and a Parameter as a Parameter)
and an ndarray as an ndarray; dicts (OrderedDict included) load back as plain dicts with the same key
order and key types (str or int), tuples as tuples. `path` may also be a binary file object (as
`torch.save(obj, buffer)`), written in place rather than atomically.
"""
from __future__ import annotations

import json
import numbers
import os
import tempfile
import zipfile
from typing import IO, Any

import numpy as np

from .tensor import Tensor

FORMAT = "tinygrad_seq.checkpoint"
VERSION = 1
_MANIFEST = "manifest"
_ARRAY_KINDS = "biufcUS"  # bool, ints, floats, complex, strings: all loadable without pickle


def _where(path: tuple) -> str:
    return "obj" + "".join(f"[{k!r}]" for k in path)


class _Encoder:
    """Walks the object once: returns the JSON-able manifest node and collects the arrays."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._active: set[int] = set()

    def _add_array(self, arr: np.ndarray, path: tuple) -> str:
        if arr.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"save: array of dtype {arr.dtype} at {_where(path)} can't be stored without pickle")
        name = "data/" + "/".join(str(k) for k in path)
        base, n = name, 1
        while name in self.arrays:  # e.g. keys 1 and "1" in the same dict
            name, n = f"{base}#{n}", n + 1
        self.arrays[name] = arr
        return name

    def node(self, obj: Any, path: tuple = ()) -> dict:
        if obj is None or isinstance(obj, (bool, str)):
            return {"t": "value", "v": obj}
        if isinstance(obj, Tensor):
            return {"t": "tensor", "k": self._add_array(obj.numpy(), path), "requires_grad": bool(obj.requires_grad),
                    "parameter": type(obj).__name__ == "Parameter"}
        if isinstance(obj, np.ndarray):
            return {"t": "array", "k": self._add_array(obj, path)}
        if isinstance(obj, np.generic):  # NumPy scalar: keeps its dtype
            return {"t": "npscalar", "k": self._add_array(np.asarray(obj), path)}
        if isinstance(obj, numbers.Integral):
            return {"t": "value", "v": int(obj)}
        if isinstance(obj, float):
            return {"t": "value", "v": obj}
        if isinstance(obj, complex):
            return {"t": "complex", "v": [obj.real, obj.imag]}
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in self._active:
                raise ValueError(f"save: {_where(path)} contains itself (a cycle)")
            self._active.add(id(obj))
            try:
                if isinstance(obj, dict):
                    items = []
                    for k, v in obj.items():
                        if isinstance(k, bool) or not isinstance(k, (str, int)):
                            raise TypeError(f"save: dict key {k!r} at {_where(path)} must be a str or int")
                        items.append([k, self.node(v, path + (k,))])
                    return {"t": "dict", "items": items}
                return {"t": type(obj).__name__, "items": [self.node(v, path + (i,)) for i, v in enumerate(obj)]}
            finally:
                self._active.discard(id(obj))
        raise TypeError(f"save: can't store {type(obj).__name__} at {_where(path)} (supported: dict, list, tuple, "
                        "ndarray, Tensor, int, float, complex, bool, str, None)")


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


def save(obj: Any, f: str | os.PathLike | IO[bytes]) -> None:
    """Write `obj` (nested dicts with str/int keys, lists, tuples of ndarrays, Tensors, NumPy scalars, Python
    numbers, strings, bools, None) to the path `f` (exactly that name; no suffix is added), atomically, or
    into the writable binary file object `f`."""
    enc = _Encoder()
    root = enc.node(obj)  # every type error is raised here, before any file is touched
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "root": root}).encode("utf-8")
    entries = {_MANIFEST: np.frombuffer(manifest, dtype=np.uint8), **enc.arrays}
    if hasattr(f, "write"):  # a buffer or open file, as torch.save accepts: the caller owns its durability
        np.savez(f, allow_pickle=False, **entries)
        return
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes the file 0600; a checkpoint gets the user's umask like any file
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as out:
            np.savez(out, allow_pickle=False, **entries)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (not possible on every platform)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def _array(self, node: dict) -> np.ndarray:
        key = node.get("k")
        if key not in self.arrays:
            raise ValueError(f"manifest refers to a missing array entry {key!r}")
        return self.arrays[key]

    def node(self, node: Any) -> Any:
        if not isinstance(node, dict) or "t" not in node:
            raise ValueError(f"malformed manifest node {str(node)[:80]!r}")
        t = node["t"]
        if t == "value":
            return node["v"]
        if t == "array":
            return self._array(node)
        if t == "tensor":
            arr, rg = self._array(node), bool(node.get("requires_grad", False))
            if node.get("parameter"):
                from .nn.module import Parameter  # lazy: nn imports this module's siblings
                return Parameter(arr, requires_grad=rg)
            return Tensor(arr, requires_grad=rg)
        if t == "npscalar":
            return self._array(node)[()]
        if t == "complex":
            return complex(*node["v"])
        if t == "dict":
            return {k: self.node(v) for k, v in node["items"]}
        if t == "list":
            return [self.node(v) for v in node["items"]]
        if t == "tuple":
            return tuple(self.node(v) for v in node["items"])
        raise ValueError(f"unknown manifest node type {t!r}")


def _array_keys(node: Any, out: list) -> list:
    """Names of the array entries a manifest refers to (iteratively, so it can't hit the recursion limit)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if not isinstance(n, dict):
            raise ValueError(f"malformed manifest node {str(n)[:80]!r}")
        if n.get("t") in ("array", "tensor", "npscalar"):
            out.append(n.get("k"))
        elif n.get("t") == "dict":
            stack.extend(v for _, v in n.get("items", []))
        elif n.get("t") in ("list", "tuple"):
            stack.extend(n.get("items", []))
    return out


def load(f: str | os.PathLike | IO[bytes]) -> Any:
    """Read a checkpoint written by `save` from a path or a readable binary file object. Tensors come back
    as Tensors, ndarrays as ndarrays, tuples as tuples.

    A file that is empty, truncated, corrupt or not written by `save` raises ValueError naming the file
    and the problem; nothing is returned unless the whole checkpoint was read. Never unpickles."""
    is_file = hasattr(f, "read")
    path = getattr(f, "name", repr(f)) if is_file else os.fspath(f)
    if not is_file and not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path!r}")

    def bad(problem: str, cause: BaseException | None = None) -> ValueError:
        err = ValueError(f"load: {path!r} is not a valid tinygrad_seq checkpoint: {problem}")
        err.__cause__ = cause
        return err

    if not is_file and os.path.getsize(path) == 0:
        raise bad("the file is empty")
    try:
        z = np.load(f if is_file else path, allow_pickle=False)
    except ValueError as e:  # NumPy's "pickled data" refusal: neither .npy nor .npz
        raise bad(f"not an .npz file ({e})", e) from e
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise bad(f"unreadable or truncated ({type(e).__name__}: {e})", e) from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise bad("it holds a single .npy array, not an .npz checkpoint")
    with z:
        if _MANIFEST not in z.files:
            raise bad("no manifest entry (an .npz file not written by tinygrad_seq.save?)")
        try:
            raw = z[_MANIFEST]
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise ValueError(f"manifest entry has dtype {raw.dtype} and shape {raw.shape}")
            manifest = json.loads(raw.tobytes().decode("utf-8"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ValueError("the manifest does not describe a tinygrad_seq checkpoint")
            if manifest.get("version") != VERSION:
                raise ValueError(f"unsupported checkpoint version {manifest.get('version')!r} (this is {VERSION})")
            keys = _array_keys(manifest.get("root"), [])
            missing = sorted({k for k in keys if k not in z.files}, key=str)
            if missing:
                raise ValueError(f"missing array entries {missing[:5]}")
            arrays = {k: z[k] for k in keys}  # reads every entry: zip CRC checks catch corrupted bytes
            return _Decoder(arrays).node(manifest["root"])
        except (ValueError, KeyError, TypeError, OSError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as e:
            raise bad(f"{type(e).__name__}: {e}", e) from e
