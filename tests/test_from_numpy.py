"""tg.from_numpy and tg.as_tensor: memory shared where torch shares it, dtypes and errors as torch's."""
import numpy as np
import pytest

import tinygrad_seq as tg

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dt", [np.float32, np.float64, np.float16, np.int64, np.int32, np.int16, np.int8,
                                np.uint8, np.bool_])
def test_from_numpy_shares_memory_and_dtype(dt):
    a = np.arange(6).reshape(2, 3).astype(dt)
    t, r = tg.from_numpy(a), torch.from_numpy(a.copy())
    assert str(t.dtype) == str(r.dtype).replace("torch.", "") and t.shape == tuple(r.shape)
    a[0, 0] = 1  # a write into the array shows in the tensor ...
    assert t.tolist()[0][0] == 1
    t[1, 2] = 0  # ... and one into the tensor in the array
    assert a[1, 2] == 0 and not t.requires_grad


def test_from_numpy_of_a_view_and_its_gradient():
    a = np.arange(12.0).reshape(3, 4)[:, ::2]
    t = tg.from_numpy(a)
    assert np.shares_memory(t.numpy(), a) and repr(t) == repr(torch.from_numpy(a)).replace("torch.", "")
    x = tg.from_numpy(np.array([1.0, 2.0])).requires_grad_()
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0] and x.dtype == tg.float64


@pytest.mark.parametrize("bad", [[1, 2], 3.0, np.float64(1.5), (1,)])
def test_from_numpy_refuses_what_torch_refuses(bad):
    with pytest.raises(TypeError) as theirs:
        torch.from_numpy(bad)
    with pytest.raises(TypeError) as ours:
        tg.from_numpy(bad)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(TypeError, match="can't convert np.ndarray of type <U1"):
        tg.from_numpy(np.array(["a"]))


def test_as_tensor_copies_only_when_it_must():
    x = tg.ones(2, requires_grad=True)
    assert tg.as_tensor(x) is x and tg.as_tensor(x, dtype=tg.float32) is x
    y = tg.as_tensor(x, dtype=tg.float64)  # another dtype: a conversion that stays in the graph
    assert y.dtype == tg.float64 and y.grad_fn is not None
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
    a = np.ones(3)
    shared, copied = tg.as_tensor(a), tg.as_tensor(a, dtype=tg.float32)
    a[0] = 7
    assert shared.tolist() == [7.0, 1.0, 1.0] and copied.tolist() == [1.0, 1.0, 1.0]
    for data in ([1.0, 2.0], [1, 2], np.float64(1.5), [np.float64(1.0), 2.0], True):
        assert str(tg.as_tensor(data).dtype) == str(torch.as_tensor(data).dtype).replace("torch.", ""), data
    lst = [1.0, 2.0]
    t = tg.as_tensor(lst)
    lst[0] = 5.0
    assert t.tolist() == [1.0, 2.0]
    with pytest.raises(Exception, match="cuda"):
        tg.as_tensor(a, device="cuda")


@pytest.mark.parametrize("dt", [np.complex64, np.uint16, np.uint64, np.str_, object])
def test_dtypes_the_engine_lacks_are_refused_not_carried(dt):
    a = np.array([1, 2]).astype(dt)
    for make in (tg.tensor, tg.Tensor, tg.as_tensor, tg.from_numpy):
        with pytest.raises(TypeError, match="dtype"):
            make(a)
