"""The case families: every case rebuilt from (family, seed, index) alone.

``build_cases(family, seed, n)`` is the first n cases of a family;
``case_from_id("expr-0-17")`` rebuilds one of them without the others (the
replay path).  Both are deterministic: the same arguments give JSON-identical
cases in any process.

- expr: random graphs (generate.py), ``draws_per_graph`` leaf draws per
  structure; a share of structures are chains, so depth varies.
- mlp: index 0 is micrograd's demo, MLP(3, [4, 4, 1]) trained for 20 steps;
  then random MLPs.  The graph is the network's forward and mean squared
  error in primitive ops, in the order engine.nn computes them; the leaves
  are the parameters.  Cases with ``spec["steps"] > 0`` are trajectories
  (trajectory.py).
- accumulation: named gradient-accumulation cases (``a + a``, diamonds,
  repeated backward passes), then gradcheck-style behaviour checks (a seed
  ``backward(gradient=g)``, the graph rebuilt on fresh leaves, a leaf the
  output does not reach: BEHAVIOURS), then random small graphs with heavy
  reuse.
- function: the custom Function ops of functions.py, alone, over repeated
  passes, then mixed with primitive ops in random graphs.
- edges: the reference table of DESIGN.md and the op rows' facts (the
  expected value and gradients in ``spec["expected"]``), every op at special points, upstream gradients
  inf/nan/0; then random small graphs on edge points.

``config`` tunes the expr family (other families take no knobs): a dict or
an ExprConfig (taken as is, its shape included).  A dict takes ExprConfig's
fields, over the family's defaults (the built-in ops, up to 2000 nodes),
plus ``depth`` (every structure a chain of exactly that many nodes) and
``chain_share`` (the share of chain structures when ``shape`` is not given;
default 0.2).
"""
from dataclasses import asdict, is_dataclass, replace
from functools import lru_cache
import math
import random
import re

from engine.nn import MLP
from .case import Case
from .functions import FUNCTION_OPS
from .generate import ExprConfig, random_leaves, random_structure
from .graph import Graph, Node, floats_to_json
from .ops import OP_NAMES, OPS
from .sandbox.wire import BACKWARD_SPEC_KEYS  # noqa: F401  (the spec keys that change how backward runs)

INF, NAN = math.inf, math.nan

EXPR_MAX_NODES = 2000   # sizes 1 .. 2000: most under 30 (see generate._size)
CHAIN_SHARE = 0.2


def build_cases(family, seed, n, config=None):
    """The first n cases of ``family`` for ``seed``."""
    return list(iter_cases(family, seed, n, config))


def iter_cases(family, seed, n, config=None, skip=frozenset()):
    """build_cases, one case at a time: long runs hold none they are done
    with; the ids in ``skip`` are not built (a resume's done cases)."""
    builder = _builder(family)
    return (builder(seed, index, config) for index in range(n) if f"{family}-{seed}-{index}" not in skip)


def case_from_id(case_id, config=None):
    """Rebuild the case "<family>-<seed>-<index>" alone."""
    match = re.fullmatch(r"([a-z_]+)-(\d+)-(\d+)", case_id)
    if not match:
        raise ValueError(f"case id {case_id!r}: expected <family>-<seed>-<index>, e.g. expr-0-17")
    family, seed, index = match.group(1), int(match.group(2)), int(match.group(3))
    return _builder(family)(seed, index, config)


def _builder(family):
    if family not in FAMILY_BUILDERS:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILY_BUILDERS)}")
    return FAMILY_BUILDERS[family]


def _case(family, seed, index, graph, leaves, structure="", **extra):
    return Case(f"{family}-{seed}-{index}", family, seed, index, graph, [float(x) for x in leaves],
                structure=structure, **extra)


class _Builder:
    """Appends nodes to a graph under construction; returns value indices."""

    def __init__(self, n_leaves):
        self.n_leaves = n_leaves
        self.nodes = []

    def __call__(self, op, *args, const=None):
        self.nodes.append(Node(op, args, None if const is None else float(const)))
        return self.n_leaves + len(self.nodes) - 1

    def graph(self, *outputs):
        return Graph(self.n_leaves, tuple(self.nodes), outputs or (self.n_leaves + len(self.nodes) - 1,))


