"""The oracle: exact values and gradients in mpmath, float64's range and
edge conventions, and the spread that measures conditioning."""
import dataclasses
import itertools
import math

import mpmath
import pytest

from parity.backends.oracle import OVERFLOW, OracleBackend, float64_range, to_float
from parity.case import Case
from parity.cases import build_cases
from parity.compare import close
from parity.graph import Graph, Node
from parity.ops import OP_NAMES, OPS, SPECIAL_POINTS, mpf

ORACLE = OracleBackend()
TINY_SUBNORMAL = 2.0 ** -1074
# Ops whose backward formula selects a zero (not even nan passes), which the
# op table's partials do not say yet: see test_oracle_follows_torch_where_torch_selects_zero.
SELECTING_OPS = ("relu", "pow", "pow_const")


def make_case(n_leaves, nodes, leaves, outputs=None, **fields):
    nodes = tuple(Node(*node) for node in nodes)
    graph = Graph(n_leaves, nodes, tuple(outputs or (n_leaves + len(nodes) - 1,)))
    return Case("t-0-0", "expr", 0, 0, graph, list(leaves), **fields)


# -- float64 range and rounding ------------------------------------------------
def test_to_float_rounds_once_to_nearest_even_down_to_subnormals():
    with mpmath.workprec(256):
        assert to_float(mpf(1) / 3) == 1.0 / 3.0
        assert to_float(mpf(TINY_SUBNORMAL) * mpf(1.5)) == 2 * TINY_SUBNORMAL  # tie: to even
        assert to_float(mpf(TINY_SUBNORMAL) * mpf(2.5)) == 2 * TINY_SUBNORMAL
        assert to_float(mpf(TINY_SUBNORMAL) * mpf("0.50001")) == TINY_SUBNORMAL
        assert to_float(-mpf(2) ** -1075) == 0.0
        assert to_float(OVERFLOW * (1 - mpf(2) ** -200)) == 1.7976931348623157e308
        assert to_float(OVERFLOW) == math.inf
        assert math.isnan(to_float(mpf("nan")))


def test_float64_range_overflows_and_underflows_like_float64():
    with mpmath.workprec(256):
        assert float64_range(-OVERFLOW) == mpf("-inf")
        assert float64_range(mpf(2) ** -1075) == 0
        small = mpf(2) ** -1075 * (1 + mpf(2) ** -100)
        assert float64_range(small) == small  # subnormal range: precision kept


def test_overflow_mid_graph_is_final_like_float64():
    # (x * 1e200) * 1e200 overflows to inf in float64; dividing after cannot undo it.
    case = make_case(2, [("mul", (0, 1)), ("mul", (2, 1)), ("div", (3, 1))], [3.0, 1e200])
    assert ORACLE.run(case).values == [math.inf, math.inf]


# -- exactness, precision, passes --------------------------------------------------
def test_exact_where_float64_cancels():
    # (x + 1e16) - 1e16 is x exactly, which float64 loses.
    case = make_case(2, [("add", (0, 1)), ("sub", (2, 1))], [1.234, 1e16])
    assert ORACLE.run(case).values == [1.234, 1.234]
    assert (1.234 + 1e16) - 1e16 != 1.234


def test_runs_leave_mpmath_precision_alone():
    before = mpmath.mp.prec
    case = make_case(1, [("exp", (0,))], [1.0])
    ORACLE.run(case)
    ORACLE.spread(case)
    assert mpmath.mp.prec == before


def test_grads_accumulate_over_passes_unless_zeroed():
    nodes = [("mul", (0, 1))]
    assert ORACLE.run(make_case(2, nodes, [3.0, 5.0], passes=3)).grads == [15.0, 9.0]
    assert ORACLE.run(make_case(2, nodes, [3.0, 5.0], passes=3, zero_grad_between=True)).grads == [5.0, 3.0]


