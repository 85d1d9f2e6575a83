"""Comparison and verdicts: float equality classes, ULP distance, every
verdict path (synthetic results, a fake oracle), and the real thing: our
engine against torch on random graphs, and deliberately broken results."""
import math
import struct
import sys

import pytest

from parity.case import Case, Result
from parity.cases import build_cases
from parity.compare import Tolerances, TorchExtras, close, errors, judge, near, same_class, ulp_distance
from parity.graph import Graph, Node

INF, NAN = math.inf, math.nan
MAX = sys.float_info.max
TINY_SUBNORMAL = 2.0 ** -1074


# -- floats --------------------------------------------------------------------
@pytest.mark.parametrize("a, b, distance", [
    (1.0, 1.0, 0.0),
    (1.0, math.nextafter(1.0, 2.0), 1.0),
    (0.0, -0.0, 0.0),
    (TINY_SUBNORMAL, -TINY_SUBNORMAL, 2.0),
    (-1.0, math.nextafter(-1.0, -2.0), 1.0),
    (1.0, 2.0, 2.0 ** 52),
    (MAX, INF, INF),
    (INF, INF, 0.0),
    (-INF, INF, INF),
    (NAN, NAN, 0.0),
    (NAN, 1.0, NAN),
])
def test_ulp_distance(a, b, distance):
    assert close(ulp_distance(a, b), distance, 0.0, 0.0)
    assert close(ulp_distance(b, a), distance, 0.0, 0.0)


def test_ulp_distance_across_zero_counts_every_float_between():
    assert ulp_distance(-1.0, 1.0) == 2 * ulp_distance(0.0, 1.0)


@pytest.mark.parametrize("a, b, equal", [
    (NAN, NAN, True), (INF, INF, True), (-INF, -INF, True), (INF, -INF, False),
    (NAN, INF, False), (NAN, 0.0, False), (INF, MAX, False), (0.0, -0.0, True),
])
def test_nan_inf_and_signed_zero_equality(a, b, equal):
    assert close(a, b, 1e-300, 1e-12) is equal
    assert close(b, a, 1e-300, 1e-12) is equal


def test_same_class_is_about_non_finite_values_only():
    assert same_class(NAN, NAN) and same_class(-INF, -INF)
    assert not same_class(1.0, 1.0)


def test_close_is_relative_to_the_larger_magnitude_plus_atol():
    assert close(100.0, 100.0 + 5e-11, 0.0, 1e-12)
    assert not close(1.0, 1.0 + 5e-11, 0.0, 1e-12)
    assert close(0.0, 1e-301, 1e-300, 1e-12) and not close(0.0, 1e-299, 1e-300, 1e-12)


def test_near_exact_needs_the_class_unless_rounding_can_change_it():
    assert near(INF, INF, 0.0) and not near(NAN, INF, 0.0)
    assert near(NAN, INF, INF)
    assert near(1.0 + 1e-9, 1.0, 2e-9) and not near(NAN, 1.0, 1.0)


def test_errors_are_maxima_over_finite_pairs():
    abs_err, rel_err, ulps = errors([1.0, 2.0, INF, NAN], [1.0, 2.0 + 2 ** -51, INF, 5.0])
    assert (abs_err, rel_err, ulps) == (2 ** -51, 2 ** -51 / (2.0 + 2 ** -51), 1.0)
    assert all(map(math.isnan, errors([INF], [INF])))


# -- verdict paths on synthetic results ------------------------------------------
# v0, v1 leaves; v2 = v0 * v1; v3 = exp(v0); outputs v2, v3.
CASE = Case("t-0-0", "expr", 0, 0, Graph(2, (Node("mul", (0, 1)), Node("exp", (0,))), (2, 3)),
            [1.0, 2.0])
GOOD = Result(values=[2.0, math.e, 2.0 + math.e], grads=[2.0 + math.e, 1.0])


def result(values=GOOD.values, grads=GOOD.grads, **fields):
    return Result(values=list(values), grads=list(grads), **fields)


