"""The harness catches real engine bugs: each test plants one bug in our
engine and runs the whole pipeline (engine backend, torch, oracle,
compare.judge, through runner.run_cases) on one fixed set of small cases.
The unmutated engine gives no fail and no error on them, so every fail a
planted bug gets is the bug's; it must get one, and only in cases whose run
can show it (``may_show``).

Three kinds of planted bugs:

- Every op row's forward and backward, driven from the op table.  Every
  engine node is made by ``_node(data, backward, a, b)``; a bug
  rebinds ``_node`` in the running engine (undone after the test) so that
  the nodes of one code path get a value off by a relative EPS, or a
  gradient contribution to one operand off by EPS: subtle, yet far outside
  rtol 1e-12 and the oracle's rounding allowance on well-conditioned cases.
  The running engine, not a copy: the harness drives only our own engine's
  Values through engine.Function (the fn_* rows) and engine.nn (the mlp
  family's fused ``linear``).  Op rows that run the same engine code share
  its bugs (ROWS); a new op row fails test_every_op_row_has_planted_bugs
  until ROWS and PATHS cover it.
- The backward machinery (gradient accumulation, topological order, the
  per-pass zeroing of gradients) and a few hand-written formula and edge
  bugs: one exact text substitution in a copy of engine/ (it must match
  once, so a refactor of the engine breaks this test loudly instead of
  silently testing nothing), loaded like any third-party engine
  ("package:Value").
- engine.nn's zero_grad (Module's and SGD's): one exact text substitution
  in the method, in the running engine, for the same reason as the op rows.

zero_grad: the harness zeroes the leaves' grads itself between passes (the
accumulation family's zero_grad_between), which the engine's own per-pass
zeroing must not defeat; and before it reads an mlp case's gradients, our
network has had a backward and a zero_grad (the module's in even-numbered
cases, SGD's in odd ones).

The oracle stays the referee, as in a real run: a bug counts as caught only
if the pipeline convicts it, not merely because engine and torch differ (the
oracle may find a mismatch ill-conditioned and let it go).  Judging without
it would be faster and weaker.  Torch and the oracle answer each case once,
whichever bug asks, which keeps the file CI-sized.  Where torch is not
installed, the reference is the oracle's exact answer (`--reference
oracle`, backends/reference.py), and every planted bug must be caught by it
alike.
"""
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
import inspect
import math
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

import engine.function
import engine.nn
import engine.value
from parity.backends.engine import load_engine
from parity.backends.oracle import OracleBackend
from parity.backends.reference import OracleReference, default_reference
from parity.backends.torch import TorchBackend
from parity.cases import EDGE_TABLE, build_cases, case_from_id, iter_cases, n_fixed_cases
from parity.functions import FUNCTION_OPS
from parity.ops import OPS
from parity.runner import run_cases

REFERENCE = default_reference()  # torch where it is installed, else the oracle's exact answer

ENGINE_DIR = Path(__file__).resolve().parent.parent / "engine"
BAD = ("fail", "error")
EPS = 1e-9  # an op bug's relative error


# -- op rows: the engine code paths they run ---------------------------------------
@dataclass(frozen=True)
class CodePath:
    operands: tuple  # those it computes gradients for: one backward bug each ("": the only one)
    nodes: tuple     # (op string, backward function name) that _node builds it with


