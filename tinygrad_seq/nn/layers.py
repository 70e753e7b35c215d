"""Layers with PyTorch's names, arguments, initialisation and reprs: Linear, Embedding, LayerNorm, Dropout,
Conv1d/Conv2d, pooling, containers (Sequential, ModuleList, ModuleDict), activations and losses.

Every layer's errors name the layer: a bad input shape is a ValueError "Conv2d(3, 8, ...): conv2d: ...".
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from ..device import check as check_device
from ..dtypes import get_default_dtype, to_dtype
from ..errors import EngineError
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Embedding", "LayerNorm", "Dropout", "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d",
           "Flatten", "Identity", "Sequential", "ModuleList", "ModuleDict", "ReLU", "GELU", "Tanh", "Sigmoid",
           "Softplus", "Softmax", "LogSoftmax", "MaxPool1d", "AvgPool1d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
           "LeakyReLU", "ELU", "SELU", "SiLU", "Mish", "Hardtanh", "ReLU6", "LogSigmoid", "Softsign", "Softmax2d",
           "Dropout1d", "Dropout2d", "MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss",
           "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss", "MultiMarginLoss"]


def _empty(shape: tuple, dtype, device=None) -> Parameter:
    check_device(device)  # `device=` as torch's layers take it: the CPU only
    return Parameter(np.empty(shape, get_default_dtype() if dtype is None else to_dtype(dtype)))


def _call(layer: Module, fn: Callable, *args, **kwargs):
    """Run a functional form, prefixing its shape errors with the layer's repr head."""
    try:
        return fn(*args, **kwargs)
    except ValueError as e:
        kind = type(e) if isinstance(e, EngineError) else ValueError
        raise kind(f"{type(layer).__name__}({layer.extra_repr()}): {e}") from None


# ---------------------------------------------------------------- linear, embedding, normalisation

