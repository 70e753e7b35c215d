"""Recurrent cells (RNN, LSTM incl. peephole, GRU in PyTorch's and Cho's form), composed from engine ops.

Each kind has a *kernel* (project, step, cols): `project(x)` maps inputs (any leading dims) to the input
part of every gate in ONE matmul, `x W_ihᵀ + b` (with the hidden biases that are not gated folded in);
`step(xs_t, state)` does one time step with the recurrent matmul and the gate math only, where xs_t holds
the column blocks `cols` of that step's projection (sliced straight from the projection, so the backward
pass writes each step's gradient into one buffer). The layers (models/rnn.py) project a whole (T, B, D)
sequence at once and call `step` per t; the cells below project one step.

Gate order and parameter layout are PyTorch's (LSTM rows i, f, g, o; GRU rows r, z, n), so copying a
torch module's `state_dict()` reproduces its outputs and gradients.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq import ops
from tinygrad_seq.nn import Module, Parameter
from tinygrad_seq.tensor import Tensor

State = tuple  # (h,) for RNN/GRU, (h, c) for LSTM; None entries stand for a zero initial state

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
ALL = (slice(None),)  # `cols` of a kernel that uses its whole projection
# LSTM gates: one sigmoid over all 4H columns (fewest ops: best while per-op overhead dominates), or from
# batch * hidden >= this, a sigmoid per gate (no wasted quarter, no gradient buffer for the sigmoid's output)
LSTM_SPLIT_MIN = 1024


def step_inputs(xw: Tensor, cols: tuple, t: int | None = None) -> tuple:
    """The column blocks `cols` of step t of a projection (T, B, G) (t=None: xw is one step (B, G))."""
    if t is None:
        return (xw,) if cols is ALL else tuple(ops.GetItem.apply(xw, index=(Ellipsis, c)) for c in cols)
    return tuple(ops.GetItem.apply(xw, index=(t, Ellipsis, c)) for c in cols)


def _lin(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    return ops.Linear.apply(x, w) if b is None else ops.Linear.apply(x, w, b)


def _cols(lo: int, hi: int) -> tuple:
    """index of columns lo:hi of a (B, G) tensor (prebuilt once per kernel, used every step)"""
    return (slice(None), slice(lo, hi))


# ------------------------------------------------------------------------------------------ kernels

def rnn_kernel(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
               nonlinearity: str = "tanh") -> tuple[Callable, Callable, tuple]:
    """h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh),  act = tanh or relu"""
    b = _fold(b_ih, b_hh)
    act = ops.Tanh.apply if nonlinearity == "tanh" else ops.Relu.apply

    def project(x: Tensor) -> Tensor:
        return _lin(x, w_ih, b)

    def step(xs: tuple, state: State) -> State:
        h = state[0]
        pre = xs[0] if h is None else ops.Linear.apply(h, w_hh, xs[0])
        return (act(pre),)
    return project, step, ALL


def lstm_kernel(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
                w_hr: Tensor | None = None, peephole: Sequence[Tensor] | None = None) -> tuple[Callable, Callable, tuple]:
    """i, f, g, o = σ, σ, tanh, σ of the slices of  a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh;
    c_t = f_t * c_{t-1} + i_t * g_t,  h_t = o_t * tanh(c_t)  (with proj_size: h_t = W_hr (o_t * tanh(c_t))).

    Peephole (`peephole=(w_ci, w_cf, w_co)`, diagonal): i_t = σ(a_i + w_ci * c_{t-1}),
    f_t = σ(a_f + w_cf * c_{t-1}), o_t = σ(a_o + w_co * c_t).
    """
    b = _fold(b_ih, b_hh)
    H = w_hh.shape[0] // 4
    I, F, G, O = _cols(0, H), _cols(H, 2 * H), _cols(2 * H, 3 * H), _cols(3 * H, 4 * H)
    sigmoid, tanh, mul, add, sl = ops.Sigmoid.apply, ops.Tanh.apply, ops.Mul.apply, ops.Add.apply, ops.GetItem.apply

    def project(x: Tensor) -> Tensor:
        return _lin(x, w_ih, b)

    def step(xs: tuple, state: State) -> State:
        h, c = state
        a = xs[0] if h is None else ops.Linear.apply(h, w_hh, xs[0])
        g = tanh(sl(a, index=G))
        if peephole is None and a.numpy().shape[0] * H >= LSTM_SPLIT_MIN:
            i, o = sigmoid(sl(a, index=I)), sigmoid(sl(a, index=O))
            c_new = mul(i, g) if c is None else add(mul(sigmoid(sl(a, index=F)), c), mul(i, g))
        elif peephole is None:
            s = sigmoid(a)
            i, o = sl(s, index=I), sl(s, index=O)
            c_new = mul(i, g) if c is None else add(mul(sl(s, index=F), c), mul(i, g))
        else:
            w_ci, w_cf, w_co = peephole
            if c is None:  # c_{t-1} = 0: the i and f peepholes see nothing, f_t * c_{t-1} vanishes
                c_new = mul(sigmoid(sl(a, index=I)), g)
            else:
                i = sigmoid(add(sl(a, index=I), mul(w_ci, c)))
                f = sigmoid(add(sl(a, index=F), mul(w_cf, c)))
                c_new = add(mul(f, c), mul(i, g))
            o = sigmoid(add(sl(a, index=O), mul(w_co, c_new)))
        h_new = mul(o, tanh(c_new))
        if w_hr is not None:
            h_new = ops.Linear.apply(h_new, w_hr)
        return h_new, c_new
    return project, step, ALL


def gru_kernel(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
               variant: str = "pytorch") -> tuple[Callable, Callable, tuple]:
    """r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr),  z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz),
    PyTorch:  n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    Cho:      n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)   (reset before the matmul)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}  = n_t + z_t * (h_{t-1} - n_t).
    """
    H = w_hh.shape[0] // 3
    R, Z = _cols(0, H), _cols(H, 2 * H)
    sl = ops.GetItem.apply
    cho = variant == "cho"
    # b_hn sits inside r_t * (...) in PyTorch's form, so only b_hr, b_hz fold into the input projection there
    if b_ih is None or cho:
        b, b_hn = _fold(b_ih, b_hh), None
    else:
        keep = np.ones(3 * H, b_hh.dtype)
        keep[2 * H:] = 0
        b, b_hn = b_ih + b_hh * keep, sl(b_hh, index=slice(2 * H, 3 * H))
    w_hrz, w_hn = sl(w_hh, index=slice(0, 2 * H)), sl(w_hh, index=slice(2 * H, 3 * H))
    sigmoid, tanh, mul, add, sub = ops.Sigmoid.apply, ops.Tanh.apply, ops.Mul.apply, ops.Add.apply, ops.Sub.apply

    def project(x: Tensor) -> Tensor:
        return _lin(x, w_ih, b)

    def step(xs: tuple, state: State) -> State:
        x_rz, x_n = xs
        h = state[0]
        rz = sigmoid(x_rz if h is None else ops.Linear.apply(h, w_hrz, x_rz))
        r, z = sl(rz, index=R), sl(rz, index=Z)
        if h is None:  # h_{t-1} = 0: W_hn h_{t-1} vanishes
            pre = x_n if b_hn is None else add(x_n, mul(r, b_hn))
        elif cho:
            pre = ops.Linear.apply(mul(r, h), w_hn, x_n)
        else:
            pre = add(x_n, mul(r, _lin(h, w_hn, b_hn)))
        n = tanh(pre)
        if h is None:
            return (sub(n, mul(z, n)),)
        return (add(n, mul(z, sub(h, n))),)
    return project, step, (slice(0, 2 * H), slice(2 * H, 3 * H))


def _fold(b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
    """b_ih + b_hh, added once per forward instead of once per step"""
    return None if b_ih is None else b_ih + b_hh


# ------------------------------------------------------------------------------------------ init

def check_sizes(cls: str, input_size: int, hidden_size: int) -> None:
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{cls}: {name} must be a positive int, got {v!r}")


def uniform_param(shape: tuple, hidden_size: int, dtype) -> Parameter:
    """U(-1/√H, 1/√H), PyTorch's init for every recurrent weight and bias"""
    k = 1.0 / math.sqrt(hidden_size)
    return Parameter(tg.rng().uniform(-k, k, shape).astype(np.dtype(dtype or np.float32)))


