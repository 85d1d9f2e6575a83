"""Higher-order reverse mode (issue 12): backward(create_graph=True),
engine.grad, grad_value, once_differentiable.

Ops come from the op table (parity/ops.py's OPS, engine calls from
parity/sandbox/engine_ops.py), not from a list here.  torch (float64) is the
reference wherever it is installed; the tests that need it are marked and
skipped without it.

Tolerances.  At ordinary points a second or third derivative is compared to
torch's at 1e-12 relative: both evaluate the same formula, op for op in the
same order, and differ only where a C library function (tanh, exp, expm1,
...) rounds an ulp away from torch's kernel; a few roundings later that is
about 1e-15.  One formula amplifies it: gelu_tanh's double backward forms
1 - tanh(u)**2 by a subtraction (torch's gelu_double_backward does), so an
ulp of tanh(u) grows by 1 / (1 - tanh(u)**2); that factor widens its
tolerance.  A random graph's Hessian sums more terms: 1e-11.  At the op
table's edge points (DESIGN.md's facts among them) second derivatives must be
torch's to the bit (nan for nan, the sign of a zero too), except where the
forward kernels already differ by an ulp (KNOWN_ULP).
"""
import gc
import inspect
import itertools
import math
import struct
import weakref

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import engine
from engine import Function, Value, grad, is_grad_enabled, no_grad, once_differentiable
from parity.ops import NONZERO, OP_NAMES, OPS, POSITIVE, SPECIAL_POINTS
from parity.sandbox.engine_ops import ENGINE_OPS


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def same_bits(a, b):
    if a != a or b != b:
        return a != a and b != b
    return struct.pack("<d", a) == struct.pack("<d", b)


def close(a, b, rel):
    if a != a or b != b:
        return a != a and b != b
    if math.isinf(a) or math.isinf(b):
        return a == b
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


# -- derivatives of one op, by the engine and by torch -----------------------------
def engine_derivatives(name, operands, const, order):
    """{(i, j[, k]): d^order op / d operand_i d operand_j [d operand_k]} at operands."""
    leaves = [Value(x) for x in operands]
    out = OPS[name].apply_engine(leaves, const)
    found = {}

    def descend(value, key):
        if len(key) == order:
            found[key] = value.data
            return
        last = len(key) + 1 == order
        for i, g in enumerate(grad(value, leaves, create_graph=not last)):
            descend(g, key + (i,))

    descend(out, ())
    return found


def torch_derivatives(torch, name, operands, const, order):
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in operands]
    out = OPS[name].apply_torch(leaves, const)
    found = {}

    def descend(value, key):
        if len(key) == order:
            found[key] = value.item()
            return
        if not value.requires_grad:  # torch built no graph: the derivative is zero
            for rest in itertools.product(range(len(leaves)), repeat=order - len(key)):
                found[key + rest] = 0.0
            return
        grads = torch.autograd.grad(value, leaves, create_graph=True, retain_graph=True,
                                    allow_unused=True, materialize_grads=True)
        for i, g in enumerate(grads):
            descend(g, key + (i,))

    descend(out, ())
    return found


def operand(domain):
    magnitude = st.floats(1e-3, 10.0)
    if domain == POSITIVE:
        return magnitude
    if domain == NONZERO:
        return st.builds(lambda m, s: m * s, magnitude, st.sampled_from((1.0, -1.0)))
    return st.floats(-10.0, 10.0)


def draw_point(data, name):
    op = OPS[name]
    operands = [data.draw(operand(d), label=f"operand {i}") for i, d in enumerate(op.domains)]
    const = data.draw(st.sampled_from(op.constants), label="const") if op.has_const else None
    return operands, const


def tolerance(name, operands, rel=1e-12):
    if name == "gelu_tanh":  # 1 - tanh(u)**2 by subtraction: an ulp of tanh(u) grows by its inverse
        x = operands[0]
        u = 1.41421356237309504880 * 1.12837916709551257390 * 0.5 * (x + 0.044715 * x ** 3)
        return rel / max(1.0 - math.tanh(u) ** 2, 1e-300)
    return rel


