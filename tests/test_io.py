"""tg.save / tg.load: round trips, atomic writes, and clear errors for bad files (never unpickling)."""
import os
import pickle
import zipfile

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.nn import Module, Parameter


class Net(Module):
    def __init__(self, d_in=3, d_out=2):
        super().__init__()
        self.weight = Parameter(np.arange(d_in * d_out, dtype=np.float32).reshape(d_out, d_in))
        self.bias = Parameter(np.zeros(d_out, np.float64))


def _nested():
    return {
        "model": {"w32": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3), "w64": np.eye(2),
                  "idx": np.arange(5, dtype=np.int64), "i8": np.array([-1, 2], np.int8),
                  "mask": np.array([True, False]), "scalar0d": np.array(2.5), "empty": np.zeros((0, 4)),
                  "noncontig": np.arange(12.0).reshape(3, 4).T},
        "tensor": tg.Tensor(np.ones((2, 2), np.float32)),
        "optim": {"state": {0: {"step": 3, "exp_avg": np.full(3, 0.5)}, 7: {}},
                  "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "amsgrad": False, "params": [0, 7]}]},
        "step": 10, "big": 2 ** 70, "loss": 0.1 + 0.2, "nan": float("nan"), "inf": -float("inf"),
        "name": "run/ü", "none": None, "flag": True, "c": 1 - 2j,
        "np_scalars": [np.float32(1.25), np.int64(-3), np.bool_(True)],
        "nested": [[], (), {}, [1, (2, "x")]],
        "1": "string key one",
        1: "int key one",
    }


def _assert_same(a, b):
    assert type(a) is type(b) or (isinstance(a, tg.Tensor) and isinstance(b, np.ndarray)), (a, b)
    if isinstance(a, tg.Tensor):
        a = a.numpy()
    if isinstance(a, dict):
        assert list(a) == list(b)  # keys, their types and order
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_round_trip_nested(tmp_path):
    obj = _nested()
    path = tmp_path / "ckpt.npz"
    tg.save(obj, path)
    back = tg.load(path)
    _assert_same(obj, back)
    assert isinstance(back["tensor"], tg.Tensor)  # Tensors load back as Tensors, as with torch.load
    assert back["model"]["w32"].dtype == np.float32 and back["model"]["w64"].dtype == np.float64
    # plain NumPy can read the arrays too, without pickle
    with np.load(path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["data/model/w64"], np.eye(2))


def test_exact_path_no_suffix_and_str_path(tmp_path):
    path = str(tmp_path / "ckpt")
    tg.save({"a": np.ones(2)}, path)
    assert os.listdir(tmp_path) == ["ckpt"]
    np.testing.assert_array_equal(tg.load(path)["a"], np.ones(2))


def test_model_and_optimizer_checkpoint(tmp_path):
    net = Net()
    opt = tg.optim.Adam(net.parameters(), lr=0.01)
    for p in net.parameters():
        p.grad = tg.Tensor(np.ones_like(p.numpy()))
    opt.step()
    tg.save({"model": net.state_dict(), "optim": opt.state_dict(), "step": 1}, tmp_path / "c.npz")
    ck = tg.load(tmp_path / "c.npz")
    net2 = Net()
    net2.load_state_dict(ck["model"])
    for (k, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    opt2 = tg.optim.Adam(net2.parameters(), lr=0.5)
    opt2.load_state_dict(ck["optim"])
    assert opt2.param_groups[0]["lr"] == 0.01 and ck["step"] == 1
    # a checkpoint of another architecture is refused before anything is copied
    small = Net(d_in=2)
    before = {k: v.copy() for k, v in small.state_dict().items()}
    with pytest.raises(RuntimeError, match="weight"):
        small.load_state_dict(ck["model"])
    for k, v in small.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_overwrite_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    tg.save({"version": 1, "w": np.ones(3)}, path)
    real_savez = np.savez

    def failing_savez(file, *args, **kwargs):
        real_savez(file, *args, **kwargs)  # the bytes are written...
        raise OSError("disk full (simulated)")  # ...but the write fails before completing

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="simulated"):
        tg.save({"version": 2, "w": np.zeros(3)}, path)
    monkeypatch.undo()
    assert tg.load(path)["version"] == 1  # the old file is intact
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind


