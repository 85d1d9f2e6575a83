"""Value: a float that remembers how it was computed, and backpropagates.

Every operation's forward and backward follow PyTorch's float64 kernels and
its derivative formulas (tools/autograd/derivatives.yaml and
FunctionsManual.cpp), edge cases included: see floatmath for why plain Python
arithmetic is not enough.

A node holds its operands in ``_prev`` and a module-level backward function in
``_backward``; nothing holds a node from below, so a dropped graph is freed by
reference counting alone (micrograd's closures make every node a cycle).
"""
import itertools
import math
import numbers
from operator import attrgetter

from . import floatmath
from .grad_mode import _GradMode

_div = floatmath.div
_pow = floatmath.pow
_pow_by_constant = floatmath.pow_by_constant
# Creation order, as torch's sequence numbers: backward visits nodes from the
# newest, so gradient contributions are summed in torch's order.
_sequence = itertools.count()
_creation_order = attrgetter("_seq")


class BackwardPass:
    """Numbers backward() calls, so per-pass state kept outside the nodes (a
    Function's gradient slots) can tell a new pass from the last one."""
    number = 0


_NUMBER = (float, int)  # bool and numpy.float64 are numbers too


class Value:
    __slots__ = ("data", "grad", "_prev", "_op", "_backward", "_aux", "_g", "_seq", "__weakref__")

    def __init__(self, data):
        if type(data) is not float:
            if isinstance(data, numbers.Real) and not isinstance(data, complex):
                data = float(data)
            else:
                raise TypeError(
                    f"Value() takes a real number (int, float or bool), "
                    f"not {type(data).__name__}: {data!r}"
                )
        self.data = data
        self.grad = 0.0
        self._g = 0.0  # this backward pass's gradient; .grad accumulates it
        self._prev = ()
        self._op = ""
        self._backward = None
        self._aux = None
        self._seq = next(_sequence)

    def __repr__(self):
        return f"Value(data={self.data!r}, grad={self.grad!r})"

    def __float__(self):
        return self.data

    # -- binary operators -------------------------------------------------
    def __add__(self, other):
        if isinstance(other, Value):
            return _node(self.data + other.data, (self, other), "+", _add_backward)
        if isinstance(other, _NUMBER):
            return _node(self.data + other, (self,), "+", _identity_backward)
        return NotImplemented

    __radd__ = __add__  # c + x == x + c exactly, in torch as in IEEE

    def __sub__(self, other):
        if isinstance(other, Value):
            return _node(self.data - other.data, (self, other), "-", _sub_backward)
        if isinstance(other, _NUMBER):
            return _node(self.data - other, (self,), "-", _identity_backward)
        return NotImplemented

    def __rsub__(self, other):
        if isinstance(other, _NUMBER):
            return _node(other - self.data, (self,), "rsub", _neg_backward)
        return NotImplemented

    def __mul__(self, other):
        if isinstance(other, Value):
            return _node(self.data * other.data, (self, other), "*", _mul_backward)
        if isinstance(other, _NUMBER):
            return _node(self.data * other, (self,), "*", _scale_backward, float(other))
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, Value):
            return _node(_div(self.data, other.data), (self, other), "/", _div_backward)
        if isinstance(other, _NUMBER):
            other = float(other)
            return _node(_div(self.data, other), (self,), "/", _div_by_constant_backward, other)
        return NotImplemented

    def __rtruediv__(self, other):
        # torch computes c / x as x.reciprocal() * c (Tensor.__rtruediv__),
        # which rounds differently from a true division: mirror it.
        if isinstance(other, _NUMBER):
            other = float(other)
            return _node(_div(1.0, self.data) * other, (self,), "rdiv", _rdiv_backward, other)
        return NotImplemented

    def __pow__(self, other):
        if isinstance(other, Value):
            return _node(_pow(self.data, other.data), (self, other), "**", _pow_backward)
        if isinstance(other, _NUMBER):
            other = float(other)
            return _node(_pow_by_constant(self.data, other), (self,), "**", _pow_constant_exponent_backward, other)
        return NotImplemented

    def __rpow__(self, other):
        if isinstance(other, _NUMBER):
            other = float(other)
            return _node(_pow(other, self.data), (self,), "rpow", _pow_constant_base_backward, other)
        return NotImplemented

    # -- unary operators --------------------------------------------------
    def __neg__(self):
        return _node(-self.data, (self,), "neg", _neg_backward)

    def __abs__(self):
        return _node(abs(self.data), (self,), "abs", _abs_backward)

    def exp(self):
        return _node(floatmath.exp(self.data), (self,), "exp", _exp_backward)

    def log(self):
        return _node(floatmath.log(self.data), (self,), "log", _log_backward)

    def tanh(self):
        return _node(math.tanh(self.data), (self,), "tanh", _tanh_backward)

    def sigmoid(self):
        # torch's CPU kernel: 1 / (1 + exp(-x)); exp overflow gives exactly 0.
        return _node(1.0 / (1.0 + floatmath.exp(-self.data)), (self,), "sigmoid", _sigmoid_backward)

    def relu(self):
        x = self.data
        # torch: x < 0 ? 0 : x, so nan stays nan and -0.0 stays -0.0
        return _node(0.0 if x < 0.0 else x, (self,), "relu", _relu_backward)

    def sqrt(self):
        return _node(floatmath.sqrt(self.data), (self,), "sqrt", _sqrt_backward)

    # -- backpropagation --------------------------------------------------
    def backward(self, gradient=1.0):
        """Add d(self)/d(node) * gradient to the .grad of every node of the graph.

        Like torch's backward(retain_graph=True) with retain_grad() on every
        node: calling it twice accumulates twice.
        """
        BackwardPass.number += 1
        order = topological_order(self)
        for node in order:
            node._g = -0.0  # -0.0 + g is g exactly, so a -0.0 gradient keeps its sign
        self._g = float(gradient)
        for node in reversed(order):
            g = node._g
            node.grad += g
            backward = node._backward
            if backward is not None:
                backward(node, g)


