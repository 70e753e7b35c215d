"""Recurrent cells (RNN, LSTM incl. peephole, GRU in PyTorch's and Cho's form), each step written as its formula.

x_t below is the step's *input projection* x_t W_ihᵀ + b_ih (+ b_hh where it is not gated): the layers
(models/rnn.py) compute it for the whole (T, B, D) sequence in one matmul and hand each step its row, the
cells below for their one step. A step function then does the recurrent matmul and the gate math:

    lstm_step(x_t, h, c, W_hh)  ->  gates = x_t + h @ W_hh.T;  i, f, g, o = gates.chunk(4, -1);
                                    c = σ(f) * c + σ(i) * tanh(g);  h = σ(o) * tanh(c)

Gate order and parameter layout are PyTorch's (LSTM rows i, f, g, o; GRU rows r, z, n), so copying a
torch module's `state_dict()` reproduces its outputs and gradients.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq.nn import Module, Parameter
from tinygrad_seq.nn import functional as F
from tinygrad_seq.tensor import Tensor

State = tuple  # (h,) for RNN/GRU, (h, c) for LSTM

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ------------------------------------------------------------------------------------------ steps

def rnn_step(x_t: Tensor, h: Tensor, W_hh: Tensor, nonlinearity: str = "tanh") -> Tensor:
    """h_t = act(x_t + h_{t-1} W_hhᵀ),  x_t = x_t W_ihᵀ + b_ih + b_hh,  act = tanh or relu"""
    a = (x_t + h @ W_hh.T).named("a_t")
    return a.tanh() if nonlinearity == "tanh" else a.relu()


def lstm_step(x_t: Tensor, h: Tensor, c: Tensor, W_hh: Tensor, W_hr: Tensor | None = None) -> State:
    """i, f, g, o = chunks of  x_t + h_{t-1} W_hhᵀ  (x_t = x_t W_ihᵀ + b_ih + b_hh);
    c_t = σ(f) * c_{t-1} + σ(i) * tanh(g),  h_t = σ(o) * tanh(c_t)  (proj_size: h_t W_hrᵀ)"""
    a_i, a_f, a_g, a_o = (x_t + h @ W_hh.T).named("a_t").chunk(4, -1)
    i, f = a_i.sigmoid().named("i_t"), a_f.sigmoid().named("f_t")
    g, o = a_g.tanh().named("g_t"), a_o.sigmoid().named("o_t")
    c = f * c + i * g
    h = o * c.tanh()
    return (h, c) if W_hr is None else (h @ W_hr.T, c)


def peephole_lstm_step(x_t: Tensor, h: Tensor, c: Tensor, W_hh: Tensor, w_ci: Tensor, w_cf: Tensor,
                       w_co: Tensor, W_hr: Tensor | None = None) -> State:
    """The LSTM with diagonal peepholes: i = σ(a_i + w_ci * c_{t-1}),  f = σ(a_f + w_cf * c_{t-1}),
    c_t = f * c_{t-1} + i * tanh(a_g),  o = σ(a_o + w_co * c_t),  h_t = o * tanh(c_t)"""
    i, f, g, o = (x_t + h @ W_hh.T).named("a_t").chunk(4, -1)
    i, f = (i + w_ci * c).sigmoid().named("i_t"), (f + w_cf * c).sigmoid().named("f_t")
    c = f * c + i * g.tanh().named("g_t")
    h = (o + w_co * c).sigmoid().named("o_t") * c.tanh()
    return (h, c) if W_hr is None else (h @ W_hr.T, c)


def gru_step(x_t: Tensor, h: Tensor, W_hh: Tensor, b_hh: Tensor | float = 0.0) -> Tensor:
    """PyTorch's GRU (x_t = x_t W_ihᵀ + b_ih):  r = σ(x_r + h W_hrᵀ + b_hr),  z = σ(x_z + h W_hzᵀ + b_hz),
    n = tanh(x_n + r * (h W_hnᵀ + b_hn)),  h_t = (1 - z) * n + z * h_{t-1}"""
    x_r, x_z, x_n = x_t.chunk(3, -1)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).named("h_{t-1} W_hhᵀ + b_hh").chunk(3, -1)
    r, z = (x_r + h_r).sigmoid().named("r_t"), (x_z + h_z).sigmoid().named("z_t")
    n = (x_n + r * h_n).tanh().named("n_t")
    return (1 - z) * n + z * h


def cho_gru_step(x_t: Tensor, h: Tensor, W_hr: Tensor, W_hz: Tensor, W_hn: Tensor) -> Tensor:
    """Cho et al.'s GRU, reset before the matmul (x_t = x_t W_ihᵀ + b_ih + b_hh):  r = σ(x_r + h W_hrᵀ),
    z = σ(x_z + h W_hzᵀ),  n = tanh(x_n + (r * h) W_hnᵀ),  h_t = (1 - z) * n + z * h_{t-1}"""
    x_r, x_z, x_n = x_t.chunk(3, -1)
    r, z = (x_r + h @ W_hr.T).sigmoid().named("r_t"), (x_z + h @ W_hz.T).sigmoid().named("z_t")
    n = (x_n + (r * h) @ W_hn.T).tanh().named("n_t")
    return (1 - z) * n + z * h


# ------------------------------------------------------------------------------------------ kernels
# A kernel binds one layer/direction's weights: (W_ih, b, step) with x_t = x W_ihᵀ + b and
# step(x_t, *state) -> new state tuple.

def rnn_kernel(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
               nonlinearity: str = "tanh") -> tuple[Tensor, Tensor | None, Callable]:
    def step(x_t: Tensor, h: Tensor) -> State:
        return (rnn_step(x_t, h, w_hh, nonlinearity),)
    return w_ih, _fold(b_ih, b_hh), step


def lstm_kernel(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
                w_hr: Tensor | None = None, peephole: Sequence[Tensor] | None = None):
    if peephole is None:
        return w_ih, _fold(b_ih, b_hh), functools.partial(lstm_step, W_hh=w_hh, W_hr=w_hr)
    w_ci, w_cf, w_co = peephole
    return w_ih, _fold(b_ih, b_hh), functools.partial(peephole_lstm_step, W_hh=w_hh, w_ci=w_ci, w_cf=w_cf,
                                                      w_co=w_co, W_hr=w_hr)


def gru_kernel(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None, variant: str = "pytorch"):
    if variant == "cho":  # every bias sits outside the gating: all fold into x_t
        W_hr, W_hz, W_hn = w_hh.chunk(3, 0)

        def step(x_t: Tensor, h: Tensor) -> State:
            return (cho_gru_step(x_t, h, W_hr, W_hz, W_hn),)
        return w_ih, _fold(b_ih, b_hh), step

    def step(x_t: Tensor, h: Tensor) -> State:
        return (gru_step(x_t, h, w_hh, 0.0 if b_hh is None else b_hh),)
    return w_ih, b_ih, step


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
        raise tg.ShapeError(f"{who}: input.size(-1) must be equal to input_size: expected {input_size}, "
                            f"got shape {x.shape}")
    if x.dtype != dtype:
        raise tg.DtypeError(f"{who}: input dtype {x.dtype} differs from the parameters' dtype {dtype} "
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

    def kernel(self):  # pragma: no cover - abstract
        """(W_ih, b, step): the cell's input projection and its step formula (see `RNNBase.kernel`)."""
        raise NotImplementedError

    def _state(self, x: Tensor, hx, n: int, unbatched: bool) -> State:
        """hx -> a state tuple of (B, H) tensors (zeros if hx is None), checking every shape"""
        if hx is None:
            B = 1 if unbatched else x.shape[0]
            return tuple(tg.zeros(B, self.hidden_size, dtype=x.dtype) for _ in range(n))
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
        W_ih, b, step = self.kernel()
        state = name_state(step(F.linear(x, W_ih, b), *state))
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

    def kernel(self):
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

    def kernel(self):
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

    def kernel(self):
        return gru_kernel(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.variant)

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._run(x, hx, 1)[0]

    def extra_repr(self) -> str:
        return super().extra_repr() + (", variant='cho'" if self.variant == "cho" else "")
