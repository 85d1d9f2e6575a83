"""Probe cases: the smallest cases that can show one thing an engine gets
wrong, built from the op table like every other case.

For each op (built-in and Function rows alike):
- ``ordinary``: the op alone, leaves its operands, at three ordinary points
  (in its domains, away from kinks and poles), at up to three of its
  ordinary constants: a wrong value or gradient formula shows here;
- ``reused``: its operand used twice - a binary op on (a, a), and on (a, b)
  with a (then b) also doubled by another op; two applications of a unary
  op to one leaf, added - where gradient contributions that overwrite
  instead of adding up show;
- ``edge``: the op alone with one operand at each of its edge points (the op
  table's ``edges``, the binary edge points, its edge constants), the others
  ordinary: where an engine raises, overflows or takes the wrong branch.
For the backward machinery (``backward``): the accumulation family's named
cases (reuse, diamonds, shared subexpressions, repeated ``backward()``), its
behaviour checks (a seed for backward, the graph rebuilt on fresh leaves, a
leaf the output does not reach: probes named by cases.BEHAVIOURS' keys,
each with its ``control``, the same case without the behaviour, where no
named case is that), chains of 1,000 and 3,000 ops (``deep``), and repeated
``backward()`` on ``(a + b) + b``.

Each probe is a Case of the family ``probe`` (not one a run draws from), its
``spec`` saying what it probes; ``case_from_id("probe-0-N")`` rebuilds it, so
``parity replay probe-0-N`` shows it.
"""
from functools import lru_cache

from .cases import ACCUMULATION_LEAVES, ACCUMULATION_NAMED, BINARY_EDGES, _Builder, _case, behaviour
from .functions import FUNCTION_OPS
from .ops import ANY, NONZERO, OP_NAMES, OPS, POSITIVE

# Ordinary operand values per domain: three points per operand position,
# away from every kink, pole and special point, distinct so that a swapped
# operand shows.
ORDINARY = {ANY: ((0.75, -1.25), (-0.6, 1.7), (1.3, 0.45)),
            POSITIVE: ((1.5, 2.5), (0.7, 1.9), (3.2, 0.35)),
            NONZERO: ((1.25, -0.5), (-1.6, 2.2), (0.8, -1.1))}
DEEP_CHAINS = (1000, 3000)
# The op of the deep chains, and its constant: exact in float64 for any
# engine (x + 0.5 never rounds at these sizes), so only depth can fail.
DEEP_OP = ("add_const", 0.5)


def probe_case(seed, index, config=None):
    """The probe ``probe-<seed>-<index>`` (the seed does not change it)."""
    name, graph, leaves, passes, zero_grad, spec = _probes()[index]
    return _case("probe", seed, index, graph, leaves, name=name, passes=passes, zero_grad_between=zero_grad,
                 spec=spec)


def probe_cases(ops=None, seed=0):
    """The probes of ``ops`` (default: every op) and of the machinery."""
    wanted = None if ops is None else set(ops)
    return [probe_case(seed, index) for index, (_, _, _, _, _, spec) in enumerate(_probes())
            if spec["op"] == "backward" or wanted is None or spec["op"] in wanted]


@lru_cache(maxsize=None)
def _probes():
    """(name, graph, leaves, passes, zero_grad_between, spec) of every probe."""
    probes = []
    for op_name in OP_NAMES + FUNCTION_OPS:
        probes += _op_probes(OPS[op_name])
    for name, graph, passes, zero_grad, spec in ACCUMULATION_NAMED:
        checks = behaviour(spec)
        for leaves in ACCUMULATION_LEAVES:
            kind = checks or ("multi_pass" if passes > 1 else "machinery")
            probes.append((name, graph, leaves[:graph.n_leaves], passes, zero_grad,
                           {"op": "backward", "probe": kind, **spec}))
    probes += _controls()
    op_name, const = DEEP_OP
    for depth in DEEP_CHAINS:
        build = _Builder(1)
        value = 0
        for _ in range(depth):
            value = build(op_name, value, const=const)
        probes.append((f"a chain of {depth:,} ops", build.graph(), [0.25], 1, False,
                       {"op": "backward", "probe": "deep", "depth": depth}))
    # Repeated passes over adds alone, through an inner node (whose gradient
    # a pass that resets only the root's keeps): the evidence that stands
    # when the named cases' other ops are found wrong.
    build = _Builder(2)
    build("add", build("add", 0, 1), 1)
    for passes in (2, 3):
        probes.append((f"(a + b) + b, {passes} backward calls without zero_grad", build.graph(),
                       list(ORDINARY[ANY][0]), passes, False, {"op": "backward", "probe": "multi_pass"}))
    return tuple(probes)


