"""Higher-order reverse mode: gradients that are Values in a graph.

``grad(outputs, inputs)`` mirrors ``torch.autograd.grad``; ``Value.backward``
with ``create_graph=True`` comes here too.  Both run one pass over the graph
like the float backward in value.py (nodes newest first, so contributions
are summed in torch's order), but each node's rule (graph_backward.py)
builds its contributions from Value ops: with ``create_graph`` on they are
recorded, and the gradients can be differentiated again.

Gradients follow torch's engine where zeros meet infinities: a node nothing
flowed into sends nothing on (torch's undefined gradient), a zero that did
flow in is multiplied like any number (0 * inf is nan), and sgn's derivative
is torch's efficient zero tensor (backward_ops.ZERO_TENSOR).

A gradient after ``backward(create_graph=True)`` is ``node.grad_value``:
the pass leaves it in the node's ``_g`` slot (the float pass's scratch
gradient, which the next float pass overwrites), so first-order nodes carry
nothing new.  It holds its node in a reference cycle, as torch's ``x.grad``
with a ``grad_fn`` does: Python's cycle collector frees both once unused,
or set ``grad_value = None`` to free them at once.
"""
from .backward_ops import materialize
from .function import _function_backward, _output_backward, checked_gradients
from .grad_mode import _GradMode
from .graph_backward import RULES
from .value import Value, _node

__all__ = ["grad"]


def grad(outputs, inputs, grad_outputs=None, create_graph=False):
    """The gradients of ``outputs`` with respect to ``inputs``: a tuple of
    Values, one per input, as ``torch.autograd.grad`` returns.

    ``outputs`` and ``inputs`` are a Value or a sequence of them;
    ``grad_outputs`` (one per output: a Value, a number, or None for 1.0)
    weighs the outputs, as the ``gradient`` of backward does.  With
    ``create_graph=True`` the gradients are Values in a graph, to be
    differentiated again (Hessians, Hessian-vector products, gradient
    penalties); otherwise they are constants.

    Unlike torch, whose ``allow_unused=False`` raises for an input the outputs
    do not depend on (and ``allow_unused=True`` returns None for it), this
    returns a zero gradient, ``Value(0.0)``: torch's ``materialize_grads=True``.
    No ``.grad`` and no ``grad_value`` is touched, as torch.autograd.grad
    leaves ``.grad`` alone.  Only the nodes between the outputs and the inputs
    are differentiated (torch's engine prunes the same way).
    """
    outputs = _values(outputs, "outputs")
    inputs = _values(inputs, "inputs")
    if grad_outputs is None:
        seeds = [None] * len(outputs)
    else:
        seeds = list(grad_outputs) if isinstance(grad_outputs, (tuple, list)) else [grad_outputs]
        if len(seeds) != len(outputs):
            raise ValueError(f"grad(): {len(seeds)} grad_outputs for {len(outputs)} outputs")
    seeds = [_seed(s) for s in seeds]
    grads = _run(outputs, seeds, inputs, create_graph)
    result = []
    for x in inputs:
        g = materialize(grads.get(x, Value(0.0)))
        if not create_graph and g._prev:
            g = Value(g.data)  # a grad_outputs Value passed through unchanged
        result.append(g)
    return tuple(result)


def backward_graph(root, gradient):
    """Value.backward(gradient, create_graph=True): .grad accumulates each
    node's gradient as the float pass does, grad_value the gradient Value."""
    grads = _run([root], [_seed(gradient)], None, True)
    previous = _GradMode.enabled
    _GradMode.enabled = True
    try:
        # a node nothing flowed into keeps .grad (the float pass adds -0.0) and grad_value
        for node, g in grads.items():
            g = materialize(g)
            old = node.grad
            node.grad = old + g.data
            kept = node._g
            if isinstance(kept, Value) and _same(kept.data, old):
                node._g = kept + g
            elif old == 0.0:
                node._g = g
            else:
                node._g = Value(old) + g  # .grad from before, as a constant
    finally:
        _GradMode.enabled = previous