@pytest.mark.torch
@pytest.mark.parametrize("name", OP_NAMES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_second_derivatives_match_torch_at_random_points(torch, name, data):
    """Every second derivative, the mixed ones of binary ops included."""
    operands, const = draw_point(data, name)
    ours = engine_derivatives(name, operands, const, 2)
    theirs = torch_derivatives(torch, name, operands, const, 2)
    rel = tolerance(name, operands)
    for key in theirs:
        assert close(ours[key], theirs[key], rel), (key, ours[key], theirs[key])


@pytest.mark.torch
@pytest.mark.parametrize("name", OP_NAMES)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_third_derivatives_match_torch_at_random_points(torch, name, data):
    operands, const = draw_point(data, name)
    ours = engine_derivatives(name, operands, const, 3)
    theirs = torch_derivatives(torch, name, operands, const, 3)
    rel = tolerance(name, operands, 1e-11)
    for key in theirs:
        assert close(ours[key], theirs[key], rel), (key, ours[key], theirs[key])


# Edge points where a forward kernel of torch and C's library differ by an ulp,
# so that no derivative built on them can be torch's to the bit.
KNOWN_ULP = {
    ("expm1", (1.0,), None): "torch's expm1(1) is one ulp above C's, so is result + 1",
    ("gelu_tanh", (1.0,), None): "torch's tanh of gelu's inner value at 1 is one ulp below C's",
    ("gelu_tanh", (-1.0,), None): "as at 1.0",
}


def edge_points(name):
    op = OPS[name]
    consts = op.constants if op.has_const else (None,)
    points = [(xs, c) for c in consts for xs in itertools.product(op.edges, repeat=op.arity)]
    points += [(tuple(f.operands), f.const) for f in op.facts]  # DESIGN.md's facts
    unique = {repr(p): p for p in points}  # repr tells -0.0 from 0.0, as == does not
    return list(unique.values())


@pytest.mark.torch
@pytest.mark.parametrize("name", OP_NAMES)
def test_second_derivatives_match_torch_at_edges(torch, name):
    """At the op table's edge points (inf, nan, signed zeros, kinks, poles,
    pow's 0 ** 0, ties of max and min, clamp's bounds ...) the Hessian is
    torch's to the bit, nan where torch's is nan."""
    checked = 0
    for operands, const in edge_points(name):
        ours = engine_derivatives(name, operands, const, 2)
        theirs = torch_derivatives(torch, name, operands, const, 2)
        known = KNOWN_ULP.get((name, operands, const))
        for key in theirs:
            if known:
                assert close(ours[key], theirs[key], 1e-13), (known, key, ours[key], theirs[key])
            else:
                assert same_bits(ours[key], theirs[key]), (operands, const, key, ours[key], theirs[key])
            checked += 1
    assert checked >= len(OPS[name].edges)


def test_edges_at_zero_are_torchs_zeros():
    """relu'' = abs'' = leaky_relu'' = clamp'' = 0, elu'' = 0 at 0 (torch's
    (x < 0) mask), and pow's masked branch still gives nan at 0 ** 0."""
    for name, x, c in [("relu", 0.0, None), ("relu", -1.0, None), ("relu", 2.0, None), ("abs", 0.0, None),
                       ("abs", -3.0, None), ("leaky_relu", -1.0, 0.2), ("leaky_relu", 0.0, 0.01),
                       ("clamp", 0.0, 0.0), ("clamp", 0.5, 0.0), ("elu", 0.0, None), ("elu", -0.0, None)]:
        assert engine_derivatives(name, [x], c, 2)[0, 0] == 0.0, (name, x)
    h = engine_derivatives("pow", [0.0, 0.0], None, 2)
    assert all(math.isnan(h[key]) for key in h)
    h = engine_derivatives("pow", [0.0, 2.0], None, 2)  # torch: [[2, 0], [nan, nan]]
    assert (h[0, 0], h[0, 1]) == (2.0, 0.0) and math.isnan(h[1, 0]) and math.isnan(h[1, 1])


# -- random graphs --------------------------------------------------------------
def _arity(call):
    names = list(inspect.signature(call).parameters)
    return len(names) - (names[-1] == "c"), names[-1] == "c"


GRAPH_OPS = tuple(OP_NAMES) + tuple(n for n in ENGINE_OPS if n.startswith("fn_")) + ("linear",)


@st.composite
def graphs(draw, ops=GRAPH_OPS, special=True, max_ops=8):
    """(leaf values, [(op, operand indices, const)], upstream gradient): every
    node is summed into the output, so every node has a gradient."""
    ordinary = st.floats(-3.0, 3.0)
    value = st.one_of(ordinary, st.sampled_from(SPECIAL_POINTS)) if special else ordinary
    leaves = draw(st.lists(value, min_size=1, max_size=4))
    steps = []
    for k in range(draw(st.integers(1, max_ops))):
        n = len(leaves) + k
        name = draw(st.sampled_from(ops))
        if name == "linear":
            width = draw(st.integers(1, 3))
            steps.append((name, tuple(draw(st.integers(0, n - 1)) for _ in range(2 * width + 1)), None))
            continue
        if name in OPS:
            arity, has_const = OPS[name].arity, OPS[name].has_const
            const = draw(st.sampled_from(OPS[name].constants)) if has_const else None
        else:
            arity, has_const = _arity(ENGINE_OPS[name])
            const = draw(st.sampled_from((0.5, -2.0))) if has_const else None
        steps.append((name, tuple(draw(st.integers(0, n - 1)) for _ in range(arity)), const))
    upstream = draw(st.sampled_from((1.0, -1.0, 0.5, -0.0, 3.0))) if special else 1.0
    return leaves, steps, upstream


def apply_engine_step(name, args, const):
    if name == "linear":
        width = len(args) // 2
        return engine.linear(args[1:1 + width], args[1 + width:], args[0])
    call = ENGINE_OPS[name]
    return call(*args, const) if const is not None else call(*args)


def build(graph, leaf=Value, step=apply_engine_step):
    leaves, steps, _ = graph
    nodes = [leaf(x) for x in leaves]
    for name, indices, const in steps:
        nodes.append(step(name, [nodes[i] for i in indices], const))
    out = nodes[len(leaves)]
    for node in nodes[len(leaves) + 1:]:
        out = out + node
    return nodes, out


@given(graph=graphs())
def test_create_graph_first_derivatives_are_the_float_paths_bit_for_bit(graph):
    """backward(create_graph=True) leaves the same .grad as backward() on every
    node, to the bit (edge values and every op included), and engine.grad's
    gradients are those values (up to the sign of a zero, which .grad's
    0.0 + g erases on both paths)."""
    upstream = graph[2]
    plain_nodes, plain = build(graph)
    plain.backward(upstream)
    graph_nodes, graphed = build(graph)
    graphed.backward(upstream, create_graph=True)
    reachable = set(engine.topological_order(graphed))
    for a, b in zip(plain_nodes + [plain], graph_nodes + [graphed]):
        assert type(b.grad) is float
        assert same_bits(a.grad, b.grad), (a.grad, b.grad)
        if b in reachable:
            assert same_bits(b.grad_value.data + 0.0, b.grad)
        else:
            assert b.grad_value is None and b.grad == 0.0
    fresh_nodes, fresh = build(graph)
    leaves = fresh_nodes[:len(graph[0])]
    for create_graph in (False, True):
        grads = grad(fresh, leaves, grad_outputs=upstream, create_graph=create_graph)
        for g, a in zip(grads, plain_nodes):
            assert same_bits(g.data + 0.0, a.grad), (g.data, a.grad)
    assert all(v.grad == 0.0 for v in fresh_nodes)  # engine.grad touches no .grad


@pytest.mark.torch
@settings(max_examples=60, deadline=None)
@given(graph=graphs(ops=OP_NAMES, special=False, max_ops=6))
def test_random_dag_hessian_matches_torch(torch, graph):
    """At ordinary points (every value finite): 1e-11 relative, or 1e-12 of
    the Hessian's and gradient's largest entry where an entry cancels to
    about nothing (summation order: torch numbers its double-backward nodes
    its own way)."""
    nodes, out = build(graph)
    assume(all(math.isfinite(node.data) for node in nodes + [out]))
    leaves = nodes[:len(graph[0])]
    ours = [[h.data for h in grad(g, leaves)] for g in grad(out, leaves, create_graph=True)]

    def torch_step(name, args, const):
        return OPS[name].apply_torch(args, const)

    t_nodes, t_out = build(graph, lambda x: torch.tensor(x, dtype=torch.float64, requires_grad=True), torch_step)
    t_leaves = t_nodes[:len(graph[0])]
    kw = dict(allow_unused=True, materialize_grads=True)
    theirs = []
    for g in torch.autograd.grad(t_out, t_leaves, create_graph=True, **kw):
        if g.requires_grad:
            theirs.append([h.item() for h in torch.autograd.grad(g, t_leaves, retain_graph=True, **kw)])
        else:
            theirs.append([0.0] * len(t_leaves))
    first = [g.data for g in grad(out, leaves)]
    scale = max([1.0] + [abs(v) for v in first + sum(ours, []) + sum(theirs, []) if math.isfinite(v)])
    for row_ours, row_theirs in zip(ours, theirs):
        for a, b in zip(row_ours, row_theirs):
            assert close(a, b, 1e-11) or abs(a - b) <= 1e-12 * scale, (a, b)


def test_reciprocal_of_a_constant_at_its_pole_in_a_composite():
    """A documented difference: c / x is one node here, where torch makes
    x.reciprocal() * c.  A second-order zero reaching it (here from
    leaky_relu's backward) meets the infinite local derivative at x = 0 on
    its own: 0 * inf = nan; torch adds it to the other gradient of its
    reciprocal node first (-inf + 0), then multiplies: torch says inf."""
    x = Value(0.0)
    y = 1.0 / x
    out = y + y.leaky_relu(0.01)
    (g,) = grad(out, x, create_graph=True)
    assert g.data == -math.inf
    assert math.isnan(grad(g, x)[0].data)  # torch: inf
    x = Value(0.0)  # spelled as torch computes it, it is torch's
    y = x.reciprocal() * 1.0
    out = y + y.leaky_relu(0.01)
    (g,) = grad(out, x, create_graph=True)
    assert grad(g, x)[0].data == math.inf


# -- Hessians, Hessian-vector products, gradient penalties, third derivatives --------
def small_graph(x, y):
    return (x * y).tanh() + x ** 3.0 / y + (x - y).exp() * y.sigmoid()


def torch_small_graph(torch, x, y):
    return torch.tanh(x * y) + x ** 3.0 / y + torch.exp(x - y) * torch.sigmoid(y)


POINT = (0.7, -1.3)


@pytest.mark.torch
def test_hessian_vector_product_matches_torch(torch):
    xs = [Value(v) for v in POINT]
    g = grad(small_graph(*xs), xs, create_graph=True)
    vector = [Value(0.25), Value(-2.0)]
    hvp = grad(g, xs, grad_outputs=vector)
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in POINT]
    tg = torch.autograd.grad(torch_small_graph(torch, *ts), ts, create_graph=True)
    tv = [torch.tensor(0.25, dtype=torch.float64), torch.tensor(-2.0, dtype=torch.float64)]
    thvp = torch.autograd.grad(tg, ts, grad_outputs=tv)
    for a, b in zip(hvp, thvp):
        assert close(a.data, b.item(), 1e-12)


