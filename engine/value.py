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
NAN = math.nan
SOFTPLUS_THRESHOLD = 20.0
# gelu's constants, as torch's kernel spells them (M_SQRT1_2, M_2_SQRTPI, M_SQRT2)
_SQRT1_2 = 0.70710678118654752440
_GELU_BETA = 1.12837916709551257390 * 0.70710678118654752440 * 0.5     # 1 / sqrt(2 pi)
_GELU_TANH_BETA = 1.41421356237309504880 * 1.12837916709551257390 * 0.5  # sqrt(2 / pi)
_GELU_KAPPA = 0.044715
_GELU_3KAPPA = 3.0 * _GELU_KAPPA
_fma = floatmath.fma
_LN2 = 0.693147180559945309417  # M_LN2
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

    @property
    def grad_value(self):
        """The gradient as a Value in a graph, after backward(create_graph=True):
        what .grad holds, differentiable.  None when no such backward reached
        this node, or when .grad changed since (a float backward, zero_grad);
        set it to None to drop the graph when you zero .grad by hand.  Kept in
        the pass-gradient slot, so it costs a first-order node nothing."""
        from .autograd import grad_value
        return grad_value(self)

    @grad_value.setter
    def grad_value(self, value):
        if value is not None:
            raise ValueError("grad_value can only be set to None (backward(create_graph=True) sets it)")
        self._g = 0.0

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

    def sin(self):
        return _node(floatmath.sin(self.data), (self,), "sin", _sin_backward)

    def cos(self):
        return _node(floatmath.cos(self.data), (self,), "cos", _cos_backward)

    def log1p(self):
        return _node(floatmath.log1p(self.data), (self,), "log1p", _log1p_backward)

    def expm1(self):
        return _node(floatmath.expm1(self.data), (self,), "expm1", _expm1_backward)

    def exp2(self):
        return _node(floatmath.exp2(self.data), (self,), "exp2", _exp2_backward)

    def square(self):
        # torch.square is pow(x, 2): x * x in the kernel
        return _node(self.data * self.data, (self,), "square", _square_backward)

    def reciprocal(self):
        return _node(_div(1.0, self.data), (self,), "reciprocal", _reciprocal_backward)

    def leaky_relu(self, negative_slope=0.01):
        x = self.data
        negative_slope = float(negative_slope)
        # torch: x > 0 ? x : x * slope (nan takes the slope, and stays nan)
        return _node(x if x > 0.0 else x * negative_slope, (self,), "leaky_relu", _leaky_relu_backward,
                     negative_slope)

    def elu(self):
        # torch's kernel with alpha = 1: x <= 0 ? expm1(x) : x (expm1 keeps -0.0)
        x = self.data
        return _node(floatmath.expm1(x) if x <= 0.0 else x, (self,), "elu", _elu_backward)

    def softplus(self):
        # torch's beta = 1, threshold = 20: x itself above the threshold
        x = self.data
        return _node(x if x > SOFTPLUS_THRESHOLD else math.log1p(floatmath.exp(x)), (self,), "softplus",
                     _softplus_backward)

    def silu(self):
        x = self.data
        return _node(x / (1.0 + floatmath.exp(-x)), (self,), "silu", _silu_backward)

    def gelu(self, approximate="none"):
        """torch.nn.functional.gelu: x * Phi(x) with erf, or with
        ``approximate="tanh"`` the tanh form, each as torch's kernel rounds it."""
        x = self.data
        if approximate == "tanh":
            # torch's compiled kernel fuses x + kappa * x**3 into one fma
            inner = _GELU_TANH_BETA * _fma(_GELU_KAPPA, x * x * x, x)
            return _node(0.5 * x * (1.0 + math.tanh(inner)), (self,), "gelu_tanh", _gelu_tanh_backward)
        if approximate != "none":
            raise ValueError(f"approximate must be 'none' or 'tanh', not {approximate!r}")
        return _node(x * 0.5 * (1.0 + math.erf(x * _SQRT1_2)), (self,), "gelu", _gelu_backward)

    def max(self, other):
        """torch.maximum (a number ``other`` as a constant tensor): nan if
        either is nan; a tie splits the gradient."""
        other = other if isinstance(other, Value) else Value(other)
        a, b = self.data, other.data
        return _node(NAN if a != a or b != b else (b if a < b else a), (self, other), "max", _max_backward)

    def min(self, other):
        """torch.minimum (a number ``other`` as a constant tensor): nan if
        either is nan; a tie splits the gradient."""
        other = other if isinstance(other, Value) else Value(other)
        a, b = self.data, other.data
        return _node(NAN if a != a or b != b else (b if b < a else a), (self, other), "min", _min_backward)

    def clamp(self, min, max):
        """torch.clamp with number bounds: std::min(std::max(x, min), max),
        so nan stays nan and a zero keeps its sign at a zero bound."""
        low, high = float(min), float(max)
        x = self.data
        y = low if x < low else x
        return _node(high if high < y else y, (self,), "clamp", _clamp_backward, (low, high))

    # -- backpropagation --------------------------------------------------
    def backward(self, gradient=1.0, create_graph=False):
        """Add d(self)/d(node) * gradient to the .grad of every node of the graph.

        Like torch's backward(retain_graph=True) with retain_grad() on every
        node: calling it twice accumulates twice.

        With ``create_graph=True`` every gradient is also built as a Value in
        a graph, to be differentiated again: ``.grad`` still accumulates the
        float (to the bit, as without it), and ``.grad_value`` is that
        gradient as a Value (engine/autograd.py).
        """
        if create_graph:
            from .autograd import backward_graph
            return backward_graph(self, gradient)
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


