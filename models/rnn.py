"""Multi-layer, optionally bidirectional RNN / LSTM / GRU layers with PyTorch's arguments, parameter
names and semantics, plus `lengths=` for padded batches and `return_states=True` for analysis.

Per layer and direction: one matmul projects the whole input sequence (T, B, D) -> (T, B, G·H); each
time step then does only the recurrent matmul and the gate math (the step functions of models/cells.py,
whose cells are re-exported here).

Graph contract (the visualizer relies on it): each layer/direction runs inside
`tg.name_scope("l{layer}")` / `tg.name_scope("l{layer}_reverse")`, each step inside `tg.time_step(t)`;
each step's hidden state tensor has `.name == "h"`, the LSTM cell state `.name == "c"`. The gates and other
per-step terms carry their formula name (`.named("f_t")`: i_t f_t g_t o_t, r_t z_t n_t, a_t); names ending
in "_t" or holding a symbol label nodes only, bare names ("h", "c") are the states viz follows across steps.
"""
from __future__ import annotations

import warnings

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq.nn import Module, functional as F
from tinygrad_seq.tensor import Tensor

from .cells import (GATES, GRUCell, LSTMCell, RNNCell, State, check_sizes, gru_kernel,  # noqa: F401
                    init_forget_bias, lstm_kernel, name_state, rnn_kernel, uniform_param, validate_input)

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]