def init_forget_bias(b_ih: Parameter | None, b_hh: Parameter | None, hidden_size: int,
                     forget_bias: float = 0.0, chrono_init: float | None = None, who: str = "LSTM") -> None:
    """forget_bias: b_f += forget_bias.  chrono_init=T_max (Tallec & Ollivier 2018):
    b_f = log(u), u ~ U(1, T_max - 1), b_i = -b_f (bias_hh's i and f slices zeroed so these are the sums)."""
    if (forget_bias or chrono_init is not None) and b_ih is None:
        raise ValueError(f"{who}: forget_bias / chrono_init need bias=True")
    if forget_bias and chrono_init is not None:
        raise ValueError(f"{who}: give forget_bias or chrono_init, not both")
    H = hidden_size
    if chrono_init is not None:
        if not chrono_init > 2:
            raise ValueError(f"{who}: chrono_init (T_max) must be > 2, got {chrono_init}")
        bf = np.log(tg.rng().uniform(1.0, chrono_init - 1.0, H))
        b_ih.numpy()[H:2 * H] = bf
        b_ih.numpy()[:H] = -bf
        b_hh.numpy()[:2 * H] = 0
    elif forget_bias:
        b_ih.numpy()[H:2 * H] += forget_bias


def validate_input(who: str, x, input_size: int, dtype, ndims: tuple) -> Tensor:
    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x))
    if x.ndim not in ndims:
        raise ValueError(f"{who}: expected input of {' or '.join(map(str, ndims))} dims, got shape {x.shape}")
    if x.shape[-1] != input_size:
        raise ValueError(f"{who}: input.size(-1) must be equal to input_size: expected {input_size}, "
                         f"got shape {x.shape}")
    if x.dtype != dtype:
        raise TypeError(f"{who}: input dtype {x.dtype} differs from the parameters' dtype {dtype} "
                        "(convert one of them, e.g. x.double() or module.double())")
    return x


