"""The expression-graph IR: leaves, then nodes in topological order.

Values are numbered: 0 .. n_leaves-1 are the leaves, n_leaves + i is node i.
A node names an op of the op table, its Value operands (indices of earlier
values) and its number operand, if the op takes one.  The loss is the sum of
the outputs, left to right (``outputs[0] + outputs[1] + ...``), so every
backend sees the same additions.  Graphs are plain data: JSON in and out.
"""
from dataclasses import dataclass
import json
import math

from .ops import OPS


@dataclass(frozen=True)
class Node:
    op: str
    args: tuple
    const: float = None

    def to_json(self):
        data = {"op": self.op, "args": list(self.args)}
        if self.const is not None:
            data["const"] = _float_to_json(self.const)
        return data

    @classmethod
    def from_json(cls, data):
        const = data.get("const")
        return cls(data["op"], tuple(data["args"]), None if const is None else _float_from_json(const))


@dataclass(frozen=True)
class Graph:
    n_leaves: int
    nodes: tuple
    outputs: tuple

    def __post_init__(self):
        self.validate()

    def validate(self):
        if self.n_leaves < 1:
            raise ValueError("a graph needs at least one leaf")
        for i, node in enumerate(self.nodes):
            op = OPS.get(node.op)
            if op is None:
                raise ValueError(f"node {i}: unknown op {node.op!r}")
            if len(node.args) != op.arity:
                raise ValueError(f"node {i}: {node.op} takes {op.arity} operands, got {len(node.args)}")
            if any(not 0 <= a < self.n_leaves + i for a in node.args):
                raise ValueError(f"node {i}: operands {node.args} must be earlier values")
            if op.has_const != (node.const is not None):
                raise ValueError(f"node {i}: {node.op} {'needs' if op.has_const else 'takes no'} constant")
        if not self.outputs or any(not 0 <= o < self.n_values for o in self.outputs):
            raise ValueError(f"outputs {self.outputs} must be values of the graph")

    @property
    def n_values(self):
        return self.n_leaves + len(self.nodes)

    @property
    def n_nodes(self):
        return len(self.nodes)

    def ops(self):
        """The op names used, sorted, each once."""
        return sorted({node.op for node in self.nodes})

    def depth(self):
        """Longest path from a leaf to an output, in ops."""
        depth = [0] * self.n_values
        for i, node in enumerate(self.nodes):
            depth[self.n_leaves + i] = 1 + max(depth[a] for a in node.args)
        return max(depth[o] for o in self.outputs)

    def evaluate(self, leaves, apply, add):
        """Run the graph with backend-specific ``apply(op, operands, const)``
        and ``add(a, b)`` (for the loss); return (values, loss)."""
        values = list(leaves)
        for node in self.nodes:
            values.append(apply(OPS[node.op], [values[a] for a in node.args], node.const))
        loss = values[self.outputs[0]]
        for o in self.outputs[1:]:
            loss = add(loss, values[o])
        return values, loss

    def to_json(self):
        return {"n_leaves": self.n_leaves, "nodes": [n.to_json() for n in self.nodes],
                "outputs": list(self.outputs)}

    @classmethod
    def from_json(cls, data):
        return cls(data["n_leaves"], tuple(Node.from_json(n) for n in data["nodes"]),
                   tuple(data["outputs"]))

    def render(self, leaves=None, limit=60):
        """Readable form, one value per line: ``v3 = v0 * v1``."""
        lines = []
        for i in range(self.n_leaves):
            shown = "" if leaves is None else f" = {leaves[i]!r}"
            lines.append(f"v{i}: leaf{shown}")
        for i, node in enumerate(self.nodes):
            lines.append(f"v{self.n_leaves + i} = {_format_node(node)}")
            if len(lines) >= limit:
                lines.append(f"... ({self.n_values - len(lines) + 1} more)")
                break
        lines.append("loss = " + " + ".join(f"v{o}" for o in self.outputs))
        return "\n".join(lines)


def _format_node(node):
    op = OPS[node.op]
    args = [f"v{a}" for a in node.args]
    c = f"({node.const!r})" if node.const is not None and node.const < 0 else repr(node.const)
    if node.op in ("radd", "rsub", "rmul", "rdiv", "rpow"):
        return f"{c} {op.symbol} {args[0]}"
    if op.has_const:
        return f"{args[0]} {op.symbol} {c}"
    if op.arity == 2:
        return f"{args[0]} {op.symbol} {args[1]}"
    return f"{op.symbol}({args[0]})"


# JSON has no inf or nan: spell them as strings, and keep -0.0's sign.
def _float_to_json(x):
    if math.isfinite(x) and not (x == 0.0 and math.copysign(1.0, x) < 0):
        return x
    return repr(x)


def _float_from_json(x):
    return float(x)


def floats_to_json(values):
    return [_float_to_json(float(v)) for v in values]


def floats_from_json(values):
    return [_float_from_json(v) for v in values]


def dumps(graph):
    return json.dumps(graph.to_json(), separators=(",", ":"))


def loads(text):
    return Graph.from_json(json.loads(text))