def _controls():
    """For each behaviour check's named case whose graph, passes and
    zero_grad mode no plain named case has, that case without the behaviour
    (probe ``control``): a behaviour probe is evidence only where its
    control passes (diagnosis.py)."""
    plain = {(graph, passes, zero_grad) for _, graph, passes, zero_grad, spec in ACCUMULATION_NAMED if not spec}
    controls = []
    for name, graph, passes, zero_grad, spec in ACCUMULATION_NAMED:
        if behaviour(spec) in ("gradient", "zero_gradient", "rebuild") and (graph, passes, zero_grad) not in plain:
            plain.add((graph, passes, zero_grad))
            controls += [(f"{name}: plain backward(), built once (control)", graph, leaves[:graph.n_leaves],
                          passes, zero_grad, {"op": "backward", "probe": "control"}) for leaves in ACCUMULATION_LEAVES]
    return controls


def control_key(case):
    """What a behaviour probe and its control share: graph, leaves, passes, zero_grad mode."""
    return case.graph, tuple(map(repr, case.leaves)), case.passes, case.zero_grad_between


def _op_probes(op):
    constants = [c for c in op.constants if c not in op.edge_constants][:3] or [None]
    points = [tuple(ORDINARY[d][k][i % 2] for i, d in enumerate(op.domains)) for k in range(3)]
    probes = []
    for const in constants:
        alone = _alone(op, const)
        label = op.name if const is None else f"{op.name}(c={const!r})"
        probes += [(f"{label} at {point}", alone, list(point), 1, False,
                    {"op": op.name, "probe": "ordinary", "const": const}) for point in points]
        probes.append((f"{label} with its operand used twice", _reused(op, const), [points[0][0]], 1, False,
                       {"op": op.name, "probe": "reused", "const": const}))
        for position in range(op.arity if op.arity == 2 else 0):
            probes.append((f"{label} with operand {position + 1} used by another op too",
                           _shared(op, const, position), list(points[0]), 1, False,
                           {"op": op.name, "probe": "reused", "const": const}))
    const = constants[0]
    for position in range(op.arity):
        for x in (op.edges if op.arity == 1 else BINARY_EDGES):
            point = list(points[0])
            point[position] = x
            probes.append((f"{op.name} at {tuple(point)}", _alone(op, const), point, 1, False,
                           {"op": op.name, "probe": "edge", "const": const, "operand": position}))
    for edge_const in op.edge_constants:
        probes.append((f"{op.name}(c={edge_const!r}) at {points[0]}", _alone(op, edge_const), list(points[0]),
                       1, False, {"op": op.name, "probe": "edge", "const": edge_const}))
    return probes


def alone_at_ordinary_point(op, k=0):
    """(graph, leaves): ``op`` alone on its leaves at its k-th ordinary
    point, its first ordinary constant if it takes one (the probes' first
    ``ordinary`` case; the higher_order and forward families' single-op cases)."""
    const = ([c for c in op.constants if c not in op.edge_constants] or [None])[0]
    return _alone(op, const), [ORDINARY[d][k][i % 2] for i, d in enumerate(op.domains)]


def _alone(op, const):
    build = _Builder(op.arity)
    build(op.name, *range(op.arity), const=const)
    return build.graph()


def _shared(op, const, position):
    """op(a, b) + 2 * (a or b): the operand's other consumer's gradient
    contribution is overwritten by an op whose backward assigns."""
    build = _Builder(2)
    build("add", build(op.name, 0, 1, const=const), build("mul_const", position, const=2.0))
    return build.graph()


def _reused(op, const):
    """A binary op on (a, a); a unary op applied twice to a, the two added."""
    build = _Builder(1)
    if op.arity == 2:
        build(op.name, 0, 0, const=const)
    else:
        build("add", build(op.name, 0, const=const), build(op.name, 0, const=const))
    return build.graph()