@pytest.mark.torch
def test_gradient_penalty_matches_torch(torch):
    """loss + |d loss / d x|^2 backpropagated to w: the float backward runs
    through a gradient graph (its kernel nodes' float backward)."""
    def loss_of(w, x, tanh, gelu):
        return tanh(w[0] * x[0] + w[1] * x[1]) * gelu(w[2] * x[1])

    w = [Value(v) for v in (0.3, -0.8, 1.1)]
    x = [Value(v) for v in (0.5, -1.5)]
    loss = loss_of(w, x, Value.tanh, Value.gelu)
    gx = grad(loss, x, create_graph=True)
    total = loss + gx[0] * gx[0] + gx[1] * gx[1]
    total.backward()

    tw = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.3, -0.8, 1.1)]
    tx = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.5, -1.5)]
    tloss = loss_of(tw, tx, torch.tanh, torch.nn.functional.gelu)
    tgx = torch.autograd.grad(tloss, tx, create_graph=True)
    (tloss + tgx[0] * tgx[0] + tgx[1] * tgx[1]).backward()
    for a, b in zip(w + x, tw + tx):
        assert close(a.grad, b.grad.item(), 1e-12), (a.grad, b.grad.item())


@pytest.mark.torch
def test_third_derivatives_of_a_small_graph_match_torch(torch):
    xs = [Value(v) for v in POINT]
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in POINT]
    for i, j, k in itertools.product(range(2), repeat=3):
        ours = grad(grad(grad(small_graph(*xs), xs[i], create_graph=True)[0], xs[j], create_graph=True)[0], xs[k])
        t1 = torch.autograd.grad(torch_small_graph(torch, *ts), ts[i], create_graph=True)[0]
        t2 = torch.autograd.grad(t1, ts[j], create_graph=True)[0]
        t3 = torch.autograd.grad(t2, ts[k])[0]
        assert close(ours[0].data, t3.item(), 1e-12), ((i, j, k), ours[0].data, t3.item())


