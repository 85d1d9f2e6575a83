"""Forward mode (engine.Dual, engine.jvp): every op of the op table, its
primal against Value's forward and its tangent against Value's backward (no
torch needed) and against torch.func.jvp in float64; random graphs; nesting.

How close to torch, and why: a tangent is torch's own formula evaluated on
the same float64 values, so it is bit for bit torch's wherever torch's
kernels round the values inside it as C's libm does (Value's forward).  Where
they do not (torch's exp, log, tanh, sqrt, sin, cos, log1p, expm1 and its
sqrt-based x ** 0.5 are at times an ulp off the correctly rounded result,
a known difference of Value's forward too), the tangent differs by that ulp
carried through the formula: at the ordinary points below (|x| <= 3) at most
about 140 ulps (tanh's 1 - y * y near saturation), so a relative 1e-13.
"""
import itertools
import math
import operator
import struct

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from engine import Dual, Value, dual_level, jvp, make_dual, unpack_dual
from parity.generate import ExprConfig, random_leaves, random_structure
from parity.ops import NONZERO, OP_NAMES, OPS, POSITIVE

inf, nan = math.inf, math.nan
UNARY = [name for name in OP_NAMES if OPS[name].arity == 1]
BINARY = [name for name in OP_NAMES if OPS[name].arity == 2]
# Rounding differs from torch's kernels (see the module docstring): a
# relative 1e-13 at ordinary points, bit for bit elsewhere.
TORCH_ROUNDING = 1e-13
# The op's formula needs a value torch rounds differently from libm even
# where the primal agrees (sin's cos(x), cos's sin(x), x ** 1.5's sqrt).
OTHER_KERNEL_INSIDE = {"sin", "cos", "pow_const"}


def same_bits(a, b):
    if a != a or b != b:
        return a != a and b != b
    return struct.pack("<d", a) == struct.pack("<d", b)


def equal(a, b):
    """Equal, or both nan (a zero's sign aside)."""
    return a == b or (a != a and b != b)


def close(a, b, rel_tol, abs_tol=0.0):
    return equal(a, b) or math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def bottom(x):
    """The float at the bottom of a Dual of Duals."""
    while isinstance(x, Dual):
        x = x.primal
    return x


def ordinary(domain):
    if domain == POSITIVE:
        return st.floats(0.05, 3.0)
    if domain == NONZERO:
        return st.floats(-3.0, 3.0).filter(lambda x: abs(x) >= 0.05)
    return st.floats(-3.0, 3.0)


tangent_values = st.floats(-2.0, 2.0)


@st.composite
def op_points(draw, name):
    """(operands, tangents, const) for op ``name`` at an ordinary point."""
    op = OPS[name]
    xs = tuple(draw(ordinary(d)) for d in op.domains)
    ts = tuple(draw(tangent_values) for _ in xs)
    const = draw(st.sampled_from(op.constants)) if op.has_const else None
    return xs, ts, const


def engine_jvp(op, xs, ts, const):
    return jvp(lambda *duals: op.apply_engine(duals, const), xs, ts)


def value_forward(op, xs, const):
    return op.apply_engine([Value(x) for x in xs], const).data


def edge_points(op):
    """Every operand tuple of the op's edge points, with every constant."""
    for xs in itertools.product(op.edges, repeat=op.arity):
        for const in op.constants or (None,):
            yield xs, const


EDGE_TANGENTS = {1: [(1.0,), (-0.5,), (0.0,), (-0.0,), (inf,), (nan,)],
                 2: [(1.0, -0.5), (-0.0, 0.0), (0.0, -0.0), (inf, 1.0), (1.0, nan)]}


# -- the primal is Value's forward, bit for bit ------------------------------
@pytest.mark.parametrize("name", OP_NAMES)
@given(data=st.data())
def test_primal_is_values_forward_at_ordinary_points(name, data):
    op = OPS[name]
    xs, ts, const = data.draw(op_points(name))
    out, _ = engine_jvp(op, xs, ts, const)
    assert same_bits(out, value_forward(op, xs, const))


