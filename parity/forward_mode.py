"""The forward family: forward-mode derivatives (JVPs).

A case is a graph, its leaves and in ``spec["tangents"]`` one tangent per
leaf; its quantities are the directional derivative, along the tangents, of
each output and of the loss - what ``jvp(f, primals, tangents)`` returns
beside f's values, mirroring torch.func.jvp.  The engine is checked through
a ``jvp`` function beside its class (sandbox/forward_mode.py), torch through
torch.func.jvp, the oracle by differencing its exact forward pass along the
tangents (backends/oracle_higher.py).  A reverse-mode gradient and a JVP of
the same engine meet through torch: each is checked against it (the
dot-product identity <t, J^T c> = <J t, c> holds for torch's).

Cases: perturbation confusion (nested jvps, below), each op alone at an
ordinary point, its tangent on one operand at a time (so a wrong tangent
rule names its op and operand), then random DAGs
of up to 40 nodes, ordinary leaves, tangents mixing units, halves and
random numbers.
"""
from functools import lru_cache
import random

from .generate import ExprConfig, random_leaves
from .graph import Graph, Node
from .ops import OP_NAMES, OPS

_DRAWS = 4
FORWARD_PROBE = "forward"  # the diagnosis's probe kind of the single-op cases


# d/dx [x * d/dy (x + y)] by nested jvp: 1, or 2 for an engine whose inner
# jvp picks up the outer perturbation.  Its graph is the inner function,
# x + y; ``nested``: what the backends compute from it instead
# (sandbox/forward_mode.py's nested_jvp; the oracle knows the answer).
PERTURBATION_CONFUSION = ("perturbation confusion: d/dx [x * d/dy (x + y)] by nested jvp",
                          Graph(2, (Node("add", (0, 1), None),), (2,)), [0.7, -1.3],
                          {"tangents": [1.0, 0.0], "nested": True, "op": "jvp", "probe": FORWARD_PROBE})
PERTURBATION_CONFUSION_INDEX = 0  # the first named case: forward-<seed>-0


@lru_cache(maxsize=None)
def named_cases():
    """(name, graph, leaves, spec): the perturbation-confusion case, then
    each op alone, its tangent on one operand."""
    from .probes import alone_at_ordinary_point

    named = [PERTURBATION_CONFUSION]
    for name in OP_NAMES:
        op = OPS[name]
        graph, leaves = alone_at_ordinary_point(op, 1)
        for operand in range(op.arity):
            tangents = [1.0 if i == operand else 0.0 for i in range(op.arity)]
            named.append((f"tangent of {name} at {tuple(leaves)} along operand {operand + 1}", graph, leaves,
                          {"tangents": tangents, "op": name, "probe": FORWARD_PROBE}))
    return named


def forward_case(seed, index, config=None):
    from .cases import _case, _expr_structure, named_case, ops_of

    named = named_cases()
    if index < len(named):
        return named_case("forward", seed, index, named)
    s, draw = divmod(index - len(named), _DRAWS)
    key = f"forward:{seed}:{s}"
    structure = _expr_structure(key, ExprConfig(max_nodes=40, ops=ops_of(config), edge_rate=0.0))
    leaves = random_leaves(structure, key, draw, edge_rate=0.0)
    rng = random.Random(f"{key}:{draw}")
    tangents = [rng.choice((1.0, 0.0, -1.0, 0.5, rng.uniform(-2.0, 2.0))) for _ in leaves]
    return _case("forward", seed, index, structure.graph, leaves, spec={"tangents": tangents},
                 structure=f"forward-{seed}-{s}")


def forward_probes(ops, seed=0):
    """The single-op named cases of ``ops`` and the perturbation-confusion
    case (op ``jvp``): the diagnosis's evidence."""
    return [forward_case(seed, index) for index, (_, _, _, spec) in enumerate(named_cases())
            if spec["op"] in ops or spec["op"] == "jvp"] if ops else []


def tangent_names(case):
    return [f"tangent of output v{o}" for o in case.graph.outputs] + ["tangent of the loss"]