def topological_order(root):
    """Nodes reachable from root, in creation order: every node after all of
    its operands (an operand exists before the node built from it).

    torch's engine runs ready nodes newest first (by sequence number), which
    is exactly the reverse of this order; iterative, so a 1,000,000-node
    chain needs no recursion limit.
    """
    seen = {root}
    stack = [root]
    while stack:
        for child in stack.pop()._prev:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return sorted(seen, key=_creation_order)


def linear(weights, inputs, bias):
    """bias + sum(w * x): one node instead of 2n (a neuron's hot loop).

    The sum is taken left to right from the bias, exactly as the unfused
    ``sum((w * x for ...), bias)`` rounds, so fusing changes no bit; the
    gradients (g * x, g * w, g) are the unfused ones too.
    """
    weights = tuple(weights)
    inputs = tuple(inputs)
    if len(weights) != len(inputs):
        raise ValueError(f"linear(): {len(weights)} weights but {len(inputs)} inputs")
    for v in weights + inputs:
        if not isinstance(v, Value):
            raise TypeError(f"linear() takes Values, not {type(v).__name__}: {v!r}")
    if not isinstance(bias, Value):
        bias = Value(bias)
    return _linear(weights, inputs, bias)


def _linear(weights, inputs, bias):
    """linear() without the checks, for callers whose operands are Values by
    construction (engine.nn): the checks would cost a tenth of an MLP step."""
    acc = bias.data
    for w, x in zip(weights, inputs):
        acc += w.data * x.data
    return _node(acc, (bias, *weights, *inputs), "linear", _linear_backward, (weights, inputs))


def _node(data, prev, op, backward, aux=None):
    out = Value.__new__(Value)
    out.data = data
    out.grad = 0.0
    out._g = 0.0
    out._seq = next(_sequence)
    if _GradMode.enabled:
        out._prev = prev
        out._op = op
        out._backward = backward
        out._aux = aux
    else:
        out._prev = ()
        out._op = ""
        out._backward = None
        out._aux = None
    return out


# -- backward functions: (node, upstream gradient) -> accumulate into operands.
# Formulas as in PyTorch's derivatives.yaml / FunctionsManual.cpp.

def _identity_backward(node, g):
    node._prev[0]._g += g


def _neg_backward(node, g):
    node._prev[0]._g += -g


def _add_backward(node, g):
    a, b = node._prev
    a._g += g
    b._g += g


def _sub_backward(node, g):
    a, b = node._prev
    a._g += g
    b._g += -g


def _mul_backward(node, g):
    a, b = node._prev
    a._g += g * b.data
    b._g += g * a.data


def _scale_backward(node, g):
    node._prev[0]._g += g * node._aux


def _div_backward(node, g):
    # div_tensor_self_backward: grad / other
    # div_tensor_other_backward: -grad * ((self / other) / other)
    a, b = node._prev
    a._g += _div(g, b.data)
    b._g += -g * _div(node.data, b.data)


def _div_by_constant_backward(node, g):
    node._prev[0]._g += _div(g, node._aux)


def _rdiv_backward(node, g):
    # mul's backward gives the reciprocal g * c; reciprocal's is -grad * r * r
    x = node._prev[0]
    r = _div(1.0, x.data)
    x._g += -(g * node._aux) * (r * r)


def _pow_constant_exponent_backward(node, g):
    # pow_backward: zero where the exponent is 0, else grad * (e * x ** (e - 1))
    e = node._aux
    if e != 0.0:
        x = node._prev[0]
        x._g += g * (e * _pow_by_constant(x.data, e - 1.0))


def _pow_backward(node, g):
    x, y = node._prev
    # pow_backward_self: where(y == 0, 0, grad * (y * x ** (y - 1)))
    if y.data != 0.0:
        x._g += g * (y.data * _pow(x.data, y.data - 1.0))
    # pow_backward_exponent: grad * where(x == 0 & y >= 0, 0, result * log(x))
    if x.data == 0.0 and y.data >= 0.0:
        y._g += g * 0.0
    else:
        y._g += g * (node.data * floatmath.log(x.data))


def _pow_constant_base_backward(node, g):
    base = node._aux
    y = node._prev[0]
    if base == 0.0 and y.data >= 0.0:
        y._g += g * 0.0
    else:
        y._g += g * (node.data * floatmath.log(base))


def _abs_backward(node, g):
    x = node._prev[0]
    x._g += g * floatmath.sign(x.data)


def _exp_backward(node, g):
    node._prev[0]._g += g * node.data


def _log_backward(node, g):
    x = node._prev[0]
    x._g += _div(g, x.data)


def _tanh_backward(node, g):
    node._prev[0]._g += g * floatmath.one_minus_square(node.data)


def _sigmoid_backward(node, g):
    y = node.data
    node._prev[0]._g += g * (1.0 - y) * y


def _relu_backward(node, g):
    # threshold_backward(grad, result, 0): result <= 0 ? 0 : grad
    if not node.data <= 0.0:
        node._prev[0]._g += g


def _sqrt_backward(node, g):
    node._prev[0]._g += _div(g, 2.0 * node.data)


def _linear_backward(node, g):
    weights, inputs = node._aux
    node._prev[0]._g += g
    for w, x in zip(weights, inputs):
        w._g += g * x.data
        x._g += g * w.data
