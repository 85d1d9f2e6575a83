"""Value: hand-derived gradients for every op, accumulation, no_grad, IEEE
edge semantics (torch float64's results, never a Python exception), input
validation, and the fused linear() against its unfused definition.

No torch here: expected numbers are derived by hand (the torch module checks
the same facts against a live torch).
"""
import math
import struct
from fractions import Fraction
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Value, is_grad_enabled, linear, no_grad, topological_order

inf, nan = math.inf, math.nan
E = math.e
LN2 = math.log(2.0)


def same(a, b):
    """Bit-level float equality, except that any nan equals any nan."""
    if a != a or b != b:
        return a != a and b != b
    return struct.pack("<d", a) == struct.pack("<d", b)


def close(a, b, rel=1e-14):
    if a != a or b != b:
        return a != a and b != b
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


# --------------------------------------------------------------------------
# Every op, hand-derived: (id, f(*leaves), leaf values, value, gradients)
# --------------------------------------------------------------------------
OP_CASES = [
    # addition: Value + Value, Value + number, number + Value
    ("add_vv", lambda a, b: a + b, (2.0, -3.5), -1.5, (1.0, 1.0)),
    ("add_vn", lambda a: a + 5, (2.0,), 7.0, (1.0,)),
    ("add_nv", lambda a: 5.5 + a, (2.0,), 7.5, (1.0,)),
    # subtraction
    ("sub_vv", lambda a, b: a - b, (2.0, -3.5), 5.5, (1.0, -1.0)),
    ("sub_vn", lambda a: a - 5, (2.0,), -3.0, (1.0,)),
    ("sub_nv", lambda a: 5.0 - a, (2.0,), 3.0, (-1.0,)),
    # multiplication
    ("mul_vv", lambda a, b: a * b, (2.0, -3.5), -7.0, (-3.5, 2.0)),
    ("mul_vn", lambda a: a * 4, (2.0,), 8.0, (4.0,)),
    ("mul_nv", lambda a: 4.0 * a, (2.0,), 8.0, (4.0,)),
    # division: d(a/b) = (1/b, -a/b^2)
    ("div_vv", lambda a, b: a / b, (3.0, -2.0), -1.5, (-0.5, -0.75)),
    ("div_vn", lambda a: a / 4, (3.0,), 0.75, (0.25,)),
    ("div_nv", lambda a: 6.0 / a, (2.0,), 3.0, (-1.5,)),  # d(c/x) = -c/x^2
    # powers: Value ** number
    ("pow_vn_3", lambda a: a ** 3, (2.0,), 8.0, (12.0,)),
    ("pow_vn_-1", lambda a: a ** -1, (2.0,), 0.5, (-0.25,)),
    ("pow_vn_0.5", lambda a: a ** 0.5, (4.0,), 2.0, (0.25,)),
    ("pow_vn_-0.5", lambda a: a ** -0.5, (4.0,), 0.5, (-0.0625,)),
    ("pow_vn_0", lambda a: a ** 0, (2.0,), 1.0, (0.0,)),
    ("pow_vn_1", lambda a: a ** 1, (-2.0,), -2.0, (1.0,)),
    # number ** Value: d(c^y)/dy = c^y ln c
    ("pow_nv", lambda a: 2.0 ** a, (3.0,), 8.0, (8.0 * LN2,)),
    ("pow_nv_int_base", lambda a: 2 ** a, (-1.0,), 0.5, (0.5 * LN2,)),
    # Value ** Value: (y x^(y-1), x^y ln x)
    ("pow_vv", lambda a, b: a ** b, (2.0, 3.0), 8.0, (12.0, 8.0 * LN2)),
    ("pow_vv_negative_base_int_exp", lambda a, b: a ** b, (-2.0, 2.0), 4.0, (-4.0, nan)),
    # unary
    ("neg", lambda a: -a, (2.5,), -2.5, (-1.0,)),
    ("abs_neg", lambda a: abs(a), (-3.0,), 3.0, (-1.0,)),
    ("abs_pos", lambda a: abs(a), (3.0,), 3.0, (1.0,)),
    ("abs_zero", lambda a: abs(a), (0.0,), 0.0, (0.0,)),
    ("exp", lambda a: a.exp(), (1.0,), E, (E,)),
    ("exp_neg", lambda a: a.exp(), (-2.0,), math.exp(-2.0), (math.exp(-2.0),)),
    ("log", lambda a: a.log(), (2.0,), LN2, (0.5,)),
    ("log_e", lambda a: a.log(), (E,), 1.0, (1.0 / E,)),
    ("tanh", lambda a: a.tanh(), (0.5,), math.tanh(0.5), (1.0 - math.tanh(0.5) ** 2,)),
    ("tanh_zero", lambda a: a.tanh(), (0.0,), 0.0, (1.0,)),
    ("sigmoid", lambda a: a.sigmoid(), (0.3,), 1.0 / (1.0 + math.exp(-0.3)),
     ((1.0 / (1.0 + math.exp(-0.3))) * (1.0 - 1.0 / (1.0 + math.exp(-0.3))),)),
    ("sigmoid_zero", lambda a: a.sigmoid(), (0.0,), 0.5, (0.25,)),
    ("relu_pos", lambda a: a.relu(), (2.0,), 2.0, (1.0,)),
    ("relu_neg", lambda a: a.relu(), (-2.0,), 0.0, (0.0,)),
    ("relu_zero", lambda a: a.relu(), (0.0,), 0.0, (0.0,)),
    ("sqrt", lambda a: a.sqrt(), (4.0,), 2.0, (0.25,)),
    ("sqrt_2", lambda a: a.sqrt(), (2.0,), math.sqrt(2.0), (0.5 / math.sqrt(2.0),)),
    # fused linear: b + w1 x1 + w2 x2; leaves (w1, w2, x1, x2, b)
    ("linear", lambda w1, w2, x1, x2, b: linear([w1, w2], [x1, x2], b),
     (2.0, -1.0, 3.0, 4.0, 0.5), 2.5, (3.0, 4.0, 2.0, -1.0, 1.0)),
    ("linear_number_bias", lambda w, x: linear([w], [x], 1.5), (2.0, -3.0), -4.5, (-3.0, 2.0)),
    ("linear_empty", lambda b: linear([], [], b), (0.25,), 0.25, (1.0,)),
    # compositions
    ("chain_rule", lambda a: (a * a + 1.0).log(), (2.0,), math.log(5.0), (0.8,)),
    ("product_rule", lambda a, b: a * b * b, (3.0, 2.0), 12.0, (4.0, 12.0)),
]