def named_case(family, seed, index, named):
    """Case ``index`` of a family's named ones: (name, graph, leaves, spec)."""
    name, graph, leaves, spec = named[index]
    return _case(family, seed, index, graph, leaves, spec=dict(spec), name=name, structure=f"{family}:{name}")


def ops_of(config):
    """The op mix a family's config asks for (``--ops``), else every built-in op."""
    return tuple(config["ops"]) if isinstance(config, dict) and "ops" in config else OP_NAMES


def _single_op_graph(op_name, n_operands, const=None):
    build = _Builder(n_operands)
    build(op_name, *range(n_operands), const=const)
    return build.graph()


def _same_operand_twice(op_name):
    return Graph(1, (Node(op_name, (0, 0)),), (1,))


# -- expr ------------------------------------------------------------------------
def expr_case(seed, index, config=None):
    knobs = _knobs(config)
    depth = knobs.pop("depth", None)
    chain_share = knobs.pop("chain_share", CHAIN_SHARE)
    shape = knobs.pop("shape", None)
    base = ExprConfig(**{"ops": OP_NAMES, "max_nodes": EXPR_MAX_NODES, **knobs})
    s, draw = divmod(index, base.draws_per_graph)
    if depth:
        structure_config = replace(base, shape="chain", min_nodes=depth, max_nodes=depth)
    else:
        if shape is None:
            shape = "chain" if random.Random(f"expr-shape:{seed}:{s}").random() < chain_share else "dag"
        structure_config = replace(base, shape=shape)
    structure = _expr_structure(f"{seed}:{s}", structure_config)
    leaves = random_leaves(structure, f"{seed}:{s}", draw, structure_config.edge_rate)
    return _case("expr", seed, index, structure.graph, leaves, structure=f"expr-{seed}-{s}")


def _knobs(config):
    if config is None:
        return {}
    knobs = asdict(config) if is_dataclass(config) else dict(config)
    if "ops" in knobs:
        knobs["ops"] = tuple(knobs["ops"])  # ExprConfig must stay hashable (the structure cache)
    return knobs


@lru_cache(maxsize=32)
def _expr_structure(seed, config):
    # A structure serves draws_per_graph consecutive cases: build it once.
    return random_structure(seed, config)


# -- mlp -------------------------------------------------------------------------
DEMO_INPUTS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
DEMO_TARGETS = [1.0, -1.0, -1.0, 1.0]


def mlp_case(seed, index, config=None):
    if index == 0:
        spec = {"nin": 3, "nouts": [4, 4, 1], "activation": "tanh", "output_activation": "tanh",
                "inputs": DEMO_INPUTS, "targets": DEMO_TARGETS, "lr": 0.1, "steps": 20}
        model = MLP(3, [4, 4, 1], seed=seed)
        name = "micrograd demo: MLP(3, [4, 4, 1]), 20 steps"
    else:
        rng = random.Random(f"mlp:{seed}:{index}")
        nin = rng.randint(1, 5)
        nouts = [rng.randint(1, 8) for _ in range(rng.randint(0, 2))] + [1]
        activation = rng.choice(("tanh", "relu", "sigmoid"))
        output_activation = rng.choice(("linear", activation))
        batch = rng.randint(1, 6)
        spec = {"nin": nin, "nouts": nouts, "activation": activation, "output_activation": output_activation,
                "inputs": [[rng.uniform(-2.0, 2.0) for _ in range(nin)] for _ in range(batch)],
                "targets": [rng.uniform(-1.0, 1.0) for _ in range(batch)],
                "lr": rng.choice((0.01, 0.05, 0.1)), "steps": rng.choice((0, 0, rng.randint(2, 10)))}
        model = MLP(nin, nouts, activation, output_activation, rng=rng)
        name = (f"MLP({nin}, {nouts}) {activation}/{output_activation}, batch {batch}, "
                f"{spec['steps']} steps")
    params = [p.data for p in model.parameters()]
    return _case("mlp", seed, index, mlp_graph(spec, len(params)), params, spec=spec, name=name)