class FakeOracle:
    """Answers with a fixed result and spread; counts its consultations and
    records the trials each spread was asked for."""

    def __init__(self, exact=GOOD, spread=0.0, error=None, raises=None):
        self.exact, self.spread_value, self.error, self.raises = exact, spread, error, raises
        self.runs = 0
        self.trials = []

    def run(self, case):
        self.runs += 1
        if self.raises:
            raise self.raises
        return Result(error=self.error) if self.error else self.exact

    def spread(self, case, trials=8, seed=0):
        self.trials.append(trials)
        return [self.spread_value] * len(self.exact.values), [self.spread_value] * len(self.exact.grads)


def test_pass_with_equal_nan_inf_and_signed_zeros():
    engine = result(values=[-0.0, INF, NAN], grads=[NAN, -INF])
    torch = result(values=[0.0, INF, NAN], grads=[NAN, -INF])
    verdict = judge(CASE, engine, torch, FakeOracle())
    assert (verdict.verdict, verdict.oracle_consulted) == ("pass", False)
    assert math.isnan(verdict.max_abs_err_grad) and verdict.max_ulp_data == 0.0


def test_pass_reports_errors_for_values_and_grads_separately():
    engine = result(grads=[GOOD.grads[0], math.nextafter(1.0, 2.0)])
    verdict = judge(CASE, engine, GOOD)
    assert verdict.verdict == "pass"
    assert (verdict.max_ulp_data, verdict.max_ulp_grad) == (0.0, 1.0)
    assert verdict.max_rel_err_grad == 2.0 ** -52


@pytest.mark.parametrize("engine, torch, expected, detail", [
    (Result(unsupported="exp"), GOOD, "unsupported", "engine lacks exp"),
    (GOOD, Result(unsupported="exp"), "unsupported", "torch lacks exp"),
    (Result(error="RecursionError: deep"), GOOD, "error", "RecursionError: deep"),
    (GOOD, Result(error="RuntimeError: bad"), "error", "torch: RuntimeError: bad"),
    (result(grads=[1.0]), GOOD, "error", "engine gave 3 values and 1 grads, torch 3 and 2"),
])
def test_results_that_cannot_be_compared(engine, torch, expected, detail):
    oracle = FakeOracle()
    verdict = judge(CASE, engine, torch, oracle)
    assert (verdict.verdict, verdict.detail, oracle.runs) == (expected, detail, 0)


def test_a_mismatch_without_an_oracle_fails():
    verdict = judge(CASE, result(grads=[GOOD.grads[0], 2.0]), GOOD)
    assert verdict.verdict == "fail"
    assert verdict.detail == "grad of leaf v1: engine 2.0, torch 1.0; no oracle"


@pytest.mark.parametrize("engine_grad, torch_grad, expected", [
    (2.0, 1.0, "fail"),                 # oracle sides with torch
    (1.0, 2.0, "torch_off"),            # oracle sides with the engine
    (1.0 + 1e-9, 1.0 - 1e-9, "ill_conditioned"),  # both within the spread
    (3.0, 2.0, "fail"),                 # both off
    (NAN, 1.0, "fail"),
    (-1.0, 1.0, "fail"),
    (1.0 + 1e-8, 1.0, "fail"),          # off by 6 allowances: not far enough to skip trials
])
def test_the_oracle_decides_each_mismatch(engine_grad, torch_grad, expected):
    oracle = FakeOracle(spread=1e-10)  # allowance 16 * 1e-10 + 1e-12
    engine = result(grads=[GOOD.grads[0], engine_grad])
    torch = result(grads=[GOOD.grads[0], torch_grad])
    verdict = judge(CASE, engine, torch, oracle)
    assert verdict.verdict == expected
    # The first-order bounds (0 trials) settle ill_conditioned, never a
    # fail; 2 spread trials then settle a fail over gross_factor (100)
    # allowances off with torch within it, the engine finite (a trial may
    # yet change the class); any other verdict takes all 8, asked for in
    # rounds of twice as many.
    far = (expected == "fail" and torch_grad == 1.0 and math.isfinite(engine_grad)
           and not abs(engine_grad - 1.0) <= Tolerances().gross_factor * 1.6e-9)
    rounds = [0] if expected == "ill_conditioned" else [0, 2] if far else [0, 2, 4, 8]
    assert verdict.oracle_consulted and oracle.trials == rounds
    expected = f"grad of leaf v1: engine {engine_grad!r}, torch {torch_grad!r}, oracle 1.0"
    assert verdict.detail.startswith(expected)
    assert ("torch is off too" in verdict.detail) == (engine_grad == 3.0)


