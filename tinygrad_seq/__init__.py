"""tinygrad_seq: a small reverse-mode tensor autograd engine on NumPy, with sequence models and
pictures of their unrolled computation graphs.

    import tinygrad_seq as tg
    x = tg.randn(3, 4, requires_grad=True)
    (x.tanh() ** 2).sum().backward()
"""
import warnings as _warnings

# PyTorch returns inf/NaN without a word (x * 0 at inf, overflow); NumPy warns. The hot ops stay unguarded
# for speed, so NumPy's RuntimeWarnings raised inside this package are dropped: user code keeps its own.
_warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"tinygrad_seq(\.|$)")

from .autograd import (detect_anomaly, enable_grad, is_grad_enabled, name_scope, no_grad,  # noqa: F401
                       set_grad_enabled, time_step)
from .gradcheck import gradcheck  # noqa: F401
from .tensor import (Tensor, arange, cat, empty, eye, full, full_like, manual_seed, maximum, minimum,  # noqa: F401
                     ones, ones_like, rand, rand_like, randint, randn, randn_like, rng, stack, tensor, where,
                     zeros, zeros_like)
from .indexfns import (argwhere, bernoulli, flip, gather, index_add, index_select, masked_fill,  # noqa: F401,E402
                       masked_select, movedim, moveaxis, multinomial, narrow, nonzero, normal, randint_like,
                       randperm, repeat_interleave, roll, scatter, scatter_add, select, swapaxes, swapdims, t,
                       take_along_dim, unflatten, where)
from . import nn  # noqa: F401,E402
from . import optim  # noqa: F401,E402
from .io import load, save  # noqa: F401,E402
# ---- utils.data, Generator, BLAS threads (issue 9)
from .generator import Generator  # noqa: F401,E402
from .threads import get_num_threads, set_num_threads  # noqa: F401,E402
from . import utils  # noqa: F401,E402

float32 = "float32"
float64 = "float64"
__version__ = "0.1.0"
from .mathfns import *  # noqa: F401,F403,E402  (tg.exp(x), tg.topk(x, k), tg.einsum(...): the math functions)


# ---- lazily reachable subpackages: `tg.models` and `tg.viz` import on first use (viz's drawing backends,
# graphviz and matplotlib, are imported by viz only when it draws).
def __getattr__(name: str):
    if name in ("models", "viz"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
