"""The graph: deep chains without recursion, freeing by reference counting,
topological order, and shared nodes counted once per backward pass.
"""
import gc
import math
import sys
import weakref
from collections import deque

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from engine import Function, Value, linear, topological_order
from engine.nn import MLP, SGD, mse_loss


class Pair(Function):
    """(a * b, a + b): a two-output Function for graphs."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a.data * b.data, a.data + b.data

    @staticmethod
    def backward(ctx, g_prod, g_sum):
        a, b = ctx.saved_values
        return g_prod * b.data + g_sum, g_prod * a.data + g_sum


def reachable(root):
    """Every node reachable from root, by breadth-first search over _prev."""
    seen = {id(root): root}
    queue = deque([root])
    while queue:
        for child in queue.popleft()._prev:
            if id(child) not in seen:
                seen[id(child)] = child
                queue.append(child)
    return seen


# --------------------------------------------------------------------------
# Deep graphs
# --------------------------------------------------------------------------
def test_million_node_chain_backpropagates_without_recursion():
    limit = sys.getrecursionlimit()
    x = Value(3.0)
    y = x
    for i in range(500_000):
        y = y * 1.0  # 500,000 multiplications
        y = y + x    # and 500,000 more uses of x
    assert y.data == 3.0 + 500_000 * 3.0
    order = topological_order(y)
    assert len(order) == 1_000_001
    assert order[0] is x and order[-1] is y
    del order
    y.backward()
    assert x.grad == 500_001.0
    assert sys.getrecursionlimit() == limit
    del y  # freeing a million-deep chain must not crash either
    assert x.grad == 500_001.0


def test_deep_unary_chain_gradient():
    x = Value(0.5)
    y = x
    for _ in range(100_000):
        y = -y
    y.backward()
    assert y.data == 0.5
    assert x.grad == 1.0


class Double(Function):
    @staticmethod
    def forward(ctx, v):
        return 2.0 * v.data

    @staticmethod
    def backward(ctx, g):
        return 2.0 * g


def test_deep_function_chain_backpropagates_without_recursion():
    x = Value(1.0)
    y = x
    for _ in range(50_000):
        y = Double.apply(y) * 0.5
    assert y.data == 1.0
    y.backward()
    assert x.grad == 1.0


def test_exponentially_many_paths_each_node_once():
    # x_{k+1} = x_k + x_k: 2**k paths from x_k's root, one visit per node
    x = Value(1.0)
    y = x
    for _ in range(600):
        y = y + y
    assert len(topological_order(y)) == 601
    y.backward()
    assert x.grad == 2.0 ** 600
    assert y.data == 2.0 ** 600


# --------------------------------------------------------------------------
# A dropped graph is freed by reference counting alone
# --------------------------------------------------------------------------
@pytest.fixture
def gc_disabled():
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _expression_graph():
    a, b = Value(1.5), Value(-0.5)
    c = a * b
    d = c.tanh() + a.exp() / b - 2.0 ** b
    p, s = Pair.apply(d, c)
    e = linear([p, s], [a, b], c).sigmoid() + abs(d).sqrt() + (a * a).log()
    e.backward()
    assert a.grad != 0.0
    function_node = p._prev[0]
    ctx = function_node._b.ctx
    return [weakref.ref(v) for v in (a, b, c, d, p, s, e, function_node, ctx)]


def test_expression_graph_with_function_is_freed_without_gc(gc_disabled):
    refs = _expression_graph()
    assert len(refs) == 9
    dead = [r() is None for r in refs]
    assert all(dead), dead


def _training_graph():
    model = MLP(3, [4, 4, 1], seed=0)
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5]]
    loss = mse_loss([model(x) for x in xs], [1.0, -1.0])
    model.zero_grad()
    loss.backward()
    SGD(model.parameters(), 0.1).step()
    nodes = topological_order(loss)
    assert len(nodes) > 50
    refs = [weakref.ref(n) for n in nodes]
    return refs, len(model.parameters())


def test_mlp_forward_backward_is_freed_without_gc(gc_disabled):
    refs, n_params = _training_graph()
    assert n_params == 41
    alive = sum(r() is not None for r in refs)
    assert alive == 0


def test_kept_model_outlives_its_dropped_graph(gc_disabled):
    model = MLP(3, [4, 4, 1], seed=1)
    params = model.parameters()
    loss = mse_loss([model([1.0, -2.0, 0.5])], [0.5])
    loss.backward()
    intermediate = [weakref.ref(n) for n in topological_order(loss) if not any(n is p for p in params)]
    assert len(intermediate) >= 20
    del loss
    # every node but the parameters (the converted inputs too) is gone
    assert [r for r in intermediate if r() is not None] == []
    assert all(p is q for p, q in zip(params, model.parameters()))
    assert any(p.grad != 0.0 for p in model.parameters())


# --------------------------------------------------------------------------
# Random DAGs: topological order, and gradients against an exact reference
# --------------------------------------------------------------------------
# A DAG is a spec: integer leaves, then steps (op, operand indices, constant)
# whose operands are earlier nodes. Integer data and +, -, * keep everything
# exact, so the engine must match a Python-int reverse mode bit for bit.
BINARY = ("add", "sub", "mul")
STEPS = BINARY + ("neg", "scale", "rscale", "rsub", "linear", "pair")


@st.composite
def dag_specs(draw, max_leaves=4, max_steps=14):
    n_leaves = draw(st.integers(1, max_leaves))
    leaves = draw(st.lists(st.integers(-3, 3), min_size=n_leaves, max_size=n_leaves))
    steps = []
    count = n_leaves
    for _ in range(draw(st.integers(1, max_steps))):
        op = draw(st.sampled_from(STEPS))
        pick = st.integers(0, count - 1)
        if op in BINARY or op == "pair":
            operands = (draw(pick), draw(pick))
        elif op == "linear":
            n = draw(st.integers(1, 3))
            operands = tuple(draw(pick) for _ in range(2 * n + 1))  # bias, ws, xs
        else:
            operands = (draw(pick),)
        constant = draw(st.integers(-3, 3))
        if op == "pair":
            steps.append(("pair0", operands, constant))
            steps.append(("pair1", operands, constant))
            count += 2
        else:
            steps.append((op, operands, constant))
            count += 1
    return leaves, steps


def build(spec):
    leaves, steps = spec
    nodes = [Value(v) for v in leaves]
    for op, ops, c in steps:
        v = [nodes[i] for i in ops]
        if op == "add":
            out = v[0] + v[1]
        elif op == "sub":
            out = v[0] - v[1]
        elif op == "mul":
            out = v[0] * v[1]
        elif op == "neg":
            out = -v[0]
        elif op == "scale":
            out = v[0] * c
        elif op == "rscale":
            out = c * v[0]
        elif op == "rsub":
            out = c - v[0]
        elif op == "linear":
            n = (len(v) - 1) // 2
            out = linear(v[1:1 + n], v[1 + n:], v[0])
        elif op == "pair0":
            out, second = Pair.apply(v[0], v[1])
            nodes.append(out)
            continue
        elif op == "pair1":
            out = second
        nodes.append(out)
    return nodes


def _local_derivatives(op, vals, c):
    """(operand position, d out / d operand) pairs for one step."""
    if op in ("add", "pair1"):
        return [(0, 1), (1, 1)]
    if op == "sub":
        return [(0, 1), (1, -1)]
    if op in ("mul", "pair0"):
        return [(0, vals[1]), (1, vals[0])]
    if op == "neg" or op == "rsub":
        return [(0, -1)]
    if op in ("scale", "rscale"):
        return [(0, c)]
    if op == "linear":
        n = (len(vals) - 1) // 2
        pairs = [(0, 1)]
        for k in range(n):
            pairs.append((1 + k, vals[1 + n + k]))
            pairs.append((1 + n + k, vals[1 + k]))
        return pairs
    raise AssertionError(op)


def _forward(op, vals, c):
    if op in ("add", "pair1"):
        return vals[0] + vals[1]
    if op == "sub":
        return vals[0] - vals[1]
    if op in ("mul", "pair0"):
        return vals[0] * vals[1]
    if op == "neg":
        return -vals[0]
    if op in ("scale", "rscale"):
        return vals[0] * c
    if op == "rsub":
        return c - vals[0]
    if op == "linear":
        n = (len(vals) - 1) // 2
        return vals[0] + sum(w * x for w, x in zip(vals[1:1 + n], vals[1 + n:]))
    raise AssertionError(op)


def reference(spec):
    """Exact values, and d(last node)/d(node) for every node, in Python ints."""
    leaves, steps = spec
    vals = list(leaves)
    for op, ops, c in steps:
        vals.append(_forward(op, [vals[i] for i in ops], c))
    grads = [0] * len(vals)
    grads[-1] = 1
    n_leaves = len(leaves)
    for index in range(len(vals) - 1, n_leaves - 1, -1):
        op, ops, c = steps[index - n_leaves]
        for position, d in _local_derivatives(op, [vals[i] for i in ops], c):
            grads[ops[position]] += grads[index] * d
    return vals, grads


def _magnitude_bound(spec):
    """An upper bound of every magnitude the float computation meets: values,
    products, partial sums of values and of gradient contributions. Below
    2**53 every one of them is an exactly representable integer."""
    leaves, steps = spec
    vals = [abs(v) for v in leaves]
    for op, ops, c in steps:
        v = [vals[i] for i in ops]
        if op in BINARY[:2] or op == "pair1":
            out = v[0] + v[1]
        elif op in ("mul", "pair0"):
            out = v[0] * v[1]
        elif op == "neg":
            out = v[0]
        elif op in ("scale", "rscale"):
            out = v[0] * abs(c)
        elif op == "rsub":
            out = v[0] + abs(c)
        else:  # linear
            n = (len(v) - 1) // 2
            out = v[0] + sum(w * x for w, x in zip(v[1:1 + n], v[1 + n:]))
        vals.append(out)
    grads = [0] * len(vals)
    grads[-1] = 1
    n_leaves = len(leaves)
    for index in range(len(vals) - 1, n_leaves - 1, -1):
        op, ops, c = steps[index - n_leaves]
        for position, d in _local_derivatives(op, [vals[i] for i in ops], abs(c)):
            grads[ops[position]] += grads[index] * abs(d)
    return max(vals + grads)


def _exact_in_floats(spec):
    return _magnitude_bound(spec) < 2 ** 50


@given(dag_specs())
def test_topological_order_puts_every_node_after_its_operands(spec):
    nodes = build(spec)
    root = nodes[-1]
    order = topological_order(root)
    position = {id(n): i for i, n in enumerate(order)}
    assert len(position) == len(order), "a node appears twice"
    assert order[-1] is root
    assert set(position) == set(reachable(root))
    for i, node in enumerate(order):
        for child in node._prev:
            assert position[id(child)] < i


@given(dag_specs())
def test_random_dag_gradients_match_exact_reference(spec):
    assume(_exact_in_floats(spec))
    nodes = build(spec)
    values, grads = reference(spec)
    assert [n.data for n in nodes] == [float(v) for v in values]
    root = nodes[-1]
    reach = reachable(root)
    root.backward()
    expected = [float(g) if id(n) in reach else 0.0 for n, g in zip(nodes, grads)]
    assert [n.grad for n in nodes] == expected
    root.backward()  # a second pass adds every contribution once more
    assert [n.grad for n in nodes] == [2.0 * e for e in expected]


@given(dag_specs(), st.integers(0, 40))
def test_backward_from_an_intermediate_node(spec, pick):
    assume(_exact_in_floats(spec))
    nodes = build(spec)
    leaves, steps = spec
    index = pick % len(nodes)
    nodes[index].backward()
    if index < len(leaves):
        expected = [1.0 if i == index else 0.0 for i in range(len(nodes))]
    else:
        # the spec cut after the chosen node makes it the reference's root
        _, grads = reference((leaves, steps[: index - len(leaves) + 1]))
        reach = reachable(nodes[index])
        expected = [float(g) if id(n) in reach else 0.0 for n, g in zip(nodes, grads)]
        expected += [0.0] * (len(nodes) - len(expected))  # later nodes: untouched
    assert [n.grad for n in nodes] == expected


# --------------------------------------------------------------------------
# Diamonds and shared nodes
# --------------------------------------------------------------------------
def test_diamond_each_contribution_once():
    a = Value(3.0)
    b = a * 2.0
    c = a * 5.0
    d = b * c  # 10 a^2
    d.backward()
    assert d.data == 90.0
    assert a.grad == 60.0
    assert b.grad == 15.0 and c.grad == 6.0
    d.backward()
    assert a.grad == 120.0 and b.grad == 30.0 and c.grad == 12.0


def test_shared_intermediate_node():
    a, b = Value(2.0), Value(-1.0)
    s = a * b          # used three times
    out = s * s + s.tanh() * 0.0 + s
    out.backward()
    assert s.grad == 2 * s.data + 1.0  # tanh branch contributes (1 - t^2) * 0
    assert a.grad == s.grad * b.data
    assert b.grad == s.grad * a.data


def test_same_value_as_both_operands():
    a = Value(3.0)
    for out, grad in ((a * a, 6.0), (a - a, 0.0), (a / a, 0.0), (a ** a, 27.0 * (1.0 + math.log(3.0)))):
        a.grad = 0.0
        out.backward()
        assert abs(a.grad - grad) <= 1e-13 * max(1.0, abs(grad)), (out, a.grad, grad)


def test_two_roots_sharing_a_subgraph_are_independent():
    a = Value(2.0)
    shared = a * a
    r1 = shared + 1.0
    r2 = shared * 3.0
    r1.backward()
    assert a.grad == 4.0 and shared.grad == 1.0
    r2.backward()
    assert a.grad == 4.0 + 12.0 and shared.grad == 4.0
    assert r1.grad == 1.0 and r2.grad == 1.0


def test_topological_order_of_leaf_and_diamond():
    a = Value(1.0)
    assert topological_order(a) == [a]
    b, c = a + 1.0, a * 2.0
    d = b + c
    order = topological_order(d)
    assert order[0] is a and order[-1] is d and len(order) == 4
