"""Property: on any small graph at any leaves (edge points included), our
engine and torch, judged with the oracle, never disagree in the engine's
disfavour (fail) and nothing raises (error).  A failure notes the graph and
a command that replays it.  The reference is torch where it is installed,
else the oracle's exact answer."""
import math
import shlex

import pytest
from hypothesis import given, note, settings

from parity.backends.engine import load_engine
from parity.backends.oracle import OracleBackend
from parity.backends.reference import default_reference, make_reference
from parity.case import Case
from parity.compare import judge
from parity.generate import cases
from parity.ops import OP_NAMES

ENGINE, ORACLE = load_engine("engine"), OracleBackend()
REFERENCE = make_reference(default_reference(), ORACLE)


@given(cases(max_nodes=12, ops=OP_NAMES))
def test_engine_never_fails_against_torch(graph_and_leaves):
    graph, leaves = graph_and_leaves
    case = Case("hypothesis-0-0", "expr", 0, 0, graph, leaves)
    note(graph.render(leaves))
    note(f"replay: parity replay --json {shlex.quote(case.dumps())}")
    verdict = judge(case, ENGINE.run(case), REFERENCE.run(case), ORACLE, reference=REFERENCE.name)
    assert verdict.verdict not in ("fail", "error"), verdict.detail


@pytest.mark.torch  # the estimate is torch's
@settings(deadline=None)  # the oracle's eight trials on a graph of edge points: up to a second
@given(cases(max_nodes=12, ops=OP_NAMES))
def test_the_estimated_spread_never_hides_the_oracle_s(graph_and_leaves):
    # compare.judge's screen calls a fail without the oracle when the engine
    # is gross_factor (1000) allowances of the estimate away from torch; so
    # wherever the estimate is known (and torch finite, nonzero: the only
    # quantities screened), the exact spread must be within a margin of it,
    # far inside that factor.
    graph, leaves = graph_and_leaves
    case = Case("hypothesis-0-0", "expr", 0, 0, graph, leaves)
    note(graph.render(leaves))
    from parity.backends.torch import TorchBackend

    (estimate,) = TorchBackend().rounding_spread([case])
    torch_result = TorchBackend().run(case)
    values, grads = ORACLE.spread(case)
    for name, spread, estimated, at in zip(range(len(estimate)), values + grads, estimate,
                                           torch_result.values + torch_result.grads):
        if estimated == estimated and at != 0 and math.isfinite(at):
            assert spread <= 50 * estimated + 1e-12 * abs(at), (name, spread, estimated)
