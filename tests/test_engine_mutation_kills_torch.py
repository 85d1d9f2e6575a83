"""The torch facts behind tests/test_engine_mutation_kills.py: its constants
and expected signs are what torch (float64, CPU) computes.  These tests run
torch only, so they stay true whatever the engine does."""
import math
import struct

import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from test_engine_mutation_kills import POW_MINUS_ONE_GRAD, POW_MINUS_TWO, X_POW  # noqa: E402


def f64(x, grad=True):
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def bits(x):
    return struct.pack("<d", float(x))


def test_torch_pow_minus_two_and_its_use_in_the_gradient():
    assert (f64(X_POW, False) ** -2.0).item() == POW_MINUS_TWO
    x = f64(X_POW)
    (x ** -1.0).backward()
    assert x.grad.item() == POW_MINUS_ONE_GRAD


def test_torch_keeps_a_minus_zero_gradient():
    x = f64(2.0)
    (x * -0.0).backward()
    assert bits(x.grad) == bits(-0.0)


def test_torch_function_receives_a_minus_zero_root_gradient():
    class Sign(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return torch.copysign(torch.ones_like(g), g)

    x = f64(2.0)
    Sign.apply(x).backward(f64(-0.0, False))
    assert x.grad.item() == -1.0


@pytest.mark.parametrize("upstream", [1.0, -1.0])
def test_torch_exponent_gradient_at_a_zero_base(upstream):
    zero = bits(upstream * 0.0)
    x, y = f64(0.0), f64(2.0)
    (x ** y).backward(f64(upstream, False))
    assert bits(y.grad) == zero and bits(x.grad) == zero
    y = f64(2.0)
    (0.0 ** y).backward(f64(upstream, False))
    assert bits(y.grad) == zero
    assert not math.isnan(y.grad.item())