def test_derivatives_of_a_polynomial():
    """x**3 * y: exact integers all the way to the fourth derivative."""
    x, y = Value(2.0), Value(3.0)
    f = x ** 3.0 * y
    dx, dy = grad(f, [x, y], create_graph=True)
    assert (dx.data, dy.data) == (36.0, 8.0)  # 3 x^2 y, x^3
    dxx, dxy = grad(dx, [x, y], create_graph=True)
    dyx, dyy = grad(dy, [x, y], create_graph=True)
    assert (dxx.data, dxy.data, dyx.data, dyy.data) == (36.0, 12.0, 12.0, 0.0)
    (dxxx,) = grad(dxx, x, create_graph=True)
    assert dxxx.data == 18.0  # 6 y
    assert grad(dxxx, [x, y])[1].data == 6.0


def test_perturbation_confusion():
    """d/dx [x * d/dy (x + y)] = 1 (Siskind and Pearlmutter): the inner
    derivative's x is a constant to it, not a perturbation of the outer one."""
    x, y = Value(1.0), Value(2.0)
    inner = grad(x + y, y, create_graph=True)[0]
    assert grad(x * inner, x)[0].data == 1.0
    # and where the inner derivative does depend on x: d/dx [x * d/dy (x * y)] = 2x
    x, y = Value(3.0), Value(2.0)
    inner = grad(x * y, y, create_graph=True)[0]
    assert grad(x * inner, x)[0].data == 6.0