def test_unsupported_objects_raise_before_touching_the_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    tg.save({"ok": 1}, path)
    cyc = []
    cyc.append(cyc)
    for obj, err, match in [({"a": {1, 2}}, TypeError, r"obj\['a'\]"),
                            ({"a": [np.array([object()], dtype=object)]}, TypeError, "pickle"),
                            ({(1, 2): 3}, TypeError, "key"),
                            ({"f": lambda: 0}, TypeError, "function"),
                            (cyc, ValueError, "cycle")]:
        with pytest.raises(err, match=match):
            tg.save(obj, path)
    assert tg.load(path) == {"ok": 1}
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def _checkpoint_bytes(tmp_path):
    path = tmp_path / "good.npz"
    tg.save({"a": np.arange(1000, dtype=np.float64), "b": np.full(1000, 7.0)}, path)
    return path.read_bytes()


def _corruptions(tmp_path):
    good = _checkpoint_bytes(tmp_path)
    flipped = bytearray(good)
    off = good.index(np.full(1000, 7.0).tobytes()) + 4000  # inside the LAST array's data
    flipped[off] ^= 0xFF
    foreign = tmp_path / "foreign_src.npz"
    np.savez(foreign, weights=np.ones(3))
    npy = tmp_path / "single.npy"
    np.save(npy, np.ones(3))
    return {
        "empty": (b"", "empty"),
        "text": (b"hello, this is not a checkpoint\n" * 4, "not an .npz"),
        "truncated": (good[: len(good) // 2], "truncated"),
        "truncated_tail": (good[:-10], "truncated"),
        "bitflip": (bytes(flipped), "CRC"),
        "foreign_npz": (foreign.read_bytes(), "manifest"),
        "single_npy": (npy.read_bytes(), "single .npy"),
    }


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "truncated_tail", "bitflip", "foreign_npz",
                                  "single_npy"])
def test_bad_files_raise_clear_errors(tmp_path, kind):
    data, match = _corruptions(tmp_path)[kind]
    path = tmp_path / f"{kind}.npz"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=match) as info:
        tg.load(path)
    assert str(path) in str(info.value) and "not a valid tinygrad_seq checkpoint" in str(info.value)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        tg.load("/nonexistent/dir/ckpt.npz")


def _manifest(root, version=1):
    import json
    return np.frombuffer(json.dumps({"format": "tinygrad_seq.checkpoint", "version": version,
                                     "root": root}).encode(), dtype=np.uint8)


class _Boom:
    """Unpickling this creates a marker file: proof that a loader ran pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_never_unpickles(tmp_path):
    marker = str(tmp_path / "UNPICKLED")
    obj_arr = np.empty(1, dtype=object)
    obj_arr[0] = _Boom(marker)
    # an npz whose manifest points at an object (pickled) array
    p1 = tmp_path / "objarray.npz"
    np.savez(p1, manifest=_manifest({"t": "array", "k": "data/x"}), **{"data/x": obj_arr})
    with pytest.raises(ValueError, match="allow_pickle"):
        tg.load(p1)
    # a plain pickle file
    p2 = tmp_path / "pickle.npz"
    p2.write_bytes(pickle.dumps({"x": _Boom(marker)}))
    with pytest.raises(ValueError, match=str(p2)):
        tg.load(p2)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("manifest,match", [
    (_manifest({"t": "array", "k": "data/missing"}), "missing array"),
    (_manifest({"t": "value", "v": 1}, version=99), "version"),
    (_manifest({"t": "mystery"}), "mystery"),
    (np.frombuffer(b"{not json", dtype=np.uint8), "JSON|Expecting"),
    (np.array(["a string manifest"]), "dtype"),
])
def test_bad_manifests(tmp_path, manifest, match):
    path = tmp_path / "m.npz"
    np.savez(path, manifest=manifest)
    with pytest.raises(ValueError, match=match):
        tg.load(path)


def test_zip_with_other_content(tmp_path):
    path = tmp_path / "z.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ValueError, match="manifest"):
        tg.load(path)
