"""Optimizers and learning-rate schedules with PyTorch's names, arguments and update formulas.

    opt = tg.optim.Adam(model.parameters(), lr=1e-3)
    sched = tg.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    loss.backward(); opt.step(); opt.zero_grad(); sched.step()
"""
from . import lr_scheduler  # noqa: F401
from .adagrad import Adagrad  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .sgd import SGD  # noqa: F401

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