@pytest.mark.parametrize(
    "build, inputs, value, grads", [c[1:] for c in OP_CASES], ids=[c[0] for c in OP_CASES]
)
def test_op_value_and_gradient(build, inputs, value, grads):
    leaves = [Value(x) for x in inputs]
    out = build(*leaves)
    assert isinstance(out, Value)
    assert type(out.data) is float
    assert close(out.data, value), (out.data, value)
    out.backward()
    assert out.grad == 1.0
    got = tuple(leaf.grad for leaf in leaves)
    assert all(close(g, e) for g, e in zip(got, grads)), (got, grads)


@pytest.mark.parametrize("gradient", [2.0, -0.5, 3])
def test_backward_seed_gradient_scales_every_gradient(gradient):
    a, b = Value(1.5), Value(-2.0)
    out = (a * b).tanh() + a.exp() / b
    out.backward()
    unit = (a.grad, b.grad)
    a.grad = b.grad = 0.0
    out.backward(gradient)
    assert out.grad == 1.0 + gradient
    assert close(a.grad, gradient * unit[0]) and close(b.grad, gradient * unit[1])


def test_value_int_and_bool_become_float():
    assert type(Value(3).data) is float and Value(3).data == 3.0
    assert type(Value(True).data) is float and Value(True).data == 1.0
    assert Value(Fraction(1, 4)).data == 0.25  # any numbers.Real
    assert Value(-0.0).data == 0.0 and math.copysign(1.0, Value(-0.0).data) == -1.0
    assert float(Value(2.5)) == 2.5
    assert "2.5" in repr(Value(2.5))


