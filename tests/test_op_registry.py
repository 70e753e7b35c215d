"""A new op is one class in ops.py plus its test: declaring `method` gives `x.<method>()` and `tg.<method>(x)`."""
import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq import ops


def test_erf_comes_from_its_class_alone_and_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.linspace(-3, 3, 13)
    x = tg.tensor(a, requires_grad=True)
    y = tg.erf(x) * 2 + x.erf()
    y.sum().backward()
    tx = torch.tensor(a, requires_grad=True)
    ty = torch.erf(tx) * 2 + tx.erf()
    ty.sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    assert tg.gradcheck(lambda t: t.erf(), [tg.tensor(a, requires_grad=True)])


def test_a_class_that_declares_a_method_becomes_one_everywhere():
    class Cube(ops.Function):
        """z = x³;  dz/dx = 3x²"""
        method = "cube_for_test"
        def forward(self, x):
            self.x = x
            return x ** 3
        def backward(self, g): return 3 * g * self.x ** 2
    try:
        assert ops.REGISTRY["Cube"] is Cube
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        (x.cube_for_test() + tg.cube_for_test(x)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), [6.0, 24.0])
        with pytest.raises(AttributeError, match="no attribute 'not_an_op'"):
            x.not_an_op()
    finally:
        ops.METHODS.pop("cube_for_test")
        ops.REGISTRY.pop("Cube")