def test_shared_operands_and_unused_leaves():
    # v2 = v0 * v0, loss = v2 + v2: d/dv0 = 4 v0; v1 unused gets 0.
    case = make_case(2, [("mul", (0, 0))], [1.5, 9.0], outputs=(2, 2))
    result = ORACLE.run(case)
    assert result.values == [2.25, 2.25, 4.5]
    assert result.grads == [6.0, 0.0]


# -- edges ---------------------------------------------------------------------
@pytest.mark.parametrize("op, leaf, value, grad", [
    ("log", 0.0, -math.inf, math.inf),
    ("log", -1.0, math.nan, -1.0),
    ("sqrt", -1.0, math.nan, math.nan),
    ("sqrt", 0.0, 0.0, math.inf),
    ("exp", 1000.0, math.inf, math.inf),
    ("tanh", -1000.0, -1.0, 0.0),
    ("relu", 0.0, 0.0, 0.0),
    ("abs", 0.0, 0.0, 0.0),
])
def test_unary_edges_follow_design_table(op, leaf, value, grad):
    result = ORACLE.run(make_case(1, [(op, (0,))], [leaf]))
    assert close(result.values[0], value, 0.0, 0.0)
    assert close(result.grads[0], grad, 0.0, 0.0)


@pytest.mark.parametrize("x, y", list(itertools.product(SPECIAL_POINTS, repeat=2)))
def test_pow_values_are_c_pow(x, y):
    result = ORACLE.run(make_case(2, [("pow", (0, 1))], [x, y]))
    try:
        expected = math.pow(x, y)
    except (ValueError, OverflowError, ZeroDivisionError):
        expected = _c_pow_where_python_raises(x, y)
    assert close(result.values[0], expected, 0.0, 1e-15), (x, y, result.values[0], expected)


def _c_pow_where_python_raises(x, y):
    odd = y.is_integer() and y % 2 == 1
    if x == 0:  # a pole
        return math.copysign(math.inf, x) if odd else math.inf
    if x < 0 and not y.is_integer():
        return math.nan
    return -math.inf if (x < 0 and odd) else math.inf  # overflow


def test_pow_grads_follow_design_table():
    assert ORACLE.run(make_case(2, [("pow", (0, 1))], [-2.0, 3.0])).grads[0] == 12.0
    assert math.isnan(ORACLE.run(make_case(2, [("pow", (0, 1))], [-2.0, 3.0])).grads[1])
    assert ORACLE.run(make_case(2, [("pow", (0, 1))], [0.0, 0.0])).grads == [0.0, 0.0]
    assert all(map(math.isnan, ORACLE.run(make_case(2, [("pow", (0, 1))], [-2.0, 0.5])).grads))


def _torch_result(case):
    from parity.backends.torch import TorchBackend

    return TorchBackend().run(case)


def _same_floats(a, b, signed_zeros=True):
    """Equal as floats, nan = nan, and (signed_zeros) zeros of the same sign."""
    return len(a) == len(b) and all(
        (x != x and y != y) or (x == y and (not signed_zeros or math.copysign(1, x) == math.copysign(1, y)))
        for x, y in zip(a, b))


