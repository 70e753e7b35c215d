"""Speed of the recurrent layers: a training step of models.LSTM and models.GRU against the NumPy floor
(hand-written forward + manual BPTT), the same cells composed from PyTorch ops (eager), and the fused
torch.nn.LSTM / torch.nn.GRU, all in one run.

    python benchmarks/bench_recurrent.py              # both sizes, median of 10 rounds of single steps
    python benchmarks/bench_recurrent.py --block 10   # rounds of 10 back-to-back steps (a training loop)
    python benchmarks/bench_recurrent.py --clock wall # wall time instead of process CPU time

Fairness: OMP/OpenBLAS/MKL threads are set to 1 in the environment BEFORE NumPy is imported (NumPy's
BLAS reads them at load time), and torch.set_num_threads(1); float32 everywhere; every contender
computes the same thing: one layer, loss = mean(output²), gradients of every weight. Before timing,
the floors' gradients are checked against ours in float64 (they must agree to 1e-9).
Times are the best of --repeat runs of process CPU time by default (time.process_time: all contenders
are single-threaded, and on a shared machine it does not count the time other processes hold the CPU);
--clock wall uses time.perf_counter.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinygrad_seq as tg  # noqa: E402
from tinygrad_seq import models  # noqa: E402

from bench_engine import torch_step as torch_lstm_step  # noqa: E402
from floor import _sigmoid_, lstm_train_step  # noqa: E402
from timing import best_time, interleaved_medians, use_clock  # noqa: E402

SIZES = [(32, 64, 128, 256), (8, 32, 16, 32)]  # (B, T, D, H)




# ------------------------------------------------------------------------------------------ floors

def gru_train_step(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray):
    """NumPy floor: one GRU layer (PyTorch's form), forward + manual BPTT, loss = mean(h_t²).
    Returns (loss, dW_ih, dW_hh, db_ih, db_hh).

    r, z = σ(x W_i{r,z}ᵀ + b_i{r,z} + h W_h{r,z}ᵀ + b_h{r,z}),  n = tanh(x W_inᵀ + b_in + r * (h W_hnᵀ + b_hn)),
    h' = n + z (h - n)
    """
    T, B, D = x.shape
    H = w_hh.shape[1]
    H2 = 2 * H
    b = b_ih.copy()
    b[:H2] += b_hh[:H2]  # b_hr, b_hz are not gated: fold them into the input projection
    xw = (x.reshape(T * B, D) @ w_ih.T + b).reshape(T, B, 3 * H)
    hs = np.zeros((T + 1, B, H), x.dtype)
    rz = np.empty((T, B, H2), x.dtype)
    ns = np.empty((T, B, H), x.dtype)
    hns = np.empty((T, B, H), x.dtype)
    w_hh_t, b_hn = w_hh.T, b_hh[H2:]
    for t in range(T):
        hw = hs[t] @ w_hh_t
        a = rz[t]
        np.add(xw[t, :, :H2], hw[:, :H2], out=a)
        _sigmoid_(a)
        hn = hns[t]
        np.add(hw[:, H2:], b_hn, out=hn)
        n = ns[t]
        np.multiply(a[:, :H], hn, out=n)
        n += xw[t, :, H2:]
        np.tanh(n, out=n)
        h = hs[t + 1]
        np.subtract(hs[t], n, out=h)
        h *= a[:, H:]
        h += n
    out = hs[1:]
    loss = float(np.mean(out * out))

    dout = out * (2.0 / out.size)
    dgx = np.empty((T, B, 3 * H), x.dtype)  # d loss / d (x W_ihᵀ + b_ih)
    dgh = np.empty((T, B, 3 * H), x.dtype)  # d loss / d (h W_hhᵀ + b_hh)
    dh_next = np.zeros((B, H), x.dtype)
    for t in range(T - 1, -1, -1):
        r, z, n, hn, h_prev = rz[t, :, :H], rz[t, :, H:], ns[t], hns[t], hs[t]
        dh = dout[t] + dh_next
        dan = dh * (1 - z) * (1 - n * n)
        dar = dan * hn * r * (1 - r)
        daz = dh * (h_prev - n) * z * (1 - z)
        gx, gh = dgx[t], dgh[t]
        gx[:, :H] = dar
        gx[:, H:H2] = daz
        gx[:, H2:] = dan
        gh[:, :H2] = gx[:, :H2]
        np.multiply(dan, r, out=gh[:, H2:])
        dh_next = dh * z + gh @ w_hh
    gx2, gh2 = dgx.reshape(T * B, 3 * H), dgh.reshape(T * B, 3 * H)
    d_w_ih = gx2.T @ x.reshape(T * B, D)
    d_w_hh = gh2.T @ hs[:-1].reshape(T * B, H)
    return loss, d_w_ih, d_w_hh, gx2.sum(0), gh2.sum(0)


def lstm_floor(x, w_ih, w_hh, b_ih, b_hh):
    """benchmarks/floor.py's LSTM (one bias b = b_ih + b_hh; both biases get its gradient)"""
    loss, d_ih, d_hh, db = lstm_train_step(x, w_ih, w_hh, b_ih + b_hh)
    return loss, d_ih, d_hh, db, db


# ------------------------------------------------------------------------------------------ ours, torch

def ours_step(model) -> callable:
    def run(x: tg.Tensor) -> float:
        model.zero_grad()
        out = model(x)[0]
        loss = (out * out).mean()
        loss.backward()
        return loss.item()
    return run


def compiled_step(model) -> callable:
    """ours_step with the forward and loss under tg.compile (`.broken` says why it fell back to eager, if it did)."""
    import warnings
    cf = tg.compile(lambda x: (lambda out: (out * out).mean())(model(x)[0]))

    def run(x: tg.Tensor) -> float:
        model.zero_grad()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a graph break is reported in the table instead
            loss = cf(x)
        loss.backward()
        run.broken = cf.broken
        return loss.item()
    run.broken = None
    return run


def torch_gru_step(torch, x, w_ih, w_hh, b_ih, b_hh) -> float:
    """The same GRU composed from PyTorch ops (eager)."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    xw = torch.nn.functional.linear(x, w_ih, b_ih)
    h = torch.zeros(B, H)
    hs = []
    for t in range(T):
        hw = torch.nn.functional.linear(h, w_hh, b_hh)
        rz = (xw[t, :, :2 * H] + hw[:, :2 * H]).sigmoid()
        r, z = rz[:, :H], rz[:, H:]
        n = (xw[t, :, 2 * H:] + r * hw[:, 2 * H:]).tanh()
        h = n + z * (h - n)
        hs.append(h)
    out = torch.stack(hs)
    loss = (out * out).mean()
    loss.backward()
    return loss.item()


def torch_composed(torch, kind: str, x: np.ndarray, weights: list) -> callable:
    """A training step of the `kind` ("LSTM" or "GRU") cells composed from PyTorch ops, on copies of
    `weights` (w_ih, w_hh, b_ih, b_hh): what the benchmarks time as "torch eager"."""
    tx = torch.tensor(x)
    tw = [torch.tensor(a, requires_grad=True) for a in weights]

    def run():
        for p in tw:
            p.grad = None
        if kind == "LSTM":
            torch_lstm_step(torch, tx, tw[0], tw[1], tw[2] + tw[3])
        else:
            torch_gru_step(torch, tx, *tw)
    return run


def check_floors() -> None:
    """Ours and the floors agree (float64) before their times mean anything."""
    rng = np.random.default_rng(1)
    T, B, D, H = 5, 3, 4, 6
    x = rng.standard_normal((T, B, D))
    for cls, floor in ((models.LSTM, lstm_floor), (models.GRU, gru_train_step)):
        tg.manual_seed(0)
        m = cls(D, H, dtype=np.float64)
        loss = ours_step(m)(tg.Tensor(x))
        arrays = [p.numpy() for p in m.parameters()]
        loss_f, *grads = floor(x, *arrays)
        assert np.isclose(loss, loss_f, rtol=1e-12), (cls.__name__, loss, loss_f)
        for (name, p), g in zip(m.named_parameters(), grads):
            assert np.allclose(p.grad.numpy(), g, rtol=1e-9, atol=1e-12), f"{cls.__name__} {name}: floor differs"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--block", type=int, default=1,
                    help="consecutive steps of one contender per round (default 1: single steps alternate, each "
                         "starting with the caches the previous contender left; 10: a training loop's back-to-back steps)")
    args = ap.parse_args(argv)
    use_clock(args.clock)
    check_floors()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
        print("torch not installed: PyTorch columns skipped")

    rows = []
    for kind, cls, floor in (("LSTM", models.LSTM, lstm_floor), ("GRU", models.GRU, gru_train_step)):
        for B, T, D, H in SIZES:
            tg.manual_seed(0)
            m = cls(D, H)
            x = tg.randn(T, B, D)
            w = [p.numpy().copy() for p in m.parameters()]
            cm = cls(D, H)
            cm.load_state_dict(m.state_dict())
            cstep = compiled_step(cm)
            fns = {"ours": lambda: ours_step(m)(x), "compiled": lambda: cstep(x), "floor": lambda: floor(x.numpy(), *w)}
            if torch is not None:
                tx = torch.tensor(x.numpy())
                run_eager = torch_composed(torch, kind, x.numpy(), w)
                fused = getattr(torch.nn, kind)(D, H)
                fused.load_state_dict({k: torch.tensor(a) for k, a in m.state_dict().items()})

                def run_fused():
                    fused.zero_grad()
                    out, _ = fused(tx)
                    (out * out).mean().backward()

                fns.update(eager=run_eager, fused=run_fused)
            t = interleaved_medians(fns, args.repeat, args.block)
            nan = float("nan")
            rows.append((kind, B, T, D, H, t["ours"], t["compiled"], t["floor"], t.get("eager", nan), t.get("fused", nan),
                         cstep.broken))

    print(f"training step (forward over T steps + backward), one layer, float32, 1 thread, "
          f"median of {args.repeat} interleaved rounds of {args.block} step(s), {args.clock} time")
    print(f"{'':4} {'B':>3} {'T':>3} {'D':>4} {'H':>4} | {'ours':>9} {'compiled':>9} {'numpy floor':>11} "
          f"{'torch eager':>11} {'torch fused':>11} | {'ours/floor':>10} {'ours/eager':>10} {'cmp/floor':>9} "
          f"{'cmp/eager':>9} {'cmp/fused':>9}")
    for kind, B, T, D, H, to, tc, tf, te, tu, broken in rows:
        print(f"{kind:4} {B:>3} {T:>3} {D:>4} {H:>4} | {to*1e3:7.2f}ms {tc*1e3:7.2f}ms {tf*1e3:9.2f}ms "
              f"{te*1e3:9.2f}ms {tu*1e3:9.2f}ms | {to/tf:10.2f} {to/te:10.2f} {tc/tf:9.2f} {tc/te:9.2f} {tc/tu:9.2f}"
              + (f"  (compiled fell back to eager: {broken})" if broken else ""))
    print("targets (issue 10): ours/floor <= 1.3 at B=32 T=64 D=128 H=256; ours/eager <= 0.8 at B=8 T=32 D=16 H=32")
    print("         cmp/floor <= 0.75, cmp/eager <= 0.3 at B=8 T=32 D=16 H=32; cmp/floor <= 1.0 at B=32 T=64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