@pytest.mark.parametrize("name", OP_NAMES)
def test_primal_is_values_forward_at_edge_points(name):
    op = OPS[name]
    for xs, const in edge_points(op):
        out, _ = engine_jvp(op, xs, (1.0,) * op.arity, const)
        assert same_bits(out, value_forward(op, xs, const)), (xs, const)


# -- the tangent is Value's gradient ----------------------------------------
# A unary op's tangent is its backward formula with the tangent for the
# gradient (torch's auto_element_wise), the expression Value's backward uses,
# except for two ops where torch's forward formula is another one:
# c / x is x.reciprocal() * c, whose forward multiplies in the other order,
# and silu's is infinitely_differentiable_silu_backward (unfused), where
# Value's backward has silu_backward's fused kernel.
NOT_VALUES_BACKWARD = {"rdiv", "silu"}


def value_gradients(op, xs, const, gradient):
    leaves = [Value(x) for x in xs]
    op.apply_engine(leaves, const).backward(gradient)
    return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("name", [n for n in UNARY if n not in NOT_VALUES_BACKWARD])
@given(data=st.data())
def test_unary_tangent_is_values_backward_at_ordinary_points(name, data):
    op = OPS[name]
    xs, ts, const = data.draw(op_points(name))
    _, tangent = engine_jvp(op, xs, ts, const)
    assert equal(tangent, value_gradients(op, xs, const, ts[0])[0])


@pytest.mark.parametrize("name", [n for n in UNARY if n not in NOT_VALUES_BACKWARD])
def test_unary_tangent_is_values_backward_at_edge_points(name):
    op = OPS[name]
    for xs, const in edge_points(op):
        for t in (1.0, -0.5, 3.0):
            _, tangent = engine_jvp(op, xs, (t,), const)
            assert equal(tangent, value_gradients(op, xs, const, t)[0]), (xs, const, t)


@given(st.floats(-3.0, 3.0).filter(lambda x: abs(x) >= 0.05), tangent_values,
       st.sampled_from(OPS["rdiv"].constants))
def test_rdiv_tangent_is_values_backward_up_to_its_order_of_products(x, t, c):
    _, tangent = jvp(lambda d: c / d, (x,), (t,))
    assert math.isclose(tangent, value_gradients(OPS["rdiv"], (x,), c, t)[0], rel_tol=4 * 2 ** -52, abs_tol=2 ** -1070)


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_tangent_along_each_operand_is_values_partial(name, data):
    op = OPS[name]
    xs, _, _ = data.draw(op_points(name))
    partials = value_gradients(op, xs, None, 1.0)
    for direction, partial in zip([(1.0, 0.0), (0.0, 1.0)], partials):
        _, tangent = engine_jvp(op, xs, direction, None)
        assert equal(tangent, partial), (direction, tangent, partial)


# The dot-product identity <t, J^T c> = <J t, c>: forward (J t) against
# Value's backward (J^T c) on random graphs.  Both round, along different
# paths: the tolerance is relative to the terms, plus an absolute part for
# paths that cancel exactly one way and not the other (v / v's tangent is 0,
# its gradient g / v - g * (v / v) / v need not be), and a floor for
# subnormal tangents, whose roundings are absolute.  max and min are left
# out: torch's forward formula for them, other_t + w * (self_t - other_t),
# rounds the winner's tangent by the loser's (tested below).
IDENTITY_OPS = tuple(name for name in OP_NAMES if name not in ("max", "min"))


def graph_function(graph):
    def f(*leaves):
        return graph.evaluate(leaves, lambda op, args, const: op.apply_engine(args, const), operator.add)[1]
    return f