def mlp_graph(spec, n_params):
    """The MLP's forward over the batch and its mean squared error, in
    primitive ops in engine.nn's order: a neuron is ((b + w1*x1) + w2*x2) + ...
    (layer 1's inputs are constants: mul_const), then its activation; the loss
    is (((0 + (o1 - y1)**2) + (o2 - y2)**2) + ...) / n, Python's sum starting
    from 0.  Leaves are the parameters, weights then bias, neuron by neuron."""
    build = _Builder(n_params)
    sizes = [spec["nin"]] + list(spec["nouts"])
    activations = [spec["activation"]] * (len(sizes) - 2) + [spec["output_activation"]]
    predictions = []
    for x in spec["inputs"]:
        h, constant_inputs, param = x, True, 0
        for nin, nout, activation in zip(sizes, sizes[1:], activations):
            layer = []
            for _ in range(nout):
                z = param + nin  # the bias
                for w, xi in zip(range(param, param + nin), h):
                    product = build("mul_const", w, const=xi) if constant_inputs else build("mul", w, xi)
                    z = build("add", z, product)
                param += nin + 1
                layer.append(z if activation == "linear" else build(activation, z))
            h, constant_inputs = layer, False
        predictions.append(h[0])
    total = None
    for o, y in zip(predictions, spec["targets"]):
        term = build("pow_const", build("sub_const", o, const=y), const=2.0)
        total = build("radd", term, const=0.0) if total is None else build("add", total, term)
    return build.graph(build("div_const", total, const=len(predictions)))


# -- accumulation ---------------------------------------------------------------
def _reuse_graph():
    build = _Builder(2)
    build("add", build("mul", 0, 1), 0)
    return build.graph()


def _uses(k):
    build = _Builder(1)
    return build.graph(*[build("mul_const", 0, const=i + 1) for i in range(k)])


def _diamond():
    build = _Builder(1)
    build("mul", build("tanh", 0), build("mul_const", 0, const=2.0))
    return build.graph()


def _across_branches():
    build = _Builder(2)
    c = build("mul", 0, 1)
    build("sub", build("add", c, 0), build("mul", c, 1))
    return build.graph()


def _two_depths():
    build = _Builder(2)
    c = build("mul", 0, 1)
    deep = build("mul_const", build("tanh", build("add_const", c, const=1.0)), const=0.5)
    build("mul", build("add", deep, c), c)
    return build.graph()


def _log_times():
    build = _Builder(2)
    build("mul", build("log", 0), 1)
    return build.graph()


def _unused_leaf():
    """tanh(a) * a, over leaves a and b: b is not used at all."""
    build = _Builder(2)
    build("mul", build("tanh", 0), 0)
    return build.graph()


def _dead_branch():
    """tanh(a) * a, over leaves a and b: b is used by b * b, which the output
    does not reach."""
    build = _Builder(2)
    build("mul", 1, 1)
    build("mul", build("tanh", 0), 0)
    return build.graph()


# gradcheck-style behaviour checks (torch.autograd.gradcheck checks more than
# the numbers), each a named case whose spec asks for it:
# - "gradient": g: every backward pass is backward(gradient=g) (torch:
#   loss.backward(gradient=torch.tensor(g))), the gradients g times the unit
#   seed's, and exactly 0 for g = 0 - except where a partial derivative is
#   infinite or nan: 0 * inf is nan in torch too, so every backend computes
#   the seed's gradients and torch is the reference, never a hardcoded 0.
#   An engine whose backward takes no seed argument gets `unsupported`.
# - "rebuild": n: the graph is built n times, each time on fresh leaves, and
#   each one gets the case's backward passes; the last run is reported, and
#   runs that differ from each other in any value or gradient (nan equals
#   nan; gradcheck's nondet_tol = 0) are an error naming the quantity: an
#   engine that keeps state across graphs (a cache, a module-level tape).
# - "unreached": leaf indices that no path from the output reaches: their
#   gradient is 0 (torch leaves it None).  Nothing changes how the case runs
#   (the spec only says which leaves, for the diagnosis).
# Which behaviour a case checks (``behaviour(spec)``) names the diagnosis's
# `backward` finding when it fails and the same graph without it passes.
BEHAVIOURS = {
    "gradient": "backward(gradient=g) does not scale the gradients by g",
    "zero_gradient": "zero seed: backward(gradient=0.0) leaves gradients other than 0 "
                     "(or torch's nan, through an infinite or nan partial: 0 * inf)",
    "rebuild": "two identical graphs give different gradients (state kept across graphs)",
    "unreached": "a leaf the output does not reach gets a nonzero gradient (torch: none, read as 0)",
}
def behaviour(spec):
    """The BEHAVIOURS key a case's spec checks, or None."""
    if "rebuild" in spec:
        return "rebuild"
    if "gradient" in spec:
        return "zero_gradient" if spec["gradient"] == 0 else "gradient"
    if "unreached" in spec:
        return "unreached"
    return None