UNARY, BINARY = ("",), ("a", "b")
PATHS = {
    "add": CodePath(BINARY, (("+", "_add_backward"),)),
    "add_const": CodePath(UNARY, (("+", "_add_constant_backward"),)),
    "sub": CodePath(BINARY, (("-", "_sub_backward"),)),
    "sub_const": CodePath(UNARY, (("-", "_sub_constant_backward"),)),
    "rsub": CodePath(UNARY, (("rsub", "_rsub_backward"),)),
    "mul": CodePath(BINARY, (("*", "_mul_backward"),)),
    "mul_const": CodePath(UNARY, (("*", "_scale_backward"),)),
    "div": CodePath(BINARY, (("/", "_div_backward"),)),
    "div_const": CodePath(UNARY, (("/", "_div_by_constant_backward"),)),
    "rdiv": CodePath(UNARY, (("rdiv", "_rdiv_backward"),)),
    "pow": CodePath(BINARY, (("**", "_pow_backward"),)),
    "pow_const": CodePath(UNARY, (("**", "_pow_constant_exponent_backward"),)),
    "rpow": CodePath(UNARY, (("rpow", "_pow_constant_base_backward"),)),
    **{name: CodePath(UNARY, ((name, f"_{name}_backward"),))
       for name in ("neg", "abs", "exp", "log", "tanh", "sigmoid", "relu", "sqrt", "sin", "cos", "leaky_relu",
                    "softplus", "silu", "gelu", "gelu_tanh", "elu", "log1p", "expm1", "square", "reciprocal",
                    "clamp", "exp2")},
    **{name: CodePath(BINARY, ((name, f"_{name}_backward"),)) for name in ("max", "min")},
    # engine.nn's neurons: our engine runs the mlp family through them
    "linear": CodePath(("bias", "weights", "inputs"), (("linear", "_linear_backward"),)),
    # engine.Function: a hidden node takes the inputs' gradients, output
    # nodes ("Class[i]") carry the values
    **{name: CodePath(operands, ((name, "_function_backward"), (name, "_output_backward")))
       for name, operands in (("Square", UNARY), ("MulAdd", BINARY), ("ProdSum", BINARY),
                              ("ReluMask", UNARY), ("Exp", UNARY))},
}
NODES = {node: name for name, path in PATHS.items() for node in path.nodes}

# The code paths each op row runs: x + c and c + x are one (__radd__ =
# __add__), x * c and c * x too; a Function's forward may run engine ops.
ROWS = {
    **{name: (name,) for name in ("add", "sub", "mul", "div", "pow", "add_const", "sub_const", "rsub",
                                  "mul_const", "div_const", "rdiv", "pow_const", "rpow", "neg", "abs",
                                  "exp", "log", "tanh", "sigmoid", "relu", "sqrt", "sin", "cos", "leaky_relu",
                                  "softplus", "silu", "gelu", "gelu_tanh", "elu", "log1p", "expm1", "square",
                                  "reciprocal", "max", "min", "clamp", "exp2")},
    "radd": ("add_const",),
    "rmul": ("mul_const",),
    "fn_square": ("Square",),
    "fn_muladd": ("MulAdd",),
    "fn_prodsum0": ("ProdSum",),
    "fn_prodsum1": ("ProdSum",),
    "fn_prodsum": ("ProdSum", "add"),
    "fn_relumask": ("ReluMask", "relu"),
    "fn_relumask_gate": ("ReluMask", "relu", "mul"),
    "fn_exp": ("Exp", "exp"),
}


def _path_of(backward, a, b):
    """The code path of a node _node is asked for; an unknown one by its (op, backward)."""
    if backward is engine.function._function_backward:
        op = b.cls.__name__
    elif backward is engine.function._output_backward:
        op = a._b.cls.__name__
    else:
        op = engine.value.OP_NAMES.get(backward, "")
    node = (op, backward.__name__)
    return NODES.get(node, node)


@contextmanager
def engine_node(make_node):
    """The running engine with ``_node`` replaced by ``make_node(_node)``."""
    with pytest.MonkeyPatch.context() as patch:
        node = make_node(engine.value._node)
        for module in (engine.value, engine.function):
            patch.setattr(module, "_node", node)
        yield


@contextmanager
def recording_paths():
    """The set of code paths whose nodes the engine builds meanwhile."""
    paths = set()

    def make_node(original):
        def recording(data, backward, a, b=None):
            paths.add(_path_of(backward, a, b))
            return original(data, backward, a, b)
        return recording

    with engine_node(make_node):
        yield paths


@pytest.mark.parametrize("row", OPS)
def test_every_op_row_has_planted_bugs(row):
    assert row in ROWS, f"op row {row!r} has no planted bug: add it to ROWS (and its code path to PATHS)"
    op = OPS[row]
    with recording_paths() as paths:
        operands = [engine.Value(x) for x in (1.5, 2.5)[:op.arity]]
        op.apply_engine(operands, op.constants[0] if op.has_const else None).backward()
    assert paths == set(ROWS[row]), f"op row {row!r} runs the code paths {paths}, not {ROWS[row]}"


def _operands(node, path, operand):
    """The operands of ``node`` whose gradient a backward bug on ``operand`` perturbs."""
    if path == "linear":  # (bias, *weights, *inputs)
        n = len(node._b[0])
        return {"bias": node._prev[:1], "weights": node._prev[1:1 + n], "inputs": node._prev[1 + n:]}[operand]
    i = PATHS[path].operands.index(operand)
    return node._prev[i:i + 1]