@given(st.integers(0, 10 ** 6), st.lists(tangent_values, min_size=8, max_size=8), st.floats(-2.0, 2.0))
def test_dot_product_identity_on_random_graphs(seed, tangents, c):
    structure = random_structure(seed, ExprConfig(max_nodes=12, ops=IDENTITY_OPS, edge_rate=0.0))
    leaves = random_leaves(structure, seed, 0, 0.0)
    ts = tangents[:len(leaves)]
    f = graph_function(structure.graph)
    _, jt = jvp(f, leaves, ts)
    terms = [t * g for t, g in zip(ts, value_gradients_of(f, leaves, c))]
    assume(all(map(math.isfinite, terms + [jt * c])))
    scale = sum(map(abs, terms)) + abs(jt * c)
    assert abs(math.fsum(terms) - jt * c) <= 1e-9 * scale + 1e-12 * sum(map(abs, ts)) + 1e-300, (jt, terms)


def value_gradients_of(f, xs, gradient):
    leaves = [Value(x) for x in xs]
    f(*leaves).backward(gradient)
    return [leaf.grad for leaf in leaves]


@given(st.floats(-3.0, 3.0), st.floats(-3.0, 3.0), tangent_values, tangent_values)
def test_max_min_tangent_is_the_winners_up_to_the_losers_rounding(a, b, ta, tb):
    for method, wins in (("max", a > b), ("min", a < b)):
        _, tangent = jvp(lambda x, y: getattr(x, method)(y), (a, b), (ta, tb))
        if a == b:
            expected = tb + 0.5 * (ta - tb)  # a tie: the mean, as torch rounds it
            assert tangent == expected
        else:
            expected = ta if wins else tb
            assert abs(tangent - expected) <= 2 ** -52 * (abs(ta) + abs(tb))


def test_max_tangent_keeps_torchs_rounding():
    # other_t + 1.0 * (self_t - other_t): 1 + (1e-20 - 1) is 0.0, torch's answer
    assert jvp(lambda a, b: a.max(b), (2.0, 1.0), (1e-20, 1.0))[1] == 0.0


# -- the API --------------------------------------------------------------
def test_dual_holds_floats_and_reads_like_value():
    d = Dual(3, True)
    assert (d.primal, d.tangent, d.level) == (3.0, 1.0, 0)
    assert type(d.primal) is float and float(d) == 3.0
    assert repr(d) == "Dual(primal=3.0, tangent=1.0)"
    assert repr(Dual(d, 0.0, level=2)) == "Dual(primal=Dual(primal=3.0, tangent=1.0), tangent=0.0, level=2)"


@pytest.mark.parametrize("primal, tangent, level, error", [
    ("3", 1.0, 0, TypeError),
    (1.0, 1j, 0, TypeError),
    (Value(1.0), 1.0, 0, TypeError),
    (1.0, 1.0, -1, TypeError),
    (1.0, 1.0, True, TypeError),
    (Dual(1.0, 1.0), 1.0, 0, ValueError),        # the same level inside: perturbations would mix
    (1.0, Dual(1.0, 1.0, level=3), 2, ValueError),  # a newer level inside an older one
])
def test_dual_rejects(primal, tangent, level, error):
    with pytest.raises(error):
        Dual(primal, tangent, level)


def test_numbers_on_either_side():
    x = Dual(2.0, 1.0)
    for result, primal, tangent in [
        (x + 1, 3.0, 1.0), (1 + x, 3.0, 1.0), (x - 1, 1.0, 1.0), (1 - x, -1.0, -1.0),
        (x * 3, 6.0, 3.0), (3 * x, 6.0, 3.0), (x / 4, 0.5, 0.25), (4 / x, 2.0, -1.0),
        (x ** 3, 8.0, 12.0), (2 ** x, 4.0, 4.0 * math.log(2.0)), (x ** x, 4.0, 4.0 * (1.0 + math.log(2.0))),
        (-x, -2.0, -1.0), (abs(-x), 2.0, 1.0), (x.max(3), 3.0, 0.0), (x.min(3.0), 2.0, 1.0),
        (x.clamp(0, 1), 1.0, 0.0), (x.leaky_relu(0.2), 2.0, 1.0), (x.gelu(approximate="tanh"), None, None),
    ]:
        assert isinstance(result, Dual)
        if primal is not None:
            assert (result.primal, result.tangent) == pytest.approx((primal, tangent), rel=1e-15)


