"""Learning-rate schedules, as torch.optim.lr_scheduler: each `step()` advances `last_epoch` by one and
writes the new rate into every parameter group's 'lr'. Rates come from closed forms of `last_epoch`
(equal to PyTorch's chained updates as long as nothing else edits the rates)."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from .optimizer import Optimizer


def _positive(name: str, value: Any, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        raise ValueError(f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}")


class LRScheduler:
    """Base class. `last_epoch=-1` starts a new schedule (each group's 'initial_lr' is set from its 'lr');
    another value resumes one (the groups must already have 'initial_lr'). The constructor takes the
    first step, so `get_last_lr()` is the rate of epoch `last_epoch + 1`."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        groups = optimizer.param_groups
        if last_epoch == -1:
            for g in groups:
                g.setdefault("initial_lr", g["lr"])
        else:
            for i, g in enumerate(groups):
                if "initial_lr" not in g:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                                   f"a schedule (last_epoch={last_epoch})")
        self.base_lrs: list[float] = [g["initial_lr"] for g in groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:
        """The rate of each group at `self.last_epoch`."""
        return [self._lr(base, self.last_epoch) for base in self.base_lrs]

    def _lr(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        self._last_lr = [float(lr) for lr in self.get_lr()]
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (and functions): plain numbers and lists."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()
                if k not in ("optimizer", "lr_lambdas")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k not in ("optimizer", "lr_lambdas")})


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (last_epoch // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        _positive("step_size", step_size, integer=True)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2 (periodic past T_max,
    as PyTorch's)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        _positive("T_max", T_max)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(last_epoch); `lr_lambda` is one function or one per parameter group.
    The functions are not part of state_dict()."""

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
                 last_epoch: int = -1):
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"Expected {n} lr_lambdas (one per parameter group), but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        if not all(callable(f) for f in self.lr_lambdas):
            raise TypeError("lr_lambda must be a callable or a list of callables")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for base, f in zip(self.base_lrs, self.lr_lambdas)]


class NoamLR(LRScheduler):
    """The Transformer's warmup schedule ("Attention Is All You Need", eq. 3), with s = last_epoch + 1 the
    number of the coming optimizer step: lr = factor * d_model^-0.5 * min(s^-0.5, s * warmup_steps^-1.5).
    Linear warmup to its peak at s = warmup_steps, then decay as 1/sqrt(s). Sets the rate of every group
    (the optimizer's own lr is ignored)."""

    def __init__(self, optimizer: Optimizer, d_model: int, warmup_steps: int, factor: float = 1.0,
                 last_epoch: int = -1):
        _positive("d_model", d_model)
        _positive("warmup_steps", warmup_steps, integer=True)
        _positive("factor", factor)
        self.d_model, self.warmup_steps, self.factor = d_model, warmup_steps, factor
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr: float, epoch: int) -> float:
        s = epoch + 1
        return self.factor * self.d_model ** -0.5 * min(s ** -0.5, s * self.warmup_steps ** -1.5)


class WarmupCosineLR(LRScheduler):
    """Linear warmup then cosine decay, with s = last_epoch + 1 the number of the coming optimizer step:
    lr = base_lr * s / warmup_steps for s <= warmup_steps, then
    lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * min(1, (s - warmup_steps) / (total_steps - warmup_steps)))) / 2
    (eta_min from step `total_steps` on)."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, eta_min: float = 0.0,
                 last_epoch: int = -1):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        _positive("total_steps", total_steps, integer=True)
        if total_steps <= warmup_steps:
            raise ValueError(f"total_steps ({total_steps}) must be larger than warmup_steps ({warmup_steps})")
        self.warmup_steps, self.total_steps, self.eta_min = warmup_steps, total_steps, eta_min
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr: float, epoch: int) -> float:
        s = epoch + 1
        if s <= self.warmup_steps:
            return base_lr * s / self.warmup_steps
        progress = min(1.0, (s - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.eta_min + (base_lr - self.eta_min) * (1.0 + math.cos(math.pi * progress)) / 2.0