def test_numbers_on_either_side_accept_int_and_bool():
    a = Value(2.0)
    assert (a + True).data == 3.0
    assert (a * 3).data == 6.0 and (3 * a).data == 6.0
    assert (1 - a).data == -1.0
    assert (1 / a).data == 0.5
    assert (3 ** a).data == 9.0


def test_leaf_backward_gives_one():
    a = Value(3.0)
    a.backward()
    assert a.grad == 1.0


# --------------------------------------------------------------------------
# The seed's examples: accumulation
# --------------------------------------------------------------------------
def test_a_plus_a_gives_grad_two():
    a = Value(3.0)
    b = a + a
    b.backward()
    assert b.data == 6.0
    assert a.grad == 2.0


def test_number_times_value_goes_through_rmul():
    a = Value(3.0)
    assert int.__mul__(2, a) is NotImplemented  # so Python calls a.__rmul__(2)
    b = 2 * a
    assert isinstance(b, Value)
    b.backward()
    assert b.data == 6.0
    assert a.grad == 2.0


@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=40))
def test_value_used_k_times_gets_the_sum(coefficients):
    a = Value(1.25)
    out = Value(0.0)
    for c in coefficients:
        out = out + c * a
    out.backward()
    assert a.grad == float(sum(coefficients))


@pytest.mark.parametrize("k", [1, 2, 3, 10, 100])
def test_value_added_k_times(k):
    a = Value(-7.0)
    out = a
    for _ in range(k - 1):
        out = out + a
    out.backward()
    assert out.data == -7.0 * k
    assert a.grad == float(k)


def _step(w, x):
    loss = (w * x - 1.0) ** 2
    loss.backward()
    return loss


def test_forgetting_zero_grad_accumulates_across_steps():
    w, x = Value(0.5), Value(2.0)
    _step(w, x)
    first = w.grad  # 2 (w x - 1) x = 0
    assert first == 0.0
    w.data = 1.0
    _step(w, x)  # 2 (2 - 1) 2 = 4: accumulated onto the first step's grad
    assert w.grad == first + 4.0
    _step(w, x)
    assert w.grad == first + 8.0


def test_zero_grad_between_steps_does_not_accumulate():
    w, x = Value(1.0), Value(2.0)
    _step(w, x)
    assert w.grad == 4.0
    w.grad = x.grad = 0.0
    _step(w, x)
    assert w.grad == 4.0


def _everything(a, b):
    c = a * b + a / b - 2.0 ** a
    d = abs(c).sqrt() + (c * c).log() + c.sigmoid() - (-c).relu()
    return (d.tanh() * b.exp() + linear([a, b], [c, d], 1.0)) ** 2


def test_two_backward_calls_accumulate_exactly_double():
    a, b = Value(0.7), Value(-1.3)
    out = _everything(a, b)
    nodes = topological_order(out)
    assert len(nodes) > 20
    out.backward()
    once = [n.grad for n in nodes]
    assert any(g != 0.0 for g in once)
    out.backward()
    twice = [n.grad for n in nodes]
    assert all(same(t, 2.0 * o) for t, o in zip(twice, once))
    out.backward()
    assert all(same(n.grad, 3.0 * o) for n, o in zip(nodes, once))


# --------------------------------------------------------------------------
# no_grad
# --------------------------------------------------------------------------
def test_no_grad_records_no_graph():
    a, b = Value(2.0), Value(3.0)
    with no_grad():
        assert not is_grad_enabled()
        out = (a * b + a.exp()).tanh() + linear([a], [b], 1.0) + 2.0 ** a
    assert is_grad_enabled()
    assert out._prev == ()
    assert out._backward is None
    assert topological_order(out) == [out]
    assert math.isclose(out.data, math.tanh(6.0 + math.exp(2.0)) + 7.0 + 4.0, rel_tol=1e-15)
    out.backward()
    assert a.grad == 0.0 and b.grad == 0.0