def test_unsupported_operands_raise_type_error():
    x = Dual(2.0, 1.0)
    for bad in ("a", Value(1.0), None):
        with pytest.raises(TypeError):
            x + bad
        with pytest.raises(TypeError):
            bad * x
        with pytest.raises(TypeError):
            x.max(bad)
    with pytest.raises(ValueError, match="approximate"):
        x.gelu(approximate="fast")


def test_jvp_mirrors_torch_func_jvp_structure():
    out, tangent = jvp(lambda x, y: x * y, (2.0, 3.0), (1.0, 0.0))
    assert (out, tangent) == (6.0, 3.0) and type(out) is float and type(tangent) is float
    outs, tangents = jvp(lambda x: (x.exp(), [x * 2, 7], x), (0.0,), (1.0,))
    assert outs == (1.0, [0.0, 7.0], 0.0)
    assert tangents == (1.0, [2.0, 0.0], 1.0)
    # an output that does not depend on the input has tangent 0.0
    constant = Dual(5.0, 1.0)
    out, tangent = jvp(lambda x: constant, (0.0,), (1.0,))
    assert out is constant and tangent == 0.0


def test_jvp_checks_its_arguments():
    with pytest.raises(TypeError, match="tuple"):
        jvp(lambda x: x, 1.0, (1.0,))
    with pytest.raises(ValueError, match="2 primals but 1 tangents"):
        jvp(lambda x, y: x, (1.0, 2.0), (1.0,))
    with pytest.raises(TypeError, match="Duals or numbers"):
        jvp(lambda x: "x", (1.0,), (1.0,))


def test_dual_level_make_dual_unpack_dual():
    with pytest.raises(RuntimeError, match="dual_level"):
        make_dual(1.0, 1.0)
    assert unpack_dual(3.0) == (3.0, None)
    with dual_level() as level:
        x = make_dual(2.0, 1.0)
        assert x.level == level
        y = x.sin() * x
        primal, tangent = unpack_dual(y)
        assert primal == math.sin(2.0) * 2.0
        assert tangent == math.cos(2.0) * 2.0 + math.sin(2.0)
        assert unpack_dual(Dual(1.0, 1.0)).tangent is None  # level 0's
        with dual_level() as inner:
            assert inner > level
            assert unpack_dual(x).tangent is None  # x has no tangent at the inner level
            assert unpack_dual(x, level=level).tangent == 1.0


# -- nesting: levels keep perturbations apart -------------------------------
def test_no_perturbation_confusion():
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1; a single shared
    # perturbation would make it 2 (Siskind and Pearlmutter's example)
    def f(x):
        return x * jvp(lambda y: x + y, (1.0,), (1.0,))[1]
    assert jvp(f, (5.0,), (1.0,)) == (5.0, 1.0)


def test_one_shared_level_is_what_confuses():
    # the same example on one level: x's perturbation leaks into d/dy
    with dual_level() as level:
        x = make_dual(5.0, 1.0, level=level)
        inner = (x + make_dual(1.0, 1.0, level=level)).tangent
        assert inner == 2.0 and (x * inner).tangent == 2.0


def test_inner_jvp_returns_outer_level_duals():
    seen = {}

    def f(x):
        out, tangent = jvp(lambda y: x * y, (3.0,), (1.0,))
        seen.update(out=out, tangent=tangent, level=x.level)
        return tangent

    assert jvp(f, (2.0,), (1.0,)) == (2.0, 1.0)  # d/dx [d/dy (x y)] = 1
    assert isinstance(seen["out"], Dual) and seen["out"].level == seen["level"]
    assert (seen["out"].primal, seen["out"].tangent) == (6.0, 3.0)
    assert seen["tangent"].level == seen["level"] and (seen["tangent"].primal, seen["tangent"].tangent) == (2.0, 1.0)


