"""The higher_order family: second and third derivatives.

A case is a graph and its leaves, as everywhere, and in ``spec`` the
derivatives of the loss it asks for beyond the gradient:

- ``{"derivatives": [[i, j], ...]}``: d^k loss / dv_i dv_j ..., one per
  multi-index of leaf numbers (k = 2: Hessian entries, both orders, so a
  Hessian that is not symmetric shows; k = 3: third derivatives);
- ``{"hvp": [c_0, c_1, ...]}``: the Hessian-vector product, per leaf j
  d/dv_j sum_i c_i dloss/dv_i (what a larger graph can afford);
- ``"times_leaf": a`` beside ``derivatives``: the first derivative is
  multiplied by leaf a before it is differentiated again - the named
  perturbation-confusion case d/dx [x * d/dy (x + y)] = 1.

Its Result's grads are the leaves' gradients, then these quantities in
order (``derivative_names``).  Every backend computes them the same way: the
engine and torch by differentiating their own gradient graphs
(sandbox/higher_order.py, backends/torch.py), the oracle by differencing its
exact gradient in mpmath (backends/oracle_higher.py).

Cases: named ones first (nested derivatives of one op, the classic traps),
then random draws: small DAGs with full Hessians (1-3 leaves), chains and
DAGs of up to 40 nodes with Hessian-vector products, small DAGs with every
third derivative (1-2 leaves), and MLPs with Hessian-vector products.
Leaves are ordinary (no edge points): central differences, the oracle's
tool, need a smooth neighbourhood; the engine's second derivatives at the
op table's edges are checked against torch in tests/test_engine_higher_order.py.
"""
from dataclasses import replace
from functools import lru_cache
import itertools
import random

from .generate import POS, REAL, ExprConfig, random_leaves
from .graph import Graph, Node
from .ops import OP_NAMES, OPS

_DRAWS = 4
SECOND_ORDER = "second_order"  # the diagnosis's probe kind of the single-op cases


def _graph(n_leaves, *nodes):
    """A graph of (op, args[, const]) nodes; the last node is the output."""
    built = tuple(Node(op, tuple(args), None if not const else float(const[0])) for op, args, *const in nodes)
    return Graph(n_leaves, built, (n_leaves + len(built) - 1,))


def _all(n_leaves, order):
    return [list(index) for index in itertools.product(range(n_leaves), repeat=order)]


# (name, graph, leaves, spec)
NAMED = [
    ("perturbation confusion: d/dx [x * d/dy (x + y)]", _graph(2, ("add", (0, 1))), [0.7, -1.3],
     {"derivatives": [[1, 0]], "times_leaf": 0}),
    ("nested grad of grad: x**3", _graph(1, ("pow_const", (0,), 3.0)), [1.5], {"derivatives": _all(1, 3)}),
    ("nested grad of grad: tanh(x)", _graph(1, ("tanh", (0,))), [0.4], {"derivatives": _all(1, 3)}),
    ("nested grad of grad: x * y", _graph(2, ("mul", (0, 1))), [1.5, -2.0], {"derivatives": _all(2, 2)}),
    ("nested grad of grad: a * a", _graph(1, ("mul", (0, 0))), [1.25], {"derivatives": _all(1, 3)}),
    ("nested grad of grad: exp(x * y)", _graph(2, ("mul", (0, 1)), ("exp", (2,))), [0.3, -0.8],
     {"derivatives": _all(2, 3)}),
]


def _single_op_named():
    """Each op alone at an ordinary point: every second derivative, so a
    wrong one names its op (the diagnosis's probes reuse these)."""
    from .probes import alone_at_ordinary_point

    named = []
    for name in OP_NAMES:
        op = OPS[name]
        graph, leaves = alone_at_ordinary_point(op)
        named.append((f"second derivatives of {name} at {tuple(leaves)}", graph, leaves,
                      {"derivatives": _all(op.arity, 2), "op": name, "probe": SECOND_ORDER}))
    return named


@lru_cache(maxsize=None)
def named_cases():
    return NAMED + _single_op_named()


# The random kinds, in turn: (label, ExprConfig fields, spec maker)
_KINDS = ("hessian", "hvp", "third", "mlp")


