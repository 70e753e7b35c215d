"""`Module` and `Parameter`, with PyTorch's vocabulary (named_parameters, state_dict, train/eval, ...)."""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any, Iterator, Mapping

import numpy as np

from ..autograd import STATE, bump_version
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

_TENSOR_TYPES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor", "int64": "LongTensor",
                 "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor", "uint8": "ByteTensor",
                 "bool": "BoolTensor"}


def _typename(value: Any) -> str:
    """PyTorch's torch.typename, for error messages ('torch.FloatTensor', 'int', 'numpy.ndarray')."""
    if isinstance(value, Tensor):
        return "torch." + _TENSOR_TYPES.get(str(value.numpy().dtype), "Tensor")
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


class RemovableHandle:
    """Returned by register_forward_hook / register_forward_pre_hook: `handle.remove()` unregisters it."""
    _next_id = 0

    def __init__(self, store: dict):
        self.store, self.id = store, RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self.store.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


_STRUCTURE = [0]  # bumped by every change of what mode_signature reads: the key of its cached walk


class _Registry(OrderedDict):
    """A module's parameters, buffers or children. Every change bumps _STRUCTURE, so the walks that run every
    training step (the compile guard, parameters(), zero_grad()) reuse their last result until one happens;
    reads stay plain dict reads."""
    def __setitem__(self, k, v):
        _STRUCTURE[0] += 1
        OrderedDict.__setitem__(self, k, v)

    def __delitem__(self, k):
        _STRUCTURE[0] += 1
        OrderedDict.__delitem__(self, k)

    def _changes(name):  # noqa: N805 (a decorator factory used in the class body)
        method = getattr(OrderedDict, name)

        def changed(self, *args, **kwargs):
            _STRUCTURE[0] += 1
            return method(self, *args, **kwargs)
        changed.__name__ = name
        return changed

    pop, popitem, clear, update, setdefault, move_to_end, __ior__ = map(
        _changes, ("pop", "popitem", "clear", "update", "setdefault", "move_to_end", "__ior__"))
    del _changes


