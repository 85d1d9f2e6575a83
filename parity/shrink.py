"""Shrinking a failing case to a small graph that still fails: delta
debugging on the graph.

Two reductions, tried until neither applies or the budget is spent:
- make one value the graph's only output (each node in turn, the earliest
  first), dropping what it does not reach;
- replace a node by a new leaf holding its value (torch's float64 value, so
  that everything downstream computes what it did), which cuts off the
  subgraph that fed it; nodes that no output reaches any more are dropped.
A candidate is kept when it still fails (``still_bad``).  Nodes nearest the
outputs are tried first: a cut there removes the most.  The order is fixed
and the values come from torch, so the same case shrinks to the same graph.
The budget is a number of candidates tried (deterministic), with a time
limit beside it for an engine too slow for that many: only a machine that
reaches the time limit first can shrink the same case less far.
"""
import dataclasses
import time

from .graph import Graph, Node

BUDGET_CANDIDATES = 2000
BUDGET_SECONDS = 5.0


def shrink(case, still_bad, node_values, candidates=BUDGET_CANDIDATES, seconds=BUDGET_SECONDS):
    """The smallest failing case reached from ``case`` within ``candidates``
    candidates tried and ``seconds``.  ``node_values``: the float64 value of
    every value of the case's graph (leaves, then nodes);
    ``still_bad(case)``: whether a candidate still fails."""
    deadline = time.monotonic() + seconds
    best, values = case, list(node_values)
    improved = True
    while improved:
        improved = False
        for candidate, candidate_values in _candidates(best, values):
            if candidates <= 0 or time.monotonic() >= deadline:
                return best
            candidates -= 1
            if still_bad(candidate):
                best, values, improved = candidate, candidate_values, True
                break
    return best


def _candidates(case, values):
    graph = case.graph
    for node in range(graph.n_leaves, graph.n_values):  # one value the output: the smallest prefixes first
        if (node,) != graph.outputs:
            yield _pruned(case, values, (node,), set())
    for node in reversed(range(graph.n_leaves, graph.n_values)):
        if node not in graph.outputs:
            yield _pruned(case, values, graph.outputs, {node})


def _pruned(case, values, outputs, cut):
    """(case, its values) with ``cut`` nodes made leaves (their values), only
    what ``outputs`` reach, renumbered: leaves first, then nodes in order."""
    graph = case.graph
    reached, stack = set(), list(outputs)
    while stack:
        v = stack.pop()
        if v in reached:
            continue
        reached.add(v)
        if v >= graph.n_leaves and v not in cut:
            stack.extend(graph.nodes[v - graph.n_leaves].args)
    leaves = [v for v in range(graph.n_values) if v in reached and (v < graph.n_leaves or v in cut)]
    nodes = [v for v in range(graph.n_leaves, graph.n_values) if v in reached and v not in cut]
    number = {v: i for i, v in enumerate(leaves + nodes)}
    kept = [graph.nodes[v - graph.n_leaves] for v in nodes]
    new_nodes = tuple(Node(node.op, tuple(number[a] for a in node.args), node.const) for node in kept)
    new_graph = Graph(len(leaves), new_nodes, tuple(number[o] for o in outputs))
    new_values = [values[v] for v in leaves + nodes]
    return (dataclasses.replace(case, graph=new_graph, leaves=[values[v] for v in leaves], structure=""),
            new_values)
