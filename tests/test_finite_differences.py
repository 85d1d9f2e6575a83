"""Finite differences: an autograd-free check of engine and torch gradients,
with no opinion (nan) at kinks and non-finite losses."""
import math

import pytest

from parity.backends.engine import load_engine
from parity.backends.finite_differences import FiniteDifferences, step
from parity.backends.oracle import OracleBackend
from parity.case import Case, Result
from parity.cases import build_cases
from parity.graph import Graph, Node

EPS = 2.0 ** -52


def make_case(n_leaves, nodes, leaves, outputs=None, **fields):
    nodes = tuple(Node(*node) for node in nodes)
    graph = Graph(n_leaves, nodes, tuple(outputs or (n_leaves + len(nodes) - 1,)))
    return Case("t-0-0", "expr", 0, 0, graph, list(leaves), **fields)


@pytest.fixture(scope="module")
def fd():
    return FiniteDifferences(load_engine("engine"))


def test_step_scales_with_the_leaf():
    assert step(0.5) == step(-1.0) == EPS ** (1 / 3)
    assert step(-1000.0) == 1000.0 * EPS ** (1 / 3)


def test_smooth_function(fd):
    # loss = x * y + exp(x): d/dx = y + exp(x), d/dy = x
    case = make_case(2, [("mul", (0, 1)), ("exp", (0,))], [0.5, -2.0], outputs=(2, 3))
    result = fd.run(case)
    assert result.values == [-1.0, math.exp(0.5), -1.0 + math.exp(0.5)]
    assert result.grads == pytest.approx([-2.0 + math.exp(0.5), 0.5], rel=1e-9)
    assert result.seconds > 0.0


def test_any_backend_can_drive_it():
    case = make_case(1, [("tanh", (0,))], [0.3])
    result = FiniteDifferences(OracleBackend()).run(case)  # no run_batch: one run per nudge
    assert result.grads == pytest.approx([1 - math.tanh(0.3) ** 2], rel=1e-9)


@pytest.mark.parametrize("nodes, leaves", [
    ([("relu", (0,))], [0.0]),
    ([("abs", (0,))], [-0.0]),
    ([("relu", (0,))], [1e-7]),                       # within a step of the kink
    ([("sub_const", (0,), 1.0), ("abs", (1,))], [1.0]),  # a kink downstream
    ([("sqrt", (0,))], [0.0]),
])
def test_no_opinion_across_a_kink(fd, nodes, leaves):
    assert math.isnan(fd.run(make_case(1, nodes, leaves)).grads[0])


def test_kinks_elsewhere_leave_other_leaves_alone(fd):
    # loss = relu(v0) + v1 * v1 at v0 = 0: v1's difference is still good.
    case = make_case(2, [("relu", (0,)), ("mul", (1, 1))], [0.0, 3.0], outputs=(2, 3))
    grads = fd.run(case).grads
    assert math.isnan(grads[0]) and grads[1] == pytest.approx(6.0, rel=1e-9)


def test_a_kink_well_away_is_no_obstacle(fd):
    assert fd.run(make_case(1, [("relu", (0,))], [0.5])).grads == pytest.approx([1.0], rel=1e-12)


@pytest.mark.parametrize("nodes, leaves", [
    ([("exp", (0,))], [709.78]),     # exp(x + h) overflows
    ([("log", (0,))], [-1.0]),       # nan loss
    ([("exp", (0,))], [math.inf]),   # no step from an infinite leaf
    ([("exp", (0,))], [math.nan]),
])
def test_no_opinion_where_the_loss_or_the_leaf_is_not_finite(fd, nodes, leaves):
    assert math.isnan(fd.run(make_case(1, nodes, leaves)).grads[0])


def test_passes_scale_the_gradient_unless_zeroed_between(fd):
    nodes = [("mul", (0, 0))]
    assert fd.run(make_case(1, nodes, [3.0], passes=3)).grads == pytest.approx([18.0], rel=1e-9)
    zeroed = make_case(1, nodes, [3.0], passes=3, zero_grad_between=True)
    assert fd.run(zeroed).grads == pytest.approx([6.0], rel=1e-9)


def test_a_forward_error_is_the_result():
    class Broken:
        def run(self, case):
            return Result(error="RecursionError: too deep")

    result = FiniteDifferences(Broken()).run(make_case(1, [("exp", (0,))], [1.0]))
    assert result.error == "RecursionError: too deep"


def _agrees_with_fd(grad, fd_grad, loss, leaf):
    # Differences are good to ~eps**(2/3) relative, plus the loss's own
    # rounding divided by the step, eps * |loss| / h.
    noise = EPS * abs(loss) / step(leaf)
    return abs(fd_grad - grad) <= 1e-4 * max(1.0, abs(grad)) + 8 * noise


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(3))
def test_engine_and_torch_agree_with_finite_differences_on_smooth_graphs(seed):
    pytest.importorskip("torch")
    from parity.backends.torch import TorchBackend

    torch_backend = TorchBackend()
    engine = load_engine("engine")
    fd = FiniteDifferences(torch_backend)
    cases = build_cases("expr", seed, 96, {"max_nodes": 30, "draws_per_graph": 8, "edge_rate": 0.0})
    checked = finite_loss = 0  # random graphs overflow often: count leaves with a finite loss
    for case, torch_result, engine_result in zip(cases, torch_backend.run_batch(cases),
                                                 engine.run_batch(cases)):
        fd_result = fd.run(case)
        loss = torch_result.values[-1]
        for leaf, fd_grad in enumerate(fd_result.grads):
            finite_loss += math.isfinite(loss)
            if math.isnan(fd_grad) or not math.isfinite(torch_result.grads[leaf]):
                continue  # no opinion; or torch's nan/inf conventions, not calculus
            checked += 1
            for name, result in (("torch", torch_result), ("engine", engine_result)):
                assert _agrees_with_fd(result.grads[leaf], fd_grad, loss, case.leaves[leaf]), (
                    name, case.case_id, leaf, result.grads[leaf], fd_grad)
    assert checked >= 0.8 * finite_loss
