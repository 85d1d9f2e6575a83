"""Function: custom operations with a hand-written backward.

A mirror of torch.autograd.Function::

    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.data ** 2

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_values
            return grad_output * 2 * x.data

    y = Square.apply(Value(3.0))

forward and backward run with graph recording off.  forward returns a Value,
a number, or a tuple of them; backward returns one gradient per forward
argument (None for numbers, or for inputs that need none).
"""
import functools
import weakref

from .backward_ops import delayed_error
from .grad_mode import _GradMode, is_grad_enabled, no_grad
from .value import OP_NAMES, BackwardPass, Value, _node


class FunctionCtx:
    """The ``ctx`` passed to forward and backward."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.saved_values = ()
        self.non_differentiable = ()
        self._saved = False

    def save_for_backward(self, *values):
        if self._saved:
            raise RuntimeError("save_for_backward can only be called once per forward")
        for v in values:
            if v is not None and not isinstance(v, Value):
                raise TypeError(f"save_for_backward takes Values or None, not {type(v).__name__}")
        self._saved = True
        self.saved_values = values

    @property
    def saved_tensors(self):
        return self.saved_values

    def mark_non_differentiable(self, *outputs):
        self.non_differentiable = outputs


class Function:
    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("a Function subclass must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("a Function subclass must define backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args):
        recording = _GradMode.enabled
        # as torch: from the inputs alone, whatever the grad mode
        ctx = FunctionCtx(tuple(isinstance(a, Value) for a in args))
        with no_grad():
            result = cls.forward(ctx, *args)
        is_tuple = isinstance(result, tuple)
        raw_outputs = result if is_tuple else (result,)
        for r in raw_outputs:
            if not isinstance(r, (Value, float, int)):
                raise TypeError(
                    f"{cls.__name__}.forward returned {type(r).__name__}; "
                    f"expected a Value, a number, or a tuple of them"
                )
        inputs = tuple(a for a in args if isinstance(a, Value))
        if not recording or not inputs:
            outputs = tuple(Value(float(r)) for r in raw_outputs)
            return outputs if is_tuple else outputs[0]

        # One hidden node runs backward once all outputs' gradients are in;
        # each output adds its gradient into that node's slot for it.
        # Outputs are new Values, so a saved forward result cannot make a cycle.
        record = _FunctionRecord(cls, ctx, args, len(raw_outputs))
        function_node = _node(float("nan"), _function_backward, inputs, record)
        non_differentiable = {id(o) for o in ctx.non_differentiable}
        outputs = []
        for index, r in enumerate(raw_outputs):
            data = float(r.data if isinstance(r, Value) else r)
            if id(r) in non_differentiable:
                outputs.append(Value(data))
            else:
                outputs.append(_node(data, _output_backward, function_node, index))
        outputs = tuple(outputs)
        _link_saved_outputs(ctx, args, raw_outputs, outputs)
        return outputs if is_tuple else outputs[0]


def _link_saved_outputs(ctx, args, raw_outputs, outputs):
    """A saved forward result stands for its output when a backward runs with
    create_graph (engine/autograd.py), so that it is differentiable as torch's
    saved outputs are.  Weakly: an output that held its own node through the
    ctx would be a reference cycle."""
    links = {}
    for position, saved in enumerate(ctx.saved_values):
        for index, r in enumerate(raw_outputs):
            if saved is r and isinstance(r, Value) and outputs[index]._prev and not any(r is a for a in args):
                links[position] = (index, weakref.ref(outputs[index]))
    if links:
        ctx._saved_outputs = links


class _FunctionRecord:
    """What a Function's hidden node keeps for backward."""
    __slots__ = ("cls", "ctx", "args", "n_outputs", "grad_outputs", "pass_number")

    def __init__(self, cls, ctx, args, n_outputs):
        self.cls, self.ctx, self.args, self.n_outputs = cls, ctx, args, n_outputs
        self.grad_outputs = [0.0] * n_outputs
        self.pass_number = None

    def grad_outputs_of_this_pass(self):
        # Slots filled in an earlier pass (even one that raised) count as zero.
        if self.pass_number != BackwardPass.number:
            self.pass_number = BackwardPass.number
            self.grad_outputs = [0.0] * self.n_outputs
        return self.grad_outputs


def _output_backward(node, g):
    # An output's backward runs once a pass, so its slot is set, not summed.
    node._a._b.grad_outputs_of_this_pass()[node._b] = g


def _function_backward(node, g):
    record = node._b
    cls, ctx, args = record.cls, record.ctx, record.args
    grad_outputs = tuple(record.grad_outputs_of_this_pass())
    with no_grad():
        grads = cls.backward(ctx, *grad_outputs)
    for arg, grad in checked_gradients(cls, args, grads):
        arg._g += grad.data if isinstance(grad, Value) else float(grad)


# A Function's nodes are named by it: "Split" hides behind "Split[0]", "Split[1]".
OP_NAMES[_function_backward] = lambda node: node._b.cls.__name__
OP_NAMES[_output_backward] = lambda node: f"{node._a._b.cls.__name__}[{node._b}]"


def checked_gradients(cls, args, grads):
    """(input, gradient) for each Value input a Function's backward gave a
    gradient for; RuntimeError, in torch's words, for a wrong count or a
    gradient of a number argument."""
    if not isinstance(grads, tuple):
        grads = (grads,)
    if len(grads) != len(args):
        raise RuntimeError(
            f"function {cls.__name__}Backward returned an incorrect number of "
            f"gradients (expected {len(args)}, got {len(grads)})"
        )
    for position, (arg, grad) in enumerate(zip(args, grads)):
        if grad is None:
            continue
        if not isinstance(arg, Value):
            raise RuntimeError(
                f"function {cls.__name__}Backward returned a gradient different than None "
                f"at position {position + 1}, but the corresponding forward input was not a Value"
            )
        yield arg, grad


ONCE_DIFFERENTIABLE_MESSAGE = ("trying to differentiate twice a function that was marked with "
                               "@once_differentiable")


def once_differentiable(backward):
    """Mark a Function's backward as differentiable once only, as torch's
    ``torch.autograd.function.once_differentiable``: it runs with graph
    recording off, and under backward(create_graph=True) or
    grad(create_graph=True) each gradient it returns is a node whose own
    backward raises RuntimeError("trying to differentiate twice a function
    that was marked with @once_differentiable") once a second derivative
    flows through it.

    torch only marks the gradients when an incoming gradient requires grad,
    and its autograd.grad then prunes the error node (that second-derivative
    term is silently dropped); here the node hangs on the Function's inputs
    and incoming gradients, so any derivative through it raises.
    """
    @functools.wraps(backward)
    def wrapper(ctx, *grad_outputs):
        with no_grad():
            grads = backward(ctx, *grad_outputs)
        if not is_grad_enabled():
            return grads
        prev = tuple(getattr(ctx, "_graph_inputs", ())) + tuple(
            g for g in grad_outputs if isinstance(g, Value))
        message = f"{ONCE_DIFFERENTIABLE_MESSAGE} ({backward.__qualname__})"

        def mark(g):
            if g is None:
                return None
            return delayed_error(float(g), prev, message)

        if isinstance(grads, tuple):
            return tuple(mark(g) for g in grads)
        return mark(grads)

    return wrapper
