"""Time one TransformerEncoderLayer training step (forward + backward, float32) in tinygrad_seq and in
torch.nn.TransformerEncoderLayer, in the same run, with the same weights and dropout 0.

    python benchmarks/bench_transformer.py [--threads 1] [--repeats 30]

Threads: NumPy's BLAS (OpenBLAS) is limited to --threads through the OPENBLAS/OMP/MKL environment
variables, set before NumPy is imported, and torch.set_num_threads(--threads) is called, so both sides
use the same number of threads (default 1: the numbers are then not at the mercy of other processes
on a shared machine; with 2 threads on the 2-core development machine shared by other jobs, torch's
OpenMP threads spin-wait and its step took ~0.5 s, a meaningless comparison). Reported: the median
and best time of `--repeats` steps after warm-up, and the ratios tinygrad_seq / torch of the medians
and of the best times (< 1: tinygrad_seq is faster); then the step's matrix products alone, NumPy
against torch (the share of the ratio that comes from the two BLAS libraries, not from the engine).
"""
from __future__ import annotations

import argparse
import os
import sys


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="BLAS / torch intra-op threads (default 1)")
    p.add_argument("--repeats", type=int, default=30, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=5)
    return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import time  # noqa: E402

import numpy as np  # noqa: E402

CONFIGS = [  # (B, L, E, heads, ff)
    (16, 64, 128, 4, 512),
    (4, 16, 32, 2, 64),
]