def test_a_long_chain_needs_no_recursion():
    x = Value(0.5)
    y = x
    for _ in range(3000):
        y = y * 0.999 + 0.001
    (g,) = grad(y, x, create_graph=True)
    assert grad(g, x)[0].data == 0.0 and g.data == pytest.approx(0.999 ** 3000)


# -- the API -------------------------------------------------------------------------
def test_grad_api():
    x, y = Value(2.0), Value(5.0)
    unused = Value(7.0)
    out = x * x * y
    gx, gy, gu = grad([out], (x, y, unused))
    assert (gx.data, gy.data, gu.data) == (20.0, 4.0, 0.0)
    assert all(not g._prev for g in (gx, gy, gu))  # constants without create_graph
    gx, = grad(out, x, grad_outputs=0.5)
    assert gx.data == 10.0
    a, b = x * 3.0, x * y
    gx, = grad([a, b], [x], grad_outputs=[1.0, Value(2.0)])
    assert gx.data == 3.0 + 2.0 * 5.0
    assert grad(a, a)[0].data == 1.0  # an output with respect to itself
    with pytest.raises(ValueError):
        grad([a, b], x, grad_outputs=[1.0])
    with pytest.raises(TypeError):
        grad(a, 2.0)
    assert (x.grad, y.grad, out.grad, x.grad_value) == (0.0, 0.0, 0.0, None)


def test_grad_value_and_float_grad():
    x = Value(3.0)
    y = x * x * x
    y.backward(create_graph=True)
    assert type(x.grad) is float and x.grad == 27.0
    assert isinstance(x.grad_value, Value) and x.grad_value.data == 27.0
    assert grad(x.grad_value, x)[0].data == 18.0
    y.backward(create_graph=True)  # accumulates, as .grad does (and torch's x.grad)
    assert x.grad == 54.0 and x.grad_value.data == 54.0
    assert grad(x.grad_value, x)[0].data == 36.0
    y.backward()  # a float backward: .grad moves on, the Value no longer is it
    assert x.grad == 81.0 and x.grad_value is None
    y.backward(create_graph=True)  # the float part is a constant under the new gradient
    assert x.grad == 108.0 and x.grad_value.data == 108.0
    assert grad(x.grad_value, x)[0].data == 18.0
    x.grad, x.grad_value = 0.0, None
    assert x.grad_value is None
    with pytest.raises(ValueError):
        x.grad_value = Value(1.0)