def derivative(f):
    return lambda x: jvp(f, (x,), (1.0,))[1]


@given(st.floats(-3.0, 3.0))
def test_forward_over_forward_gives_higher_derivatives(x):
    assert derivative(derivative(lambda v: v.sin()))(x) == -math.sin(x)
    assert derivative(derivative(lambda v: v.exp()))(x) == math.exp(x)
    assert derivative(derivative(lambda v: v ** 3))(x) == pytest.approx(6 * x, rel=1e-15, abs=1e-300)
    assert derivative(derivative(derivative(lambda v: v ** 4)))(x) == pytest.approx(24 * x, rel=1e-14, abs=1e-300)
    assert derivative(derivative(derivative(lambda v: v * v * v * v)))(x) == pytest.approx(24 * x, rel=1e-14,
                                                                                             abs=1e-300)


def test_second_derivative_at_kinks_is_torchs():
    # torch's elu_double_backward and softplus_double_backward mask by x < 0 and
    # x < 20, where the first derivatives take x <= 0 and x <= 20: at the kink
    # the second derivative is 0, the side with the identity's
    assert derivative(derivative(lambda v: v.elu()))(0.0) == 0.0
    assert derivative(derivative(lambda v: v.elu()))(-0.5) == math.exp(-0.5)
    assert derivative(derivative(lambda v: v.softplus()))(20.0) == 0.0
    assert derivative(derivative(lambda v: v.softplus()))(19.5) > 0.0
    assert derivative(derivative(lambda v: v.relu()))(0.0) == 0.0


@pytest.mark.parametrize("name", OP_NAMES)
@given(data=st.data())
def test_nested_primal_is_the_first_order_tangent(name, data):
    # jvp of (x -> jvp(f, x, u)) carries jvp(f, x, u)'s tangent as its primal, bit for bit
    op = OPS[name]
    xs, us, const = data.draw(op_points(name))
    vs = tuple(data.draw(tangent_values) for _ in xs)
    inner, _ = jvp(lambda *duals: engine_jvp(op, duals, us, const)[1], xs, vs)
    assert same_bits(bottom(inner), engine_jvp(op, xs, us, const)[1])


def test_mixed_partial_of_two_variables():
    # d/dx d/dy (x * y * sin(x)) = sin(x) + x cos(x)
    def dy(x, y):
        return jvp(lambda y_: x * y_ * x.sin(), (y,), (1.0,))[1]
    _, mixed = jvp(dy, (0.7, 2.0), (1.0, 0.0))
    assert mixed == pytest.approx(math.sin(0.7) + 0.7 * math.cos(0.7), rel=1e-15)


# -- against torch (float64) ------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_jvp(torch, f, xs, ts):
    def tensor(v):
        return torch.tensor(v, dtype=torch.float64)
    out, tangent = torch.func.jvp(f, tuple(map(tensor, xs)), tuple(map(tensor, ts)))
    return out.item(), tangent.item()


def op_torch_jvp(torch, op, xs, ts, const):
    return torch_jvp(torch, lambda *tensors: op.apply_torch(tensors, const), xs, ts)


@pytest.mark.torch
@pytest.mark.parametrize("name", OP_NAMES)
@given(data=st.data())
def test_tangent_matches_torch_at_ordinary_points(torch, name, data):
    op = OPS[name]
    xs, ts, const = data.draw(op_points(name))
    out, tangent = engine_jvp(op, xs, ts, const)
    torch_out, torch_tangent = op_torch_jvp(torch, op, xs, ts, const)
    if same_bits(out, torch_out) and name not in OTHER_KERNEL_INSIDE:
        assert same_bits(tangent, torch_tangent), (tangent, torch_tangent)
    else:
        assert close(tangent, torch_tangent, TORCH_ROUNDING), (tangent, torch_tangent)