def test_no_grad_restores_on_exception_and_nests():
    with pytest.raises(KeyError):
        with no_grad():
            with no_grad():
                assert not is_grad_enabled()
            assert not is_grad_enabled()
            raise KeyError("boom")
    assert is_grad_enabled()
    a = Value(2.0)
    b = a * a
    assert b._prev == (a, a)


def test_no_grad_as_decorator():
    @no_grad()
    def square(v):
        assert not is_grad_enabled()
        return v * v

    a = Value(3.0)
    out = square(a)
    assert is_grad_enabled()
    assert out.data == 9.0 and out._prev == ()
    assert square.__name__ == "square"


def test_graph_after_no_grad_block_is_recorded_again():
    a = Value(2.0)
    with no_grad():
        c = a * 3.0  # a constant
    out = c * a
    out.backward()
    assert a.grad == 6.0  # c's dependence on a is not seen
    assert c.grad == 2.0


# --------------------------------------------------------------------------
# Edge semantics: torch float64's results, never a Python exception
# --------------------------------------------------------------------------
EDGE_CASES = [
    ("one_over_zero", lambda x: 1 / x, 0.0, inf, -inf),
    ("one_over_neg_zero", lambda x: 1 / x, -0.0, -inf, -inf),
    ("zero_over_zero", lambda x: x / 0.0, 0.0, nan, inf),
    ("value_over_zero_value", lambda x: x / Value(0.0), -3.0, -inf, inf),
    ("log_zero", lambda x: x.log(), 0.0, -inf, inf),
    ("log_minus_one", lambda x: x.log(), -1.0, nan, -1.0),
    ("log_inf", lambda x: x.log(), inf, inf, 0.0),
    ("exp_1000", lambda x: x.exp(), 1000.0, inf, inf),
    ("exp_minus_1000", lambda x: x.exp(), -1000.0, 0.0, 0.0),
    ("negative_base_sqrt_pow", lambda x: x ** 0.5, -2.0, nan, nan),
    ("sqrt_negative", lambda x: x.sqrt(), -2.0, nan, nan),
    ("sqrt_zero", lambda x: x.sqrt(), 0.0, 0.0, inf),
    ("relu_zero", lambda x: x.relu(), 0.0, 0.0, 0.0),
    ("abs_zero", lambda x: abs(x), 0.0, 0.0, 0.0),
    ("zero_pow_minus_one", lambda x: x ** -1, 0.0, inf, -inf),
    ("zero_pow_minus_two", lambda x: x ** -2, 0.0, inf, -inf),
    ("neg_zero_pow_minus_one", lambda x: x ** -1, -0.0, -inf, -inf),
    ("ten_pow_400", lambda x: 10.0 ** x, 400.0, inf, inf),
    ("value_pow_overflow", lambda x: x ** 400, 10.0, inf, inf),
    ("negative_value_pow_odd_overflow", lambda x: x ** 401, -10.0, -inf, inf),
    ("tanh_plus_1000", lambda x: x.tanh(), 1000.0, 1.0, 0.0),
    ("tanh_minus_1000", lambda x: x.tanh(), -1000.0, -1.0, 0.0),
    ("sigmoid_minus_1000", lambda x: x.sigmoid(), -1000.0, 0.0, 0.0),
    ("sigmoid_plus_1000", lambda x: x.sigmoid(), 1000.0, 1.0, 0.0),
    ("inf_minus_inf", lambda x: x - inf, inf, nan, 1.0),
    ("inf_times_zero", lambda x: x * 0.0, inf, nan, 0.0),
]


@pytest.mark.parametrize(
    "f, x, value, grad", [c[1:] for c in EDGE_CASES], ids=[c[0] for c in EDGE_CASES]
)
def test_edge_semantics_without_exceptions(f, x, value, grad):
    a = Value(x)
    out = f(a)
    assert type(out.data) is float  # never complex, never an exception
    assert same(out.data, value), (out.data, value)
    out.backward()
    assert same(a.grad, grad), (a.grad, grad)


