"""`Module` and `Parameter`, with PyTorch's vocabulary (named_parameters, state_dict, train/eval, ...)."""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any, Iterator

import numpy as np

from ..autograd import STATE
from ..device import check as check_device
from ..device import parse_to
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as learnable (requires_grad=True by default)."""
    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True, dtype=None):
        if data is None:
            data = np.zeros(0, np.float32)
        super().__init__(data.numpy() if isinstance(data, Tensor) else data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model. Assigning a Parameter or Module attribute registers it.

    Calling a module runs `forward` inside a name scope (its attribute name in the parent), which every
    graph node records for the visualizer.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_scope_name", type(self).__name__)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        if isinstance(value, Parameter):
            if value.name is None:
                value.name = name
            self._parameters[name] = value
        elif isinstance(value, Module):
            object.__setattr__(value, "_scope_name", name)
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters[name] = None  # type: ignore[assignment]
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, value: Any, persistent: bool = True) -> None:
        """A non-learnable array saved in state_dict (if persistent), e.g. positional encodings."""
        arr = value.numpy() if isinstance(value, Tensor) else value
        self._buffers[name] = None if arr is None else Tensor(arr)
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        setattr(self, name, module) if module is not None else self._modules.__setitem__(name, None)

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "", memo: set | None = None) -> Iterator[tuple[str, "Module"]]:
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:  # iterative pre-order, children in registration order
            name, m = stack.pop()
            if id(m) in memo:
                continue
            memo.add(id(m))
            yield name, m
            kids = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items() if c is not None]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for k, m in self._modules.items():
            if m is not None:
                yield k, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for k, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{k}" if mname else k), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for mname, m in self.named_modules(prefix):
            for k, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{k}" if mname else k), b

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

    def apply(self, fn) -> "Module":
        for m in list(self.modules())[::-1]:
            fn(m)
        return self

    # ------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.numpy()[...] = 0

    # ------------------------------------------------------------ dtype and device
    def to(self, *args, **kwargs) -> "Module":
        """to(dtype), to(device), to(device, dtype), to(tensor), to(dtype=, device=): converts every float
        parameter and buffer (in place, as torch); the device must be the CPU."""
        dt, _ = parse_to(args, kwargs, "Module.to")
        if dt is None:
            return self
        if dt.kind != "f":
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dt}")
        for t in list(self.parameters()) + list(self.buffers()):
            if t.numpy().dtype.kind == "f":
                t.data = t.numpy().astype(dt)
                if t.grad is not None:
                    t.grad = Tensor._wrap(t.grad.numpy().astype(dt))
        return self

    def double(self) -> "Module":
        return self.to(np.float64)

    def float(self) -> "Module":
        return self.to(np.float32)

    def half(self) -> "Module":
        return self.to(np.float16)

    def cpu(self) -> "Module":
        return self

    def cuda(self, device=None) -> "Module":
        check_device("cuda" if device is None else device)
        return self

    # ------------------------------------------------------------ state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """name -> ndarray, with PyTorch's names (parameters, then persistent buffers, per module)."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for mname, m in self.named_modules():
            skip = m.__dict__.get("_non_persistent", ())
            for store in (m._parameters, m._buffers):
                for k, t in store.items():
                    if t is not None and k not in skip:
                        out[f"{mname}.{k}" if mname else k] = t.numpy()
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> _IncompatibleKeys:
        """Copy arrays (ndarray, Tensor, or anything np.asarray takes, e.g. a torch tensor) into the
        existing parameters, keeping their dtype. Every problem is reported at once, before anything
        is copied."""
        own = self.state_dict()
        targets = {}
        for mname, m in self.named_modules():
            for store in (m._parameters, m._buffers):
                for k, t in store.items():
                    if t is not None:
                        targets[f"{mname}.{k}" if mname else k] = t
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        bad = []
        arrays = {}
        for k, v in state_dict.items():
            if k not in own:
                continue
            arr = v.numpy() if isinstance(v, Tensor) else np.asarray(v.detach().cpu() if hasattr(v, "detach") else v)
            if arr.shape != own[k].shape:
                bad.append(f"{k}: checkpoint shape {tuple(arr.shape)} vs model shape {tuple(own[k].shape)}")
            arrays[k] = arr
        errors = []
        if bad:
            errors.append("size mismatch for " + "; ".join(bad))
        if strict and missing:
            errors.append(f"missing keys: {missing}")
        if strict and unexpected:
            errors.append(f"unexpected keys: {unexpected}")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: " + " | ".join(errors))
        for k, arr in arrays.items():
            t = targets[k]
            t.data = np.array(arr, dtype=t.numpy().dtype, copy=True)
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        prev = STATE.scope
        name = self._scope_name
        STATE.scope = (f"{prev[0]}/{name}" if prev[0] else name, prev[1])
        try:
            return self.forward(*args, **kwargs)
        finally:
            STATE.scope = prev

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for k, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"({k}): {sub}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