SIGNED_ZERO_CASES = [
    # 1 / -0.0 = -inf (torch: x.reciprocal() * c), d/dx = -c / x**2 = -inf
    ([("rdiv", (0,), 1.0)], [-0.0], [-math.inf] * 2, [-math.inf]),
    # a computed -0.0: -3 * 0 = -0.0, then 1 / -0.0
    ([("mul_const", (0,), 0.0), ("rdiv", (1,), 1.0)], [-3.0], [-math.inf] * 2, [math.nan]),
    # sqrt keeps the zero's sign, and its derivative 1 / (2 * -0.0) is -inf
    ([("sqrt", (0,))], [-0.0], [-0.0] * 2, [-math.inf]),
    # relu(-0.0) is -0.0 (torch: x < 0 ? 0 : x), and 1 / that is -inf ...
    ([("relu", (0,)), ("rdiv", (1,), 1.0)], [-0.0], [-math.inf] * 2, [0.0]),
    # ... but relu of a negative number is +0.0
    ([("relu", (0,)), ("rdiv", (1,), 1.0)], [-2.0], [math.inf] * 2, [0.0]),
    # (-0.0) ** -1 = -inf (x ** -1 runs as a reciprocal), ** -2 = +inf
    ([("pow_const", (0,), -1.0)], [-0.0], [-math.inf] * 2, [-math.inf]),
    ([("pow_const", (0,), -2.0)], [-0.0], [math.inf] * 2, [math.inf]),
    # -0.0 + -0.0 = -0.0; -0.0 + 0.0 = 0.0
    ([("add", (0, 1)), ("rdiv", (2,), 1.0)], [-0.0, -0.0], [-math.inf] * 2, [-math.inf] * 2),
    ([("add", (0, 1)), ("rdiv", (2,), 1.0)], [-0.0, 0.0], [math.inf] * 2, [-math.inf] * 2),
]


@pytest.mark.parametrize("nodes, leaves, values, grads", SIGNED_ZERO_CASES)
def test_zeros_keep_their_sign_through_ops_and_poles(nodes, leaves, values, grads):
    # mpf has no -0.0: the oracle keeps each zero's sign beside it, from
    # the op rows' sign rules (parity/signs.py), where it decides an
    # infinity's sign; the zeros it returns are unsigned (compare.judge
    # counts -0.0 = 0.0).
    case = make_case(len(leaves), nodes, leaves)
    result = ORACLE.run(case)
    assert _same_floats(result.values + result.grads, values + grads, signed_zeros=False), (result, values, grads)


@pytest.mark.torch
@pytest.mark.parametrize("nodes, leaves, values, grads", SIGNED_ZERO_CASES)
def test_torch_gives_those_signs_too(nodes, leaves, values, grads):
    torch_result = _torch_result(make_case(len(leaves), nodes, leaves))
    assert _same_floats(torch_result.values, values) and _same_floats(torch_result.grads, grads)


def test_a_selected_zero_stops_an_infinite_gradient():
    # Regression (soak, expr-0-326353): v2 = relu(v0) is a computed -0.0, so
    # sqrt's partial at it is -inf - but relu's backward selects 0 for
    # v0 <= 0 whatever comes down, so v0's gradient is exactly 0.
    case = make_case(2, [("relu", (0,)), ("sqrt", (2,)), ("exp", (1,))], [-0.0, 1.0], outputs=(3, 4))
    result = ORACLE.run(case)
    assert result.values == [0.0, math.e, math.e] and result.grads == [0.0, math.e]
    value_spread, grad_spread = ORACLE.spread(case)
    assert grad_spread[0] == 0.0 and not any(map(math.isnan, value_spread + grad_spread))


def test_a_bound_that_reaches_a_kink_carries_on_at_slope_one():
    # Regression (soak, expr-0-672158): clamp(sin(6e62), 0, 1) is exactly 0,
    # its partial 0, where float64's sin(6e62) may be anything in [-1, 1];
    # the trials, each moving sin's operand at random, found the other side
    # only by chance.  v1 = v0 * 3 is rounded (its bound u * |v1|),
    # v2 = sin(v1), v3 = clamp(v2, 0, 1), v4 = exp(v3); v5 = exp(v0) does
    # not depend on the kink.  The clamp's value is continuous: its bound is
    # sin's, carried at slope 1; the leaf's gradient is unknowable.
    case = make_case(1, [("mul_const", (0,), 3.0), ("sin", (1,)), ("clamp", (2,), 0.0), ("exp", (3,)),
                         ("exp", (0,))], [2.0e62], outputs=(4, 5))
    assert ORACLE.run(case).values[0] == 1.0  # sin's exact value is negative: clamped
    value_bound, grad_bound = ORACLE.spread(case, trials=0)
    assert value_bound[0] > 1.0 and value_bound[2] > 1.0 and value_bound[1] < 1e-10
    for trials in (0, 2, 8):
        assert ORACLE.spread(case, trials=trials)[1] == [math.inf], trials


