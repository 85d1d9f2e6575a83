"""engine.viz on hand-built nodes, so these tests do not depend on engine.Value."""

from __future__ import annotations

import math
import sys

import pytest

from engine import viz


class Node:
    __slots__ = ("data", "grad", "_prev", "_op")

    def __init__(self, data, prev=(), op="", grad=0.0):
        self.data = data
        self.grad = grad
        self._prev = tuple(prev)
        self._op = op


def small_graph():
    # e = tanh(c), c = a * b + a   (a is shared)
    a = Node(2.0, grad=1.5)
    b = Node(-3.0, grad=2.0)
    m = Node(-6.0, (a, b), "*", grad=1.0)
    c = Node(-4.0, (m, a), "+", grad=1.0)
    e = Node(math.tanh(-4.0), (c,), "tanh", grad=1.0)
    return e, a, b


def test_text_one_line_per_node_with_op_data_grad():
    e, _, _ = small_graph()
    lines = viz.to_text(e).splitlines()
    assert lines == [
        f"#0 tanh data={math.tanh(-4.0):.6g} grad=1",
        "  #1 + data=-4 grad=1",
        "    #2 * data=-6 grad=1",
        "      #3 leaf data=2 grad=1.5",
        "      #4 leaf data=-3 grad=2",
        "    #3 (see above)",
    ]


def test_shared_node_is_shown_once_then_referenced():
    a = Node(3.0, grad=2.0)
    b = Node(6.0, (a, a), "+", grad=1.0)
    text = viz.to_text(b)
    assert text.splitlines() == [
        "#0 + data=6 grad=1",
        "  #1 leaf data=3 grad=2",
        "  #1 (see above)",
    ]
    assert text.count("leaf") == 1


def test_leaf_alone_and_special_floats():
    assert viz.to_text(Node(0.0)) == "#0 leaf data=0 grad=0"
    assert viz.to_text(Node(float("-inf"), grad=float("nan"))) == "#0 leaf data=-inf grad=nan"
    assert viz.to_text(Node(-0.0)) == "#0 leaf data=-0 grad=0"


def test_deep_chain_is_walked_without_recursion():
    depth = 200_000
    node = Node(0.0)
    for _ in range(depth):
        node = Node(0.0, (node,), "relu")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # any recursive walk would fail at once
    try:
        lines = viz.to_text(node).splitlines()
    finally:
        sys.setrecursionlimit(limit)
    assert len(lines) == depth + 1
    assert lines[-1].endswith(f"[{depth}] #{depth} leaf data=0 grad=0")
    # indentation stops growing, so the text stays linear in the graph size
    assert max(len(line) for line in lines) < 2 * viz.MAX_INDENT + 64


def test_draw_without_graphviz_returns_text(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # makes the import fail
    e, _, _ = small_graph()
    assert viz.draw(e) == viz.to_text(e)


def test_draw_with_graphviz_returns_digraph():
    graphviz = pytest.importorskip("graphviz")
    e, _, _ = small_graph()
    dot = viz.draw(e, format="png", rankdir="TB")
    assert isinstance(dot, graphviz.Digraph)
    assert dot.format == "png"
    src = dot.source
    assert "rankdir=TB" in src
    # 5 value nodes, 3 op nodes; a is drawn once but feeds two ops
    assert src.count("shape=record") == 5
    for op in ("tanh", "+", "*"):
        assert f'label="{op}"' in src or f"label={op}" in src
    assert src.count("n3 -> ") == 2