def grad_value(node):
    """Value.grad_value: the Value behind .grad, while .grad is still its value."""
    kept = node._g
    if isinstance(kept, Value) and _same(kept.data, node.grad):
        return kept
    return None


def _same(a, b):
    return a == b or (a != a and b != b)


def _values(x, name):
    values = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    for value in values:
        if not isinstance(value, Value):
            raise TypeError(f"grad(): {name} must be Values, not {type(value).__name__}: {value!r}")
    return values


def _seed(s):
    if s is None:
        return Value(1.0)
    return s if isinstance(s, Value) else Value(float(s))


def _order(roots):
    """Every node reachable from roots, oldest first (value.topological_order
    for several roots)."""
    seen = set(roots)
    stack = list(seen)
    while stack:
        for child in stack.pop()._prev:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return sorted(seen, key=lambda node: node._seq)


def _needed(order, inputs):
    """The nodes with a path to an input (torch's exec_info)."""
    needed = set(inputs)
    for node in order:
        if node not in needed:
            for child in node._prev:
                if child in needed:
                    needed.add(node)
                    break
    return needed


def _run(roots, seeds, inputs, create_graph):
    """One reverse pass from roots: {node: gradient Value}, in the order the
    nodes were visited (newest first)."""
    order = _order(roots)
    needed = None if inputs is None else _needed(order, inputs)
    incoming = {}
    for root, seed in zip(roots, seeds):
        incoming[root] = seed if root not in incoming else incoming[root] + seed
    grads = {}
    function_grads = {}  # a Function's hidden node -> {output index: gradient}
    previous = _GradMode.enabled
    _GradMode.enabled = create_graph  # torch runs backward in grad mode = create_graph
    try:
        for node in reversed(order):
            if needed is not None and node not in needed:
                continue
            g = incoming.pop(node, None)
            backward = node._backward
            if backward is _function_backward:  # its outputs' gradients are in function_grads
                if node not in function_grads:
                    continue
                contributions = _function_contributions(node, function_grads.pop(node))
            elif g is None:
                # Nothing flowed in (a Function's None): torch's undefined gradient,
                # which goes no further.  The float pass sends a -0.0 on.
                continue
            else:
                grads[node] = g
                if backward is None:
                    continue
                if backward is _output_backward:
                    function_grads.setdefault(node._a, {})[node._b] = g
                    continue
                try:
                    rule = RULES[backward]
                except KeyError:
                    raise RuntimeError(
                        f"no differentiable backward for op {node._op!r}: "
                        f"create_graph and engine.grad cannot go through it") from None
                contributions = rule(node, g)
            for operand, contribution in contributions:
                if needed is not None and operand not in needed:
                    continue
                before = incoming.get(operand)
                incoming[operand] = contribution if before is None else before + contribution
    finally:
        _GradMode.enabled = previous
    return grads


def _function_contributions(node, grad_outputs):
    """A Function's backward, run on Value gradients in the pass's grad mode:
    differentiable when it computes with Values (saved ones, grad_outputs)."""
    record = node._b
    cls, ctx, args = record.cls, record.ctx, record.args
    # an output nothing reached gets a zero gradient, as torch materializes it
    grad_outputs = tuple(materialize(grad_outputs.get(i, Value(0.0))) for i in range(record.n_outputs))
    ctx._graph_inputs = node._prev  # once_differentiable's error node hangs on them
    saved = ctx.saved_values
    links = getattr(ctx, "_saved_outputs", None)
    if links:  # saved forward results: their outputs, differentiable (torch's saved outputs)
        linked = list(saved)
        for position, (index, ref) in links.items():
            output = ref()
            if output is None:  # dropped by the caller: a new output of the same node
                output = _node(saved[position].data, _output_backward, node, index)
            linked[position] = output
        ctx.saved_values = tuple(linked)
    try:
        grads = cls.backward(ctx, *grad_outputs)
    finally:
        del ctx._graph_inputs
        ctx.saved_values = saved
    for arg, g in checked_gradients(cls, args, grads):
        yield arg, g if isinstance(g, Value) else Value(float(g))
