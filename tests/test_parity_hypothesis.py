"""Property: on any small graph at any leaves (edge points included), our
engine and torch, judged with the oracle, never disagree in the engine's
disfavour (fail) and nothing raises (error).  A failure notes the graph and
a command that replays it."""
import shlex

import pytest
from hypothesis import given, note

from parity.backends.engine import load_engine
from parity.backends.oracle import OracleBackend
from parity.backends.torch import TorchBackend
from parity.case import Case
from parity.compare import judge
from parity.generate import cases
from parity.ops import OP_NAMES

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

ENGINE, TORCH, ORACLE = load_engine("engine"), TorchBackend(), OracleBackend()


@given(cases(max_nodes=12, ops=OP_NAMES))
def test_engine_never_fails_against_torch(graph_and_leaves):
    graph, leaves = graph_and_leaves
    case = Case("hypothesis-0-0", "expr", 0, 0, graph, leaves)
    note(graph.render(leaves))
    note(f"replay: parity replay --json {shlex.quote(case.dumps())}")
    verdict = judge(case, ENGINE.run(case), TORCH.run(case), ORACLE)
    assert verdict.verdict not in ("fail", "error"), verdict.detail