def test_a_graph_gradient_does_not_keep_its_graph_alive():
    """grad_value's graph holds its node (a cycle, as torch's x.grad with a
    grad_fn): the collector frees it, where a WeakKeyDictionary keyed by the
    node would keep both for ever."""
    x = Value(3.0)
    (x * x * x).backward(create_graph=True)
    assert x.grad_value is not None
    ref = weakref.ref(x)
    del x
    gc.collect()
    assert ref() is None


def test_backward_gradient_may_be_a_value():
    x, v = Value(1.5), Value(2.0)
    (x * x).backward(v, create_graph=True)
    assert x.grad == 6.0
    assert grad(x.grad_value, v)[0].data == 3.0  # d(2 x v)/dv


def test_no_grad_builds_the_graph_as_torch_does():
    """torch runs its backward with grad mode = create_graph, whatever the
    caller's mode: under no_grad, create_graph=True still builds the graph."""
    x = Value(2.0)
    y = x * x * x
    with no_grad():
        (g,) = grad(y, x, create_graph=True)
        assert not is_grad_enabled()
        y.backward(create_graph=True)
        assert not is_grad_enabled()
    assert g._prev and grad(g, x)[0].data == 12.0
    assert grad(x.grad_value, x)[0].data == 12.0
    with no_grad():  # and a graph built inside no_grad has nothing to differentiate
        z = x * x
    assert grad(z, x)[0].data == 0.0


@pytest.mark.torch
def test_no_grad_with_create_graph_is_torchs(torch):
    t = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    ty = t * t * t
    with torch.no_grad():
        (tg,) = torch.autograd.grad(ty, t, create_graph=True)
    assert tg.requires_grad and torch.autograd.grad(tg, t)[0].item() == 12.0


# -- Functions ----------------------------------------------------------------------
class Cube(Function):
    """x**3 with a backward in Values: differentiable again."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.data ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_values
        Cube.grad_modes.append(is_grad_enabled())
        return g * 3.0 * x * x

    grad_modes = []


class ProdSum(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x.data * y.data, x.data + y.data

    @staticmethod
    def backward(ctx, g_prod, g_sum):
        x, y = ctx.saved_values
        return g_prod * y + g_sum, g_prod * x + g_sum


class SavedExp(Function):
    """torch's documented Exp: the backward uses the saved output."""

    @staticmethod
    def forward(ctx, x):
        result = x.exp()
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, g):
        (result,) = ctx.saved_values
        return g * result


class ExpAndSquare(Function):
    """Two saved outputs, of which a caller may drop one."""

    @staticmethod
    def forward(ctx, x):
        e, s = x.exp(), x * x
        ctx.save_for_backward(x, e, s)
        return e, s

    @staticmethod
    def backward(ctx, g_e, g_s):
        x, e, s = ctx.saved_values
        return g_e * e + g_s * (s / x) * 2.0


class OnceCube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.data ** 3

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_values
        assert not is_grad_enabled()
        return g * 3.0 * x * x


def test_function_with_value_backward_is_differentiable():
    x = Value(2.0)
    (g,) = grad(Cube.apply(x), x, create_graph=True)
    assert g.data == 12.0
    (h,) = grad(g, x, create_graph=True)
    assert h.data == 12.0  # 6x
    assert grad(h, x)[0].data == 6.0
    y = Cube.apply(x)
    y.backward()  # first order as before: floats, grad mode off
    assert x.grad == 12.0


def test_function_backward_runs_in_grad_mode_create_graph():
    """as torch's: recording in backward iff create_graph."""
    x = Value(2.0)
    Cube.grad_modes.clear()
    Cube.apply(x).backward()
    grad(Cube.apply(x), x)
    grad(Cube.apply(x), x, create_graph=True)
    Cube.apply(x).backward(create_graph=True)
    assert Cube.grad_modes == [False, False, True, True]


