"""A mistake raises an error that PyTorch code catches: for each case PyTorch raises some class (RuntimeError
for most shape and dtype mistakes, IndexError for a class target out of range, ValueError for a batch size
mismatch); ours raises an instance of that class too, and still of the ValueError / TypeError this engine
documents, so `except RuntimeError` written for torch and `except ValueError` written for NumPy both work.

Left out on purpose (documented differences): `.view` of a non-contiguous tensor and `.numpy()` of a tensor
that requires grad, which torch refuses and we compute (a copy / the array); MultiheadAttention's shape
checks, which torch makes with `assert` (AssertionError)."""
import warnings

import numpy as np
import pytest

import tinygrad_seq as tg


def _lstm_input(m):
    m.nn.LSTM(4, 5)(m.ones(2, 3, 6))


def _lstm_dtype(m):
    m.nn.LSTM(4, 5)(m.ones(2, 3, 4).double())


def _gru_h0(m):
    m.nn.GRU(4, 5)(m.ones(2, 3, 4), m.ones(1, 3, 6))


def _gru_h0_dtype(m):
    m.nn.GRU(4, 5)(m.ones(2, 3, 4), m.ones(1, 3, 5).double())


def _linear_layer(m):
    m.nn.Linear(4, 5)(m.ones(2, 6))


def _embedding_float(m):
    m.nn.Embedding(5, 2)(m.ones(3))


CASES = {
    "matmul inner sizes": lambda m: m.ones(2, 3) @ m.ones(2, 3),
    "matmul 1-D": lambda m: m.ones(3) @ m.ones(4),
    "add broadcast": lambda m: m.ones(2, 3) + m.ones(4),
    "cat shapes": lambda m: m.cat([m.ones(2, 3), m.ones(2, 4)]),
    "stack shapes": lambda m: m.stack([m.ones(2, 3), m.ones(2, 4)]),
    "view size": lambda m: m.ones(2, 3).view(4),
    "reshape size": lambda m: m.ones(2, 3).reshape(4, 2),
    "expand": lambda m: m.ones(2, 3).expand(4, 3),
    "permute": lambda m: m.ones(2, 3).permute(0, 0),
    "split sizes": lambda m: m.ones(5).split([2, 2]),
    "masked_fill mask": lambda m: m.ones(2, 3).masked_fill(m.ones(4, dtype=m.bool), 0.0),
    "where shapes": lambda m: m.where(m.ones(2, dtype=m.bool), m.ones(3), m.ones(2)),
    "item of many": lambda m: m.ones(2).item(),
    "F.linear": lambda m: m.nn.functional.linear(m.ones(2, 3), m.ones(4, 5)),
    "nn.Linear input": _linear_layer,
    "LSTM input size": _lstm_input,
    "LSTM input dtype": _lstm_dtype,
    "GRU h_0 shape": _gru_h0,
    "GRU h_0 dtype": _gru_h0_dtype,
    "embedding float indices": _embedding_float,
    "embedding index range": lambda m: m.nn.functional.embedding(m.tensor([5]), m.ones(3, 2)),
    "cross_entropy target range": lambda m: m.nn.functional.cross_entropy(m.ones(2, 3), m.tensor([0, 7])),
    "cross_entropy int32 target": lambda m: m.nn.functional.cross_entropy(
        m.ones(2, 3), m.tensor(np.array([0, 1], np.int32))),
    "cross_entropy float 1-D target": lambda m: m.nn.functional.cross_entropy(m.ones(2, 3), m.tensor([0.0, 1.0])),
    "cross_entropy batch": lambda m: m.nn.functional.cross_entropy(m.ones(2, 3), m.tensor([0, 1, 2])),
    "nll_loss int16 target": lambda m: m.nn.functional.nll_loss(m.ones(2, 3), m.tensor(np.array([0, 1], np.int16))),
    "mse_loss shapes": lambda m: m.nn.functional.mse_loss(m.ones(2, 3), m.ones(2, 4)),  # torch warns, then fails
    "layer_norm shape": lambda m: m.nn.functional.layer_norm(m.ones(2, 3), (4,)),
    "softmax dim": lambda m: m.ones(2, 3).softmax(5),
    "sum dim": lambda m: m.ones(2, 3).sum(3),
    "index out of range": lambda m: m.ones(2, 3)[5],
}


def _raised(fn, m) -> BaseException:
    with pytest.raises(Exception) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's mse_loss warns about the broadcast before it fails
        fn(m)
    return info.value


@pytest.mark.parametrize("case", list(CASES))
def test_the_error_is_an_instance_of_torchs_class(case):
    torch = pytest.importorskip("torch")
    theirs = _raised(CASES[case], torch)
    ours = _raised(CASES[case], tg)
    assert isinstance(ours, type(theirs)), (case, type(theirs).__name__, type(ours).__mro__)


def test_the_classes_are_also_pythons():
    """What the engine raised before stays catchable: shapes ValueError, dtypes TypeError (and ValueError, as
    torch's recurrent layers raise for a dtype), a class target out of range ValueError."""
    assert issubclass(tg.ShapeError, ValueError) and issubclass(tg.ShapeError, RuntimeError)
    assert issubclass(tg.DtypeError, TypeError) and issubclass(tg.DtypeError, RuntimeError)
    assert issubclass(tg.OutOfRangeError, ValueError) and issubclass(tg.OutOfRangeError, IndexError)
    with pytest.raises(ValueError, match=r"inner sizes differ"):
        tg.ones(2, 3) @ tg.ones(2, 3)
    with pytest.raises(TypeError, match=r"class-index target must have dtype int64 or uint8, got dtype int32"):
        tg.nn.functional.cross_entropy(tg.ones(2, 3), tg.tensor(np.array([0, 1], np.int32)))
    with pytest.raises(ValueError, match=r"target 7 is out of bounds for 3 classes"):
        tg.nn.functional.cross_entropy(tg.ones(2, 3), tg.tensor([0, 7]))
