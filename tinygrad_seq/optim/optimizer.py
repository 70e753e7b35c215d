"""`Optimizer`: the base class (param_groups, state, zero_grad, step, state_dict) as in PyTorch.

Subclasses implement `_update(p, g, state, group)` for one parameter, and `_check(hparams)` to reject
bad hyperparameters. The base class applies `maximize` (g <- -g) and weight decay before `_update`:
L2 (g <- g + weight_decay * p) or, with `decoupled_weight_decay`, p <- p * (1 - lr * weight_decay).

Updates write into `p.numpy()` in place (so its dtype is kept); `p.grad.numpy()` is never written, since
it may share memory with another array.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from ..autograd import bump_version
from ..tensor import Tensor


def _check_nonneg(hparams: dict, *names: str) -> None:
    """ValueError naming the first hyperparameter among `names` that is negative (or not a number)."""
    for name in names:
        v = hparams.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not v >= 0.0:
            raise ValueError(f"Invalid {name} value: {v!r} (must be a number >= 0)")


def _check_fraction(name: str, value: Any) -> None:
    """ValueError naming `name` unless 0 <= value < 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0.0 <= value < 1.0:
        raise ValueError(f"Invalid {name} value: {value!r} (must be in [0, 1))")


class Optimizer:
    """Base class. `params`: an iterable of Tensors, or of dicts {'params': [...], hyperparameter: value}
    (parameter groups; a group's own values override the defaults)."""

    _decoupled_weight_decay = False  # AdamW: shrink p directly instead of adding wd * p to the gradient

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]):
        self._check(defaults)
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got a Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    # ------------------------------------------------------------ hooks for subclasses
    def _check(self, hparams: dict[str, Any]) -> None:
        """Raise ValueError naming any invalid hyperparameter in `hparams`."""
        _check_nonneg(hparams, "lr", "weight_decay", "eps", "momentum")

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group {'params': ..., hyperparameters...}; missing hyperparameters take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs; use a list")
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but params[{i}] is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf Tensor (params[{i}], shape {p.shape})")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer got a parameter group with the same parameter more than once")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check(group)
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (or, with set_to_none=False, replace it by zeros: a new array, since the old
        one may be shared)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = Tensor._wrap(np.zeros_like(p.grad.numpy()))

    # ------------------------------------------------------------ the update
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient. `closure` (optional) re-evaluates the loss
        and is called first; its result is returned."""
        loss = closure() if closure is not None else None
        work = []
        for group in self.param_groups:  # check every shape first: no parameter changes if one is wrong
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.numpy()
                if g.shape != p.numpy().shape:
                    raise ValueError(f"{type(self).__name__}.step: gradient shape {g.shape} does not match "
                                     f"parameter shape {p.numpy().shape}" + (f" ({p.name})" if p.name else ""))
                work.append((p, g, group))
        for p, g, group in work:
            if group.get("maximize", False):
                g = -g
            wd = group.get("weight_decay", 0.0)
            if wd:
                if group.get("decoupled_weight_decay", self._decoupled_weight_decay):
                    p.numpy()[...] *= 1.0 - group["lr"] * wd
                else:
                    g = g + wd * p.numpy()
            self._update(p.numpy(), g, self.state.setdefault(p, {}), group)
            bump_version(p.numpy(), f"{type(self).__name__}.step")  # as torch: backward through an older graph raises
        return loss

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """{'state': {index: {name: ndarray or number}}, 'param_groups': [{hyperparameters, 'params':
        [index, ...]}]} with parameters numbered in group order, as PyTorch. Arrays are copies: plain
        data that `tg.save` can store."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state saved by `state_dict` (state arrays are cast to
        each parameter's dtype). Everything is checked before anything changes."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("optimizer state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                             f"optimizer has {len(self.param_groups)}")
        by_index: dict[int, Tensor] = {}
        new_groups = []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"loaded state dict's parameter group {gi} has {len(saved['params'])} parameters, "
                                 f"optimizer's group has {len(group['params'])}")
            for i, p in zip(saved["params"], group["params"]):
                by_index[int(i)] = p
            new = {k: v for k, v in saved.items() if k != "params"}
            if "betas" in new:
                new["betas"] = tuple(new["betas"])
            self._check(new)
            new["params"] = group["params"]
            new_groups.append(new)
        new_state: dict[Tensor, dict[str, Any]] = {}
        for i, s in state_dict["state"].items():
            if int(i) not in by_index:
                raise ValueError(f"loaded state dict has state for parameter {i}, which no parameter group lists")
            p = by_index[int(i)]
            entry = {}
            for k, v in s.items():
                if k == "step":
                    entry[k] = int(np.asarray(v).item())
                elif isinstance(v, (np.ndarray, Tensor)) or hasattr(v, "__array__"):
                    arr = v.numpy() if isinstance(v, Tensor) else np.asarray(v)
                    if arr.shape != p.numpy().shape:
                        raise ValueError(f"loaded state '{k}' of parameter {i} has shape {arr.shape}, "
                                         f"parameter has shape {p.numpy().shape}")
                    entry[k] = np.array(arr, dtype=p.numpy().dtype, copy=True)
                else:
                    entry[k] = v
            new_state[p] = entry
        self.param_groups[:] = new_groups  # schedulers hold this same list
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"
