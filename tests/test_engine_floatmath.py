"""floatmath.one_minus_square: 1 - y*y rounded once (what torch's tanh
backward computes with a fused multiply-add), checked against exact
rational arithmetic."""
from fractions import Fraction
import math

from hypothesis import given, strategies as st

from engine import Value
from engine.floatmath import one_minus_square


def exactly_rounded_one_minus_square(y):
    return float(1 - Fraction(y) ** 2)  # Fraction -> float rounds once, to nearest even


@given(st.floats(-1.0, 1.0))
def test_one_minus_square_is_rounded_once(y):
    assert one_minus_square(y) == exactly_rounded_one_minus_square(y)


@given(st.floats(0.99, 1.0))
def test_one_minus_square_keeps_the_digits_near_one(y):
    # Where 1.0 - y * y loses digits to cancellation.
    assert one_minus_square(y) == exactly_rounded_one_minus_square(y)


def test_one_minus_square_edges():
    assert one_minus_square(1.0) == 0.0 and one_minus_square(-1.0) == 0.0
    assert one_minus_square(0.0) == 1.0
    assert math.isnan(one_minus_square(math.nan))


def test_regression_tanh_gradient_near_saturation_is_rounded_once():
    # tanh(11.03) is 1 - 5e-10: 1.0 - y * y was off by about 1e-7 relative
    # (soak case expr-0-37628); torch's FMA rounds once.
    x = Value(11.034804686519398)
    y = x.tanh()
    y.backward()
    assert x.grad == exactly_rounded_one_minus_square(y.data)
    assert x.grad != 1.0 - y.data * y.data