def test_a_value_past_a_pole_its_bound_reaches_is_unknowable():
    # reciprocal(sin(6e62)): float64's sin may have either sign, or be 0.
    case = make_case(1, [("mul_const", (0,), 3.0), ("sin", (1,)), ("reciprocal", (2,)), ("exp", (0,))],
                     [2.0e62], outputs=(3, 4))
    for trials in (0, 2, 8):
        value_spread, grad_spread = ORACLE.spread(case, trials=trials)
        assert value_spread[0] == value_spread[2] == math.inf and grad_spread == [math.inf], trials
        assert value_spread[1] < math.inf


def test_a_max_whose_operands_bounds_overlap_has_unknowable_gradients():
    # v2 = v0 * 3, v3 = v1 * 3 round (0.3 is no float64), each by up to u
    # relative; their exact values are an ulp of 0.1 times 3 apart, within
    # the two bounds: either may win.  The max's value is continuous.
    a = 0.1
    b = math.nextafter(a, 2.0)
    graph = [("mul_const", (0,), 3.0), ("mul_const", (1,), 3.0), ("max", (2, 3)), ("exp", (4,))]
    value_spread, grad_spread = ORACLE.spread(make_case(2, graph, [a, b]), trials=0)
    assert all(s < 1e-14 for s in value_spread) and grad_spread == [math.inf, math.inf]
    assert math.inf not in ORACLE.spread(make_case(2, graph, [0.1, 0.15]), trials=0)[1]  # apart
    itself = make_case(1, [("mul_const", (0,), 3.0), ("max", (1, 1)), ("exp", (2,))], [a])  # max(x, x) is x
    assert math.inf not in ORACLE.spread(itself, trials=0)[1]


def test_a_value_past_a_signed_pole_has_an_opinion():
    # Regression (soak, expr-0-793129): a value downstream of 1 / -0.0 was
    # unknown to the oracle (it had no signs of zeros), and a rounding residue
    # of 1e-16 against -1e-16 then failed for want of a referee.  Now:
    # v1 = 1 / -0.0 = -inf, v2 = tanh(v1) = -1, v3 = v2 + 1 = 0 exactly.
    case = make_case(1, [("rdiv", (0,), 1.0), ("tanh", (1,)), ("add_const", (2,), 1.0)], [-0.0])
    result = ORACLE.run(case)
    assert result.values == [0.0, 0.0]
    value_spread, grad_spread = ORACLE.spread(case)
    assert not any(map(math.isnan, value_spread + grad_spread))


def test_a_none_partial_selects_zero_even_from_nan_and_the_zero_flows_on(monkeypatch):
    # v2 = log(v0) at 0 = -inf; v3 = relu(v2) = 0; v4 = v3 * nan = nan.
    # relu's backward selects 0 for v2 (not nan * 0); log's then gives 0 / 0 = nan.
    monkeypatch.setitem(OPS, "relu", dataclasses.replace(
        OPS["relu"], partials=lambda a, out: (mpf(1) if out > 0 or mpmath.isnan(out) else None,)))
    log_partials_at = []
    real_log_partials = OPS["log"].partials
    monkeypatch.setitem(OPS, "log", dataclasses.replace(
        OPS["log"], partials=lambda a, out: log_partials_at.append(a) or real_log_partials(a, out)))
    case = make_case(2, [("log", (0,)), ("relu", (2,)), ("mul", (3, 1))], [0.0, math.nan])
    result = ORACLE.run(case)
    assert log_partials_at == [0]  # the selected zero still reached log's backward
    assert math.isnan(result.grads[0])
    monkeypatch.setitem(OPS, "log", dataclasses.replace(OPS["log"], partials=real_log_partials))
    upstream_is_one = make_case(1, [("log", (0,)), ("relu", (1,))], [0.5])  # relu(log 0.5 < 0)
    assert ORACLE.run(upstream_is_one).grads == [0.0]


