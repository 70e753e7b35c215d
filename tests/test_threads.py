"""tg.set_num_threads / get_num_threads drive NumPy's BLAS pool through threadpoolctl, as torch's."""
import os
import sys

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq import threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_counts() -> list[int]:
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def restore_threads():
    before = _blas_counts()
    yield
    # per library: NumPy's BLAS (1 thread by default, threads.DEFAULT_THREADS) and torch's may differ
    for lib, n in zip([c for c in threadpoolctl.ThreadpoolController().lib_controllers if c.user_api == "blas"], before):
        lib.set_num_threads(n)
    assert _blas_counts() == before


def test_get_reports_the_blas_pool():
    assert _blas_counts(), "numpy's BLAS should be visible to threadpoolctl"
    assert tg.get_num_threads() == max(_blas_counts())


def test_set_one_thread_reaches_blas_and_back(restore_threads):
    a = np.random.default_rng(0).standard_normal((64, 64))
    before = tg.get_num_threads()
    expected = a @ a
    tg.set_num_threads(1)
    assert _blas_counts() and all(n == 1 for n in _blas_counts())
    assert tg.get_num_threads() == 1
    np.testing.assert_allclose((tg.tensor(a) @ tg.tensor(a)).numpy(), expected, rtol=1e-12)
    tg.set_num_threads(before)
    assert tg.get_num_threads() == before


def test_set_accepts_numpy_ints(restore_threads):
    tg.set_num_threads(np.int64(1))
    assert tg.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -2, 2.0, True, "2"])
def test_set_rejects_what_torch_rejects(bad):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as theirs:
        torch.set_num_threads(bad)
    prefix = str(theirs.value).split(",")[0]  # "set_num_threads expects a positive integer" / "... an int"
    with pytest.raises(RuntimeError, match=prefix):
        tg.set_num_threads(bad)


def test_set_is_positional_only_as_torch():
    with pytest.raises(TypeError):
        tg.set_num_threads(n=1)


def test_without_threadpoolctl(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # makes `import threadpoolctl` raise ImportError
    with pytest.raises(ImportError, match="pip install threadpoolctl"):
        tg.set_num_threads(1)
    monkeypatch.setattr(threads, "_environ", {"OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "5"})
    assert tg.get_num_threads() == 5  # OpenBLAS's own variable wins, as in OpenBLAS
    monkeypatch.setattr(threads, "_environ", {"OMP_NUM_THREADS": "3,2"})
    assert tg.get_num_threads() == 3
    monkeypatch.setattr(threads, "_environ", {})
    assert tg.get_num_threads() == len(os.sched_getaffinity(0))


def test_import_stays_light():
    """threadpoolctl is imported on the first call, not by `import tinygrad_seq`."""
    import subprocess
    code = "import sys, tinygrad_seq; print('threadpoolctl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _threads_in_fresh_process(env_extra: dict, code: str = "") -> int:
    """BLAS threads (as threadpoolctl reads them) in a fresh interpreter after `code` and one engine matmul."""
    import subprocess
    env = {k: v for k, v in os.environ.items() if k not in threads._ENV_VARS}
    env.update(env_extra)
    prog = ("import tinygrad_seq as tg, threadpoolctl\n" + code + "(tg.ones(2, 2) @ tg.ones(2, 2)).sum()\n"
            "print(max(l['num_threads'] for l in threadpoolctl.threadpool_info() if l['user_api'] == 'blas'))")
    out = subprocess.run([sys.executable, "-c", prog], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_library_default_is_one_blas_thread_from_the_first_matmul():
    assert _threads_in_fresh_process({}) == threads.DEFAULT_THREADS == 1


def test_environment_and_set_num_threads_override_the_default():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs to tell 2 threads from 1")
    assert _threads_in_fresh_process({"OPENBLAS_NUM_THREADS": "2"}) == 2
    assert _threads_in_fresh_process({}, "tg.set_num_threads(2)\n") == 2
