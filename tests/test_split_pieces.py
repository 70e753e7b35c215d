"""split/chunk build their pieces in one loop (ops.GetItem.pieces): the same nodes, values and gradients
as one GetItem.apply per piece, on every path (grad, no_grad, anomaly, tg.compile's trace)."""
import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq import ops
from tinygrad_seq.gradcheck import gradcheck


def generic(x, indices):
    return [ops.GetItem.apply(x, index=i) for i in indices]


def _loss(pieces):
    w = [np.arange(1, p.numel() + 1, dtype=p.numpy().dtype).reshape(p.shape) / 7 for p in pieces]
    return sum(((p * p) * tg.tensor(a)).sum() for p, a in zip(pieces, w))


@pytest.mark.parametrize("shape,split,dim", [((8, 128), 32, -1), ((8, 96), 32, 1), ((5, 7), 3, 0),
                                             ((4, 6, 5), [1, 3, 1], 2), ((3, 4), [0, 4], 1), ((0, 4), 2, 0)])
def test_pieces_match_generic_nodes_values_and_grads(shape, split, dim):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(np.float32)
    x1, x2 = tg.tensor(a, requires_grad=True), tg.tensor(a, requires_grad=True)
    with tg.time_step(3):
        fast = x1.split(split, dim)
    idx = [p._ctx.slice_index for p in fast]
    with tg.time_step(3):
        slow = generic(x2, idx)
    assert len(fast) == len(slow)
    for f, s in zip(fast, slow):
        assert f.shape == s.shape and f.dtype == s.dtype and np.array_equal(f.numpy(), s.numpy())
        assert np.shares_memory(f.numpy(), x1.numpy()) or f.numel() == 0
        assert f.requires_grad and type(f._ctx) is ops.GetItem and f._view[0] is x1 and f._view[1] is f._ctx
        for k in ("slice_index", "index", "shape", "dtype", "scope", "clock", "needs", "view"):
            assert getattr(f._ctx, k) == getattr(s._ctx, k), k
    _loss(fast).backward()
    _loss(slow).backward()
    assert np.array_equal(x1.grad.numpy(), x2.grad.numpy())


def test_chunk_gradcheck_float64():
    x = tg.tensor(np.random.default_rng(1).standard_normal((3, 12)), requires_grad=True)
    gradcheck(lambda x: (lambda i, f, g, o: (i.sigmoid() * g.tanh() + f * o).sum())(*x.chunk(4, -1)), [x])


def test_pieces_without_grad_are_plain_views():
    x = tg.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    with tg.no_grad():
        a, b = x.chunk(2, 1)
    assert not a.requires_grad and a._ctx is None and a._view[0] is x
    y = tg.tensor(np.arange(12.0).reshape(3, 4))
    a, b = y.split(2, 1)
    assert not a.requires_grad and a._ctx is None
    assert np.array_equal(b.numpy(), np.arange(12.0).reshape(3, 4)[:, 2:])


def test_inplace_write_into_a_piece_reaches_the_source_graph():
    """A piece is a view: writing into it rewrites the source's later reads, as with x[:, :2] (torch too)."""
    x = tg.tensor(np.ones((2, 4)), requires_grad=True)
    y = x * 1.0
    a, b = y.chunk(2, 1)
    a.mul_(3.0)
    y.sum().backward()
    assert np.array_equal(y.numpy(), [[3, 3, 1, 1]] * 2)
    assert np.array_equal(x.grad.numpy(), [[3, 3, 1, 1]] * 2)


def test_anomaly_mode_takes_the_checked_path():
    x = tg.tensor(np.array([[1.0, np.nan, 2.0, 3.0]]), requires_grad=True)
    with tg.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match="GetItem"):
            x.chunk(2, 1)


def test_split_index_cache_keeps_shapes_apart():
    for n in (6, 7, 8):
        x = tg.tensor(np.arange(2.0 * n).reshape(2, n))
        pieces = x.split(3, 1)
        assert [p.shape[1] for p in pieces] == [3] * (n // 3) + ([n % 3] if n % 3 else [])
        assert np.array_equal(np.concatenate([p.numpy() for p in pieces], 1), x.numpy())
    x = tg.tensor(np.arange(12.0).reshape(3, 4))
    assert [p.shape for p in x.split(2, 0)] == [(2, 4), (1, 4)]
    assert [p.shape for p in x.split(2, 1)] == [(3, 2), (3, 2)]
    with pytest.raises(RuntimeError, match="split_size must be positive"):
        x.split(-1, 1)
    with pytest.raises(IndexError):
        x.split(2, 5)


def test_compiled_chunk_replays_with_the_same_gradients():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 8))
    w = tg.nn.Parameter(rng.standard_normal((8, 8)))

    def f(x):
        i, g = (x @ w.T).chunk(2, -1)
        return (i.sigmoid() * g.tanh()).sum()
    cf = tg.compile(f)
    grads = []
    for _ in range(3):  # trace, then two replays
        w.grad = None
        cf(tg.tensor(a)).backward()
        grads.append(w.grad.numpy().copy())
    w.grad = None
    f(tg.tensor(a)).backward()
    for g in grads:
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=0, atol=1e-12)