def higher_order_case(seed, index, config=None):
    from .cases import _case, _expr_structure, named_case, ops_of

    named = named_cases()
    if index < len(named):
        return named_case("higher_order", seed, index, named)
    s, draw = divmod(index - len(named), _DRAWS)
    kind = _KINDS[s % len(_KINDS)]
    if kind == "mlp":
        return _mlp_case(seed, index, s, draw)
    max_nodes = {"hessian": 12, "hvp": 40, "third": 6}[kind]
    key = f"higher_order:{seed}:{s}"
    structure = _expr_structure(key, ExprConfig(max_nodes=max_nodes, ops=ops_of(config), edge_rate=0.0,
                                                shape="chain" if kind == "hvp" and s % 3 == 0 else "dag"))
    structure = _fewer_leaves(structure, 2 if kind == "third" else 3)
    graph = structure.graph
    leaves = random_leaves(structure, key, draw, edge_rate=0.0)
    rng = random.Random(f"{key}:{draw}")
    n = graph.n_leaves
    spec = ({"derivatives": _all(n, 2)} if kind == "hessian" else
            {"derivatives": _all(n, 3)} if kind == "third" else
            {"hvp": [rng.choice((1.0, -1.0, 0.5, 2.0, rng.uniform(-2.0, 2.0))) for _ in range(n)]})
    return _case("higher_order", seed, index, graph, leaves, spec=spec, structure=f"higher_order-{seed}-{s}",
                 name=f"{kind}")


def _fewer_leaves(structure, most):
    """The structure with leaves beyond the first ``most`` read as leaf
    ``number % most`` (positive if any leaf folded into it must be): full
    Hessians and third derivatives grow as n**2 and n**3."""
    graph = structure.graph
    if graph.n_leaves <= most:
        return structure
    shift = graph.n_leaves - most

    def renumber(a):
        return a % most if a < graph.n_leaves else a - shift

    nodes = tuple(Node(node.op, tuple(map(renumber, node.args)), node.const) for node in graph.nodes)
    signs = [REAL] * most
    for leaf, sign in enumerate(structure.leaf_signs):
        if sign == POS:
            signs[leaf % most] = POS
    return replace(structure, graph=Graph(most, nodes, tuple(map(renumber, graph.outputs))), leaf_signs=tuple(signs))


def _mlp_case(seed, index, s, draw):
    """A small MLP's mean squared error (the mlp family's graph) with a
    Hessian-vector product over its parameters."""
    from .cases import _case, mlp_graph
    from engine.nn import MLP

    rng = random.Random(f"higher_order-mlp:{seed}:{s}:{draw}")
    nin, hidden = rng.randint(1, 3), rng.randint(1, 4)
    activation = rng.choice(("tanh", "sigmoid"))  # engine.nn's smooth activations
    batch = rng.randint(1, 3)
    spec = {"nin": nin, "nouts": [hidden, 1], "activation": activation, "output_activation": "linear",
            "inputs": [[rng.uniform(-2.0, 2.0) for _ in range(nin)] for _ in range(batch)],
            "targets": [rng.uniform(-1.0, 1.0) for _ in range(batch)]}
    params = [p.data for p in MLP(nin, [hidden, 1], activation, "linear", rng=rng).parameters()]
    spec["hvp"] = [rng.uniform(-1.0, 1.0) for _ in params]
    graph = mlp_graph(spec, len(params))
    return _case("higher_order", seed, index, graph, params, spec=spec,
                 name=f"MLP({nin}, [{hidden}, 1]) {activation}, batch {batch}, Hessian-vector product")


def second_order_probes(ops, seed=0):
    """The single-op named cases of ``ops``: the diagnosis's evidence for
    a higher_order failure."""
    return [higher_order_case(seed, index) for index, (_, _, _, spec) in enumerate(named_cases())
            if spec.get("op") in ops]


def derivative_names(case):
    """Names of the quantities a higher_order case adds after the leaves' gradients."""
    spec = case.spec
    if case.family == "forward":
        from .forward_mode import tangent_names
        return tangent_names(case)
    if case.family != "higher_order":
        return []
    if "hvp" in spec:
        return [f"Hessian-vector product at v{j}" for j in range(case.graph.n_leaves)]
    scaled = f" (times v{spec['times_leaf']})" if "times_leaf" in spec else ""
    return [f"d{len(index)} loss / " + " ".join(f"dv{i}" for i in index) + scaled for index in spec["derivatives"]]


def n_quantities(case):
    """How many numbers a case's Result.grads holds: the leaves' gradients,
    then, for a higher_order case, its higher derivatives; a forward case's
    tangents (forward_mode.py) instead."""
    if case.family == "forward":
        return len(case.graph.outputs) + 1
    if case.family != "higher_order":
        return len(case.leaves)
    return len(case.leaves) + (len(case.leaves) if "hvp" in case.spec else len(case.spec["derivatives"]))