@pytest.mark.parametrize("engine_grad, estimate, trials", [
    # allowance 1.6e-9 (the oracle's spread 1e-10); the engine 1e-7 off: 62 of them
    # (after the first-order bounds, which never make a fail: 0 trials)
    (1.0 + 1e-7, NAN, [0, 2, 4, 8]),   # within gross_factor (100): the trials go on
    (1.0 + 1e-7, 1e-10, [0, 2]),       # beyond far_factor (16) of the estimate's allowance too
    # the engine 1e-6 off: 625 allowances of 2 trials, 6 of the estimate's 1.6e-7
    (1.0 + 1e-6, NAN, [0, 2]),
    (1.0 + 1e-6, 1e-8, [0, 2, 4, 8]),  # the estimate saw a wider spread than 2 trials: all of them
])
def test_a_fail_far_beyond_the_trials_and_the_estimate_needs_no_more_trials(engine_grad, estimate, trials):
    oracle = FakeOracle(spread=1e-10)
    engine = result(grads=[GOOD.grads[0], engine_grad])
    verdict = judge(CASE, engine, GOOD, oracle, extras=TorchExtras(rounding_spread=lambda: [0.0] * 4 + [estimate]))
    assert (verdict.verdict, verdict.oracle_consulted, oracle.trials) == ("fail", True, trials)


class FirstOrderWider(FakeOracle):
    """The exact run's first-order bound (0 trials) wider than any trial's
    spread: a correct op whose rounding the trials cannot reach."""

    def spread(self, case, trials=8, seed=0):
        self.trials.append(trials)
        width = 1e-9 if trials == 0 else 1e-16
        return [width] * len(self.exact.values), [width] * len(self.exact.grads)


@pytest.mark.parametrize("reference", ["torch", "oracle"])
def test_within_the_first_order_bound_is_never_a_fail(reference):
    # Regression (soak, expr-0-173343): the engine's libm tanh 0.9985 ulps
    # off, where a trial moves a value by 0.62 ulps at most: 8 trials'
    # allowance missed it, the exact run's first-order bound did not.
    oracle = FirstOrderWider()
    verdict = judge(CASE, result(grads=[GOOD.grads[0], 1.0 + 1e-9]), GOOD, oracle, reference=reference)
    assert (verdict.verdict, oracle.trials) == ("ill_conditioned", [0])
    # Beyond it the trials decide, and their narrower allowance fails it.
    oracle = FirstOrderWider()
    verdict = judge(CASE, result(grads=[GOOD.grads[0], 1.0 + 1e-7]), GOOD, oracle, reference=reference)
    assert (verdict.verdict, oracle.trials) == ("fail", [0, 2])


def test_the_case_verdict_is_the_worst_quantity_and_the_detail_names_it():
    engine = result(values=[2.0 + 1e-11, math.e, 2.0 + math.e], grads=[GOOD.grads[0], 2.0])
    torch = result(values=[2.0 - 1e-11, math.e, 2.0 + math.e])
    verdict = judge(CASE, engine, torch, FakeOracle(spread=1e-11))
    assert verdict.verdict == "fail"
    assert verdict.detail.startswith("grad of leaf v1: engine 2.0, torch 1.0, oracle 1.0 (allowance")
    assert verdict.detail.endswith("(+1 more mismatches)")


@pytest.mark.parametrize("values, name", [
    ([3.0, math.e, 2.0 + math.e], "value of output v2"),
    ([2.0, math.e, 3.0], "loss"),
])
def test_values_are_named_by_output(values, name):
    verdict = judge(CASE, result(values=values), GOOD, FakeOracle())
    assert verdict.detail.startswith(f"{name}: ")


def test_an_exact_infinity_must_be_matched_unless_rounding_can_change_it():
    exact = result(grads=[GOOD.grads[0], INF])
    engine, torch = result(grads=[GOOD.grads[0], INF]), result(grads=[GOOD.grads[0], NAN])
    assert judge(CASE, engine, torch, FakeOracle(exact)).verdict == "torch_off"
    assert judge(CASE, engine, torch, FakeOracle(exact, spread=INF)).verdict == "ill_conditioned"