def test_a_saved_output_is_differentiable():
    """As torch's saved outputs: d2/dx2 exp(x) through a backward that uses
    the saved result is exp(x), not 0 (a constant result)."""
    x = Value(0.5)
    (g,) = grad(SavedExp.apply(x), x, create_graph=True)
    assert g.data == math.exp(0.5)
    (h,) = grad(g, x, create_graph=True)
    assert h.data == math.exp(0.5) and grad(h, x)[0].data == math.exp(0.5)
    e = ExpAndSquare.apply(x)[0]  # the square is dropped: its saved value still differentiates
    (g,) = grad(e * 3.0, x, create_graph=True)
    assert g.data == 3.0 * math.exp(0.5)
    assert grad(g, x)[0].data == 3.0 * math.exp(0.5)
    _, s = ExpAndSquare.apply(x)
    (g,) = grad(s, x, create_graph=True)
    assert (g.data, grad(g, x)[0].data) == (1.0, 2.0)
    y = SavedExp.apply(x)
    y.backward()  # first order as ever
    assert x.grad == math.exp(0.5) and SavedExp.apply(x).data == math.exp(0.5)


def test_function_with_two_outputs_hessian():
    x, y = Value(2.0), Value(-3.0)
    product, total = ProdSum.apply(x, y)
    out = product * total  # (xy)(x + y)
    gx, gy = grad(out, [x, y], create_graph=True)
    assert (gx.data, gy.data) == (2 * x.data * y.data + y.data ** 2, x.data ** 2 + 2 * x.data * y.data)
    assert [h.data for h in grad(gx, [x, y])] == [2 * y.data, 2 * x.data + 2 * y.data]
    assert [h.data for h in grad(gy, [x, y])] == [2 * x.data + 2 * y.data, 2 * x.data]


def test_only_one_output_used():
    x, y = Value(2.0), Value(-3.0)
    product, _ = ProdSum.apply(x, y)  # the sum's gradient is a zero, as torch materializes it
    gx, gy = grad(product, [x, y], create_graph=True)
    assert (gx.data, gy.data) == (-3.0, 2.0)
    assert [h.data for h in grad(gx, [x, y])] == [0.0, 1.0]


@pytest.mark.torch
def test_function_second_derivative_matches_torch(torch):
    class TorchCube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3.0 * x * x

    class TorchExp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            result = x.exp()
            ctx.save_for_backward(result)
            return result

        @staticmethod
        def backward(ctx, g):
            (result,) = ctx.saved_tensors
            return g * result

    for ours_cls, torch_cls in ((Cube, TorchCube), (SavedExp, TorchExp)):
        for v in (0.7, -1.9, 0.0):
            x = Value(v)
            ours = grad(grad(ours_cls.apply(x).sin(), x, create_graph=True)[0], x)[0].data
            t = torch.tensor(v, dtype=torch.float64, requires_grad=True)
            tg = torch.autograd.grad(torch.sin(torch_cls.apply(t)), t, create_graph=True)[0]
            assert close(ours, torch.autograd.grad(tg, t)[0].item(), 1e-12), (ours_cls, v)


def test_once_differentiable():
    from engine.function import once_differentiable as same_decorator
    assert same_decorator is engine.once_differentiable
    x = Value(2.0)
    y = OnceCube.apply(x)
    y.backward()
    assert x.grad == 12.0  # first order as ever
    (g,) = grad(OnceCube.apply(x), x, create_graph=True)
    assert g.data == 12.0  # differentiating once with create_graph is fine
    message = "trying to differentiate twice a function that was marked with @once_differentiable"
    with pytest.raises(RuntimeError, match=message):
        grad(g, x)
    penalty = g * g
    with pytest.raises(RuntimeError, match=message):
        penalty.backward()
    z = OnceCube.apply(x) * x  # an upstream gradient in the graph (torch marks this case too)
    (g,) = grad(z, x, create_graph=True)
    assert g.data == 32.0
    with pytest.raises(RuntimeError, match=message):
        grad(g, x)
    y = OnceCube.apply(x)
    y.backward(create_graph=True)  # no second derivative taken: no error
    assert x.grad == 24.0
