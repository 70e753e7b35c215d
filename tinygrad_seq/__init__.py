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
from .errors import DtypeError, OutOfRangeError, ShapeError  # noqa: F401
from .gradcheck import gradcheck  # noqa: F401
from .tensor import (Tensor, arange, as_tensor, cat, empty, eye, from_numpy, full, full_like, lerp,  # noqa: F401
                     manual_seed, maximum, minimum, ones, ones_like, rand, rand_like, randint, randn, randn_like,
                     rng, stack, tensor, where, zeros, zeros_like)
from .indexfns import (argwhere, bernoulli, flip, gather, index_add, index_select, masked_fill,  # noqa: F401,E402
                       masked_select, movedim, moveaxis, multinomial, narrow, nonzero, normal, randint_like,
                       randperm, repeat_interleave, roll, scatter, scatter_add, select, swapaxes, swapdims, t,
                       take_along_dim, unflatten, where)
from . import nn  # noqa: F401,E402
from . import ops  # noqa: F401,E402
from . import optim  # noqa: F401,E402
from .io import load, save  # noqa: F401,E402
# ---- utils.data, Generator, BLAS threads (issue 9)
from .generator import Generator  # noqa: F401,E402
from .threads import get_num_threads, set_num_threads  # noqa: F401,E402
from .heap import heap_reuse, set_heap_reuse  # noqa: F401,E402
from .printing import get_printoptions, printoptions, set_printoptions  # noqa: F401,E402
from . import utils  # noqa: F401,E402

# ---- dtypes (NumPy dtype objects: `t.dtype == tg.float32`), devices, promotion
from .dtypes import (dtype, finfo, float16, float32, float64,  # noqa: F401,E402
                     get_default_dtype, iinfo, int8, int16, int32, int64, promote_types, set_default_dtype, uint8)
from .dtypes import bool_ as bool  # noqa: F401,E402  (torch.bool, torch.float, ...: shadow builtins only here)
from .dtypes import float32 as float, float64 as double, float16 as half  # noqa: F401,E402
from .dtypes import int64 as long, int32 as int, int16 as short  # noqa: F401,E402
from .device import backends, cuda, device, DeviceError  # noqa: F401,E402
from .tensor import (BoolTensor, ByteTensor, CharTensor, DoubleTensor, FloatTensor, HalfTensor,  # noqa: F401,E402
                     IntTensor, LongTensor, ShortTensor, empty_like, is_floating_point, is_tensor, linspace,
                     result_type)
__version__ = "0.1.0"
from .mathfns import *  # noqa: F401,F403,E402  (tg.exp(x), tg.topk(x, k), tg.einsum(...): the math functions)


# ---- lazily reachable subpackages: `tg.models` and `tg.viz` import on first use (viz's drawing backends,
# graphviz and matplotlib, are imported by viz only when it draws).
def __getattr__(name: str):
    if name in ("models", "viz"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    if name in ops.METHODS:  # tg.<method>(x, ...) of an op that declares `method` (see ops.Function.method)
        return ops.METHODS[name].apply
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
# ---- tg.compile (issue 10): trace once, replay a flat NumPy program
from .compile import compile  # noqa: F401,E402