@pytest.mark.parametrize("oracle, reason", [
    (FakeOracle(error="oracle: ZeroDivisionError: ..."), "oracle: ZeroDivisionError: ..."),
    (FakeOracle(raises=ValueError("mpmath gave up")), "oracle: ValueError: mpmath gave up"),
    (FakeOracle(spread=NAN), "the oracle cannot know this quantity"),
    (FakeOracle(exact=result(grads=[1.0])), "oracle: 4 quantities and 4 spreads, not 5"),
])
def test_without_an_oracle_opinion_only_a_large_disagreement_fails(oracle, reason):
    slightly = judge(CASE, result(grads=[GOOD.grads[0], 1.0 + 1e-9]), GOOD, oracle)
    assert slightly.verdict == "ill_conditioned"
    far = judge(CASE, result(grads=[GOOD.grads[0], 1.001]), GOOD, oracle)
    assert far.verdict == "fail"
    assert far.detail == f"grad of leaf v1: engine 1.001, torch 1.0; no oracle opinion ({reason})"


def test_an_unknown_quantity_does_not_hide_a_known_one():
    class PartlyKnowing(FakeOracle):
        def spread(self, case, trials=8, seed=0):
            return [0.0, 0.0, 0.0], [NAN, 0.0]  # the grad of v0 is unknown

    engine = result(grads=[GOOD.grads[0] * (1 + 1e-9), 2.0])
    verdict = judge(CASE, engine, GOOD, PartlyKnowing())
    assert verdict.verdict == "fail"
    assert verdict.detail.startswith("grad of leaf v1: engine 2.0, torch 1.0, oracle 1.0")


def test_tolerances_are_overridable():
    engine = result(grads=[GOOD.grads[0], 1.0 + 1e-9])
    assert judge(CASE, engine, GOOD).verdict == "fail"
    assert judge(CASE, engine, GOOD, tolerances=Tolerances(rtol=1e-8)).verdict == "pass"
    loose = Tolerances(allowance_factor=1e6)
    assert judge(CASE, result(grads=[GOOD.grads[0], 1.1]), GOOD, FakeOracle(spread=1e-6),
                 tolerances=loose).verdict == "ill_conditioned"


# -- the real thing: engine, torch, oracle -----------------------------------------
def _run_all(cases):
    from parity.backends.engine import load_engine
    from parity.backends.torch import TorchBackend

    return load_engine("engine").run_batch(cases), TorchBackend().run_batch(cases)


@pytest.fixture(scope="module")
def oracle():
    from parity.backends.oracle import OracleBackend

    return OracleBackend()


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(3))
def test_our_engine_never_fails_on_random_graphs(seed, oracle):
    pytest.importorskip("torch")
    cases = build_cases("expr", seed, 400, {"max_nodes": 300, "draws_per_graph": 4})
    verdicts = [judge(c, e, t, oracle) for c, e, t in zip(cases, *_run_all(cases))]
    fails = [(c.case_id, v.detail) for c, v in zip(cases, verdicts)
             if v.verdict not in ("pass", "ill_conditioned")]
    assert fails == []
    assert sum(v.verdict == "pass" for v in verdicts) >= 0.95 * len(cases)


def _well_conditioned_grads(oracle, n=40):
    """(case, engine result, torch result, leaf) where engine and torch pass
    and the leaf's gradient is finite, nonzero and well-conditioned."""
    cases = build_cases("expr", 7, n, {"max_nodes": 30, "draws_per_graph": 4, "edge_rate": 0.0})
    picked = []
    for case, engine, torch in zip(cases, *_run_all(cases)):
        if judge(case, engine, torch).verdict != "pass":
            continue
        exact = oracle.run(case)
        if exact.error:
            continue
        _, grad_spread = oracle.spread(case)
        for leaf, (g, s) in enumerate(zip(exact.grads, grad_spread)):
            if math.isfinite(g) and abs(g) > 1e-3 and s < 1e-14 * abs(g):
                picked.append((case, engine, torch, leaf))
                break
    assert len(picked) >= 10
    return picked


def _with_grad(result, leaf, grad):
    grads = list(result.grads)
    grads[leaf] = grad
    return Result(values=list(result.values), grads=grads)


