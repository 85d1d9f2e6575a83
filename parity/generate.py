"""Seeded generators and Hypothesis strategies for expression graphs.

Operands are drawn from the values built so far (recent ones more often), so
nodes are shared: fan-out, diamonds, ``a + a``, a node reused further down.
Ops with a restricted domain (log, sqrt, fractional powers, denominators)
take operands known to be positive, by a sign analysis of the graph, except
at ``edge_rate``, when any operand will do: that is how 0, negatives and
poles reach them.  Leaf draws put ``edge_rate`` of the leaves on special
points (0, -0.0, ±1, overflow of exp ...).
"""
from dataclasses import dataclass
import random

from .graph import Graph, Node
from .ops import ANY, OPS, POSITIVE

# Sign facts the generator tracks per value, to keep most operands in domain.
POS, NONNEG, REAL = "pos", "nonneg", "real"

LEAF_EDGES = (0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 1e-300, -1e-300, 800.0, -800.0, 1e308)


@dataclass(frozen=True)
class ExprConfig:
    """What random expression graphs look like.  Every field is a knob of
    ``parity run`` too."""
    min_nodes: int = 1
    max_nodes: int = 300
    ops: tuple = tuple(OPS)
    edge_rate: float = 0.05      # share of leaves on edge points / operands outside the domain
    shape: str = "dag"           # "dag", or "chain": every node takes the previous one (depth = size)
    draws_per_graph: int = 16    # leaf draws evaluated per graph structure (one torch batch)

    def __post_init__(self):
        unknown = [name for name in self.ops if name not in OPS]
        if unknown:
            raise ValueError(f"unknown ops {unknown}; known: {', '.join(OPS)}")
        if not 1 <= self.min_nodes <= self.max_nodes:
            raise ValueError(f"need 1 <= min_nodes <= max_nodes, got {self.min_nodes}, {self.max_nodes}")
        if self.shape not in ("dag", "chain"):
            raise ValueError(f"shape must be 'dag' or 'chain', not {self.shape!r}")
        if not 0.0 <= self.edge_rate <= 1.0:
            raise ValueError(f"edge_rate must be in [0, 1], not {self.edge_rate}")


@dataclass(frozen=True)
class ExprStructure:
    graph: Graph
    leaf_signs: tuple  # POS or REAL per leaf: how its values are drawn


def _size(rng, config):
    # Mostly small graphs (where bugs shrink to), some medium, a few large.
    lo, hi = config.min_nodes, config.max_nodes
    roll = rng.random()
    if roll < 0.6:
        hi = min(hi, max(lo, 30))
    elif roll < 0.9:
        hi = min(hi, max(lo, 300))
    return rng.randint(lo, hi)


def _result_sign(op, signs, const):
    name = op.name
    if name in ("exp", "sigmoid"):
        return POS
    if name in ("abs", "relu"):
        return NONNEG
    if name == "sqrt":
        return POS if signs[0] == POS else NONNEG
    if name in ("add", "mul", "div"):
        if all(s == POS for s in signs):
            return POS
        if name != "div" and all(s in (POS, NONNEG) for s in signs):
            return NONNEG
        return REAL
    if name in ("add_const", "radd"):
        return signs[0] if const > 0 and signs[0] == POS else REAL
    if name in ("mul_const", "rmul", "div_const"):
        return signs[0] if const > 0 else REAL
    if name == "pow":
        return POS if signs[0] == POS else REAL
    if name == "pow_const":
        if signs[0] == POS:
            return POS
        return NONNEG if const % 2 == 0 else REAL
    if name == "rpow":
        return POS if const > 0 else REAL
    if name == "tanh":
        return signs[0]
    return REAL


def _pick_operand(rng, n_values, positives, domain, config, last):
    """An operand index among the n_values built so far; None if none fits.

    ``positives`` lists the values known to be positive, in order."""
    any_value = domain == ANY or rng.random() < config.edge_rate
    if config.shape == "chain" and last is not None:
        return last if any_value or (positives and positives[-1] == last) else None
    if any_value:
        if rng.random() < 0.5:  # recent values: depth
            return rng.randrange(max(0, n_values - 4), n_values)
        return rng.randrange(n_values)  # any value: fan-out, reuse
    if not positives:
        return None
    if rng.random() < 0.5:
        return rng.choice(positives[-4:])
    return rng.choice(positives)


def _pick_constant(rng, op, config):
    if op.edge_constants and rng.random() < config.edge_rate:
        return rng.choice(op.edge_constants)
    return rng.choice([c for c in op.constants if c not in op.edge_constants])


