"""The harness catches real engine bugs: each test plants one bug in a copy
of our engine and runs the whole pipeline (engine backend, torch, oracle,
compare.judge, through runner.run_cases) on a fixed set of cases.

A mutant is engine/ copied to a temporary package with one exact text
substitution (which must match once, so a refactor of the engine breaks
this test loudly instead of silently testing nothing), loaded by the engine
backend like any third-party engine ("package:Value").  The unmutated copy
must give no fail and no error on the same cases: every fail a mutant gets
is the planted bug's.
"""
from dataclasses import dataclass
import shutil
import sys
from pathlib import Path
from typing import Callable

import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from parity.backends.engine import load_engine  # noqa: E402
from parity.backends.oracle import OracleBackend  # noqa: E402
from parity.backends.torch import TorchBackend  # noqa: E402
from parity.cases import EDGE_TABLE, build_cases, n_fixed_cases  # noqa: E402
from parity.runner import run_cases  # noqa: E402

ENGINE_DIR = Path(__file__).resolve().parent.parent / "engine"
BAD = ("fail", "error")


def uses(*ops):
    return lambda case: any(op in case.graph.ops() for op in ops)


@dataclass(frozen=True)
class Mutant:
    bug: str
    file: str           # in engine/
    old: str            # text that must occur exactly once
    new: str
    may_show: Callable  # case -> whether the bug can show in it
    shows_as: str       # text that some caught case's detail contains


MUTANTS = [
    Mutant("grad_assigned_in_backward", "value.py", "            node.grad += g\n", "            node.grad = g\n",
           lambda case: case.passes > 1 and not case.zero_grad_between, "grad of leaf"),
    Mutant("grad_assigned_in_add_backward", "value.py",
           "    a, b = node._prev\n    a._g += g\n    b._g += g\n", "    a, b = node._prev\n    a._g = g\n    b._g += g\n",
           lambda case: True, "grad of leaf"),  # the loss adds the outputs: any graph may show it
    Mutant("tanh_derivative_1_minus_y", "value.py", "g * floatmath.one_minus_square(node.data)", "g * (1.0 - node.data)",
           uses("tanh"), "grad of leaf"),
    Mutant("pow_derivative_e_x_to_the_e", "value.py",
           "e * _pow_by_constant(x.data, e - 1.0)", "e * _pow_by_constant(x.data, e)",
           uses("pow_const"), "grad of leaf"),
    Mutant("relu_derivative_1_at_0", "value.py", "if not node.data <= 0.0:", "if not node.data < 0.0:",
           uses("relu"), "grad of leaf"),
    Mutant("rsub_computes_x_minus_c", "value.py",
           '_node(other - self.data, (self,), "rsub"', '_node(self.data - other, (self,), "rsub"',
           uses("rsub"), "value of"),
    Mutant("log_at_0_raises", "floatmath.py",
           "def log(x):\n    try:\n        return math.log(x)\n    except ValueError:\n"
           "        if x == 0.0:\n            return -INF\n        return NAN\n",
           "def log(x):\n    return math.log(x)\n",
           uses("log", "pow", "rpow"),  # pow's exponent gradient takes the log of the base
           "ValueError: math domain error"),
]


@pytest.fixture(scope="module")
def mutant_root(tmp_path_factory):
    """A directory on sys.path (for this module only) to put mutant packages in."""
    root = tmp_path_factory.mktemp("mutants")
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


def make_mutant(root, name, file=None, old=None, new=None):
    """engine/ copied to package ``name`` under root, with ``old`` -> ``new`` in ``file``."""
    package = root / name
    shutil.copytree(ENGINE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    if file is not None:
        path = package / file
        source = path.read_text()
        assert source.count(old) == 1, f"{name}: {old!r} must occur once in engine/{file}"
        path.write_text(source.replace(old, new))
    return load_engine(f"{name}:Value")


@pytest.fixture(scope="module")
def cases():
    """Small random graphs over every op, the named accumulation cases
    (repeated passes) and DESIGN.md's edge table (log at 0, relu at 0 ...)."""
    expr = build_cases("expr", 0, 80, {"max_nodes": 30, "draws_per_graph": 2, "chain_share": 0.2})
    accumulation = build_cases("accumulation", 0, n_fixed_cases("accumulation"))
    edges = build_cases("edges", 0, len(EDGE_TABLE))
    return expr + accumulation + edges


class CachedTorch(TorchBackend):
    """Torch's results do not depend on the engine: compute them once."""

    def __init__(self):
        self.results = {}

    def run_batch(self, cases):
        todo = [case for case in cases if case.case_id not in self.results]
        self.results.update(zip((case.case_id for case in todo), super().run_batch(todo)))
        return [self.results[case.case_id] for case in cases]


@pytest.fixture(scope="module")
def judge_all(cases):
    torch_backend, oracle = CachedTorch(), OracleBackend()

    def judge(engine):
        by_id = {case.case_id: case for case in cases}
        return [(by_id[row["case_id"]], row) for row in run_cases(cases, engine, torch_backend, oracle)]
    return judge


@pytest.mark.parametrize("copied", [False, True], ids=["engine", "unmutated_copy"])
def test_the_unmutated_engine_has_no_fail_and_no_error(mutant_root, judge_all, copied):
    engine = make_mutant(mutant_root, "gradparity_mutant_none") if copied else load_engine("engine")
    rows = judge_all(engine)
    bad = [f"{row['case_id']} {row['verdict']}: {row['detail']}" for _, row in rows if row["verdict"] in BAD]
    assert not bad, "\n".join(bad)
    assert sum(row["verdict"] == "pass" for _, row in rows) >= 0.95 * len(rows)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.bug for m in MUTANTS])
def test_a_planted_bug_is_caught(mutant_root, judge_all, mutant):
    engine = make_mutant(mutant_root, f"gradparity_mutant_{mutant.bug}", mutant.file, mutant.old, mutant.new)
    caught = [(case, row) for case, row in judge_all(engine) if row["verdict"] in BAD]
    assert caught, f"{mutant.bug}: every case passed"
    misplaced = [row["case_id"] for case, row in caught if not mutant.may_show(case)]
    assert not misplaced, f"{mutant.bug}: cases that cannot show the bug failed: {misplaced}"
    assert any(mutant.shows_as in row["detail"] for _, row in caught), [row["detail"] for _, row in caught]
