"""The device idiom on the CPU-only engine: tg.device, device= on factories and layers, .to(device),
Module.to/cpu/cuda, tg.cuda and tg.backends; any other device raises one clear DeviceError."""
import numpy as np
import pytest

import tinygrad_seq as tg
import tinygrad_seq.nn as nn

torch = pytest.importorskip("torch")


def test_device_object_like_torch():
    for spec in ("cpu", "cuda", "cuda:1", "mps"):
        d, td = tg.device(spec), torch.device(spec)
        assert repr(d) == repr(td) and str(d) == str(td) and d.type == td.type and d.index == td.index
    assert tg.device("cuda", 1) == tg.device("cuda:1") and tg.device(tg.device("cpu")) == tg.device("cpu")
    assert tg.device("cpu") == "cpu" and tg.device("cpu") != "cuda" and tg.device("cpu") != tg.device("cuda")
    assert len({tg.device("cpu"), tg.device("cpu")}) == 1
    assert tg.ones(2).device == tg.device("cpu") and tg.ones(2).device.type == "cpu"
    with pytest.raises(RuntimeError, match="device type at start of device string: foo"):
        tg.device("foo")
    with pytest.raises(RuntimeError, match="Invalid device string"):
        tg.device("cuda:x")
    with pytest.raises(AttributeError):
        tg.device("cpu").type = "cuda"


def test_cuda_and_backends_say_no_gpu():
    assert tg.cuda.is_available() is False and tg.cuda.device_count() == 0
    assert tg.backends.mps.is_available() is False and tg.backends.cuda.is_built() is False
    tg.cuda.manual_seed_all(0)  # seeding helpers are no-ops, as torch without CUDA
    tg.backends.cudnn.deterministic = True
    tg.backends.cudnn.benchmark = False
    import tinygrad_seq.cuda as c
    assert c is tg.cuda
    d = tg.device("cuda" if tg.cuda.is_available() else "cpu")
    assert tg.zeros(2, device=d).device == "cpu"


@pytest.mark.parametrize("dev", ["cuda", "cuda:0", "mps", tg.device("cuda"), 0])
def test_every_non_cpu_request_raises_the_same_clear_error(dev):
    cases = [lambda: tg.ones(2).to(dev), lambda: tg.zeros(2, device=dev), lambda: tg.tensor([1.0], device=dev),
             lambda: tg.arange(3, device=dev), lambda: nn.Linear(2, 2, device=dev), lambda: nn.Linear(2, 2).to(dev),
             lambda: nn.Embedding(3, 2, device=dev), lambda: nn.LayerNorm(2, device=dev),
             lambda: nn.Conv1d(1, 1, 2, device=dev), lambda: tg.LongTensor([1], device=dev)]
    for f in cases:
        with pytest.raises(tg.DeviceError, match=r"not available: tinygrad_seq runs on NumPy \(CPU\) only"):
            f()
    assert issubclass(tg.DeviceError, RuntimeError)


def test_module_to_device_and_dtype_forms():
    m = nn.Sequential(nn.Linear(3, 4, device="cpu", dtype=tg.float32), nn.LayerNorm(4, device=tg.device("cpu")))
    assert m.to("cpu") is m and m.cpu() is m and m.to(tg.device("cpu")) is m
    m.to("cpu", tg.float64)
    assert all(p.dtype == tg.float64 for p in m.parameters())
    m.to(dtype=tg.float32)
    assert all(p.dtype == tg.float32 for p in m.parameters())
    m.to(tg.zeros(1, dtype=tg.float64))
    assert all(p.dtype == tg.float64 for p in m.parameters())
    m.half()
    assert all(p.dtype == tg.float16 for p in m.parameters())
    with pytest.raises(TypeError, match="only accepts floating point dtypes"):
        m.to(tg.int64)
    with pytest.raises(tg.DeviceError, match="NumPy"):
        m.cuda()


def test_module_to_float64_matches_torch_forward_and_grad():
    tg.manual_seed(0)
    m = nn.Linear(3, 2).to(tg.device("cpu"), tg.float64)
    tm = torch.nn.Linear(3, 2).to(torch.device("cpu"), torch.float64)
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(m.weight.numpy()))
        tm.bias.copy_(torch.tensor(m.bias.numpy()))
    x = np.random.default_rng(1).standard_normal((5, 3))
    y, ty = m(tg.tensor(x)), tm(torch.tensor(x))
    assert y.dtype == tg.float64
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-12)