# -- against torch ---------------------------------------------------------------
GRAPHS = {"max_nodes": 40, "draws_per_graph": 8}


def _agrees_within_rounding(torch_value, exact, spread):
    if spread == math.inf:  # rounding alone can change the class
        return True
    return close(torch_value, exact, 1e-300, 1e-12) or abs(torch_value - exact) <= 16 * spread


def _compare_with_torch(cases):
    """(quantities compared, those beyond 1e-12 relative, disagreements)."""
    from parity.backends.torch import TorchBackend

    compared, beyond, disagreements = 0, 0, []
    for case, torch_result in zip(cases, TorchBackend().run_batch(cases)):
        exact = ORACLE.run(case)
        value_spread, grad_spread = ORACLE.spread(case)
        for t, x, s in zip(torch_result.values + torch_result.grads, exact.values + exact.grads,
                           value_spread + grad_spread):
            compared += 1
            beyond += not close(t, x, 1e-300, 1e-12)
            if not _agrees_within_rounding(t, x, s):
                disagreements.append((case.case_id, t, x, s))
    return compared, beyond, disagreements


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(3))
def test_oracle_matches_torch_to_1e12_on_smooth_random_graphs(seed):
    pytest.importorskip("torch")
    ops = [name for name in OP_NAMES if name not in SELECTING_OPS]
    cases = build_cases("expr", seed, 64, {**GRAPHS, "edge_rate": 0.0, "ops": ops})
    compared, beyond, disagreements = _compare_with_torch(cases)
    assert disagreements == []
    assert beyond <= 0.05 * compared  # the rest: ill-conditioned, within the spread


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(3))
def test_oracle_matches_torch_at_edges(seed):
    pytest.importorskip("torch")
    ops = [name for name in OP_NAMES if name not in SELECTING_OPS]
    cases = build_cases("expr", seed, 64, {**GRAPHS, "edge_rate": 0.3, "ops": ops})
    assert _compare_with_torch(cases)[2] == []


@pytest.mark.torch
def test_oracle_follows_torch_where_torch_selects_zero():
    pytest.importorskip("torch")
    cases = [case for seed in range(6)
             for case in build_cases("expr", seed, 64, {**GRAPHS, "edge_rate": 0.3})]
    assert _compare_with_torch(cases)[2] == []


@pytest.mark.torch
@pytest.mark.parametrize("name", OP_NAMES)
def test_every_op_at_every_edge_point_matches_torch(name):
    pytest.importorskip("torch")
    from parity.backends.torch import TorchBackend

    op = OPS[name]
    cases = [make_case(op.arity, [(name, tuple(range(op.arity)), const)], list(point))
             for const in op.constants or (None,)
             for point in itertools.product(op.edges, repeat=op.arity)]
    for case, torch_result in zip(cases, TorchBackend().run_batch(cases)):
        exact = ORACLE.run(case)
        value_spread, grad_spread = ORACLE.spread(case)
        for t, x, s in zip(torch_result.values + torch_result.grads, exact.values + exact.grads,
                           value_spread + grad_spread):
            assert not math.isnan(s)
            assert _agrees_within_rounding(t, x, s), (name, case.graph.nodes[0].const, case.leaves, t, x)


# -- spread ----------------------------------------------------------------------
def test_spread_is_a_few_ulps_on_a_well_conditioned_graph():
    # loss = x * y + exp(x) + tanh(y)
    case = make_case(2, [("mul", (0, 1)), ("exp", (0,)), ("tanh", (1,))], [0.7, -1.3], outputs=(2, 3, 4))
    exact = ORACLE.run(case)
    value_spread, grad_spread = ORACLE.spread(case)
    for x, s in zip(exact.values + exact.grads, value_spread + grad_spread):
        assert 0.0 < s <= 16 * 2.0 ** -53 * abs(x)


