"""The NumPy floor: hand-written LSTM forward + manual BPTT, no autograd at all.

The benchmarks compare the engine against this: what a careful person writes by hand with the same
NumPy calls. Gate order i, f, g, o (as PyTorch); loss = mean(h_t²) over all steps and units.
"""
from __future__ import annotations

import numpy as np


def _sigmoid_(a: np.ndarray) -> np.ndarray:
    """σ(a) = (1 + tanh(a/2)) / 2 in place (overflow-free, as the engine's)."""
    a *= 0.5
    np.tanh(a, out=a)
    a += 1
    a *= 0.5
    return a


def lstm_train_step(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b: np.ndarray):
    """One forward + BPTT of a 1-layer LSTM on x (T, B, D); returns (loss, dW_ih, dW_hh, db).

    i,f,o = σ(·), g = tanh(·) of x_t W_ihᵀ + h_{t-1} W_hhᵀ + b;  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
    """
    T, B, D = x.shape
    H = w_hh.shape[1]
    xw = (x.reshape(T * B, D) @ w_ih.T + b).reshape(T, B, 4 * H)
    gates = np.empty((T, B, 4 * H), x.dtype)
    hs = np.zeros((T + 1, B, H), x.dtype)
    cs = np.zeros((T + 1, B, H), x.dtype)
    tcs = np.empty((T, B, H), x.dtype)
    w_hh_t = w_hh.T
    for t in range(T):
        g = gates[t]
        np.matmul(hs[t], w_hh_t, out=g)
        g += xw[t]
        _sigmoid_(g[:, :2 * H])
        np.tanh(g[:, 2 * H:3 * H], out=g[:, 2 * H:3 * H])
        _sigmoid_(g[:, 3 * H:])
        i, f, gg, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        c = cs[t + 1]
        np.multiply(f, cs[t], out=c)
        c += i * gg
        np.tanh(c, out=tcs[t])
        np.multiply(o, tcs[t], out=hs[t + 1])
    out = hs[1:]
    loss = float(np.mean(out * out))

    dout = out * (2.0 / out.size)
    dgates = np.empty_like(gates)
    dh_next = np.zeros((B, H), x.dtype)
    dc_next = np.zeros((B, H), x.dtype)
    for t in range(T - 1, -1, -1):
        g = gates[t]
        i, f, gg, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        tc = tcs[t]
        dh = dout[t] + dh_next
        dc = dc_next + dh * o * (1 - tc * tc)
        dg = dgates[t]
        dg[:, :H] = dc * gg * i * (1 - i)
        dg[:, H:2 * H] = dc * cs[t] * f * (1 - f)
        dg[:, 2 * H:3 * H] = dc * i * (1 - gg * gg)
        dg[:, 3 * H:] = dh * tc * o * (1 - o)
        dc_next = dc * f
        dh_next = dg @ w_hh
    dg2 = dgates.reshape(T * B, 4 * H)
    d_w_hh = dg2.T @ hs[:-1].reshape(T * B, H)
    d_w_ih = dg2.T @ x.reshape(T * B, D)
    db = dg2.sum(0)
    return loss, d_w_ih, d_w_hh, db
