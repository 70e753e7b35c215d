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
