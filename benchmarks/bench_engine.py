"""Engine speed: an LSTM training step composed from engine ops vs the NumPy floor and PyTorch eager.

    python benchmarks/bench_engine.py            # both sizes, prints times and ratios
    python benchmarks/bench_engine.py --repeat 5 # fewer repetitions

All contenders run single-threaded (BLAS and torch) in the same process, float32. The step is: input
projection for all T steps in one matmul, T LSTM cell updates (i, f, g, o gates), loss = mean(h²),
backward to W_ih, W_hh, b. Before timing, the engine's gradients are checked against the floor's.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinygrad_seq as tg  # noqa: E402
from tinygrad_seq import ops  # noqa: E402

from floor import lstm_train_step as floor_step  # noqa: E402
from timing import best_time, interleaved_medians, use_clock  # noqa: E402

SIZES = [(32, 64, 128, 256), (8, 32, 16, 32)]  # (B, T, D, H)


def engine_step(x: np.ndarray, w_ih: tg.Tensor, w_hh: tg.Tensor, b: tg.Tensor) -> float:
    """The same LSTM written with engine ops; gradients land in .grad."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    xw = ops.Linear.apply(tg.Tensor(x), w_ih, b)
    h = tg.zeros(B, H, dtype=x.dtype)
    c = tg.zeros(B, H, dtype=x.dtype)
    hs = []
    for t in range(T):
        g = ops.Linear.apply(h, w_hh, xw[t])  # h W_hhᵀ + (x_t W_ihᵀ + b) in one op
        i, f, o = g[:, :H].sigmoid(), g[:, H:2 * H].sigmoid(), g[:, 3 * H:].sigmoid()
        c = f * c + i * g[:, 2 * H:3 * H].tanh()
        h = o * c.tanh()
        hs.append(h)
    out = tg.stack(hs)
    loss = (out * out).mean()
    loss.backward()
    return loss.item()


def engine_loss(xt: tg.Tensor, w_ih: tg.Tensor, w_hh: tg.Tensor, b: tg.Tensor) -> tg.Tensor:
    """engine_step's forward (the loss), for tg.compile: x comes in as a Tensor (guarded by shape)."""
    T, B, _ = xt.shape
    H = w_hh.shape[1]
    xw = ops.Linear.apply(xt, w_ih, b)
    h = tg.zeros(B, H, dtype=xt.dtype)
    c = tg.zeros(B, H, dtype=xt.dtype)
    hs = []
    for t in range(T):
        g = ops.Linear.apply(h, w_hh, xw[t])
        i, f, o = g[:, :H].sigmoid(), g[:, H:2 * H].sigmoid(), g[:, 3 * H:].sigmoid()
        c = f * c + i * g[:, 2 * H:3 * H].tanh()
        h = o * c.tanh()
        hs.append(h)
    out = tg.stack(hs)
    return (out * out).mean()


def compiled_step(cf, xt: tg.Tensor, params) -> float:
    """One training step through the compiled forward: the user's loop is unchanged."""
    loss = cf(xt, *params)
    loss.backward()
    return loss.item()