def random_structure(seed, config=ExprConfig()):
    """One graph structure, the same for the same seed and config."""
    rng = random.Random(f"expr-structure:{seed}")
    n_nodes = _size(rng, config)
    n_leaves = rng.randint(1, max(1, min(8, n_nodes)))
    leaf_signs = [rng.choice((POS, REAL)) for _ in range(n_leaves)]
    ops = [OPS[name] for name in config.ops]
    wants_positive = all(POSITIVE in op.domains for op in ops)
    if wants_positive:
        leaf_signs[0] = POS  # every op wants a positive operand: give the first one
    signs = list(leaf_signs)
    positives = [i for i, sign in enumerate(signs) if sign == POS]
    nodes = []
    last = None
    while len(nodes) < n_nodes:
        # Every op wants a positive operand, and a chain's last value (or
        # every value) is not known to be one: no op can ever be placed.
        if wants_positive and config.edge_rate == 0 and not (
                positives and (config.shape != "chain" or last is None or positives[-1] == last)):
            break
        op = rng.choice(ops)
        const = _pick_constant(rng, op, config) if op.has_const else None
        args = []
        for position, domain in enumerate(op.domains):
            if position == 1 and rng.random() < 0.1:
                args.append(args[0])  # a + a, a * a: the accumulation bug class
                continue
            arg = _pick_operand(rng, len(signs), positives, domain, config,
                                last if position == 0 else None)
            if arg is None:
                break
            args.append(arg)
        if len(args) != op.arity:
            continue  # no operand in this op's domain yet: draw another op
        nodes.append(Node(op.name, tuple(args), const))
        signs.append(_result_sign(op, [signs[a] for a in args], const))
        last = len(signs) - 1
        if signs[last] == POS:
            positives.append(last)
    # Every sink is an output, so every node reaches the loss and is checked.
    used = {a for node in nodes for a in node.args}
    outputs = [v for v in range(n_leaves, n_leaves + len(nodes)) if v not in used]
    graph = Graph(n_leaves, tuple(nodes), tuple(reversed(outputs)))
    return ExprStructure(graph, tuple(leaf_signs))


def random_leaves(structure, seed, draw, edge_rate):
    """Leaf values of one draw: the same for the same (seed, draw)."""
    rng = random.Random(f"expr-leaves:{seed}:{draw}")
    values = []
    for sign in structure.leaf_signs:
        if rng.random() < edge_rate:
            values.append(rng.choice(LEAF_EDGES))
        elif sign == POS:
            values.append(rng.uniform(0.05, 3.0))
        else:
            values.append(rng.uniform(-3.0, 3.0))
    return values


# -- Hypothesis strategies -----------------------------------------------------
def graphs(max_nodes=12, ops=tuple(OPS), max_leaves=4):
    """A strategy for small graphs; shrinks towards fewer nodes and leaves."""
    from hypothesis import strategies as st

    op_names = sorted(ops, key=lambda name: (OPS[name].arity, name))

    @st.composite
    def build(draw):
        n_leaves = draw(st.integers(1, max_leaves))
        n_nodes = draw(st.integers(1, max_nodes))
        nodes = []
        for i in range(n_nodes):
            op = OPS[draw(st.sampled_from(op_names))]
            n_values = n_leaves + i
            args = tuple(draw(st.integers(0, n_values - 1).map(lambda k, n=n_values: n - 1 - k))
                         for _ in range(op.arity))
            const = draw(st.sampled_from(op.constants)) if op.has_const else None
            nodes.append(Node(op.name, args, const))
        n_values = n_leaves + n_nodes
        outputs = (n_values - 1,) + tuple(draw(st.lists(st.integers(0, n_values - 1), max_size=2)))
        return Graph(n_leaves, tuple(nodes), outputs)

    return build()


def leaf_values(n_leaves, edges=True):
    """A strategy for a graph's leaf values: moderate floats, and edge points."""
    from hypothesis import strategies as st

    moderate = st.floats(-3.0, 3.0, allow_nan=False)
    value = st.one_of(moderate, st.sampled_from(LEAF_EDGES)) if edges else moderate
    return st.lists(value, min_size=n_leaves, max_size=n_leaves)


def cases(max_nodes=12, ops=tuple(OPS), edges=True):
    """A strategy for (graph, leaves)."""
    from hypothesis import strategies as st

    return graphs(max_nodes, ops).flatmap(
        lambda g: st.tuples(st.just(g), leaf_values(g.n_leaves, edges)))