def _sin_backward(node, g):
    x = node._prev[0]
    x._g += g * floatmath.cos(x.data)


def _cos_backward(node, g):
    x = node._prev[0]
    x._g += g * -floatmath.sin(x.data)


def _log1p_backward(node, g):
    x = node._prev[0]
    x._g += _div(g, x.data + 1.0)


def _expm1_backward(node, g):
    node._prev[0]._g += g * (node.data + 1.0)


def _exp2_backward(node, g):
    # grad * result * M_LN2, left to right
    node._prev[0]._g += g * node.data * _LN2


def _square_backward(node, g):
    # pow_backward(grad, x, 2): grad * (2 * x ** 1)
    x = node._prev[0]
    x._g += g * (2.0 * x.data)


def _reciprocal_backward(node, g):
    r = node.data
    node._prev[0]._g += -g * (r * r)


def _leaky_relu_backward(node, g):
    # leaky_relu_backward: x > 0 ? grad : grad * slope
    x = node._prev[0]
    x._g += g if x.data > 0.0 else g * node._aux


def _elu_backward(node, g):
    # elu_backward(is_result=false): x <= 0 ? grad * exp(x) : grad (alpha = scale = 1)
    x = node._prev[0]
    x._g += g * floatmath.exp(x.data) if x.data <= 0.0 else g


def _softplus_backward(node, g):
    # softplus_backward: x > threshold ? grad : grad * z / (z + 1), z = exp(x)
    x = node._prev[0]
    if x.data > SOFTPLUS_THRESHOLD:
        x._g += g
    else:
        z = math.exp(x.data)
        x._g += g * z / (z + 1.0)


def _silu_backward(node, g):
    x = node._prev[0].data
    s = 1.0 / (1.0 + floatmath.exp(-x))
    # dy * s * (1 + x * (1 - s)), the last sum fused by torch's compiled kernel
    node._prev[0]._g += g * s * _fma(x, 1.0 - s, 1.0)


def _gelu_backward(node, g):
    x = node._prev[0].data
    cdf = 0.5 * (1.0 + math.erf(x * _SQRT1_2))
    pdf = _GELU_BETA * math.exp(x * x * -0.5)
    node._prev[0]._g += g * (cdf + x * pdf)


def _gelu_tanh_backward(node, g):
    x = node._prev[0].data
    # torch's kernel, with the three sums its compiler fuses into fmas
    x_sq = x * x
    t = math.tanh(_GELU_TANH_BETA * _fma(_GELU_KAPPA, x_sq * x, x))
    left = 0.5 * x
    left_derivative = 0.5 * (1.0 + t)
    tanh_derivative = floatmath.one_minus_square(t)
    inner_derivative = _GELU_TANH_BETA * _fma(_GELU_3KAPPA, x_sq, 1.0)
    node._prev[0]._g += g * (left_derivative + left * tanh_derivative * inner_derivative)


def _max_backward(node, g):
    # where(a == b, grad / 2, grad).masked_fill_(a < b, 0) for a, and (a > b) for b
    a, b = node._prev
    if a.data == b.data:
        a._g += g / 2.0
        b._g += g / 2.0
        return
    if not a.data < b.data:
        a._g += g
    if not a.data > b.data:
        b._g += g


def _min_backward(node, g):
    a, b = node._prev
    if a.data == b.data:
        a._g += g / 2.0
        b._g += g / 2.0
        return
    if not a.data > b.data:
        a._g += g
    if not a.data < b.data:
        b._g += g


def _clamp_backward(node, g):
    # clamp_backward: where(min <= x <= max, grad, 0): the bounds pass the gradient
    low, high = node._aux
    x = node._prev[0]
    if low <= x.data <= high:
        x._g += g


def _linear_backward(node, g):
    weights, inputs = node._aux
    node._prev[0]._g += g
    for w, x in zip(weights, inputs):
        w._g += g * x.data
        x._g += g * w.data