def _timeit(fn, repeats: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return np.array(ts)


def _interleaved(fns: list, repeats: int, warmup: int) -> list:
    """The times of each contender, run in alternating short blocks so that a load change on the shared
    machine hits all of them alike."""
    rounds = max(3, repeats // 4)
    times: list = [[] for _ in fns]
    for r in range(rounds):
        for fn, ts in zip(fns, times):
            ts.append(_timeit(fn, max(1, repeats // rounds), warmup if r == 0 else 1))
    return [np.concatenate(ts) for ts in times]


def bench(B: int, L: int, E: int, H: int, FF: int, repeats: int, warmup: int) -> dict:
    import torch

    import tinygrad_seq as tg
    from tinygrad_seq.models import TransformerEncoderLayer

    torch.manual_seed(0)
    tl = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, batch_first=True)
    ml = TransformerEncoderLayer(E, H, FF, dropout=0.0, batch_first=True)
    ml.load_state_dict({k: v.detach().numpy() for k, v in tl.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((B, L, E)).astype(np.float32)
    g = np.random.default_rng(1).standard_normal((B, L, E)).astype(np.float32)
    tx, tg_ = torch.tensor(x, requires_grad=True), torch.tensor(g)
    mx = tg.Tensor(x, requires_grad=True)

    def torch_step():
        tl.zero_grad(set_to_none=True)
        tx.grad = None
        tl(tx).backward(tg_)

    def tg_step():
        ml.zero_grad()
        mx.grad = None
        ml(mx).backward(g)

    cl = TransformerEncoderLayer(E, H, FF, dropout=0.0, batch_first=True)  # the same layer under tg.compile
    cl.load_state_dict(ml.state_dict())
    tg.compile(cl)
    cx = tg.Tensor(x, requires_grad=True)

    def compiled_step():
        cl.zero_grad()
        cx.grad = None
        cl(cx).backward(g)

    # same numbers before timing anything
    torch_step()
    tg_step()
    compiled_step()
    compiled_step()  # the second call replays
    err = np.abs(tx.grad.numpy() - mx.grad.numpy()).max()
    err_c = np.abs(cx.grad.numpy() - mx.grad.numpy()).max()
    t_torch, t_tg, t_c = _interleaved([torch_step, tg_step, compiled_step], repeats, warmup)
    return {"config": f"B={B} L={L} E={E} heads={H} ff={FF}", "torch_ms": 1e3 * np.median(t_torch),
            "tg_ms": 1e3 * np.median(t_tg), "torch_best_ms": 1e3 * t_torch.min(), "tg_best_ms": 1e3 * t_tg.min(),
            "ratio": np.median(t_tg) / np.median(t_torch), "best_ratio": t_tg.min() / t_torch.min(),
            "max_grad_diff": err, "compiled_ms": 1e3 * np.median(t_c), "compiled_ratio": np.median(t_c) / np.median(t_torch),
            "compiled_grad_diff": err_c}


def gemm_products(B: int, L: int, E: int, H: int, FF: int) -> list:
    """Every matrix product of one training step of the layer (input gradient included), as (a, b) shapes:
    for each linear x Wᵀ (x: (B·L, K), W: (N, K)) the forward, dx = g W and dW = gᵀ x; for the attention
    products s = q kᵀ and c = α v (B·H batches of (L, d) and (L, L)) the forward and both operand gradients."""
    M, d, bh = B * L, E // H, (B * H,)
    out = []
    for K, N in ((E, 3 * E), (E, E), (E, FF), (FF, E)):  # in_proj, out_proj, linear1, linear2
        out += [((M, K), (K, N)), ((M, N), (N, K)), ((N, M), (M, K))]
    out += [(bh + (L, d), bh + (d, L)), (bh + (L, L), bh + (L, d)), (bh + (L, d), bh + (d, L)),   # s, ds k, dsᵀ q
            (bh + (L, L), bh + (L, d)), (bh + (L, d), bh + (d, L)), (bh + (L, L), bh + (L, d))]   # c, g vᵀ, αᵀ g
    return out


def bench_gemms(B: int, L: int, E: int, H: int, FF: int, repeats: int, warmup: int) -> dict:
    """The step's products alone, NumPy (its BLAS) against torch, interleaved: the part of the step ratio that
    is the BLAS libraries, not the engine."""
    import torch

    rng = np.random.default_rng(2)
    pairs = [tuple(rng.standard_normal(s).astype(np.float32) for s in ab) for ab in gemm_products(B, L, E, H, FF)]
    tpairs = [(torch.tensor(a), torch.tensor(b)) for a, b in pairs]
    outs = [np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]), np.float32)
            for a, b in pairs]

    def numpy_gemms():
        for (a, b), o in zip(pairs, outs):
            np.matmul(a, b, out=o)

    def torch_gemms():
        for a, b in tpairs:
            torch.matmul(a, b)

    t_t, t_np = (np.median(t) for t in _interleaved([torch_gemms, numpy_gemms], repeats, warmup))
    return {"numpy_ms": 1e3 * t_np, "torch_ms": 1e3 * t_t, "ratio": t_np / t_t, "n": len(pairs)}


def main() -> int:
    import torch
    args = ARGS or _parse()
    torch.set_num_threads(args.threads)
    print(f"TransformerEncoderLayer training step (fwd+bwd, float32, dropout 0), {args.threads} thread(s), "
          f"torch {torch.__version__}, numpy {np.__version__}")
    print(f"{'config':34s} {'torch ms':>9s} {'tg ms':>9s} {'torch best':>10s} {'tg best':>9s} {'ratio':>7s} "
          f"{'best ratio':>10s}")
    for cfg in CONFIGS:
        r = bench(*cfg, repeats=args.repeats, warmup=args.warmup)
        print(f"{r['config']:34s} {r['torch_ms']:9.3f} {r['tg_ms']:9.3f} {r['torch_best_ms']:10.3f} "
              f"{r['tg_best_ms']:9.3f} {r['ratio']:7.2f} {r['best_ratio']:10.2f}   "
              f"(max |dx| diff {r['max_grad_diff']:.1e})")
        print(f"{'  compiled (tg.compile)':34s} {'':9s} {r['compiled_ms']:9.3f} {'':10s} {'':9s} {r['compiled_ratio']:7.2f}"
              f" {'':10s}   (max |dx| diff vs eager {r['compiled_grad_diff']:.1e})")
        gm = bench_gemms(*cfg, repeats=args.repeats, warmup=args.warmup)
        print(f"{'  its ' + str(gm['n']) + ' matmuls alone':34s} {gm['torch_ms']:9.3f} {gm['numpy_ms']:9.3f} {'':10s} "
              f"{'':9s} {gm['ratio']:7.2f} {'':10s}   (NumPy's BLAS / torch's: the ratio the BLAS libraries set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
