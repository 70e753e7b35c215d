"""The walk that parameters(), zero_grad() and the compile guard (mode_signature) reuse between changes:
every way of changing a module tree must show in the next call (nn/module.py _Registry, _STRUCTURE)."""
import copy

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq import nn
from tinygrad_seq.compile import is_compiled_output


def _ids(m):
    return [id(p) for p in m.parameters()]


def _net():
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def _uncached(m):
    """parameters() and mode_signature() of m computed afresh (every cache in the tree dropped)."""
    for sub in m._walk():
        sub.__dict__.pop("_walk_cache", None)
    return _ids(m), m.mode_signature()


def test_every_registration_change_shows_in_parameters_and_signature():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    heads = nn.ModuleList([nn.Linear(2, 2)])
    net.add_module("heads", heads)
    changes = [
        lambda: setattr(net[0], "weight", nn.Parameter(np.zeros((4, 3), np.float32))),
        lambda: net[2]._parameters.__setitem__("bias", nn.Parameter(np.zeros(2, np.float32))),
        lambda: net[2]._parameters.pop("bias"),
        lambda: heads.append(nn.Linear(2, 2)),
        lambda: heads.__setitem__(0, nn.Linear(2, 3)),
        lambda: delattr(net[0], "bias"),
        lambda: net[0].register_parameter("extra", nn.Parameter(np.ones(1, np.float32))),
        lambda: net._modules.move_to_end("0"),
        lambda: net._modules.update({"9": nn.Linear(1, 1)}),
        lambda: net._modules.setdefault("8", nn.Linear(1, 1)),
        lambda: net._modules.popitem(),
        lambda: heads._modules.clear(),
        lambda: setattr(net[0], "training", False),
    ]
    for i, change in enumerate(changes):
        before = (_ids(net), net.mode_signature())
        change()
        cached = (_ids(net), net.mode_signature())
        assert cached != before, f"change {i} not seen"
        assert cached == _uncached(net), f"change {i}: the cache differs from a fresh walk"


def test_training_flags_and_buffers_are_in_the_signature():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))
    sig = net.mode_signature()
    net[2].training = False
    assert net.mode_signature() != sig and net.mode_signature()[0] == (True, True, True, False)
    net.eval()
    assert net.mode_signature()[0] == (False,) * 4
    net.train()
    sig = net.mode_signature()
    net[1].running_mean = tg.zeros(3)  # a buffer replaced by another tensor
    assert net.mode_signature() != sig


def test_a_deep_copy_has_its_own_signature_and_parameters():
    net = _net()
    net.mode_signature(), list(net.parameters())  # cache filled
    twin = copy.deepcopy(net)
    assert set(_ids(twin)).isdisjoint(_ids(net))
    assert twin.mode_signature()[1] == tuple(_ids(twin))


def test_zero_grad_reaches_a_parameter_added_after_a_step():
    net = _net()
    net(tg.randn(2, 3)).sum().backward()
    net.zero_grad()
    net.append(nn.Linear(2, 2))
    net(tg.randn(2, 3)).sum().backward()
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_compiled_module_sees_a_swapped_parameter_and_a_swapped_child():
    net = _net()
    cf = tg.compile(net)
    x = tg.randn(5, 3)
    for _ in range(3):
        cf(x)
    net[0].weight = nn.Parameter(np.zeros((4, 3), np.float32))
    np.testing.assert_allclose(cf(x).numpy(), net(x).numpy())
    net._modules["2"] = nn.Linear(4, 2)
    np.testing.assert_allclose(cf(x).numpy(), net(x).numpy())
    y = None
    for _ in range(3):
        y = cf(tg.randn(5, 3, requires_grad=True))
    assert is_compiled_output(y)


def test_a_store_replaced_by_a_plain_dict_is_still_watched():
    net = _net()
    list(net.parameters())
    net._modules = {"0": nn.Linear(3, 3)}
    assert len(list(net.parameters())) == 2
    net._modules["1"] = nn.Linear(3, 3)
    assert len(list(net.parameters())) == 4
