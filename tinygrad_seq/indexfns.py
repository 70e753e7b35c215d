"""Indexing, gathering/scattering and sampling in PyTorch's vocabulary: `tg.flip(x, dims)`, `tg.scatter(...)`,
`tg.multinomial(...)`, ... (the Tensor methods of the same names call these).

Every function checks its arguments as PyTorch does and raises PyTorch's error (naming the function,
the offending index and the shapes) before computing anything: an out-of-range index is an error,
never wrapped around.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from . import ops
from .tensor import Tensor, _shape_arg, rng
from .tensor import where as _where3


def _index(fn: str, index, kinds: str = "iu") -> np.ndarray:
    idx = index.numpy() if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in kinds:
        raise RuntimeError(f"{fn}(): Expected dtype int32/int64 for index, got {idx.dtype}")
    return idx


def _check_range(fn: str, idx: np.ndarray, n: int, dim: int, err=RuntimeError) -> None:
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= n:
            raise err(f"{fn}(): index {lo if lo < 0 else hi} is out of bounds for dimension {dim} with size {n}")


def _dims(fn: str, dims, x: Tensor) -> tuple:
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    out = tuple(ops._dim(int(d), x.ndim, fn, x.shape) for d in dims)
    for d in out:
        if out.count(d) > 1:
            raise RuntimeError(f"{fn}: dim {d} appears multiple times in the list of dims")
    return out


def _check_scatter_shapes(fn: str, x: Tensor, dim: int, idx: np.ndarray, src_shape: tuple | None) -> None:
    """torch: index.size(d) <= src.size(d) for every d, and <= self.size(d) for d != dim."""
    if idx.ndim != x.ndim or (src_shape is not None and len(src_shape) != x.ndim):
        raise RuntimeError(f"{fn}(): Index tensor must have the same number of dimensions as input tensor: index "
                           f"shape {idx.shape}, input shape {x.shape}"
                           + (f", src shape {src_shape}" if src_shape is not None else ""))
    bad = any(i > s for d, (i, s) in enumerate(zip(idx.shape, x.shape)) if d != dim)
    if src_shape is not None:
        bad = bad or any(i > s for i, s in zip(idx.shape, src_shape))
    if bad:
        raise RuntimeError(f"{fn}(): Expected index {list(idx.shape)} to be no larger than self {list(x.shape)} apart "
                           f"from dimension {dim}" + (f" and to be no larger size than src {list(src_shape)}"
                                                      if src_shape is not None else ""))


# ---------------------------------------------------------------- gather / scatter

def gather(input: Tensor, dim: int, index) -> Tensor:
    """out[i][j] = input[i][index[i][j]] along dim (index no larger than input in the other dims)."""
    idx = _index("gather", index)
    if idx.ndim != input.ndim:
        raise RuntimeError(f"gather(): Index tensor must have the same number of dimensions as input tensor: "
                           f"index shape {idx.shape}, input shape {input.shape}")
    d = ops._dim(dim, input.ndim, "gather", input.shape)
    for k, (i, s) in enumerate(zip(idx.shape, input.shape)):
        if k != d and i > s:
            raise RuntimeError(f"gather(): Size does not match at dimension {k} expected index {list(idx.shape)} "
                               f"to be no larger than self {list(input.shape)} apart from dimension {d}")
    _check_range("gather", idx, input.shape[d] if input.ndim else 1, d)
    return ops.Gather.apply(input, index=idx, dim=d)


def scatter(input: Tensor, dim: int, index, src=None, value=None, *, reduce: str | None = None) -> Tensor:
    """out = input with out[i][index[i][j]] = src[i][j] along dim (src a tensor, or a number `value`);
    reduce='add'/'multiply' combine instead (not differentiable, as in PyTorch)."""
    if src is not None and not isinstance(src, Tensor):
        src, value = None, src
    if src is None and value is None:
        raise TypeError("scatter(): expected a src tensor or a value")
    if reduce not in (None, "add", "multiply"):
        raise RuntimeError(f"scatter(): reduce argument must be either add or multiply, got {reduce!r}")
    idx = _index("scatter", index)
    d = ops._dim(dim, input.ndim, "scatter", input.shape)
    _check_scatter_shapes("scatter", input, d, idx, None if src is None else src.shape)
    if src is not None and src.dtype != input.dtype:
        raise RuntimeError(f"scatter(): Expected self.dtype to be equal to src.dtype, got {input.dtype} and {src.dtype}")
    _check_range("scatter", idx, input.shape[d], d)
    kw = dict(index=idx, dim=d, reduce=reduce, differentiable=reduce is None)
    if src is None:
        return ops.Scatter.apply(input, value=value, **kw)
    return ops.Scatter.apply(input, src, **kw)


def scatter_add(input: Tensor, dim: int, index, src: Tensor) -> Tensor:
    """out = input;  out[i][index[i][j]] += src[i][j] along dim (repeats accumulate)."""
    idx = _index("scatter_add", index)
    d = ops._dim(dim, input.ndim, "scatter_add", input.shape)
    _check_scatter_shapes("scatter_add", input, d, idx, src.shape)
    if src.dtype != input.dtype:
        raise RuntimeError(f"scatter_add(): Expected self.dtype to be equal to src.dtype, got {input.dtype} and {src.dtype}")
    _check_range("scatter_add", idx, input.shape[d], d)
    return ops.Scatter.apply(input, src, index=idx, dim=d, reduce="add", differentiable=True)


def _vector_index(fn: str, index) -> np.ndarray:
    idx = _index(fn, index)
    if idx.ndim > 1:
        raise IndexError(f"{fn}(): Index is supposed to be a vector, got shape {idx.shape}")
    return idx.reshape(-1)


def index_select(input: Tensor, dim: int, index) -> Tensor:
    """out = input[..., index, ...] along dim (index 1-D, repeats allowed)."""
    idx = _vector_index("index_select", index)
    d = ops._dim(dim, input.ndim, "index_select", input.shape)
    if input.ndim == 0:
        input = input.reshape(1)
    _check_range("index_select", idx, input.shape[d], d, IndexError)
    return ops.IndexSelect.apply(input, index=idx, dim=d)


def index_add(input: Tensor, dim: int, index, source: Tensor, *, alpha=1) -> Tensor:
    """out = input;  out[..., index[i], ...] += alpha * source[..., i, ...] along dim."""
    idx = _vector_index("index_add", index)
    d = ops._dim(dim, input.ndim, "index_add", input.shape)
    if source.ndim != input.ndim or any(a != b for k, (a, b) in enumerate(zip(input.shape, source.shape)) if k != d):
        raise RuntimeError("index_add(): source tensor shape must match self tensor shape, excluding the specified "
                           f"dimension. Got self.shape = {list(input.shape)} source.shape = {list(source.shape)}")
    if idx.size != source.shape[d]:
        raise RuntimeError(f"index_add(): Number of indices ({idx.size}) should be equal to source.size(dim): "
                           f"({source.shape[d]}), for dim: {d}")
    if source.dtype != input.dtype:
        raise RuntimeError(f"index_add(): self ({input.dtype}) and source ({source.dtype}) must have the same scalar type")
    _check_range("index_add", idx, input.shape[d], d)
    return ops.IndexAdd.apply(input, source, index=idx, dim=d, alpha=alpha)


def take_along_dim(input: Tensor, indices, dim: int | None = None) -> Tensor:
    """out = gather(input, dim, indices) with input and indices broadcast against each other outside dim;
    dim=None: both flattened."""
    idx = _index("take_along_dim", indices)
    if dim is None:
        return gather(input.reshape(-1), 0, idx.reshape(-1))
    if idx.ndim != input.ndim:
        raise RuntimeError(f"take_along_dim(): input and indices should have the same number of dimensions, but "
                           f"got {input.ndim} dimensions for input, and {idx.ndim} dimensions for indices")
    d = ops._dim(dim, input.ndim, "take_along_dim", input.shape)
    a, b = list(input.shape), list(idx.shape)
    a[d] = b[d] = 1
    try:
        common = list(np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        raise RuntimeError(f"take_along_dim(): input shape {input.shape} and indices shape {idx.shape} do not "
                           f"broadcast outside dim {d}") from None
    xs, ids = list(common), list(common)
    xs[d], ids[d] = input.shape[d], idx.shape[d]
    x = input.expand(tuple(xs)) if tuple(xs) != input.shape else input
    return gather(x, d, np.broadcast_to(idx, tuple(ids)))


def masked_select(input: Tensor, mask) -> Tensor:
    """out = the entries of input where mask (broadcast together) is True, as a 1-D tensor."""
    m = mask.numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask, got {m.dtype}")
    try:
        shape = np.broadcast_shapes(input.shape, m.shape)
    except ValueError:
        raise RuntimeError(f"masked_select: mask shape {m.shape} and input shape {input.shape} do not broadcast") from None
    x = input.expand(shape) if shape != input.shape else input
    return ops.GetItem.apply(x, index=np.broadcast_to(m, shape))


def masked_fill(input: Tensor, mask, value) -> Tensor:
    return input.masked_fill(mask, value)


def nonzero(input: Tensor, *, as_tuple: bool = False):
    """Indices of the nonzero entries: an int64 (N, ndim) tensor, or (as_tuple) one 1-D tensor per dim."""
    a = input.numpy()
    if as_tuple:
        return tuple(Tensor._wrap(i.astype(np.int64)) for i in np.nonzero(np.atleast_1d(a)))
    return Tensor._wrap(np.argwhere(a).astype(np.int64))


def argwhere(input: Tensor) -> Tensor:
    return nonzero(input)


def where(condition, input=None, other=None):
    """where(cond, x, y): elementwise cond ? x : y;  where(cond): nonzero(cond, as_tuple=True)."""
    if input is None and other is None:
        return nonzero(condition if isinstance(condition, Tensor) else Tensor(condition), as_tuple=True)
    return _where3(condition, input, other)


# ---------------------------------------------------------------- reordering and views

def flip(input: Tensor, dims) -> Tensor:
    """out = input reversed along every dim in dims."""
    return ops.Flip.apply(input, dims=_dims("flip", dims, input))


def roll(input: Tensor, shifts, dims=None) -> Tensor:
    """Shift cyclically along dims (the flattened tensor when dims is None, then reshaped back)."""
    shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"roll(): shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
        return ops.Roll.apply(input, shifts=int(shifts[0]), dims=None)
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"roll(): shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    dims = tuple(ops._dim(int(d), input.ndim, "roll", input.shape) for d in dims)
    return ops.Roll.apply(input, shifts=tuple(int(s) for s in shifts), dims=dims)


def repeat_interleave(input: Tensor, repeats=None, dim: int | None = None, *, output_size: int | None = None) -> Tensor:
    """Repeat each entry along dim repeats[i] times (repeats an int or a 1-D tensor; the flattened input
    when dim is None). With one argument, repeat_interleave(r) = arange(len(r)) repeated r times."""
    if repeats is None:
        r = _index("repeat_interleave", input)
        if r.ndim != 1 or (r.size and r.min() < 0):
            raise RuntimeError("repeat_interleave(): repeats must be 1-d and non-negative")
        return Tensor._wrap(np.repeat(np.arange(r.size, dtype=np.int64), r))
    if dim is None:
        input, d = input.reshape(-1), 0
    else:
        d = ops._dim(dim, input.ndim, "repeat_interleave", input.shape)
        if input.ndim == 0:
            input = input.reshape(1)
    n = input.shape[d]
    if isinstance(repeats, (int, np.integer)):
        if repeats < 0:
            raise RuntimeError(f"repeat_interleave(): Repeats must be non-negative, got {repeats}")
        r = np.full(n, int(repeats))
    else:
        r = _index("repeat_interleave", repeats)
        if r.ndim > 1:
            raise RuntimeError(f"repeat_interleave(): repeats must be 0-dim or 1-dim tensor, got shape {r.shape}")
        r = r.reshape(-1)
        if r.size == 1:
            r = np.full(n, int(r[0]))
        elif r.size != n:
            raise RuntimeError(f"repeat_interleave(): repeats must have the same size as input along dim, but got "
                               f"repeats.size(0) = {r.size} and input.size({d}) = {n}")
        if r.size and r.min() < 0:
            raise RuntimeError("repeat_interleave(): repeats can not be negative")
    idx = np.repeat(np.arange(n), r)
    if output_size is not None and output_size != idx.size:
        raise RuntimeError(f"repeat_interleave(): output_size {output_size} != the repeats' sum {idx.size}")
    return ops.IndexSelect.apply(input, index=idx, dim=d)


def narrow(input: Tensor, dim: int, start, length: int) -> Tensor:
    """input[..., start:start + length, ...] along dim (a negative start counts from the end)."""
    d = ops._dim(dim, input.ndim, "narrow", input.shape)
    n, start, length = input.shape[d], int(start), int(length)
    if not -n <= start <= n:
        raise IndexError(f"narrow(): start out of range (expected to be in range of [{-n}, {n}], but got {start})")
    if length < 0:
        raise RuntimeError(f"narrow(): length must be non-negative, got {length}")
    start %= n if n else 1
    if start + length > n:
        raise RuntimeError(f"narrow(): start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return ops.GetItem.apply(input, index=(slice(None),) * d + (slice(start, start + length),))


def select(input: Tensor, dim: int, index: int) -> Tensor:
    """input[..., index, ...] along dim (that dim removed)."""
    d = ops._dim(dim, input.ndim, "select", input.shape)
    n, i = input.shape[d], int(index)
    if not -n <= i < n:
        raise IndexError(f"select(): index {i} out of range for tensor of size {list(input.shape)} at dimension {d}")
    return ops.GetItem.apply(input, index=(slice(None),) * d + (i % n, Ellipsis))


def movedim(input: Tensor, source, destination) -> Tensor:
    """Move the dims `source` to the positions `destination`; the other dims keep their order."""
    src = (source,) if isinstance(source, (int, np.integer)) else tuple(source)
    dst = (destination,) if isinstance(destination, (int, np.integer)) else tuple(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} dims) should contain "
                           f"the same number of dims as destination ({list(dst)} dims)")
    src = tuple(ops._dim(int(s), input.ndim, "movedim", input.shape) for s in src)
    dst = tuple(ops._dim(int(s), input.ndim, "movedim", input.shape) for s in dst)
    for name, ds in (("source", src), ("destination", dst)):
        if len(set(ds)) != len(ds):
            raise RuntimeError(f"movedim: repeated dim in `{name}` ({list(ds)})")
    order = [k for k in range(input.ndim) if k not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return input.permute(*order) if input.ndim else input


moveaxis = movedim


def swapaxes(input: Tensor, axis0: int, axis1: int) -> Tensor:
    return input.transpose(axis0, axis1)


def swapdims(input: Tensor, dim0: int, dim1: int) -> Tensor:
    return input.transpose(dim0, dim1)


def t(input: Tensor) -> Tensor:
    """The transpose of a 2-D tensor (0-d and 1-d come back as they are)."""
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return input.transpose(0, 1) if input.ndim == 2 else input


def unflatten(input: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """Split dim into `sizes` (one of them may be -1)."""
    d = ops._dim(dim, input.ndim, "unflatten", input.shape)
    sizes = tuple(int(s) for s in sizes)
    n, known = input.shape[d], math.prod(s for s in sizes if s != -1)
    if not sizes or sizes.count(-1) > 1 or (-1 in sizes and (known == 0 or n % known)) or \
            (-1 not in sizes and known != n):
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {d} ({n}) "
                           "in the input tensor")
    sizes = tuple(n // known if s == -1 else s for s in sizes)
    return input.reshape(input.shape[:d] + sizes + input.shape[d + 1:])


# ---------------------------------------------------------------- sampling (draws from tg.rng())

def _gen(generator) -> np.random.Generator:
    return rng() if generator is None else generator


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    """int64 indices drawn from each row of (unnormalised) probabilities `input` (1-D or 2-D); without
    replacement by the exponential race (the num_samples largest p_i / E_i, E_i ~ Exp(1))."""
    p = input.numpy()
    if p.dtype.kind != "f":
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: {p.dtype}")
    if p.ndim not in (1, 2):
        raise RuntimeError(f"multinomial(): prob_dist must be 1 or 2 dim, got shape {p.shape}")
    if num_samples <= 0:
        raise RuntimeError(f"multinomial(): cannot sample n_sample <= 0 samples (got {num_samples})")
    n = p.shape[-1]
    if not replacement and num_samples > n:
        raise RuntimeError(f"multinomial(): cannot sample n_sample > prob_dist.size(-1) samples without "
                           f"replacement ({num_samples} > {n})")
    if not np.all(np.isfinite(p)) or (p < 0).any():
        raise RuntimeError("multinomial(): probability tensor contains either `inf`, `nan` or element < 0")
    rows = p.reshape(-1, n).astype(np.float64)
    total = rows.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise RuntimeError("multinomial(): invalid multinomial distribution (sum of probabilities <= 0)")
    g = _gen(generator)
    if replacement:
        cdf = np.cumsum(rows, axis=1)
        u = g.random((rows.shape[0], num_samples)) * total
        out = np.stack([np.searchsorted(c, ui, side="right") for c, ui in zip(cdf, u)])
        out = np.minimum(out, n - 1)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):  # a draw E = 0 gives key inf (0/0: NaN, sorted last)
            keys = rows / g.exponential(size=rows.shape)
        out = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    return Tensor._wrap(out.reshape(p.shape[:-1] + (num_samples,)).astype(np.int64))


def bernoulli(input: Tensor, p: float | None = None, *, generator=None) -> Tensor:
    """out_i ~ Bernoulli(input_i) (or Bernoulli(p) for every entry when p is given), in input's dtype."""
    if input.dtype.kind != "f":
        raise NotImplementedError(f"bernoulli(): not implemented for dtype {input.dtype} (use a float tensor)")
    if p is None:
        prob = input.numpy()
        if not np.all((prob >= 0) & (prob <= 1)):
            raise RuntimeError("bernoulli(): Expected p_in >= 0 && p_in <= 1 to be true, but got false "
                               "(every probability must lie in [0, 1])")
    else:
        if not 0 <= p <= 1:
            raise RuntimeError(f"bernoulli(): bernoulli_ expects p to be in [0, 1], but got p={p}")
        prob = p
    return Tensor._wrap((_gen(generator).random(input.shape) < prob).astype(input.dtype))