@pytest.mark.parametrize(
    "x, y, value, gx, gy",
    [
        (-2.0, 0.5, nan, nan, nan),
        (-2.0, 3.0, -8.0, 12.0, nan),
        (0.0, 0.0, 1.0, 0.0, 0.0),
        (0.0, 2.0, 0.0, 0.0, 0.0),
        (0.0, -1.0, inf, -inf, -inf),
        (2.0, 0.0, 1.0, 0.0, LN2),
    ],
)
def test_value_pow_value_edges(x, y, value, gx, gy):
    a, b = Value(x), Value(y)
    out = a ** b
    assert type(out.data) is float
    assert same(out.data, value)
    out.backward()
    assert close(a.grad, gx) and close(b.grad, gy), (a.grad, b.grad)


def test_zero_pow_value_exponent_gradient_propagates_nan_upstream():
    # g * where(x == 0 and y >= 0, 0, ...): the zero is multiplied by g
    a, b = Value(0.0), Value(1.0)
    out = a ** b
    out.backward(nan)
    assert math.isnan(b.grad)
    a, b = Value(0.0), Value(1.0)
    (a ** b).backward(inf)
    assert math.isnan(b.grad)  # inf * 0


# --------------------------------------------------------------------------
# Known divergences from torch float64 (regressions; see the report)
# --------------------------------------------------------------------------
def test_regression_pow_half_of_negative_zero():
    # torch: Tensor ** 0.5 runs sqrt, and sqrt(-0.0) is -0.0;
    # the gradient 0.5 * (-0.0) ** -0.5 = 0.5 * rsqrt(-0.0) = -inf.
    # (Value(-0.0).sqrt() already gets both right.)
    a = Value(-0.0)
    out = a ** 0.5
    out.backward()
    assert same(out.data, -0.0), out.data
    assert a.grad == -inf, a.grad


def test_regression_pow_minus_half_of_negative_zero():
    # torch: Tensor ** -0.5 runs rsqrt: rsqrt(-0.0) = 1 / sqrt(-0.0) = -inf
    a = Value(-0.0)
    out = a ** -0.5
    out.backward()
    assert out.data == -inf, out.data
    assert a.grad == -inf, a.grad


def test_regression_relu_of_negative_zero_keeps_the_sign():
    # torch.relu(-0.0) is -0.0 (clamp_min keeps x when x == 0), so
    # 1 / relu(-0.0) is -inf in torch.
    out = Value(-0.0).relu()
    assert same(out.data, -0.0), out.data
    assert (1 / Value(-0.0).relu()).data == -inf


# --------------------------------------------------------------------------
# Bad inputs: TypeError naming the type
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad, name",
    [("x", "str"), ([1], "list"), (1 + 2j, "complex"), (None, "NoneType"), ({}, "dict"), (b"1", "bytes")],
)
def test_value_rejects_non_real(bad, name):
    with pytest.raises(TypeError) as excinfo:
        Value(bad)
    assert name in str(excinfo.value)


def test_value_plus_string_names_the_type():
    with pytest.raises(TypeError) as excinfo:
        Value(1) + "a"
    assert "str" in str(excinfo.value)


def test_string_times_value_names_the_type():
    with pytest.raises(TypeError) as excinfo:
        "a" * Value(1)
    assert "Value" in str(excinfo.value)


OPERATORS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a ** b,
}


@pytest.mark.parametrize("op", sorted(OPERATORS))
@pytest.mark.parametrize("bad, name", [("a", "str"), (None, "NoneType"), ([1.0], "list"), (1j, "complex")])
@pytest.mark.parametrize("value_on_left", [True, False])
def test_operators_reject_non_numbers(op, bad, name, value_on_left):
    f = OPERATORS[op]
    with pytest.raises(TypeError) as excinfo:
        if value_on_left:
            f(Value(2.0), bad)
        else:
            f(bad, Value(2.0))
    message = str(excinfo.value)
    assert "Value" in message
    if not (op == "*" and isinstance(bad, (str, list))):  # sequence repetition names only the count's type
        assert name in message


def test_linear_wrong_lengths():
    with pytest.raises(ValueError):
        linear([Value(1.0), Value(2.0)], [Value(3.0)], 0.0)
    with pytest.raises(ValueError):
        linear([], [Value(3.0)], Value(0.0))


