"""tinygrad_seq: a small reverse-mode tensor autograd engine on NumPy, with sequence models and
pictures of their unrolled computation graphs.

    import tinygrad_seq as tg
    x = tg.randn(3, 4, requires_grad=True)
    (x.tanh() ** 2).sum().backward()
"""
from .autograd import (detect_anomaly, enable_grad, is_grad_enabled, name_scope, no_grad,  # noqa: F401
                       set_grad_enabled, time_step)
from .gradcheck import gradcheck  # noqa: F401
from .tensor import (Tensor, arange, cat, empty, eye, full, full_like, manual_seed, maximum, minimum,  # noqa: F401
                     ones, ones_like, rand, rand_like, randint, randn, randn_like, rng, stack, tensor, where,
                     zeros, zeros_like)
from . import nn  # noqa: F401,E402
from . import optim  # noqa: F401,E402
from .io import load, save  # noqa: F401,E402

float32 = "float32"
float64 = "float64"
__version__ = "0.1.0"


# ---- lazily reachable subpackages: `tg.models` and `tg.viz` import on first use (viz's drawing backends,
# graphviz and matplotlib, are imported by viz only when it draws).
def __getattr__(name: str):
    if name in ("models", "viz"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