@pytest.mark.torch
@pytest.mark.parametrize("name", OP_NAMES)
def test_tangent_matches_torch_at_edge_points(torch, name):
    # The op table's edges, every constant, tangents with zeros of both signs,
    # inf and nan: the same bits as torch's (nan for nan, a zero's sign too).
    op = OPS[name]
    for xs, const in edge_points(op):
        for ts in EDGE_TANGENTS[op.arity]:
            out, tangent = engine_jvp(op, xs, ts, const)
            torch_out, torch_tangent = op_torch_jvp(torch, op, xs, ts, const)
            if same_bits(out, torch_out):
                assert same_bits(tangent, torch_tangent), (xs, ts, const, tangent, torch_tangent)
            else:  # torch's kernel rounds the primal otherwise (expm1(1.0))
                assert close(tangent, torch_tangent, TORCH_ROUNDING), (xs, ts, const)


CONSTANT_EDGES = (0.0, -0.0, 1.0, -2.0, 0.5, 1000.0, inf, -inf, nan)


@pytest.mark.torch
@pytest.mark.parametrize("name", BINARY)
def test_a_constant_operand_has_torchs_undefined_tangent(torch, name):
    # An operand of an older level (here a plain Dual) is a constant at the
    # jvp's level, as a tensor without a tangent is for torch: its tangent is
    # torch's efficient zero (0 * inf is 0 and x + 0 keeps a -0.0), bit for bit.
    # max and min take a number for such an operand too.
    op = OPS[name]
    for x, c, side in itertools.product(op.edges, CONSTANT_EDGES, (0, 1)):
        c_tensor = torch.tensor(c, dtype=torch.float64)
        constants = (Dual(c, 1.0), c) if name in ("max", "min") and side == 0 else (Dual(c, 1.0),)
        for t, constant in itertools.product((1.0, 0.0, -0.0, inf), constants):
            if side == 0:
                ours = jvp(lambda v: op.apply_engine((v, constant)), (x,), (t,))
                theirs = torch_jvp(torch, lambda v: op.apply_torch((v, c_tensor)), (x,), (t,))
            else:
                ours = jvp(lambda v: op.apply_engine((constant, v)), (x,), (t,))
                theirs = torch_jvp(torch, lambda v: op.apply_torch((c_tensor, v)), (x,), (t,))
            assert same_bits(bottom(ours[0]), theirs[0]) and same_bits(bottom(ours[1]), theirs[1]), \
                (side, x, c, t, ours, theirs)


def graph_jvps(torch, structure, leaves, ts):
    ours = jvp(graph_function(structure.graph), leaves, ts)
    theirs = torch_jvp(torch, lambda *xs: structure.graph.evaluate(
        xs, lambda op, args, const: op.apply_torch(args, const), operator.add)[1], leaves, ts)
    return ours, theirs


# Ops whose torch kernel rounds as libm does on every input tried: graphs of
# them are bit for bit torch's, edge points included.
LIBM_ALIKE_OPS = tuple(name for name in OP_NAMES
                       if name not in ("exp", "log", "tanh", "sqrt", "sin", "cos", "log1p", "expm1", "pow_const"))


@pytest.mark.torch
@given(st.integers(0, 10 ** 6), st.lists(tangent_values, min_size=8, max_size=8))
def test_random_graph_jvp_is_torchs_bit_for_bit(torch, seed, tangents):
    structure = random_structure(seed, ExprConfig(max_nodes=12, ops=LIBM_ALIKE_OPS, edge_rate=0.1))
    leaves = random_leaves(structure, seed, 0, 0.1)
    (out, tangent), (torch_out, torch_tangent) = graph_jvps(torch, structure, leaves, tangents[:len(leaves)])
    assert same_bits(out, torch_out) and same_bits(tangent, torch_tangent), (out, torch_out, tangent, torch_tangent)


