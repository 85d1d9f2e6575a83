"""Draw a computation graph.

``draw(root)`` returns a ``graphviz.Digraph`` when the ``graphviz`` Python
package is installed (``pip install 'gradparity[viz]'``; rendering it to a file
also needs Graphviz's ``dot`` program) and otherwise ``to_text(root)``.

Both walk the graph iteratively, so graphs of any depth (a million-node chain
included) are drawn without touching the recursion limit.

A node is anything with the attributes ``data``, ``grad``, ``_prev`` (the
child nodes) and ``_op`` (a short op name, ``''`` for a leaf), as
``engine.Value`` has.
"""

from __future__ import annotations

from typing import Any, Iterator

__all__ = ["draw", "to_text"]

# Indentation stops growing past this depth; deeper lines show their depth
# as "[depth]" instead, so a deep chain prints in linear, not quadratic, size.
MAX_INDENT = 32
_INDENT = "  "


def _num(x: Any) -> str:
    try:
        return format(x, ".6g")
    except (TypeError, ValueError):
        return repr(x)


def _esc(text: str) -> str:
    # Characters with a meaning inside a graphviz record label.
    for ch in "\\{}|<>":
        text = text.replace(ch, "\\" + ch)
    return text


def _children(node: Any) -> tuple:
    prev = getattr(node, "_prev", ())
    return tuple(prev) if prev else ()


def _label(node: Any) -> str:
    op = getattr(node, "_op", "") or "leaf"
    name = getattr(node, "label", None)
    head = f"{op} {name}" if name else op
    return f"{head} data={_num(getattr(node, 'data', None))} grad={_num(getattr(node, 'grad', None))}"


def _prefix(depth: int) -> str:
    if depth <= MAX_INDENT:
        return _INDENT * depth
    return _INDENT * MAX_INDENT + f"[{depth}] "


def _walk(root: Any) -> Iterator[tuple[int, int, Any, bool]]:
    """Depth-first, children in order: (depth, node id, node, first visit)."""
    ids: dict[int, int] = {}
    keep: list[Any] = []  # keeps nodes alive so id() values stay unique
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        key = id(node)
        seen = ids.get(key)
        if seen is not None:
            yield depth, seen, node, False
            continue
        nid = ids[key] = len(ids)
        keep.append(node)
        yield depth, nid, node, True
        children = _children(node)
        for child in reversed(children):
            stack.append((child, depth + 1))


def to_text(root: Any) -> str:
    """The graph under ``root`` as indented text, one line per node.

    Each node is printed once, as ``#N op data=... grad=...`` with its inputs
    indented below it; a node reached again (a shared subexpression, or
    ``a + a``) is shown as ``#N (see above)``.
    """
    lines = []
    for depth, nid, node, first in _walk(root):
        if first:
            lines.append(f"{_prefix(depth)}#{nid} {_label(node)}")
        else:
            lines.append(f"{_prefix(depth)}#{nid} (see above)")
    return "\n".join(lines)


def draw(root: Any, format: str = "svg", rankdir: str = "LR"):
    """A ``graphviz.Digraph`` of the graph under ``root``, or its text form.

    ``format`` is the Digraph's output format and ``rankdir`` its layout
    direction (``"LR"`` left to right, ``"TB"`` top to bottom). Without the
    ``graphviz`` package this returns ``to_text(root)``. Each node is a record
    ``data | grad``; a non-leaf gets an op node that its inputs point to.
    """
    try:
        import graphviz
    except ImportError:
        return to_text(root)

    nodes = [(nid, node) for _depth, nid, node, first in _walk(root) if first]
    names = {id(node): f"n{nid}" for nid, node in nodes}
    dot = graphviz.Digraph(format=format, graph_attr={"rankdir": rankdir})
    for nid, node in nodes:
        name = names[id(node)]
        label = getattr(node, "label", None)
        text = f"{_esc(str(label))} | " if label else ""
        dot.node(
            name,
            label=f"{{ {text}data {_num(node.data)} | grad {_num(node.grad)} }}",
            shape="record",
        )
        op = getattr(node, "_op", "")
        if op:
            dot.node(name + "_op", label=str(op))
            dot.edge(name + "_op", name)
            for child in _children(node):
                dot.edge(names[id(child)], name + "_op")
    return dot
