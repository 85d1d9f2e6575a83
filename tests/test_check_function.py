"""parity.check_function: right pairs pass, subtly wrong ones are flagged
with a readable message saying where."""
import pytest

import parity
from engine import Function
from parity.functions import PAIRS, FunctionCheck, check_function, torch_functions

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

EXTRA_ARGS = {"MulAdd": (0.5,)}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_the_shipped_pairs_pass(name):
    result = check_function(PAIRS[name], torch_functions()[name], extra_args=EXTRA_ARGS.get(name, ()), n_cases=20)
    assert result.passed, result.summary()
    assert len(result.points) == 20


def test_check_function_is_exported_lazily_from_parity():
    assert parity.check_function is check_function


class SquareOff(Function):
    """x ** 2 with a backward of 2.0001 * x: 5e-5 relative, inside gradcheck's rtol."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.data * x.data

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_values
        return g * 2.0001 * x.data


def test_a_subtly_wrong_backward_is_flagged_against_torch():
    result = check_function(SquareOff, torch_functions()["Square"], n_cases=10)
    assert not result.passed
    first = result.failures[0]
    assert first.startswith("at x=(") and "d output 0 / d input 0: engine" in first and "torch" in first
    assert any(f.startswith("in graph applied_twice") for f in result.failures)
    assert "FAILED" in result.summary()


class ProdSumSwapped(Function):
    """(x * y, x + y) whose backward swaps the product's partials."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x.data * y.data, x.data + y.data

    @staticmethod
    def backward(ctx, g_prod, g_sum):
        x, y = ctx.saved_values
        return g_prod * x.data + g_sum, g_prod * y.data + g_sum


def test_a_wrong_backward_fails_finite_differences_too():
    result = check_function(ProdSumSwapped, torch_functions()["ProdSum"], n_cases=5)
    assert any("engine_fn's backward disagrees with finite differences: d output 0 / d input 0" in f
               for f in result.failures)
    assert not any("output 1" in f and "d output" in f for f in result.failures)  # the sum is right


def test_a_wrong_torch_backward_is_caught_by_gradcheck():
    class TorchSquareOff(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3.0 * x

    result = check_function(PAIRS["Square"], TorchSquareOff, n_cases=3)
    assert any("torch_fn's backward disagrees with finite differences (gradcheck)" in f for f in result.failures)


def test_a_wrong_value_and_an_output_count_mismatch_are_reported():
    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.data ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_values
            return g * 2.0 * x.data

    assert any("output 0 value: engine" in f for f in check_function(Cube, torch_functions()["Square"],
                                                                       n_cases=3).failures)
    mismatch = check_function(PAIRS["Square"], torch_functions()["ReluMask"], n_cases=2)
    assert mismatch.failures[0].endswith("engine_fn returns 1 outputs, torch_fn 2")


def test_points_stay_in_the_domain_and_away_from_kinks():
    result = check_function(PAIRS["ReluMask"], torch_functions()["ReluMask"], domain=(-1e-7, 1e-7), n_cases=5)
    assert all(abs(x) >= 1e-6 for (x,) in result.points)  # none near 0: none in this domain at all
    assert result.points == [] and result.passed
    wide = check_function(PAIRS["ReluMask"], torch_functions()["ReluMask"], domain=(-3.0, 3.0), n_cases=30)
    assert all(-3.0 <= x <= 3.0 and abs(x) > 1e-6 for (x,) in wide.points)


def test_same_seed_same_points_and_n_inputs_from_the_signature():
    a = check_function(PAIRS["MulAdd"], torch_functions()["MulAdd"], extra_args=(2.0,), n_cases=4, seed=3)
    b = check_function(PAIRS["MulAdd"], torch_functions()["MulAdd"], extra_args=(2.0,), n_cases=4, seed=3)
    assert a.points == b.points and all(len(p) == 2 for p in a.points)


def test_summary_lists_failures_up_to_a_limit():
    check = FunctionCheck("F vs G", [[1.0]], [f"failure {i}" for i in range(30)])
    lines = check.summary(limit=5).splitlines()
    assert lines[0] == "check_function(F vs G): 1 points, 30 failures: FAILED"
    assert lines[1:6] == [f"  failure {i}" for i in range(5)] and lines[-1] == "  ... and 25 more"
