"""The op table's sign rules (parity/signs.py): the signs of zeros and
infinities where an op meets a zero, as data, so that the oracle needs no
torch.  On a Python with torch they are checked against it at every edge
point and every pair of special points, so the two cannot drift apart."""
import dataclasses
import itertools
import math

import mpmath
import pytest

import parity.functions  # noqa: F401  registers the fn_* rows, which have rules too
from parity.backends import oracle as oracle_module
from parity.backends.oracle import OracleBackend, _with_sign_of, float64_range
from parity.case import Case
from parity.cases import BINARY_EDGES, build_cases
from parity.graph import Graph, Node
from parity.ops import OPS, SPECIAL_POINTS, mpf
from parity.signs import Signs, compile_formula


def _points(op):
    """The edge points the rules are checked at: a unary op's edges; every
    pair of special points and of the edges family's binary points."""
    if op.arity == 1:
        return [(x,) for x in op.edges]
    pairs = itertools.chain(itertools.product(SPECIAL_POINTS, repeat=2), itertools.product(BINARY_EDGES, repeat=2))
    return _unique(pairs)


def _unique(points):
    seen, unique = set(), []
    for point in points:
        key = tuple(map(float.hex, point))  # -0.0 and 0.0 apart, nan once
        if key not in seen:
            seen.add(key)
            unique.append(point)
    return unique


def _negative(x):
    return x == x and math.copysign(1.0, x) < 0


def _same(a, b):
    return a == b or (mpmath.isnan(a) and mpmath.isnan(b))


def test_every_row_has_sign_rules_for_each_operand():
    for name, op in OPS.items():
        assert isinstance(op.signs, Signs), name
        assert len(op.signs.partials) <= op.arity, name


@pytest.mark.parametrize("text, x, y, c, expected", [
    ("x / y", 1.0, -0.0, None, -math.inf),
    ("x + y", -0.0, -0.0, None, -0.0),
    ("x + y", -0.0, 0.0, None, 0.0),
    ("x ** y", -0.0, -3.0, None, -math.inf),
    ("x ** y", -0.0, -2.0, None, math.inf),
    ("x ** y", -2.0, 0.5, None, math.nan),
    ("x ** y", -10.0, 401.0, None, -math.inf),  # overflow keeps the odd power's sign
    ("powc(x, c)", -0.0, math.nan, 0.5, -0.0),  # torch's sqrt, not C's pow
    ("powc(x, c)", -0.0, math.nan, -0.5, -math.inf),
    ("log(x)", -0.0, math.nan, None, -math.inf),
    ("1 / (2 * sqrt(x))", -0.0, math.nan, None, -math.inf),
    ("max(x, 0)", -0.0, math.nan, None, -0.0),
    ("max(x, 0)", -2.0, math.nan, None, 0.0),
    ("min(max(x, c), c + 1)", -0.0, math.nan, 0.0, -0.0),
    ("1", math.nan, math.nan, None, 1.0),
])
def test_formulas_are_ieee_float64_that_never_raises(text, x, y, c, expected):
    got = Signs(text).evaluate([x, y], c)[0]
    assert (math.isnan(got) and math.isnan(expected)) or (got == expected and _negative(got) == _negative(expected))


@pytest.mark.parametrize("text", ["__import__('os')", "x.real", "x if y else c", "open(x)", "z + 1", "'a'",
                                  "[x]", "x < y"])
def test_a_formula_outside_the_small_language_is_refused(text):
    with pytest.raises(ValueError, match="sign rule"):
        compile_formula(text)


def test_the_oracle_needs_no_torch_for_a_signed_pole(monkeypatch):
    # Every built-in row has rules: a case through -0.0 and its pole is
    # judged without torch's help (a row without rules would ask torch).
    monkeypatch.setattr(oracle_module, "_torch_signs", lambda *args: pytest.fail("asked torch"))
    # v1 = -3 * 0 = -0.0, v2 = 1 / v1 = -inf; d v2 / d v0 = 0 * -inf = nan
    graph = Graph(1, (Node("mul_const", (0,), 0.0), Node("rdiv", (1,), 1.0)), (2,))
    result = OracleBackend().run(Case("t-0-0", "expr", 0, 0, graph, [-3.0]))
    assert result.values == [-math.inf, -math.inf] and math.isnan(result.grads[0])


# -- against torch, at every edge point -----------------------------------------------
def _torch(name, point, const):
    return oracle_module._torch_signs(name, tuple(map(float.hex, point)), const)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(OPS))
def test_the_rules_are_torchs_signs_at_every_edge_point(name):
    """Where the oracle reads them - a node meeting a zero - the rules give
    what torch gives: a zero value's sign, an infinite value's and each
    infinite partial's sign; and wherever torch's value is zero at these
    points (the oracle's may be too), its sign."""
    pytest.importorskip("torch")
    op = OPS[name]
    problems = []
    with mpmath.workprec(256):
        for const in op.constants or (None,):
            for point in _points(op):
                torch_value, torch_partials = _torch(name, point, const)
                value, partials = op.signs.evaluate(list(point), const)
                operands = [mpf(x) for x in point]
                out = float64_range(op.apply_oracle(operands, const))
                where = (name, const, point)
                if torch_value == 0 and _negative(value) != _negative(torch_value):
                    problems.append((*where, "zero value", value, torch_value))
                if not (out == 0 or any(x == 0 for x in operands)):
                    continue
                if not _same(_with_sign_of(out, value), _with_sign_of(out, torch_value)):
                    problems.append((*where, "value", value, torch_value))
                exact_partials = op.oracle_partials(operands, out, const)
                for i, (exact, rule, torch_partial) in enumerate(zip(exact_partials, partials, torch_partials)):
                    if exact is None:
                        continue
                    exact = float64_range(exact)
                    if not _same(_with_sign_of(exact, rule), _with_sign_of(exact, torch_partial)):
                        problems.append((*where, f"partial {i}", rule, torch_partial))
    assert problems == []


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(2))
def test_the_oracle_with_rules_is_the_oracle_with_torchs_signs(monkeypatch, seed):
    """Whole graphs at edge points (the expr family at an edge rate of a
    half, the edges family): the exact results and the spreads of the
    perturbed trials (whose numbers are not edge points) are the ones the
    oracle had when it asked torch for every sign."""
    pytest.importorskip("torch")
    cases = (build_cases("expr", seed, 96, {"max_nodes": 24, "draws_per_graph": 8, "edge_rate": 0.5})
             + build_cases("edges", seed, 400)[seed::2])
    by_rules = OracleBackend()
    expected = [(by_rules.run(case), by_rules.spread(case, trials=2)) for case in cases]
    monkeypatch.setattr(oracle_module, "_float64_signs", lambda op, operands, const: _torch(
        op.name, operands, const))
    by_torch = OracleBackend()
    for case, (result, spread) in zip(cases, expected):
        torch_signed = by_torch.run(case)
        assert repr(dataclasses.replace(torch_signed, seconds=0)) == repr(dataclasses.replace(result, seconds=0))
        assert repr(by_torch.spread(case, trials=2)) == repr(spread), case.case_id