@pytest.mark.parametrize(
    "weights, inputs, name",
    [
        ([Value(1.0)], [2.0], "float"),
        ([2], [Value(1.0)], "int"),
        ([Value(1.0), "w"], [Value(1.0), Value(2.0)], "str"),
        ([Value(1.0)], [None], "NoneType"),
    ],
)
def test_linear_rejects_non_values(weights, inputs, name):
    with pytest.raises(TypeError) as excinfo:
        linear(weights, inputs, 0.0)
    assert name in str(excinfo.value)


def test_linear_rejects_bad_bias():
    with pytest.raises(TypeError):
        linear([Value(1.0)], [Value(2.0)], "b")


def test_regression_linear_rejects_objects_with_a_data_attribute():
    # linear() only checks for a .data attribute: an object that has one (a
    # torch tensor, a SimpleNamespace) is silently put into the graph, and the
    # node's data can even become a torch.Tensor. It must raise TypeError.
    impostor = SimpleNamespace(data=2.0)
    with pytest.raises(TypeError) as excinfo:
        linear([Value(1.0)], [impostor], 0.0)
    assert "SimpleNamespace" in str(excinfo.value)


# --------------------------------------------------------------------------
# linear(ws, xs, b) == sum((w * x ...), b), bit for bit
# --------------------------------------------------------------------------
any_float = st.floats(allow_nan=True, allow_infinity=True)
plain_float = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@st.composite
def linear_cases(draw, elements=any_float):
    n = draw(st.integers(0, 8))
    ws = draw(st.lists(elements, min_size=n, max_size=n))
    xs = draw(st.lists(elements, min_size=n, max_size=n))
    b = draw(elements)
    g = draw(st.one_of(st.just(1.0), elements))
    return ws, xs, b, g


def _check_linear_matches_unfused(ws, xs, b, g):
    fw, fx, fb = [Value(w) for w in ws], [Value(x) for x in xs], Value(b)
    uw, ux, ub = [Value(w) for w in ws], [Value(x) for x in xs], Value(b)
    fused = linear(fw, fx, fb)
    unfused = sum((w * x for w, x in zip(uw, ux)), ub)
    assert same(fused.data, unfused.data)
    fused.backward(g)
    unfused.backward(g)
    for f, u in zip(fw + fx + [fb], uw + ux + [ub]):
        assert same(f.grad, u.grad), (f.grad, u.grad)


@given(linear_cases())
def test_linear_equals_unfused_sum_bit_for_bit(case):
    _check_linear_matches_unfused(*case)


@given(linear_cases(plain_float))
def test_linear_equals_unfused_sum_bit_for_bit_finite(case):
    _check_linear_matches_unfused(*case)


def test_linear_with_shared_operands():
    a, b, c = Value(2.0), Value(-3.0), Value(0.5)
    out = linear([a, a, b], [a, b, c], c)  # c + a^2 + a b + b c
    assert out.data == 0.5 + 4.0 - 6.0 - 1.5
    out.backward()
    assert a.grad == 2 * 2.0 + -3.0
    assert b.grad == 2.0 + 0.5
    assert c.grad == 1.0 + -3.0


def test_linear_is_one_node():
    ws = [Value(float(i)) for i in range(5)]
    xs = [Value(1.0) for _ in range(5)]
    out = linear(ws, xs, 0.0)
    assert len(out._prev) == 11  # bias, weights, inputs
    assert len(topological_order(out)) == 12
    assert out.data == 10.0


def test_max_and_min_take_a_number_and_split_a_tie():
    x = Value(2.0)
    y = x.max(2.0) + x.min(3)
    y.backward()
    assert y.data == 4.0 and x.grad == 1.5  # half of max's gradient at the tie, all of min's


def test_clamp_passes_the_gradient_at_its_bounds_and_keeps_a_zero_s_sign():
    for x, value, grad in ((0.0, 0.0, 1.0), (1.0, 1.0, 1.0), (1.5, 1.0, 0.0), (-0.0, -0.0, 1.0)):
        v = Value(x)
        y = v.clamp(0.0, 1.0)
        y.backward()
        assert (repr(y.data), v.grad) == (repr(value), grad)