def test_spread_is_large_under_catastrophic_cancellation():
    case = make_case(2, [("add", (0, 1)), ("sub", (2, 1))], [1.234, 1e16])
    value_spread, _ = ORACLE.spread(case)
    assert value_spread[-1] > 0.01 * 1.234  # float64 keeps ~0 of x's digits


def test_spread_is_seeded():
    case = make_case(2, [("mul", (0, 1)), ("exp", (2,))], [0.7, -1.3])
    assert ORACLE.spread(case, seed=1) == ORACLE.spread(case, seed=1)
    assert ORACLE.spread(case, seed=1) != ORACLE.spread(case, seed=2)


def test_spread_is_zero_for_exact_operations_and_stable_infinities():
    case = make_case(2, [("add", (0, 1)), ("exp", (1,))], [1.0, 1000.0], outputs=(3,))
    assert ORACLE.spread(case) == ([0.0, 0.0], [0.0, 0.0])


def test_spread_s_exact_perturbation_factor_is_the_mpf_formula():
    # spread builds 1 + d * 2**-53 from d's integer ratio instead of mpf
    # arithmetic: the same number, for uniform draws and for any other float.
    import random

    from mpmath.libmp import mpf_eq

    from parity.backends.oracle import UNIT_ROUNDOFF, _exact_factor

    rng = random.Random(3)
    draws = [rng.uniform(-1.0, 1.0) for _ in range(2000)] + [0.0, -0.0, 1.0, -1.0, 5e-324, 0.1]
    with mpmath.workprec(256):
        for d in draws:
            factor = _exact_factor(d, 256)
            if factor is not None:
                assert mpf_eq(factor, (1 + mpf(d) * UNIT_ROUNDOFF)._mpf_), d
        assert _exact_factor(5e-324, 256) is None  # 1128 bits: spread falls back to mpf arithmetic


def _counting_trials(monkeypatch, fail_on=None):
    """Count the oracle's perturbed runs (run number ``fail_on`` raising at
    its end, its draws taken)."""
    from parity.backends import oracle as oracle_module

    calls, trial = [], oracle_module._trial

    def counted(*args):
        calls.append(1)
        deviations = trial(*args)
        if len(calls) == fail_on:
            raise ArithmeticError("a trial gave up")
        return deviations
    monkeypatch.setattr(oracle_module, "_trial", counted)
    return calls


def test_more_trials_run_only_the_new_ones_and_give_what_all_at_once_gives(monkeypatch):
    # compare.judge asks a case for 2 trials, then 4, then 8: the seeded
    # sequence continues instead of starting over.
    case = make_case(2, [("mul", (0, 1)), ("exp", (2,)), ("sub", (3, 0))], [0.7, -1.3])
    at_once = {trials: OracleBackend().spread(case, trials=trials, seed=1) for trials in (2, 4, 8)}
    calls = _counting_trials(monkeypatch)
    oracle = OracleBackend()
    assert [oracle.spread(case, trials=trials, seed=1) for trials in (2, 4, 8)] == list(at_once.values())
    assert len(calls) == 8
    assert oracle.spread(case, trials=4, seed=1) == at_once[4] and len(calls) == 8
    assert oracle.spread(case, trials=2, seed=2) != at_once[2] and len(calls) == 10  # a sequence of its own


def test_a_trial_that_raises_starts_the_sequence_over(monkeypatch):
    case = make_case(2, [("mul", (0, 1)), ("exp", (2,))], [0.7, -1.3])
    expected = OracleBackend().spread(case, trials=3)
    calls = _counting_trials(monkeypatch, fail_on=2)
    oracle = OracleBackend()
    with pytest.raises(ArithmeticError):
        oracle.spread(case, trials=3)
    assert oracle.spread(case, trials=3) == expected and len(calls) == 2 + 3