@pytest.mark.torch
@given(st.integers(0, 10 ** 6), st.lists(tangent_values, min_size=8, max_size=8))
def test_random_graph_jvp_matches_torch(torch, seed, tangents):
    structure = random_structure(seed, ExprConfig(max_nodes=12, ops=OP_NAMES, edge_rate=0.0))
    leaves = random_leaves(structure, seed, 0, 0.0)
    (out, tangent), (torch_out, torch_tangent) = graph_jvps(torch, structure, leaves, tangents[:len(leaves)])
    for ours, theirs in ((out, torch_out), (tangent, torch_tangent)):
        assert close(ours, theirs, 1e-9), (ours, theirs)


@pytest.mark.torch
def test_no_perturbation_confusion_like_torch(torch):
    from torch.func import jvp as torch_func_jvp

    def f(x):
        return x * torch_func_jvp(lambda y: x + y, (torch.tensor(1.0, dtype=torch.float64),),
                                  (torch.tensor(1.0, dtype=torch.float64),))[1]

    assert torch_jvp(torch, f, (5.0,), (1.0,)) == (5.0, 1.0)


@pytest.mark.torch
@pytest.mark.parametrize("name", OP_NAMES)
@given(data=st.data())
def test_forward_over_forward_matches_torch(torch, name, data):
    # The second derivative along (u, v), by jvp of jvp: torch differentiates
    # its own formulas' ops (tanh_backward, ...) with their formulas, we ours;
    # the same derivative, rounded a little differently (a zero's sign aside).
    op = OPS[name]
    xs, us, const = data.draw(op_points(name))
    vs = tuple(data.draw(tangent_values) for _ in xs)
    _, second = jvp(lambda *duals: engine_jvp(op, duals, us, const)[1], xs, vs)

    def torch_first(*tensors):
        return torch.func.jvp(lambda *t: op.apply_torch(t, const), tensors,
                              tuple(torch.tensor(u, dtype=torch.float64) for u in us))[1]

    _, torch_second = torch_jvp(torch, torch_first, xs, vs)
    assert close(second, torch_second, 1e-12, 1e-14), (second, torch_second)


@pytest.mark.torch
@pytest.mark.parametrize("name", OP_NAMES)
def test_forward_over_forward_matches_torch_at_edge_points(torch, name):
    op = OPS[name]
    us, vs = (1.0, -0.5)[:op.arity], (0.75, 2.0)[:op.arity]
    for xs, const in edge_points(op):
        _, second = jvp(lambda *duals: engine_jvp(op, duals, us, const)[1], xs, vs)

        def torch_first(*tensors):
            return torch.func.jvp(lambda *t: op.apply_torch(t, const), tensors,
                                  tuple(torch.tensor(u, dtype=torch.float64) for u in us))[1]

        _, torch_second = torch_jvp(torch, torch_first, xs, vs)
        if name == "gelu" and math.isfinite(xs[0]) and math.isinf(xs[0] * xs[0]):
            # torch's gelu_double_backward squares x: inf * 0 is its nan; ours is the limit, 0
            assert math.isnan(torch_second) and second == 0.0
            continue
        assert close(second, torch_second, 1e-12, 1e-14), (xs, const, second, torch_second)


@pytest.mark.torch
def test_dual_level_mirrors_torch_forward_ad(torch):
    import torch.autograd.forward_ad as fwAD

    def f(x, y):
        return (x * y.exp()).tanh() + x.sigmoid() / y

    with dual_level():
        x, y = make_dual(0.3, 1.0), make_dual(-1.2, 0.5)
        ours = unpack_dual(f(x, y))
    with fwAD.dual_level():
        x = fwAD.make_dual(torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
        y = fwAD.make_dual(torch.tensor(-1.2, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
        theirs = fwAD.unpack_dual(f(x, y))
    assert ours.primal == pytest.approx(theirs.primal.item(), rel=1e-15)
    assert ours.tangent == pytest.approx(theirs.tangent.item(), rel=1e-14)