def randperm(n: int, *, generator=None, dtype=np.int64, requires_grad: bool = False) -> Tensor:
    """A random permutation of 0..n-1 (int64)."""
    if n < 0:
        raise RuntimeError(f"randperm(): Trying to create tensor with negative dimension {n}: [{n}]")
    return Tensor(_gen(generator).permutation(n).astype(np.dtype(dtype)), requires_grad=requires_grad)


def randint_like(input: Tensor, low: int = 0, high: int | None = None, *, dtype=None) -> Tensor:
    """Integers uniform in [low, high) with input's shape (and dtype unless given); randint_like(x, high)."""
    if high is None:
        low, high = 0, low
    if high <= low:
        raise RuntimeError(f"randint_like(): random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    dt = np.dtype(dtype) if dtype is not None else input.dtype
    return Tensor._wrap(rng().integers(low, high, size=input.shape).astype(dt))


def normal(mean, std=1.0, size: Sequence[int] | None = None, *, generator=None, dtype=None) -> Tensor:
    """Samples of N(mean, std²) (mean and std tensors or numbers, broadcast; numbers need `size`).
    The result carries no graph (PyTorch gives mean and std a zero gradient)."""
    m = mean.numpy() if isinstance(mean, Tensor) else np.asarray(mean)
    s = std.numpy() if isinstance(std, Tensor) else np.asarray(std)
    if (s < 0).any():
        raise RuntimeError(f"normal(): normal expects std >= 0.0, but found std {s.min()}")
    shape = tuple(_shape_arg(tuple(size))) if size is not None else np.broadcast_shapes(m.shape, s.shape)
    ref = mean if isinstance(mean, Tensor) else std if isinstance(std, Tensor) else None
    dt = np.dtype(dtype) if dtype is not None else (ref.dtype if ref is not None else np.dtype(np.float32))
    return Tensor._wrap((m + s * _gen(generator).standard_normal(shape)).astype(dt))


# ---------------------------------------------------------------- the Tensor methods of these functions
# (x.flip(dims) is flip(x, dims), ...): registered here, in the module that builds on Tensor (early tinygrad's
# `register`), so tensor.py needs no import of this one.

def _flip_method(self, *dims) -> Tensor:
    if not dims:
        raise TypeError('flip() missing 1 required positional arguments: "dims"')
    return flip(self, _shape_arg(dims))


def _nonzero_method(self, *, as_tuple: bool = False):
    return nonzero(self, as_tuple=as_tuple)


_METHODS = {"gather": gather, "flip": _flip_method, "roll": roll, "index_select": index_select,
            "masked_select": masked_select, "nonzero": _nonzero_method, "argwhere": argwhere,
            "scatter": scatter, "scatter_add": scatter_add, "index_add": index_add, "take_along_dim": take_along_dim,
            "narrow": narrow, "select": select, "movedim": movedim, "moveaxis": movedim, "t": t,
            "unflatten": unflatten, "repeat_interleave": repeat_interleave, "multinomial": multinomial,
            "bernoulli": bernoulli}
for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