def name_state(state: State) -> State:
    """Mark the per-step states for the visualizer: `.name` "h" (and "c")."""
    state[0].name = "h"
    if len(state) > 1:
        state[1].name = "c"
    return state


# ------------------------------------------------------------------------------------------ cells

class _CellBase(Module):
    mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None):
        super().__init__()
        cls = type(self).__name__
        check_sizes(cls, input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        G = GATES[self.mode] * hidden_size
        self.weight_ih = uniform_param((G, input_size), hidden_size, dtype)
        self.weight_hh = uniform_param((G, hidden_size), hidden_size, dtype)
        if bias:
            self.bias_ih = uniform_param((G,), hidden_size, dtype)
            self.bias_hh = uniform_param((G,), hidden_size, dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def _kernel(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _state(self, x: Tensor, hx, n: int, unbatched: bool) -> State:
        """hx -> a state tuple of (B, H) tensors (None = zeros), checking every shape"""
        if hx is None:
            return (None,) * n
        parts = (hx,) if n == 1 else tuple(hx)
        if len(parts) != n:
            raise ValueError(f"{type(self).__name__}: hx must be a tuple (h_0, c_0), got {len(parts)} tensors")
        want = (self.hidden_size,) if unbatched else (x.shape[0], self.hidden_size)
        out = []
        for name, p in zip(("h_0", "c_0"), parts):
            p = p if isinstance(p, Tensor) else Tensor(np.asarray(p))
            if p.shape != want:
                raise ValueError(f"{type(self).__name__}: {name} must have shape {want} for input of shape "
                                 f"{x.shape}, got {p.shape}")
            out.append(p.unsqueeze(0) if unbatched else p)
        return tuple(out)

    def _run(self, x, hx, n: int):
        who = type(self).__name__
        x = validate_input(who, x, self.input_size, self.weight_ih.dtype, (1, 2))
        unbatched = x.ndim == 1
        state = self._state(x, hx, n, unbatched)
        if unbatched:
            x = x.unsqueeze(0)
        project, step, cols = self._kernel()
        state = name_state(step(step_inputs(project(x), cols), state))
        if unbatched:
            state = tuple(s.squeeze(0) for s in state)
        return state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """Elman cell:  h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)  (nonlinearity='relu': max(0, ·)).
    `cell(x, hx=None) -> h'`, x: (B, input_size) or (input_size,), hx: (B, hidden_size) (zeros if None)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity

    def _kernel(self):
        return rnn_kernel(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._run(x, hx, 1)[0]


class LSTMCell(_CellBase):
    """c' = f * c + i * g,  h' = o * tanh(c'),  [i, f, g, o] = [σ, σ, tanh, σ](x W_ihᵀ + b_ih + h W_hhᵀ + b_hh).

    `cell(x, hx=None) -> (h', c')`, hx = (h, c). Beyond PyTorch: `peephole=True` adds diagonal weights
    weight_ci, weight_cf, weight_co (i, f see c, o sees c'); `forget_bias` adds to b_f at init;
    `chrono_init=T_max` draws b_f = log U(1, T_max - 1), b_i = -b_f.
    """
    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, peephole: bool = False,
                 forget_bias: float = 0.0, chrono_init: float | None = None, dtype=None):
        super().__init__(input_size, hidden_size, bias, dtype)
        self.peephole = bool(peephole)
        if peephole:
            for g in "ifo":
                setattr(self, f"weight_c{g}", uniform_param((hidden_size,), hidden_size, dtype))
        init_forget_bias(self.bias_ih, self.bias_hh, hidden_size, forget_bias, chrono_init, "LSTMCell")

    def _kernel(self):
        peep = (self.weight_ci, self.weight_cf, self.weight_co) if self.peephole else None
        return lstm_kernel(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, None, peep)

    def forward(self, x: Tensor, hx: tuple | None = None) -> tuple[Tensor, Tensor]:
        return self._run(x, hx, 2)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", peephole=True" if self.peephole else "")


class GRUCell(_CellBase):
    """r, z = σ(x W_i{r,z}ᵀ + b_i{r,z} + h W_h{r,z}ᵀ + b_h{r,z}),  h' = (1 - z) * n + z * h, with
    variant='pytorch' (default, torch.nn.GRUCell):  n = tanh(x W_inᵀ + b_in + r * (h W_hnᵀ + b_hn));
    variant='cho' (the notes' textbook GRU):       n = tanh(x W_inᵀ + b_in + (r * h) W_hnᵀ + b_hn).

    The notes write h' = (1 - z) h + z h̃; that z is 1 - this z (σ(-a) = 1 - σ(a)), a relabelling of the
    same model, so both variants keep PyTorch's parameter layout and z convention.
    """
    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, variant: str = "pytorch", dtype=None):
        if variant not in ("pytorch", "cho"):
            raise ValueError(f"GRUCell: variant must be 'pytorch' or 'cho', got {variant!r}")
        super().__init__(input_size, hidden_size, bias, dtype)
        self.variant = variant

    def _kernel(self):
        return gru_kernel(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.variant)

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._run(x, hx, 1)[0]

    def extra_repr(self) -> str:
        return super().extra_repr() + (", variant='cho'" if self.variant == "cho" else "")