# (name, graph, passes, zero_grad_between, spec)
ACCUMULATION_NAMED = [
    ("a + a", _same_operand_twice("add"), 1, False, {}),
    ("a * a", _same_operand_twice("mul"), 1, False, {}),
    *[(f"a used {k} times", _uses(k), 1, False, {}) for k in (3, 5, 10)],
    ("diamond", _diamond(), 1, False, {}),
    ("reuse across branches", _across_branches(), 1, False, {}),
    ("shared subexpression used at two depths", _two_depths(), 1, False, {}),
    ("two backward calls without zero_grad", _reuse_graph(), 2, False, {}),
    ("zero_grad between backward calls", _reuse_graph(), 2, True, {}),
    ("three passes", _reuse_graph(), 3, False, {}),
    # the behaviour checks: after the cases above, whose ids they leave as they were
    *[(f"backward(gradient={g!r})", _two_depths(), 1, False, {"gradient": g}) for g in (2.5, -1.0, 0.001)],
    ("backward(gradient=2.5), two backward calls without zero_grad", _reuse_graph(), 2, False, {"gradient": 2.5}),
    ("backward(gradient=0.0)", _two_depths(), 1, False, {"gradient": 0.0}),
    ("backward(gradient=0.0) through log(a) * b (0 * inf and 0 * nan at the edges)", _log_times(), 1, False,
     {"gradient": 0.0}),
    ("the graph built twice on fresh leaves", _across_branches(), 1, False, {"rebuild": 2}),
    ("diamond built three times on fresh leaves", _diamond(), 1, False, {"rebuild": 3}),
    ("a leaf the output does not use", _unused_leaf(), 1, False, {"unreached": [1]}),
    ("a leaf used only off the output's path", _dead_branch(), 1, False, {"unreached": [1]}),
]
ACCUMULATION_LEAVES = [(1.5, -2.0), (0.0, 3.0), (-0.5, 0.0)]  # a, b: 0 and negatives included
_REUSE_OPS = ("add", "sub", "mul", "mul_const", "add_const", "neg", "tanh", "sigmoid")