def torch_step(torch, x, w_ih, w_hh, b) -> float:
    """The same LSTM composed from PyTorch ops (eager)."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    xw = torch.nn.functional.linear(x, w_ih, b)
    w_hh_t = w_hh.T
    h = torch.zeros(B, H)
    c = torch.zeros(B, H)
    hs = []
    for t in range(T):
        g = xw[t] + h @ w_hh_t
        i, f, o = g[:, :H].sigmoid(), g[:, H:2 * H].sigmoid(), g[:, 3 * H:].sigmoid()
        c = f * c + i * g[:, 2 * H:3 * H].tanh()
        h = o * c.tanh()
        hs.append(h)
    out = torch.stack(hs)
    loss = (out * out).mean()
    loss.backward()
    return loss.item()


def check_against_floor() -> None:
    """The engine and the floor must agree before their times mean anything (float64)."""
    rng = np.random.default_rng(1)
    T, B, D, H = 5, 3, 4, 6
    x = rng.standard_normal((T, B, D))
    w_ih, w_hh, b = (rng.standard_normal(s) * 0.3 for s in ((4 * H, D), (4 * H, H), (4 * H,)))
    loss_f, *grads_f = floor_step(x, w_ih, w_hh, b)
    params = [tg.Tensor(a, requires_grad=True) for a in (w_ih, w_hh, b)]
    loss_e = engine_step(x, *params)
    assert np.isclose(loss_e, loss_f), (loss_e, loss_f)
    for p, gf in zip(params, grads_f):
        assert np.allclose(p.grad.numpy(), gf, atol=1e-10), "engine and floor gradients differ"


def check_compiled() -> None:
    """The compiled step gives the eager step's gradients (float64, to 1e-12) before its time means anything."""
    rng = np.random.default_rng(2)
    T, B, D, H = 4, 3, 5, 6
    x = rng.standard_normal((T, B, D))
    w = [rng.standard_normal(s) * 0.3 for s in ((4 * H, D), (4 * H, H), (4 * H,))]
    ref = [tg.Tensor(a.copy(), requires_grad=True) for a in w]
    engine_step(x, *ref)
    cf = tg.compile(engine_loss)
    params = [tg.Tensor(a.copy(), requires_grad=True) for a in w]
    for _ in range(3):
        for p in params:
            p.grad = None
        compiled_step(cf, tg.Tensor(x), params)
    for p, r in zip(params, ref):
        assert np.allclose(p.grad.numpy(), r.grad.numpy(), rtol=1e-12, atol=1e-12), "compiled and eager gradients differ"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="process CPU time (default; robust on a shared machine) or wall time")
    ap.add_argument("--block", type=int, default=1,
                    help="consecutive steps of one contender per round (default 1: single steps alternate, each "
                         "starting with the caches the previous contender left; 10: a training loop's back-to-back steps)")
    args = ap.parse_args(argv)
    use_clock(args.clock)
    check_against_floor()
    check_compiled()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
        print("torch not installed: PyTorch columns skipped (pip install torch==2.13.0)")

    rows = []
    for B, T, D, H in SIZES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, B, D)).astype(np.float32)
        k = 1 / np.sqrt(H)
        w = [rng.uniform(-k, k, s).astype(np.float32) for s in ((4 * H, D), (4 * H, H), (4 * H,))]
        params = [tg.Tensor(a.copy(), requires_grad=True) for a in w]

        def run_engine():
            for p in params:
                p.grad = None
            engine_step(x, *params)

        xt = tg.Tensor(x)
        cparams = [tg.Tensor(a.copy(), requires_grad=True) for a in w]
        cf = tg.compile(engine_loss)

        def run_compiled():
            for p in cparams:
                p.grad = None
            compiled_step(cf, xt, cparams)

        fns = {"engine": run_engine, "compiled": run_compiled, "floor": lambda: floor_step(x, *w)}
        if torch is not None:
            tx = torch.tensor(x)
            tw = [torch.tensor(a, requires_grad=True) for a in w]

            def run_torch():
                for p in tw:
                    p.grad = None
                torch_step(torch, tx, *tw)

            fused = torch.nn.LSTM(D, H)

            def run_fused():
                fused.zero_grad()
                out, _ = fused(tx)
                (out * out).mean().backward()

            fns.update(torch=run_torch, fused=run_fused)
        t = interleaved_medians(fns, args.repeat, args.block)
        nan = float("nan")
        rows.append((B, T, D, H, t["engine"], t["compiled"], t["floor"], t.get("torch", nan), t.get("fused", nan)))

    print(f"LSTM training step (forward + BPTT), float32, 1 thread, median of {args.repeat} interleaved rounds of {args.block} step(s), "
          f"{args.clock} time")
    print(f"{'B':>3} {'T':>3} {'D':>4} {'H':>4} | {'engine':>9} {'compiled':>9} {'numpy floor':>11} {'torch eager':>11} "
          f"{'torch fused':>11} | {'eng/floor':>9} {'eng/torch':>9} {'cmp/floor':>9} {'cmp/torch':>9} {'cmp/fused':>9}")
    for B, T, D, H, te, tc, tf, tt, tu in rows:
        print(f"{B:>3} {T:>3} {D:>4} {H:>4} | {te*1e3:7.2f}ms {tc*1e3:7.2f}ms {tf*1e3:9.2f}ms {tt*1e3:9.2f}ms "
              f"{tu*1e3:9.2f}ms | {te/tf:9.2f} {te/tt:9.2f} {tc/tf:9.2f} {tc/tt:9.2f} {tc/tu:9.2f}")
    print("targets: eng/floor <= 1.3 at B=32 T=64 D=128 H=256; eng/torch <= 0.5 at B=8 T=32 D=16 H=32")
    print("         cmp/floor <= 0.75 and cmp/torch <= 0.3 at B=8 T=32 D=16 H=32; cmp/floor <= 1.0 at B=32 T=64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