class _RNNBase(Module):
    """Shared machinery: parameters per layer/direction, input/state checks, the time loop, lengths."""
    mode = "RNN_TANH"
    n_state = 1  # 2 for LSTM: (h, c)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, dtype=None):
        super().__init__()
        who = type(self).__name__
        check_sizes(who, input_size, hidden_size)
        if not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
            raise ValueError(f"{who}: num_layers must be a positive int, got {num_layers!r}")
        if isinstance(dropout, bool) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{who}: dropout must be a number in [0, 1], got {dropout!r}")
        if proj_size < 0 or (proj_size and self.mode != "LSTM"):
            raise ValueError(f"{who}: proj_size must be >= 0 and is only supported by LSTM, got {proj_size}")
        if proj_size >= hidden_size:
            raise ValueError(f"{who}: proj_size ({proj_size}) has to be smaller than hidden_size ({hidden_size})")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{who}: dropout={dropout} acts between layers only, but num_layers=1", UserWarning)
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size = bool(bidirectional), int(proj_size)
        self.num_directions = 2 if bidirectional else 1
        out_size = self.proj_size or self.hidden_size
        G = GATES[self.mode] * hidden_size
        self._suffixes = []
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else out_size * self.num_directions
            for d in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                self._suffixes.append(sfx)
                setattr(self, "weight_ih" + sfx, uniform_param((G, in_size), hidden_size, dtype))
                setattr(self, "weight_hh" + sfx, uniform_param((G, out_size), hidden_size, dtype))
                if bias:
                    setattr(self, "bias_ih" + sfx, uniform_param((G,), hidden_size, dtype))
                    setattr(self, "bias_hh" + sfx, uniform_param((G,), hidden_size, dtype))
                if self.proj_size:
                    setattr(self, "weight_hr" + sfx, uniform_param((self.proj_size, hidden_size), hidden_size, dtype))

    # -------------------------------------------------------------------------------- per-kind hooks
    def kernel(self, k: int):  # pragma: no cover - abstract
        """(W_ih, b, step) of layer/direction k: x_t W_ihᵀ + b is computed for all t at once, then
        `step(xw_t, *state) -> new state` applies the cell's formula (models/cells.py) once per t."""
        raise NotImplementedError

    def _params(self, k: int) -> tuple:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer/direction k = layer * num_directions + direction"""
        sfx = self._suffixes[k]
        b = (getattr(self, "bias_ih" + sfx), getattr(self, "bias_hh" + sfx)) if self.bias else (None, None)
        return (getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)) + b

    # -------------------------------------------------------------------------------- checks
    def _initial_states(self, hx, B: int, unbatched: bool, dtype) -> list[State]:
        """hx -> one state tuple per layer/direction (zeros if hx is None), checking shapes first"""
        who, n, LD = type(self).__name__, self.n_state, self.num_layers * self.num_directions
        sizes = (self.proj_size or self.hidden_size, self.hidden_size)
        if hx is None:
            zero = [tg.zeros(B, size, dtype=dtype).named(s0) for size, s0 in zip(sizes[:n], ("h_0", "c_0"))]
            return [tuple(zero)] * LD
        if n == 2:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ValueError(f"{who}: hx must be a tuple (h_0, c_0)")
            parts = tuple(hx)
        else:
            parts = (hx,)
        names = ("h_0", "c_0")
        out = []
        for name, size, p in zip(names, sizes, parts):
            p = p if isinstance(p, Tensor) else Tensor(np.asarray(p))
            want = (LD, size) if unbatched else (LD, B, size)
            if p.shape != want:
                raise tg.ShapeError(f"{who}: expected {name} of shape {want}, got {tuple(p.shape)}")
            if p.dtype != dtype:
                raise tg.DtypeError(f"{who}: {name} dtype {p.dtype} differs from the parameters' dtype {dtype}")
            out.append(p.unsqueeze(1) if unbatched else p)
        return [tuple(p[k] for p in out) for k in range(LD)]

    @staticmethod
    def _valid_mask(who: str, lengths, T: int, B: int) -> np.ndarray | None:
        """lengths -> bool (T, B, 1) mask of the real (unpadded) steps; None when no step is padded"""
        if lengths is None:
            return None
        arr = np.asarray(lengths.numpy() if isinstance(lengths, Tensor) else lengths)
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu" or arr.shape != (B,):
            raise ValueError(f"{who}: lengths must be {B} integers (one per sequence), got shape {arr.shape} "
                             f"dtype {arr.dtype}")
        if arr.min() < 1 or arr.max() > T:
            raise ValueError(f"{who}: lengths must lie in [1, T={T}], got min {arr.min()} max {arr.max()}")
        if arr.min() == T:
            return None
        return (np.arange(T)[:, None] < arr[None, :])[..., None]

    # -------------------------------------------------------------------------------- forward
    def forward(self, x: Tensor, hx=None, lengths=None, return_states: bool = False):
        """x: (T, B, input_size), (B, T, input_size) if batch_first, or unbatched (T, input_size);
        hx: h_0 (num_layers * num_directions, B, H_out) (LSTM: (h_0, c_0)), zeros if None;
        lengths: per-sequence lengths, padded steps neither update the state nor reach the reverse
        direction, and their outputs are zero.  Returns (output, h_n) ((output, (h_n, c_n)) for LSTM),
        output: (T, B, num_directions * H_out); with return_states=True also a dict "h" (and "c") ->
        [layer * num_directions + direction][t] -> the (B, H) state tensor of that step."""
        who = type(self).__name__
        w0 = self.weight_ih_l0
        x = validate_input(who, x, self.input_size, w0.dtype, (2, 3))
        unbatched = x.ndim == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1).named(x.name)  # time-major; a constant input keeps its name
        T, B = x.shape[0], x.shape[1]
        if T == 0 or B == 0:
            raise ValueError(f"{who}: empty input of shape {x.shape}")
        states0 = self._initial_states(hx, B, unbatched, w0.dtype)
        valid = self._valid_mask(who, lengths, T, B)
        finals, hist = [], {"h": [], "c": []}
        inp = x
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:
                inp = F.dropout(inp, self.dropout, True)
            outs = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                with tg.name_scope(f"l{layer}" + ("_reverse" if d else "")):
                    out, final, states = self._run_direction(inp, k, states0[k], bool(d), valid)
                outs.append(out)
                finals.append(final)
                hist["h"].append(states[0])
                if self.n_state == 2:
                    hist["c"].append(states[1])
            inp = outs[0] if len(outs) == 1 else tg.cat(outs, dim=-1)
        output = inp if valid is None else inp * valid.astype(inp.dtype)
        if unbatched:
            output = output.squeeze(1)
        elif self.batch_first:
            output = output.transpose(0, 1)
        last = [tg.stack([f[i] for f in finals]) for i in range(self.n_state)]
        if unbatched:
            last = [s.squeeze(1) for s in last]
        h_n = last[0] if self.n_state == 1 else tuple(last)
        if not return_states:
            return output, h_n
        if self.n_state == 1:
            del hist["c"]
        return output, h_n, hist

    def _run_direction(self, inp: Tensor, k: int, state: State, reverse: bool, valid: np.ndarray | None):
        """The time loop of one layer/direction: returns (stacked outputs (T, B, H_out), final state,
        per-step state lists indexed by t)."""
        W_ih, b, step = self.kernel(k)
        xw = F.linear(inp, W_ih, b).named("x W_ihᵀ + b")  # ONE matmul for all T steps: x_t W_ihᵀ + b of every t
        T = inp.shape[0]
        lo = T if valid is None else int(valid[..., 0].all(axis=1).sum())  # first step with a padded sequence
        hist = [[None] * T for _ in range(self.n_state)]
        where = tg.where
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            with tg.time_step(t):
                new = step(xw[t].named("x_t W_ihᵀ + b"), *state)
                if t >= lo:  # padded sequences keep their state (forward) / their initial state (reverse)
                    new = tuple(where(valid[t], n, o) for n, o in zip(new, state))
                state = name_state(new)
            for i, s in enumerate(state):
                hist[i][t] = s
        return tg.stack(hist[0]), state, hist

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False), ("proj_size", 0)):
            v = getattr(self, name)
            if v != default:
                s += f", {name}={v}"
        return s

    def flatten_parameters(self) -> None:
        """No-op (PyTorch compatibility)."""


class RNN(_RNNBase):
    """Elman RNN:  h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)  (nonlinearity='relu': max(0, ·)),
    stacked num_layers deep (layer l > 0 reads layer l-1's outputs), optionally bidirectional
    (y_t = [h→_t ; h←_t]). As torch.nn.RNN; forward(x, hx=None, lengths=None, return_states=False)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        object.__setattr__(self, "mode", "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, dtype)
        self.nonlinearity = nonlinearity

    def kernel(self, k: int):
        return rnn_kernel(*self._params(k), self.nonlinearity)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(_RNNBase):
    """LSTM:  [i, f, g, o] = [σ, σ, tanh, σ](x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh),
    c_t = f_t * c_{t-1} + i_t * g_t,  h_t = o_t * tanh(c_t)  (proj_size > 0: h_t = W_hr (o_t * tanh(c_t))).
    As torch.nn.LSTM (forward returns (output, (h_n, c_n))). Beyond PyTorch: `peephole=True` adds diagonal
    weight_ci/cf/co_l{k} (i_t = σ(a_i + w_ci * c_{t-1}), f_t = σ(a_f + w_cf * c_{t-1}), o_t = σ(a_o + w_co * c_t));
    `forget_bias` adds to every b_f at init; `chrono_init=T_max`: b_f = log U(1, T_max - 1), b_i = -b_f."""
    mode = "LSTM"
    n_state = 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 peephole: bool = False, forget_bias: float = 0.0, chrono_init: float | None = None, dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype)
        self.peephole = bool(peephole)
        for sfx in self._suffixes:
            if peephole:
                for g in "ifo":
                    setattr(self, f"weight_c{g}{sfx}", uniform_param((hidden_size,), hidden_size, dtype))
            b = (getattr(self, "bias_ih" + sfx), getattr(self, "bias_hh" + sfx)) if bias else (None, None)
            init_forget_bias(*b, hidden_size, forget_bias, chrono_init, "LSTM")

    def kernel(self, k: int):
        sfx = self._suffixes[k]
        w_hr = getattr(self, "weight_hr" + sfx) if self.proj_size else None
        peep = tuple(getattr(self, f"weight_c{g}{sfx}") for g in "ifo") if self.peephole else None
        return lstm_kernel(*self._params(k), w_hr, peep)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", peephole=True" if self.peephole else "")


class GRU(_RNNBase):
    """GRU:  r_t, z_t = σ(x_t W_i{r,z}ᵀ + b_i{r,z} + h_{t-1} W_h{r,z}ᵀ + b_h{r,z}),
    n_t = tanh(x_t W_inᵀ + b_in + r_t * (h_{t-1} W_hnᵀ + b_hn))   (variant='pytorch', torch.nn.GRU), or
    n_t = tanh(x_t W_inᵀ + b_in + (r_t * h_{t-1}) W_hnᵀ + b_hn)   (variant='cho', the notes' textbook GRU);
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}."""
    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 variant: str = "pytorch", dtype=None):
        if variant not in ("pytorch", "cho"):
            raise ValueError(f"GRU: variant must be 'pytorch' or 'cho', got {variant!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, dtype)
        self.variant = variant

    def kernel(self, k: int):
        return gru_kernel(*self._params(k), self.variant)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", variant='cho'" if self.variant == "cho" else "")