def accumulation_case(seed, index, config=None):
    n_named = len(ACCUMULATION_NAMED) * len(ACCUMULATION_LEAVES)
    if index < n_named:
        (name, graph, passes, zero_grad, spec), leaves = (ACCUMULATION_NAMED[index // len(ACCUMULATION_LEAVES)],
                                                          ACCUMULATION_LEAVES[index % len(ACCUMULATION_LEAVES)])
        return _case("accumulation", seed, index, graph, leaves[:graph.n_leaves], name=name, passes=passes,
                     zero_grad_between=zero_grad, structure=f"accumulation:{name}", spec=dict(spec))
    rng = random.Random(f"accumulation:{seed}:{index}")
    graph = _heavy_reuse_graph(rng)
    passes = rng.randint(1, 3)
    leaves = [rng.choice((0.0, -1.0, 2.0)) if rng.random() < 0.2 else rng.uniform(-2.0, 2.0)
              for _ in range(graph.n_leaves)]
    return _case("accumulation", seed, index, graph, leaves, passes=passes,
                 zero_grad_between=passes > 1 and rng.random() < 0.5)


def _heavy_reuse_graph(rng):
    """1-2 leaves, 2-12 nodes; operands mostly recent values, often the same
    one twice; the last node plus up to two more outputs, repeats allowed."""
    build = _Builder(rng.randint(1, 2))
    for _ in range(rng.randint(2, 12)):
        op = OPS[rng.choice(_REUSE_OPS)]
        n_values = build.n_leaves + len(build.nodes)
        args = [rng.randrange(max(0, n_values - 3), n_values) if rng.random() < 0.6 else rng.randrange(n_values)]
        if op.arity == 2:
            args.append(args[0] if rng.random() < 0.3 else rng.randrange(n_values))
        build(op.name, *args, const=rng.choice(op.constants) if op.has_const else None)
    n_values = build.n_leaves + len(build.nodes)
    extra = [rng.randrange(n_values) for _ in range(rng.randint(0, 2))]
    return build.graph(n_values - 1, *extra)


# -- function --------------------------------------------------------------------
_FUNCTION_POINTS = {1: [(1.5,), (-0.7,), (0.0,), (3.0,)],
                    2: [(1.5, -0.7), (0.0, 2.0), (-1.25, 0.5)]}
_FUNCTION_MIX_OPS = FUNCTION_OPS + ("add", "sub", "mul", "mul_const", "tanh", "exp", "log", "relu")
_FUNCTION_DRAWS = 4


@lru_cache(maxsize=None)
def _function_named():
    """(name, graph, leaves, passes, structure): each op alone at a few points,
    each const op at every constant; then each op over two backward passes."""
    named = [(f"{label} at {point}", graph, point, 1, f"function:{label}")
             for op_name in FUNCTION_OPS for label, graph in _single_op_variants(op_name)
             for point in _FUNCTION_POINTS[OPS[op_name].arity]]
    for op_name in FUNCTION_OPS:
        op = OPS[op_name]
        graph = _single_op_graph(op_name, op.arity, op.constants[0] if op.has_const else None)
        named.append((f"{op_name}, two backward passes", graph, _FUNCTION_POINTS[op.arity][0], 2, ""))
    return named


def _single_op_variants(op_name):
    """(label, graph) of the op alone, once per constant it is sampled with."""
    op = OPS[op_name]
    return [(op_name if const is None else f"{op_name}(c={const!r})", _single_op_graph(op_name, op.arity, const))
            for const in op.constants or (None,)]


def function_case(seed, index, config=None):
    named = _function_named()
    if index < len(named):
        name, graph, leaves, passes, structure = named[index]
        return _case("function", seed, index, graph, leaves, name=name, passes=passes, structure=structure)
    return _random_small_case("function", seed, index - len(named), index,
                              ExprConfig(max_nodes=10, ops=_FUNCTION_MIX_OPS, draws_per_graph=_FUNCTION_DRAWS))


def _random_small_case(family, seed, random_index, index, config):
    """The random cases after a family's fixed ones: small graphs of
    ``config``, draws_per_graph leaf draws each."""
    s, draw = divmod(random_index, config.draws_per_graph)
    key = f"{family}:{seed}:{s}"
    structure = _expr_structure(key, config)
    leaves = random_leaves(structure, key, draw, edge_rate=config.edge_rate)
    return _case(family, seed, index, structure.graph, leaves, structure=f"{family}-{seed}-{s}")


# -- edges -----------------------------------------------------------------------
# DESIGN.md's table, then the op table's facts: (name, graph, leaves, value,
# grads), as torch 2.13 computes them.
def _times(op_name, n_operands, upstream, const=None):
    """op(leaves) * upstream: the loss's gradient reaches op as ``upstream``."""
    build = _Builder(n_operands)
    build("mul_const", build(op_name, *range(n_operands), const=const), const=upstream)
    return build.graph()


def _unary(op_name):
    return _single_op_graph(op_name, 1)


_pow = _single_op_graph("pow", 2)
EDGE_TABLE = [
    ("relu(x) at 0", _unary("relu"), [0.0], 0.0, [0.0]),
    ("abs(x) at 0", _unary("abs"), [0.0], 0.0, [0.0]),
    ("sqrt(x) at 0", _unary("sqrt"), [0.0], 0.0, [INF]),
    ("log(x) at 0", _unary("log"), [0.0], -INF, [INF]),
    ("log(x) at -1", _unary("log"), [-1.0], NAN, [-1.0]),
    ("1/x at 0", _single_op_graph("rdiv", 1, 1.0), [0.0], INF, [-INF]),
    ("exp(1000)", _unary("exp"), [1000.0], INF, [INF]),
    ("tanh(1000)", _unary("tanh"), [1000.0], 1.0, [0.0]),
    ("tanh(-1000)", _unary("tanh"), [-1000.0], -1.0, [0.0]),
    ("x**y base grad at y = 0: (-2)**0", _pow, [-2.0, 0.0], 1.0, [0.0, NAN]),
    ("x**y exponent grad at x = 0: 0**2", _pow, [0.0, 2.0], 0.0, [0.0, 0.0]),
    ("x**y exponent grad at x = 0, upstream inf", _times("pow", 2, INF), [0.0, 2.0], NAN, [NAN, NAN]),
    ("(-2)**0.5", _pow, [-2.0, 0.5], NAN, [NAN, NAN]),
    ("(-2)**3", _pow, [-2.0, 3.0], -8.0, [12.0, NAN]),
    ("0**0 (Value exponent)", _pow, [0.0, 0.0], 1.0, [0.0, 0.0]),
    ("b = a + a", _same_operand_twice("add"), [3.0], 6.0, [2.0]),
] + [(fact.what, _single_op_graph(name, OPS[name].arity, fact.const), list(fact.operands), fact.value,
      list(fact.grads)) for name in OP_NAMES for fact in OPS[name].facts]  # the op rows' own facts
BINARY_EDGES = (0.0, -0.0, 1.0, -1.0, 2.0, -0.5, INF, -INF, NAN)
UPSTREAM_GRADS = (INF, -INF, NAN, 0.0, -0.0)
UPSTREAM_POINTS = {1: [(x,) for x in (0.0, -0.0, 1.0, -1.0, INF, NAN)],
                   2: [(x, y) for x in (0.0, 1.0, -1.0, INF) for y in (0.0, 2.0, -1.0, NAN)]}
_EDGE_DRAWS = 4


@lru_cache(maxsize=None)
def _edge_fixed():
    """(name, graph, leaves, structure, spec) for the table, then the sweeps;
    the built-in ops only (the function family covers fn_* ops)."""
    fixed = [(name, graph, leaves, "", {"expected": {"value": floats_to_json([value])[0],
                                                     "grads": floats_to_json(grads)}})
             for name, graph, leaves, value, grads in EDGE_TABLE]
    for op_name in OP_NAMES:  # every op at special points
        op = OPS[op_name]
        points = [(x,) for x in op.edges] if op.arity == 1 else [(x, y) for x in BINARY_EDGES for y in BINARY_EDGES]
        fixed += [(f"{label} at {point}", graph, point, f"edges:{label}", {})
                  for label, graph in _single_op_variants(op_name) for point in points]
    for op_name in OP_NAMES:  # upstream gradients inf, nan, 0 through every op
        op = OPS[op_name]
        for g in UPSTREAM_GRADS:
            graph = _times(op_name, op.arity, g, op.constants[0] if op.has_const else None)
            label = f"{op_name} with upstream {g!r}"
            fixed += [(f"{label} at {point}", graph, point, f"edges:{label}", {})
                      for point in UPSTREAM_POINTS[op.arity]]
    return fixed


def edges_case(seed, index, config=None):
    fixed = _edge_fixed()
    if index < len(fixed):
        name, graph, leaves, structure, spec = fixed[index]
        return _case("edges", seed, index, graph, leaves, structure=structure, spec=spec, name=name)
    return _random_small_case("edges", seed, index - len(fixed), index,
                              ExprConfig(max_nodes=8, ops=OP_NAMES, edge_rate=0.5, draws_per_graph=_EDGE_DRAWS))


def n_fixed_cases(family):
    """How many named/swept cases a family starts with before its random ones."""
    if family in ("higher_order", "forward"):
        from .forward_mode import named_cases as forward_named
        from .higher_order import named_cases
        return len(named_cases() if family == "higher_order" else forward_named())
    return {"expr": 0, "mlp": 1,
            "accumulation": len(ACCUMULATION_NAMED) * len(ACCUMULATION_LEAVES),
            "function": len(_function_named()), "edges": len(_edge_fixed())}[family]


def probe_case(seed, index, config=None):
    """A diagnosis probe (probes.py): replayable by id, never in a run."""
    from .probes import probe_case
    return probe_case(seed, index, config)


def higher_order_case(seed, index, config=None):
    from .higher_order import higher_order_case
    return higher_order_case(seed, index, config)


def forward_case(seed, index, config=None):
    from .forward_mode import forward_case
    return forward_case(seed, index, config)


FAMILY_BUILDERS = {"expr": expr_case, "mlp": mlp_case, "accumulation": accumulation_case,
                   "function": function_case, "edges": edges_case, "higher_order": higher_order_case,
                   "forward": forward_case, "probe": probe_case}