def _perturbed_backward(backward, path, operand):
    def perturbed(node, g):
        operands = _operands(node, path, operand)
        before = [v._g for v in operands]
        backward(node, g)
        for v, g_before in zip(operands, before):
            contribution = v._g - g_before
            if contribution and math.isfinite(contribution):  # zeros, infinities, nan: no "off by EPS"
                v._g = g_before + contribution * (1.0 + EPS)
    return perturbed


@dataclass(frozen=True)
class OpBug:
    """A code path's forward (operand None) or one operand's backward, off by EPS."""
    path: str
    operand: str = None

    @property
    def name(self):
        if self.operand is None:
            return f"forward-{self.path}"
        return f"backward-{self.path}" + (f"-{self.operand}" if self.operand else "")

    @property
    def shows_as(self):
        return "value of" if self.operand is None else "grad of leaf"

    def may_show(self, case, paths_of):
        return self.path in paths_of[case.case_id]

    @contextmanager
    def engine(self, mutant_root):
        def make_node(original):
            def planted(data, backward, a, b=None):
                if _path_of(backward, a, b) == self.path:
                    if self.operand is None:
                        data *= 1.0 + EPS  # zeros, infinities, nan: unchanged
                    else:
                        backward = _perturbed_backward(backward, self.path, self.operand)
                return original(data, backward, a, b)
            return planted

        with engine_node(make_node):
            yield load_engine("engine")


OP_BUGS = [bug for path, code in PATHS.items()
           for bug in [OpBug(path)] + [OpBug(path, operand) for operand in code.operands]]


# -- the backward machinery, and hand-written bugs: text substitutions in a copy ----
def uses(*ops):
    return lambda case: any(op in case.graph.ops() for op in ops)


def adds(case):
    """Whether some node adds two Values: an add, or the loss's additions."""
    return uses("add")(case) or len(case.graph.outputs) > 1


def fan_out(case):
    """Whether some value has two consumers: nodes, or the loss's additions
    (outputs[0] + outputs[1], then + each further output)."""
    graph = case.graph
    consumers = [set(node.args) for node in graph.nodes]
    if len(graph.outputs) > 1:
        consumers += [set(graph.outputs[:2])] + [{o} for o in graph.outputs[2:]]
    return max(Counter(v for used in consumers for v in used).values()) > 1


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str           # in engine/
    old: str            # text that must occur exactly once
    new: str
    can_show: Callable  # case -> whether the bug can show in it
    shows_as: str       # text that some caught case's detail contains

    def may_show(self, case, paths_of):
        return self.can_show(case)

    @contextmanager
    def engine(self, mutant_root):
        yield make_mutant(mutant_root, f"gradparity_mutant_{self.name.replace('-', '_')}",
                          self.file, self.old, self.new)


@dataclass(frozen=True)
class NetworkMutant:
    """An exact text substitution in a method of the running engine.nn: the
    harness runs networks through our own engine.nn only (a copy's mlp cases
    run as graphs)."""
    name: str
    method: str         # "Class.method" in engine/nn.py
    old: str            # text that must occur exactly once in it
    new: str
    can_show: Callable
    shows_as: str

    may_show = Mutant.may_show

    @contextmanager
    def engine(self, mutant_root):
        class_name, name = self.method.split(".")
        cls = getattr(engine.nn, class_name)
        source = textwrap.dedent(inspect.getsource(getattr(cls, name)))
        assert source.count(self.old) == 1, f"{self.name}: {self.old!r} must occur once in {self.method}"
        namespace = {}
        exec(source.replace(self.old, self.new), vars(engine.nn), namespace)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cls, name, namespace[name])
            yield load_engine("engine")


# Backward sorts the nodes it found into creation order, newest first.
CREATION_ORDER = """\
        order = sorted(set(found), key=_creation_order, reverse=True)
"""
# The order nodes are visited in instead: a topological order for a tree,
# not where a node is visited before one of its consumers.
VISIT_ORDER = """\
        stack = [self]
        order = []
        seen = {{self}}
        while stack:
            order.append(stack.pop{})
            for child in order[-1]._prev:
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
"""
# Each pass starts every node it finds at -0.0 (the mark _reachable sets).
PASS_GRADIENTS_RESET = """\
        found = _reachable(self, float("-0.0"))
"""
BACKWARD_PASS = PASS_GRADIENTS_RESET + """\
        # torch's engine runs ready nodes newest first (by sequence number):
        # that is every node after all the nodes built from it.  A set
        # iterates in address order, close to the order of creation, which
        # leaves the sort little to do (the order found, breadth first, costs
        # the sort several times as much on a random DAG).
        order = sorted(set(found), key=_creation_order, reverse=True)
        self._g = float(gradient)
        for node in order:
            g = node._g
            node.grad += g
"""
# A leaf's gradient accumulates in _g over the passes and .grad is a copy of
# it: right until someone zeroes .grad.
LEAF_GRADIENTS_KEPT = """\
        kept = {node: node._g for node in topological_order(self) if not node._prev}
        found = _reachable(self, float("-0.0"))
        for node, g in kept.items():
            node._g = g
        order = sorted(set(found), key=_creation_order, reverse=True)
        self._g = float(gradient)
        for node in order:
            g = node._g
            node.grad = g
"""