class Linear(Module):
    """y = x Wᵀ + b;  W, b ~ U(-1/√in, 1/√in) (PyTorch's kaiming_uniform_(a=√5))"""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty((out_features, in_features), dtype, device)
        self.bias = _empty((out_features,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            k = 1 / math.sqrt(self.in_features) if self.in_features else 0
            init.uniform_(self.bias, -k, k)

    def forward(self, x: Tensor) -> Tensor:
        return _call(self, F.linear, x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """y = W[idx], W ~ N(0, 1) (row padding_idx zero and never updated); max_norm renormalises the looked-up
    rows of W in place, scale_grad_by_freq divides each row's gradient by its count in the batch"""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None, dtype=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings {num_embeddings}")
            padding_idx %= num_embeddings
        if sparse:
            raise NotImplementedError("Embedding: sparse=True (sparse gradients) is not supported; use sparse=False")
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = _empty((num_embeddings, embedding_dim), dtype, device)
            self.reset_parameters()
        else:
            w = _weight.numpy() if isinstance(_weight, Tensor) else np.asarray(_weight)
            if w.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: shape of _weight {w.shape} does not match "
                                 f"(num_embeddings, embedding_dim) = ({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(w, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> "Embedding":
        """An Embedding whose weight is (a copy of) the 2-D `embeddings`; freeze=True: not trained."""
        if embeddings.ndim != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional, "
                             f"got shape {tuple(embeddings.shape)}")
        arr = embeddings.numpy() if isinstance(embeddings, Tensor) else np.asarray(embeddings)
        rows, cols = arr.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=np.array(arr, copy=True), _freeze=freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.numpy()[self.padding_idx] = 0

    def forward(self, input) -> Tensor:
        return _call(self, F.embedding, input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                     self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        s += f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        s += f", max_norm={self.max_norm}" if self.max_norm is not None else ""
        s += f", norm_type={self.norm_type}" if self.norm_type != 2 else ""
        s += ", scale_grad_by_freq=True" if self.scale_grad_by_freq else ""
        return s


class LayerNorm(Module):
    """y = (x - μ) / √(σ² + ε) · γ + β over the trailing normalized_shape dims; γ = 1, β = 0"""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        ns = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else normalized_shape
        self.normalized_shape = tuple(int(n) for n in ns)
        self.eps, self.elementwise_affine, self.use_bias = eps, elementwise_affine, elementwise_affine and bias
        check_device(device)
        self.weight = init.ones_(_empty(self.normalized_shape, dtype)) if elementwise_affine else None
        self.bias = init.zeros_(_empty(self.normalized_shape, dtype)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return _call(self, F.layer_norm, x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.use_bias}")


class Dropout(Module):
    """y = x · m / (1 - p), m ~ Bernoulli(1 - p) in training mode; identity in eval mode"""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class _ConvNd(Module):
    """Shared init of Conv1d/Conv2d: W (out, in/groups, *k), W, b ~ U(-1/√fan_in, 1/√fan_in),
    fan_in = in_channels / groups · Π kernel_size. padding_mode 'reflect' / 'replicate' / 'circular' pads
    the input that way first (then no zero padding), as PyTorch."""
    _d = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__()
        name, d = type(self).__name__, self._d
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups!r}")
        if in_channels % groups != 0:
            raise ValueError(f"{name}: in_channels must be divisible by groups (in_channels={in_channels}, "
                             f"groups={groups})")
        if out_channels % groups != 0:
            raise ValueError(f"{name}: out_channels must be divisible by groups (out_channels={out_channels}, "
                             f"groups={groups})")
        if padding_mode not in F._PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {list(F._PADDING_MODES)}, but got "
                             f"padding_mode='{padding_mode}'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = F._tuple(kernel_size, d, "kernel_size", name)
        self.stride = F._tuple(stride, d, "stride", name)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and self.stride != (1,) * d:
                raise ValueError("padding='same' is not supported for strided convolutions")
        self.padding = padding if isinstance(padding, str) else F._tuple(padding, d, "padding", name)
        self.dilation = F._tuple(dilation, d, "dilation", name)
        self.groups, self.padding_mode = int(groups), padding_mode
        self.weight = _empty((out_channels, in_channels // groups) + self.kernel_size, dtype, device)
        self.bias = _empty((out_channels,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            k = 1 / math.sqrt(fan_in) if fan_in else 0
            init.uniform_(self.bias, -k, k)

    def _mode_widths(self) -> list:
        """(left, right) padding per spatial dim, for a non-zeros padding_mode."""
        if self.padding == "valid":
            return [(0, 0)] * self._d
        if self.padding == "same":
            total = F._same_total(self.kernel_size, self.dilation, self._d, type(self).__name__)
            return [(t // 2, t - t // 2) for t in total]
        return [(p, p) for p in self.padding]

    def _conv_forward(self, fn, input: Tensor) -> Tensor:
        if self.padding_mode != "zeros":
            if input.ndim not in (self._d + 1, self._d + 2):
                raise ValueError(f"{type(self).__name__}({self.extra_repr()}): expected a {self._d + 1}-D "
                                 f"(unbatched) or {self._d + 2}-D (batched) input, got shape {input.shape}")
            x = _call(self, F._conv_mode_pad, input, self._mode_widths(), self.padding_mode, type(self).__name__)
            return _call(self, fn, x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return _call(self, fn, input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        d = self._d
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * d:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * d:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """y[n,o,l] = b[o] + Σ_{c,k} W[o,c,k] xpad[n, g·C/G + c, l·stride + k·dilation], g = o's group
    (x: (N, C_in, L) or (C_in, L))"""
    _d = 1

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(F.conv1d, input)


class Conv2d(_ConvNd):
    """y[n,o,i,j] = b[o] + Σ_{c,ki,kj} W[o,c,ki,kj] xpad[n, g·C/G + c, i·s + ki·dil, j·s + kj·dil], g = o's group
    (x: (N, C_in, H, W) or (C_in, H, W))"""
    _d = 2

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(F.conv2d, input)


class _MaxPoolNd(Module):
    _fn: Callable = staticmethod(lambda *a, **k: None)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor):
        return _call(self, type(self)._fn, input, self.kernel_size, self.stride, self.padding, self.dilation,
                     self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """y[n,c,i] = max of the kernel_size window at i·stride (stride defaults to kernel_size)"""
    _fn = staticmethod(F.max_pool1d)


class MaxPool2d(_MaxPoolNd):
    """y[n,c,i,j] = max of the kernel_size window at (i·stride, j·stride) (stride defaults to kernel_size)"""
    _fn = staticmethod(F.max_pool2d)


class AvgPool1d(Module):
    """y[n,c,i] = mean of the kernel_size window at i·stride (zero padding counted if count_include_pad)"""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        one = lambda v, n: F._tuple(v, 1, n, "AvgPool1d")  # noqa: E731 - stored as 1-tuples, as torch
        self.kernel_size = one(kernel_size, "kernel_size")
        self.stride = one(stride if stride is not None else kernel_size, "stride")
        self.padding, self.ceil_mode, self.count_include_pad = one(padding, "padding"), ceil_mode, count_include_pad

    def forward(self, input: Tensor) -> Tensor:
        return _call(self, F.avg_pool1d, input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                     self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """y[n,c,i,j] = window sum / D at (i·stride, j·stride), D = divisor_override or the window size (zero
    padding counted if count_include_pad)"""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return _call(self, F.avg_pool2d, input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                     self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool1d(Module):
    """y[n,c,i] = mean of x[n, c, floor(i·L/out) : ceil((i+1)·L/out)]"""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return _call(self, F.adaptive_avg_pool1d, input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(AdaptiveAvgPool1d):
    """y[n,c,i,j] = mean of the box [floor(i·H/oh), ceil((i+1)·H/oh)) × [floor(j·W/ow), ceil((j+1)·W/ow))"""

    def forward(self, input: Tensor) -> Tensor:
        return _call(self, F.adaptive_avg_pool2d, input, self.output_size)


class Flatten(Module):
    """y = x reshaped with dims start_dim..end_dim merged into one"""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim and not (-x.ndim <= self.start_dim < x.ndim and -x.ndim <= self.end_dim < x.ndim):
            raise ValueError(f"Flatten({self.extra_repr()}): dims out of range for input shape {x.shape}")
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """y = x"""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


# ---------------------------------------------------------------- containers

def _set_child(container: Module, key: str, module: Module) -> None:
    """Register `module` under `key`, keeping the key's position when it already exists (as PyTorch)."""
    object.__setattr__(module, "_scope_name", key)
    container._modules[key] = module


def _index(i: int, n: int, name: str) -> int:
    if not -n <= i < n:
        raise IndexError(f"{name}: index {i} is out of range for length {n}")
    return i % n


class Sequential(Module):
    """y = m_n(... m_2(m_1(x))); children named "0", "1", ... (or by an OrderedDict's keys)"""

    def __init__(self, *modules: Module):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for k, m in modules[0].items():
                self.add_module(str(k), m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        items = list(self._modules.items())
        if isinstance(i, slice):
            return Sequential(OrderedDict(items[i]))
        return items[_index(i, len(items), "Sequential")][1]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules registered as children "0", "1", ... (so their parameters are found)"""

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return ModuleList(mods[i])
        return mods[_index(i, len(mods), "ModuleList")]

    def __setitem__(self, i: int, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: expected a Module, got {type(module).__name__}")
        _set_child(self, str(_index(i, len(self), "ModuleList")), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> "ModuleList":
        return self.extend(modules)

    def append(self, module: Module) -> "ModuleList":
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(): iterate over it")


class ModuleDict(Module):
    """A dict of modules registered as children under their keys"""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict: no module named {key!r} (keys: {list(self._modules)})")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: expected a Module for key {key!r}, got {type(module).__name__}")
        _set_child(self, key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for k, m in pairs:
            self[k] = m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(): index it")


# ---------------------------------------------------------------- activations

class ReLU(Module):
    """y = max(0, x)  (inplace=True writes y into x, as PyTorch)"""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class GELU(Module):
    """y = x Φ(x), or its tanh approximation (approximate='tanh')"""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu(self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    """y = tanh(x)"""
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    """y = 1 / (1 + e^-x)"""
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Softplus(Module):
    """y = ln(1 + e^{βx}) / β, linear where βx > threshold"""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class _Activation(Module):
    """An activation with keyword options stored as attributes (extra_repr lists them, as PyTorch)."""
    _fn: Callable = staticmethod(lambda x: x)
    _options: tuple[str, ...] = ()

    def forward(self, input: Tensor) -> Tensor:
        args = [getattr(self, k) for k in self._options]
        if "inplace" in self.__dict__:
            return type(self)._fn(input, *args, inplace=self.inplace)
        return type(self)._fn(input, *args)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)}" for k in self._options)


class LeakyReLU(_Activation):
    """y = x if x > 0 else negative_slope · x"""
    _fn, _options = staticmethod(F.leaky_relu), ("negative_slope",)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace


class ELU(_Activation):
    """y = x if x > 0 else α (e^x - 1)"""
    _fn, _options = staticmethod(F.elu), ("alpha",)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace


class SELU(_Activation):
    """y = scale · elu(x, α) (scale ≈ 1.0507, α ≈ 1.6733)"""
    _fn = staticmethod(F.selu)

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace


class SiLU(SELU):
    """y = x σ(x)"""
    _fn = staticmethod(F.silu)


class Mish(SELU):
    """y = x tanh(softplus(x))"""
    _fn = staticmethod(F.mish)


class Hardtanh(_Activation):
    """y = clamp(x, min_val, max_val) (gradient 0 at the bounds, as PyTorch)"""
    _fn, _options = staticmethod(F.hardtanh), ("min_val", "max_val")

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace


class ReLU6(SELU):
    """y = min(max(x, 0), 6)"""
    _fn = staticmethod(F.relu6)


class LogSigmoid(_Activation):
    """y = ln σ(x)"""
    _fn = staticmethod(F.logsigmoid)


class Softsign(_Activation):
    """y = x / (1 + |x|)"""
    _fn = staticmethod(F.softsign)


class Softmax2d(Module):
    """Softmax over the channels (dim -3) of (N, C, H, W) or (C, H, W) input"""

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected a 3-D or 4-D input, got shape {input.shape}")
        return input.softmax(-3)


class Dropout1d(Dropout):
    """Zero whole channels x[n, c, :] with probability p (training mode), scale the rest by 1 / (1 - p)"""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(Dropout):
    """Zero whole channels x[n, c, :, :] with probability p (training mode), scale the rest by 1 / (1 - p)"""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training, self.inplace)


class _DimModule(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def _check(self, x: Tensor) -> None:
        if not -max(x.ndim, 1) <= self.dim < max(x.ndim, 1):
            raise ValueError(f"{type(self).__name__}(dim={self.dim}): dim out of range for input shape {x.shape}")

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_DimModule):
    """y_i = e^{x_i} / Σ_j e^{x_j} along dim"""
    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return x.softmax(self.dim)


class LogSoftmax(_DimModule):
    """y_i = x_i - ln Σ_j e^{x_j} along dim"""
    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return x.log_softmax(self.dim)


# ---------------------------------------------------------------- losses (forward(input, target))

class _Loss(Module):
    _fn: Callable = staticmethod(lambda *a, **k: None)
    _options: tuple[str, ...] = ()

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input: Tensor, target) -> Tensor:
        kw = {k: getattr(self, k) for k in self._options}
        return _call(self, type(self)._fn, input, target, reduction=self.reduction, **kw)

    def extra_repr(self) -> str:
        return ""


class _WeightedLoss(_Loss):
    """Loss with a per-class `weight`, kept as a buffer (in state_dict, as PyTorch)."""

    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    """ℓ = (x - y)²"""
    _fn = staticmethod(F.mse_loss)


class L1Loss(_Loss):
    """ℓ = |x - y|"""
    _fn = staticmethod(F.l1_loss)


class HuberLoss(_Loss):
    """ℓ = ½ d² if |d| < δ else δ (|d| - ½ δ)"""
    _fn = staticmethod(F.huber_loss)
    _options = ("delta",)

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = delta


class SmoothL1Loss(_Loss):
    """ℓ = ½ d² / β if |d| < β else |d| - ½ β"""
    _fn = staticmethod(F.smooth_l1_loss)
    _options = ("beta",)

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        self.beta = beta


class CrossEntropyLoss(_WeightedLoss):
    """ℓ = nll_loss(log_softmax(x, 1), y) (see F.cross_entropy for weights, ignore_index, label smoothing)"""
    _fn = staticmethod(F.cross_entropy)
    _options = ("weight", "ignore_index", "label_smoothing")

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing


class NLLLoss(_WeightedLoss):
    """ℓ_n = -w[y_n] x[n, y_n] (x: log-probabilities)"""
    _fn = staticmethod(F.nll_loss)
    _options = ("weight", "ignore_index")

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index


class BCELoss(_WeightedLoss):
    """ℓ = -w (y ln p + (1 - y) ln(1 - p))"""
    _fn = staticmethod(F.binary_cross_entropy)
    _options = ("weight",)


class BCEWithLogitsLoss(_WeightedLoss):
    """ℓ = -w [p_w y ln σ(x) + (1 - y) ln(1 - σ(x))], stable for any logit"""
    _fn = staticmethod(F.binary_cross_entropy_with_logits)
    _options = ("weight", "pos_weight")

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(weight, reduction)
        self.register_buffer("pos_weight", pos_weight)


class KLDivLoss(_Loss):
    """ℓ = y (ln y - x), or e^y (y - x) with log_target (x: log-probabilities)"""
    _fn = staticmethod(F.kl_div)
    _options = ("log_target",)

    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction)
        self.log_target = log_target


class MultiMarginLoss(_WeightedLoss):
    """ℓ_n = Σ_{j ≠ y_n} w[y_n] max(0, margin - x[n, y_n] + x[n, j])^p / C"""
    _fn = staticmethod(F.multi_margin_loss)
    _options = ("p", "margin", "weight")

    def __init__(self, p: int = 1, margin: float = 1.0, weight=None, reduction: str = "mean"):
        super().__init__(weight, reduction)
        if p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: only p == 1 and p == 2 are supported, got {p}")
        self.p, self.margin = p, margin