class Module:
    """Base class of every layer and model. Assigning a Parameter or Module attribute registers it.

    Calling a module runs `forward` inside a name scope (its attribute name in the parent), which every
    graph node records for the visualizer.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", _Registry())
        object.__setattr__(self, "_buffers", _Registry())
        object.__setattr__(self, "_modules", _Registry())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_scope_name", type(self).__name__)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        # PyTorch's rules: a name registered as a parameter / child module / buffer only takes a value of
        # that kind (or None), so `self.weight = some_tensor` cannot silently drop a parameter.
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        params, bufs, mods = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name)
            if value.name is None:
                value.name = name
            params[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as parameter '{name}' "
                                "(torch.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            self._forget(name)
            object.__setattr__(value, "_scope_name", name)
            mods[name] = value
        elif name in mods:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as child module '{name}' "
                                "(torch.nn.Module or None expected)")
            mods[name] = None
        elif name in bufs:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{_typename(value)}' as buffer '{name}' "
                                "(torch.nn.Buffer, torch.Tensor or None expected)")
            bufs[name] = value
        else:
            if name in ("training", "_parameters", "_buffers", "_modules"):
                _STRUCTURE[0] += 1
                if name != "training" and type(value) is not _Registry:  # a store replaced by a plain dict
                    value = _Registry(value)
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        """Drop `name` from every store before it is registered as something else (as PyTorch)."""
        self.__dict__.pop(name, None)
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self.__dict__.get("_non_persistent", set()).discard(name)

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
        _STRUCTURE[0] += 1  # `training` among others
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{_typename(param)}' object to parameter '{name}' "
                            "(torch.nn.Parameter or None required)")
        self._check_new_name(name, self._parameters, "parameter")
        if param is None:
            self._forget(name)
            self._parameters[name] = None  # type: ignore[assignment]
        else:
            setattr(self, name, param)

    def _check_new_name(self, name: str, store: dict, kind: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(f"{kind} name can't contain \".\" or be empty, got {name!r}")
        if name not in store and (name in self.__dict__ or any(name in d for d in
                                  (self._parameters, self._buffers, self._modules) if d is not store)):
            raise KeyError(f"attribute '{name}' already exists")

    def register_buffer(self, name: str, value: Any, persistent: bool = True) -> None:
        """A non-learnable tensor saved in state_dict (if persistent), e.g. positional encodings. A Tensor
        is kept as the same object (as PyTorch); an array is wrapped in a new Tensor."""
        self._check_new_name(name, self._buffers, "buffer")
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(value)
        self._forget(name)
        self._buffers[name] = value
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        self._check_new_name(name, self._modules, "module")
        if module is None:
            self._forget(name)
            self._modules[name] = None  # type: ignore[assignment]
        else:
            setattr(self, name, module)

    def register_module(self, name: str, module: "Module | None") -> None:
        """Alias of add_module (as PyTorch)."""
        self.add_module(name, module)

    def get_submodule(self, target: str) -> "Module":
        """The submodule at dotted path `target` ("" is this module), e.g. "encoder.layers.0"."""
        mod: Module = self
        if target == "":
            return mod
        done = type(self).__name__
        for item in target.split("."):
            if item not in mod.__dict__.get("_modules", {}) or mod._modules[item] is None:
                raise AttributeError(f"{done} has no attribute `{item}`")
            mod = mod._modules[item]
            done += "." + item
        return mod

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path `target`, e.g. "encoder.fc.weight"."""
        return self._get_entry(target, "_parameters", "parameter")

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at dotted path `target`."""
        return self._get_entry(target, "_buffers", "buffer")

    def _get_entry(self, target: str, store: str, what: str):
        mpath, _, name = target.rpartition(".")
        mod = self.get_submodule(mpath)
        entries = getattr(mod, store)
        if name not in entries:
            raise AttributeError(f"{type(mod).__name__} has no {what} `{name}`")
        return entries[name]

    # ------------------------------------------------------------ traversal
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        if isinstance(memo, str):  # the older order (prefix first), kept for callers that pass it positionally
            memo, prefix = None, memo
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:  # iterative pre-order, children in registration order
            name, m = stack.pop()
            if remove_duplicate:
                if id(m) in memo:
                    continue
                memo.add(id(m))
            yield name, m
            kids = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items() if c is not None]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator["Module"]:
        return iter(self._walk())

    def _walk(self) -> list["Module"]:
        """Every module once, in named_modules' order, without building names (the hot path of parameters(),
        zero_grad() and the compile guard, which run every training step)."""
        out, memo, stack = [], set(), [self]
        while stack:
            m = stack.pop()
            if id(m) in memo:
                continue
            memo.add(id(m))
            out.append(m)
            stack.extend(c for c in reversed(m._modules.values()) if c is not None)
        return out

    def _cached(self) -> tuple:
        """(version, id, unique parameters, mode signature) of this tree, recomputed only after a change of any
        module's registrations or `training` (see _Registry)."""
        c = self.__dict__.get("_walk_cache")
        if c is None or c[0] != _STRUCTURE[0] or c[1] != id(self):  # id: a deep copy carries the dict along
            mods = self._walk()
            params = self._unique_params(mods)
            sig = (tuple(m.training for m in mods), tuple(id(p) for p in params),
                   tuple(id(b) for m in mods for b in m._buffers.values()))
            c = self.__dict__["_walk_cache"] = (_STRUCTURE[0], id(self), params, sig)
        return c

    def mode_signature(self) -> tuple:
        """(every module's `training` flag, the identity of every parameter and buffer): what a compiled call
        of this module depends on besides its inputs."""
        return self._cached()[3]

    @staticmethod
    def _unique_params(mods: list) -> list:
        seen, out = set(), []
        for m in mods:
            for p in m._parameters.values():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for k, m in self._modules.items():
            if m is not None:
                yield k, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen: set[int] = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mname, m in mods:
            for k, p in getattr(m, store).items():
                if p is None or (remove_duplicate and id(p) in seen):
                    continue
                seen.add(id(p))
                yield (f"{mname}.{k}" if mname else k), p

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return iter(self._cached()[2] if recurse else self._unique_params([self]))

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn) -> "Module":
        for m in list(self.modules())[::-1]:
            fn(m)
        return self

    # ------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        _STRUCTURE[0] += 1
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
    def state_dict(self, *args, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> "OrderedDict[str, Any]":
        """name -> value with PyTorch's names and order (each module's parameters, then its persistent
        buffers, then its children; a module or parameter shared under two names appears under both).
        Values are the ndarrays of the tensors (sharing storage, no graph: usable by tg.save and
        load_state_dict), or with keep_vars=True the Parameter / buffer Tensors themselves."""
        if args:  # PyTorch's deprecated positional form state_dict(destination, prefix, keep_vars)
            destination, prefix, keep_vars = (list(args) + [destination, prefix, keep_vars][len(args):])[:3]
        out = OrderedDict() if destination is None else destination
        skip = self.__dict__.get("_non_persistent", ())
        for store in (self._parameters, self._buffers):
            for k, t in store.items():
                if t is not None and k not in skip:
                    out[prefix + k] = t if keep_vars else t.numpy()
        for k, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=out, prefix=prefix + k + ".", keep_vars=keep_vars)
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True, assign: bool = False) -> _IncompatibleKeys:
        """Copy values (Tensor, ndarray, or anything np.asarray takes, e.g. a torch tensor) into the existing
        parameters and buffers, in place: the Parameter objects stay the same (an optimizer holding them keeps
        working) and keep their dtype (values are converted, as PyTorch's copy_). Every problem (missing or
        unexpected keys with strict, any shape mismatch) is reported at once, before anything is copied."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        targets = self.state_dict(keep_vars=True)
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        errors, arrays = [], {}
        if strict and missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
        for k, v in state_dict.items():
            if k not in targets:
                continue
            try:
                src = v.detach().cpu() if hasattr(v, "detach") and not isinstance(v, Tensor) else v  # e.g. torch
                arr = src.numpy() if isinstance(src, Tensor) else np.asarray(src)
            except Exception as e:  # noqa: BLE001 - reported with the others
                errors.append(f'While copying the parameter named "{k}", expected a Tensor or array-like object '
                              f"from checkpoint but received {type(v).__name__} ({e})")
                continue
            own = targets[k].numpy()
            if arr.shape != own.shape:
                errors.append(f"size mismatch for {k}: copying a param with shape {tuple(arr.shape)} from checkpoint, "
                              f"the shape in current model is {tuple(own.shape)}.")
            elif arr.dtype.kind not in "biuf":
                errors.append(f'While copying the parameter named "{k}", whose dimensions in the model are '
                              f"{tuple(own.shape)}: checkpoint dtype {arr.dtype} cannot be copied into {own.dtype}")
            else:
                arrays[k] = arr
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        with np.errstate(invalid="ignore", over="ignore"):  # e.g. float -> int casts: silent, as PyTorch's copy_
            for k, arr in arrays.items():
                own = targets[k].numpy()
                if assign:
                    targets[k].data = np.array(arr, dtype=own.dtype, copy=True)
                else:
                    own[...] = arr.astype(own.dtype, copy=False)  # in place: same objects, same storage
                    bump_version(own, "load_state_dict")
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        prev = STATE.scope
        name = self._scope_name
        STATE.scope = (f"{prev[0]}/{name}" if prev[0] else name, prev[1])
        try:
            hooks = self.__dict__.get("_forward_hooks")
            if not hooks:
                return self.forward(*args, **kwargs)
            return self._call_with_hooks(hooks, args, kwargs)
        finally:
            STATE.scope = prev

    def _call_with_hooks(self, hooks: dict, args: tuple, kwargs: dict):
        for hook in list(hooks["pre"].values()):
            res = hook(self, args)
            if res is not None:
                args = res if isinstance(res, tuple) else (res,)
        out = self.forward(*args, **kwargs)
        for hook in list(hooks["post"].values()):
            res = hook(self, args, out)
            if res is not None:
                out = res
        return out

    def _add_hook(self, kind: str, hook) -> "RemovableHandle":
        hooks = self.__dict__.setdefault("_forward_hooks", {"pre": OrderedDict(), "post": OrderedDict()})
        handle = RemovableHandle(hooks[kind])
        hooks[kind][handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook) -> "RemovableHandle":
        """hook(module, args) runs before forward; a non-None result replaces the positional args (as torch)."""
        return self._add_hook("pre", hook)

    def register_forward_hook(self, hook) -> "RemovableHandle":
        """hook(module, args, output) runs after forward; a non-None result replaces the output (as torch)."""
        return self._add_hook("post", hook)

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