MUTANTS = [
    Mutant("accumulation-grad-assigned", "value.py", "            node.grad += g\n", "            node.grad = g\n",
           lambda case: case.passes > 1 and not case.zero_grad_between, "grad of leaf"),
    Mutant("accumulation-add-backward-assigns", "value.py",
           "    a, b = node._a, node._b\n    a._g += g\n    b._g += g\n",
           "    a, b = node._a, node._b\n    a._g = g\n    b._g += g\n",
           lambda case: adds(case) and fan_out(case), "grad of leaf"),
    # Each consumer overwrites its operands' gradients: the last one visited wins.
    Mutant("accumulation-consumers-overwrite", "value.py",
           "            if backward is not None:\n                backward(node, g)\n",
           "            if backward is not None:\n                for child in node._prev:\n"
           "                    child._g = -0.0\n                backward(node, g)\n",
           fan_out, "grad of leaf"),
    Mutant("topological-order-depth-first-preorder", "value.py", CREATION_ORDER, VISIT_ORDER.format("()"),
           fan_out, "grad of leaf"),
    Mutant("topological-order-breadth-first", "value.py", CREATION_ORDER, VISIT_ORDER.format("(0)"),
           fan_out, "grad of leaf"),
    # no mark: each node starts the pass at the gradient it ended the last one with
    Mutant("zero_grad-pass-gradients-kept", "value.py", PASS_GRADIENTS_RESET,
           "        found = topological_order(self)\n", lambda case: case.passes > 1, "grad of leaf"),
    Mutant("zero_grad-ignored", "value.py", BACKWARD_PASS, LEAF_GRADIENTS_KEPT,
           lambda case: case.zero_grad_between, "grad of leaf"),
    NetworkMutant("zero_grad-module-misses-a-parameter", "Module.zero_grad", "for p in self.parameters():",
                  "for p in self.parameters()[:-1]:", lambda case: case.family == "mlp" and case.index % 2 == 0,
                  "grad of leaf"),
    NetworkMutant("zero_grad-sgd-zeroes-pass-gradients", "SGD.zero_grad", "p.grad = 0.0", "p._g = 0.0",
                  lambda case: case.family == "mlp" and case.index % 2 == 1, "grad of leaf"),
    Mutant("formula-tanh-derivative-1-minus-y", "value.py", "g * floatmath.one_minus_square(node.data)",
           "g * (1.0 - node.data)", uses("tanh"), "grad of leaf"),
    Mutant("formula-pow-derivative-e-x-to-the-e", "value.py",
           "e * _pow_by_constant(x.data, e - 1.0)", "e * _pow_by_constant(x.data, e)",
           uses("pow_const"), "grad of leaf"),
    Mutant("formula-rsub-computes-x-minus-c", "value.py",
           '_node(other - self.data, _rsub_backward', '_node(self.data - other, _rsub_backward',
           uses("rsub"), "value of"),
    Mutant("edge-relu-derivative-1-at-0", "value.py", "if not node.data <= 0.0:", "if not node.data < 0.0:",
           uses("relu"), "grad of leaf"),
    Mutant("edge-log-at-0-raises", "floatmath.py",
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


# -- the cases, and the pipeline ----------------------------------------------------
def op_cases(seed, row, n=6, tries=200):
    """The first n of ``tries`` random graphs of ``row`` and neg (exact, so it
    blurs nothing) that use ``row``, on in-domain leaves."""
    config = {"ops": (row, "neg"), "max_nodes": 4, "edge_rate": 0.0, "draws_per_graph": 1}
    found = [case for case in iter_cases("expr", seed, tries, config) if row in case.graph.ops()][:n]
    assert len(found) == n, f"op row {row!r}: {len(found)} of {tries} random graphs use it, not {n}"
    return found


# Two-layer nets (a linear node's inputs then get gradients): sigmoid, batch
# 6 (an even case: Module.zero_grad); sigmoid, batch 3; sigmoid/linear,
# batch 1, trained 2 steps (odd: SGD.zero_grad).
MLP_CASES = ("mlp-0-12", "mlp-0-15", "mlp-0-19")


@pytest.fixture(scope="module")
def cases():
    """Tiny graphs of each op row; the named accumulation cases (fan-out,
    repeated passes with and without zeroing); DESIGN.md's edge table (log
    at 0, relu at 0 ...); two small mlp cases."""
    per_op = [case for seed, row in enumerate(OPS) for case in op_cases(seed, row)]
    accumulation = build_cases("accumulation", 0, n_fixed_cases("accumulation"))
    edges = build_cases("edges", 0, len(EDGE_TABLE))
    return per_op + accumulation + edges + [case_from_id(case_id) for case_id in MLP_CASES]


@pytest.fixture(scope="module")
def paths_of(cases):
    """{case id: the code paths whose nodes our engine builds to run it}."""
    backend = load_engine("engine")
    paths = {}
    for case in cases:
        with recording_paths() as paths[case.case_id]:
            backend.run(case)
    return paths


def _key(case):
    return case.case_id, repr(case.leaves)  # a training step runs its case on new leaves


class CachedTorch(TorchBackend):
    """Torch's results do not depend on the engine: compute them once."""

    def __init__(self):
        self.results = {}

    def run_batch(self, cases):
        todo = [case for case in cases if _key(case) not in self.results]
        self.results.update(zip(map(_key, todo), super().run_batch(todo)))
        return [self.results[_key(case)] for case in cases]


class CachedOracle(OracleBackend):
    """Nor do the oracle's."""

    def __init__(self):
        super().__init__()
        self.answers = {}

    def run(self, case):
        return self._answer(("run", *_key(case)), super().run, case)

    def spread(self, case, trials=8, seed=0):
        return self._answer(("spread", *_key(case), trials, seed), super().spread, case, trials, seed)

    def _answer(self, key, ask, *args):
        if key not in self.answers:
            self.answers[key] = ask(*args)
        return self.answers[key]


@pytest.fixture(scope="module")
def judge_all(cases):
    oracle = CachedOracle()
    torch_backend = CachedTorch() if REFERENCE == "torch" else OracleReference(oracle)

    def judge(engine_backend):
        by_id = {case.case_id: case for case in cases}
        return [(by_id[row["case_id"]], row) for row in run_cases(cases, engine_backend, torch_backend, oracle)]
    return judge


@pytest.mark.parametrize("copied", [False, True], ids=["engine", "unmutated_copy"])
def test_the_unmutated_engine_has_no_fail_and_no_error(mutant_root, judge_all, copied):
    engine_backend = make_mutant(mutant_root, "gradparity_mutant_none") if copied else load_engine("engine")
    rows = judge_all(engine_backend)
    bad = [f"{row['case_id']} {row['verdict']}: {row['detail']}" for _, row in rows if row["verdict"] in BAD]
    assert not bad, "\n".join(bad)
    # engine.Function takes our own Values only: to it, a copy is a third-party engine.
    unsupported = [case.case_id for case, row in rows if row["verdict"] == "unsupported"]
    assert unsupported == [case.case_id for case, _ in rows if copied and uses(*FUNCTION_OPS)(case)]
    judged = [row for _, row in rows if row["verdict"] != "unsupported"]
    assert sum(row["verdict"] == "pass" for row in judged) >= 0.95 * len(judged)


@pytest.mark.parametrize("mutant", OP_BUGS + MUTANTS, ids=lambda mutant: mutant.name)
def test_a_planted_bug_is_caught(mutant_root, judge_all, paths_of, mutant):
    with mutant.engine(mutant_root) as engine_backend:
        caught = [(case, row) for case, row in judge_all(engine_backend) if row["verdict"] in BAD]
    assert caught, f"{mutant.name}: every case passed"
    misplaced = [row["case_id"] for case, row in caught if not mutant.may_show(case, paths_of)]
    assert not misplaced, f"{mutant.name}: cases that cannot show the bug failed: {misplaced}"
    assert any(mutant.shows_as in row["detail"] for _, row in caught), [row["detail"] for _, row in caught]