@pytest.mark.torch
@pytest.mark.parametrize("break_it", [lambda g: 2 * g, lambda g: -g, lambda g: NAN],
                         ids=["doubled", "sign flipped", "nan"])
def test_wrong_engine_gradients_fail(break_it, oracle):
    pytest.importorskip("torch")
    for case, engine, torch, leaf in _well_conditioned_grads(oracle):
        broken = _with_grad(engine, leaf, break_it(engine.grads[leaf]))
        verdict = judge(case, broken, torch, oracle)
        assert verdict.verdict == "fail", (case.case_id, verdict.detail)
        assert verdict.detail.startswith(f"grad of leaf v{leaf}: ")


@pytest.mark.torch
def test_torch_perturbed_against_an_exact_engine_is_torch_off(oracle):
    pytest.importorskip("torch")
    for case, engine, torch, leaf in _well_conditioned_grads(oracle):
        off = _with_grad(torch, leaf, torch.grads[leaf] * (1 + 1e-9))
        verdict = judge(case, engine, off, oracle)
        assert verdict.verdict == "torch_off", (case.case_id, verdict.detail)


# -- the cheap screen: a fail beyond any rounding needs no oracle ------------------
@pytest.mark.parametrize("engine_grad, torch_grad, spread, screened", [
    (2.0, 1.0, 1e-16, True),            # a wrong derivative: decided without the oracle
    (1.0 + 1e-8, 1.0, 1e-16, True),     # 1e-8 relative: 6,000 allowances of 1.6e-12
    (1.0 + 1e-11, 1.0, 1e-16, False),   # within gross_factor allowances: the oracle decides
    (2.0, 1.0, 1e-3, False),            # an ill-conditioned quantity
    (2.0, 1.0, NAN, False),             # no estimate (a kink crossed, nonlinear)
    (2.0, 0.0, 0.0, False),             # torch 0: a cancellation, which the estimate may miss
    (INF, 1.0, 1e-16, False),           # the engine not finite: a class change
    (2.0, INF, 1e-16, False),
])
def test_a_fail_far_beyond_the_estimated_spread_needs_no_oracle(engine_grad, torch_grad, spread, screened):
    oracle = FakeOracle(exact=result(grads=[GOOD.grads[0], torch_grad]))
    engine = result(grads=[GOOD.grads[0], engine_grad])
    torch = result(grads=[GOOD.grads[0], torch_grad])
    verdict = judge(CASE, engine, torch, oracle, extras=TorchExtras(rounding_spread=lambda: [0.0] * 4 + [spread]))
    assert verdict.verdict == "fail" or not screened
    assert (oracle.runs == 0) == screened and verdict.oracle_consulted == (not screened)
    assert ("beyond any rounding" in verdict.detail) == screened


def test_the_screen_is_asked_only_when_something_mismatches():
    def never():
        raise AssertionError("estimated a spread for a case that matches torch")
    assert judge(CASE, GOOD, GOOD, FakeOracle(), extras=TorchExtras(never, never)).verdict == "pass"


# -- engines of a narrower precision ---------------------------------------------------
def test_significant_bits_count_the_significand_without_trailing_zeros():
    from parity.compare import significant_bits
    assert significant_bits([1.0, 0.5, -2.0, 0.0, INF, NAN]) == 1
    assert significant_bits([1 / 3]) == 53 and significant_bits([3.0, 0.75]) == 2
    assert significant_bits([float(struct.unpack("f", struct.pack("f", 1.1))[0])]) == 24
    assert significant_bits([]) == 0
    assert significant_bits([1.0, 3.0, 1 / 3], enough=1) == 2  # the first count beyond 1 bit: enough said


def test_an_engine_is_narrow_when_its_numbers_fit_float32_and_torch_s_do_not():
    from parity.compare import is_narrow
    as_float32 = [struct.unpack("f", struct.pack("f", x))[0] for x in (1.1, 2.3)]
    assert is_narrow(as_float32, [1.1, 2.3])
    assert not is_narrow([1.1, 2.3], [1.1, 2.3])      # a float64 engine
    assert not is_narrow([1.0, 2.0], [1.0, 2.0])      # nothing to tell: torch's numbers are short too
