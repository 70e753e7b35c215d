"""tg.set_heap_reuse: the memory a training step frees stays mapped for the next one (glibc's mallopt)."""
import json
import subprocess
import sys
import textwrap

import pytest

import tinygrad_seq as tg
from tinygrad_seq import heap
from tinygrad_seq.autograd import STATE

glibc = pytest.mark.skipif(heap._mallopt() is None, reason="needs glibc's mallopt")

# An eager GRU training loop in a fresh process: minor page faults per step after two warm-up steps.
_LOOP = textwrap.dedent("""
    import json, resource, sys
    import tinygrad_seq as tg
    from tinygrad_seq import models
    if sys.argv[1] == "off":
        tg.set_heap_reuse(False)
    m = models.GRU(64, 256)
    x = tg.randn(32, 32, 64)
    def step():
        m.zero_grad()
        out = m(x)[0]
        (out * out).mean().backward()
    step(); step()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        step()
    print(json.dumps([(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 3, tg.heap_reuse()]))
""")


def _faults_per_step(setting: str, env=None):
    res = subprocess.run([sys.executable, "-c", _LOOP, setting], capture_output=True, text=True, check=True,
                         env=env)
    return json.loads(res.stdout)


@glibc
def test_a_training_loop_stops_page_faulting_its_graph_again():
    faults_on, active_on = _faults_per_step("on")
    faults_off, active_off = _faults_per_step("off")
    assert active_on and not active_off
    # each step builds ~25 MB of intermediates: without reuse glibc maps (and the kernel zero-fills) them again
    assert faults_off > 1000, faults_off
    assert faults_on < faults_off / 20, (faults_on, faults_off)


@glibc
def test_malloc_tunables_in_the_environment_are_left_alone():
    import os
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="131072")
    faults, active = _faults_per_step("on", env)
    assert not active


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, param, value):
        self.calls.append((param, value))
        return 1


@pytest.fixture
def recorded(monkeypatch):
    """mallopt replaced by a recorder; the module's state restored afterwards"""
    rec = _Recorder()
    monkeypatch.setattr(heap, "_mallopt", lambda: rec)
    monkeypatch.setattr(heap, "_active", False)
    monkeypatch.setattr(STATE, "heap_hook", heap.apply_default)
    monkeypatch.setattr(heap, "_environ", {})
    return rec


def test_the_first_backward_applies_the_default_once(recorded):
    x = tg.randn(3, requires_grad=True)
    (x * x).sum().backward()
    assert sorted(recorded.calls) == sorted(heap.REUSE.items())
    assert tg.heap_reuse() and STATE.heap_hook is None
    (x * x).sum().backward()
    assert len(recorded.calls) == len(heap.REUSE)


def test_off_before_the_first_backward_touches_nothing(recorded):
    assert tg.set_heap_reuse(False) is False
    x = tg.randn(3, requires_grad=True)
    (x * x).sum().backward()
    assert recorded.calls == [] and not tg.heap_reuse()


def test_off_after_on_puts_glibcs_initial_thresholds_back(recorded):
    assert tg.set_heap_reuse(True) is True
    assert tg.set_heap_reuse(False) is False
    assert recorded.calls == list(heap.REUSE.items()) + list(heap.GLIBC_DEFAULTS.items())


@pytest.mark.parametrize("env", [{"MALLOC_MMAP_THRESHOLD_": "65536"}, {"MALLOC_TOP_PAD_": "0"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}])
def test_the_default_respects_the_environment(recorded, monkeypatch, env):
    monkeypatch.setattr(heap, "_environ", env)
    heap.apply_default()
    assert recorded.calls == [] and not tg.heap_reuse()


def test_without_glibc_nothing_happens(monkeypatch):
    monkeypatch.setattr(heap, "_mallopt", lambda: None)
    monkeypatch.setattr(heap, "_active", False)
    assert tg.set_heap_reuse(True) is False and not tg.heap_reuse()


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_a_non_bool_setting_is_refused_before_anything_changes(recorded, bad):
    with pytest.raises(TypeError, match="expects a bool"):
        tg.set_heap_reuse(bad)
    assert recorded.calls == [] and STATE.heap_hook is heap.apply_default
