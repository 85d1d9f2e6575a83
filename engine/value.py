"""Value: a float that remembers how it was computed, and backpropagates.

Every operation's forward and backward follow PyTorch's float64 kernels and
its derivative formulas (tools/autograd/derivatives.yaml and
FunctionsManual.cpp), edge cases included: see floatmath for why plain Python
arithmetic is not enough.

A node holds its operands in two slots and a module-level backward function
in ``_backward``; nothing holds a node from below, so a dropped graph is freed
by reference counting alone (micrograd's closures make every node a cycle).

A node is one object, the only one the cyclic garbage collector tracks for it
(every instance of a Python class is tracked): no ``_prev`` tuple, no op name
(the backward function names the op, OP_NAMES).  Each tracked object is walked
again by every full collection while the graph grows, so fewer objects and
fewer slots make building a large graph cheaper (bench/README.md, pernode).
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
_next_seq = itertools.count().__next__
_creation_order = attrgetter("_seq")


class BackwardPass:
    """Numbers backward() calls, so per-pass state kept outside the nodes (a
    Function's gradient slots) can tell a new pass from the last one."""
    number = 0


_NUMBER = (float, int)  # bool and numpy.float64 are numbers too


class Value:
    # _a, _b: a binary op's two operands; a unary op's operand and its constant
    # (None without one); for more operands (linear, a Function, where) _a is
    # their tuple and _b what the backward needs besides.  _prev reads them.
    __slots__ = ("data", "grad", "_g", "_a", "_b", "_backward", "_seq", "__weakref__")

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
        self._a = self._b = self._backward = None
        self._seq = _next_seq()

    def __repr__(self):
        return f"Value(data={self.data!r}, grad={self.grad!r})"

    def __float__(self):
        return self.data

    @property
    def _prev(self):
        """The operands, a tuple (engine.viz, the harness and the tests read it)."""
        a = self._a
        if a is None or type(a) is tuple:
            return a or ()
        b = self._b
        return (a, b) if isinstance(b, Value) else (a,)

    @property
    def _op(self):
        """The op's name, '' for a leaf (engine.viz draws it)."""
        backward = self._backward
        if backward is None:
            return ""
        name = OP_NAMES.get(backward, backward.__name__)
        return name if type(name) is str else name(self)

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
            return _node(self.data + other.data, _add_backward, self, other)
        if isinstance(other, _NUMBER):
            return _node(self.data + other, _add_constant_backward, self)
        return NotImplemented

    __radd__ = __add__  # c + x == x + c exactly, in torch as in IEEE

    def __sub__(self, other):
        if isinstance(other, Value):
            return _node(self.data - other.data, _sub_backward, self, other)
        if isinstance(other, _NUMBER):
            return _node(self.data - other, _sub_constant_backward, self)
        return NotImplemented

    def __rsub__(self, other):
        if isinstance(other, _NUMBER):
            return _node(other - self.data, _rsub_backward, self)
        return NotImplemented

    def __mul__(self, other):
        if isinstance(other, Value):
            return _node(self.data * other.data, _mul_backward, self, other)
        if isinstance(other, _NUMBER):
            return _node(self.data * other, _scale_backward, self, float(other))
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, Value):
            return _node(_div(self.data, other.data), _div_backward, self, other)
        if isinstance(other, _NUMBER):
            other = float(other)
            return _node(_div(self.data, other), _div_by_constant_backward, self, other)
        return NotImplemented

    def __rtruediv__(self, other):
        # torch computes c / x as x.reciprocal() * c (Tensor.__rtruediv__),
        # which rounds differently from a true division: mirror it.
        if isinstance(other, _NUMBER):
            other = float(other)
            return _node(_div(1.0, self.data) * other, _rdiv_backward, self, other)
        return NotImplemented

    def __pow__(self, other):
        if isinstance(other, Value):
            return _node(_pow(self.data, other.data), _pow_backward, self, other)
        if isinstance(other, _NUMBER):
            other = float(other)
            return _node(_pow_by_constant(self.data, other), _pow_constant_exponent_backward, self, other)
        return NotImplemented

    def __rpow__(self, other):
        if isinstance(other, _NUMBER):
            other = float(other)
            return _node(_pow(other, self.data), _pow_constant_base_backward, self, other)
        return NotImplemented

    # -- unary operators --------------------------------------------------
    def __neg__(self):
        return _node(-self.data, _neg_backward, self)

    def __abs__(self):
        return _node(abs(self.data), _abs_backward, self)

    def exp(self):
        return _node(floatmath.exp(self.data), _exp_backward, self)

    def log(self):
        return _node(floatmath.log(self.data), _log_backward, self)

    def tanh(self):
        return _node(math.tanh(self.data), _tanh_backward, self)

    def sigmoid(self):
        # torch's CPU kernel: 1 / (1 + exp(-x)); exp overflow gives exactly 0.
        return _node(1.0 / (1.0 + floatmath.exp(-self.data)), _sigmoid_backward, self)

    def relu(self):
        x = self.data
        # torch: x < 0 ? 0 : x, so nan stays nan and -0.0 stays -0.0
        return _node(0.0 if x < 0.0 else x, _relu_backward, self)

    def sqrt(self):
        return _node(floatmath.sqrt(self.data), _sqrt_backward, self)

    def sin(self):
        return _node(floatmath.sin(self.data), _sin_backward, self)

    def cos(self):
        return _node(floatmath.cos(self.data), _cos_backward, self)

    def log1p(self):
        return _node(floatmath.log1p(self.data), _log1p_backward, self)

    def expm1(self):
        return _node(floatmath.expm1(self.data), _expm1_backward, self)

    def exp2(self):
        return _node(floatmath.exp2(self.data), _exp2_backward, self)

    def square(self):
        # torch.square is pow(x, 2): x * x in the kernel
        return _node(self.data * self.data, _square_backward, self)

    def reciprocal(self):
        return _node(_div(1.0, self.data), _reciprocal_backward, self)

    def leaky_relu(self, negative_slope=0.01):
        x = self.data
        negative_slope = float(negative_slope)
        # torch: x > 0 ? x : x * slope (nan takes the slope, and stays nan)
        return _node(x if x > 0.0 else x * negative_slope, _leaky_relu_backward, self,
                     negative_slope)

    def elu(self):
        # torch's kernel with alpha = 1: x <= 0 ? expm1(x) : x (expm1 keeps -0.0)
        x = self.data
        return _node(floatmath.expm1(x) if x <= 0.0 else x, _elu_backward, self)

    def softplus(self):
        # torch's beta = 1, threshold = 20: x itself above the threshold
        x = self.data
        return _node(x if x > SOFTPLUS_THRESHOLD else math.log1p(floatmath.exp(x)), _softplus_backward, self)

    def silu(self):
        x = self.data
        return _node(x / (1.0 + floatmath.exp(-x)), _silu_backward, self)

    def gelu(self, approximate="none"):
        """torch.nn.functional.gelu: x * Phi(x) with erf, or with
        ``approximate="tanh"`` the tanh form, each as torch's kernel rounds it."""
        x = self.data
        if approximate == "tanh":
            # torch's compiled kernel fuses x + kappa * x**3 into one fma
            inner = _GELU_TANH_BETA * _fma(_GELU_KAPPA, x * x * x, x)
            return _node(0.5 * x * (1.0 + math.tanh(inner)), _gelu_tanh_backward, self)
        if approximate != "none":
            raise ValueError(f"approximate must be 'none' or 'tanh', not {approximate!r}")
        return _node(x * 0.5 * (1.0 + math.erf(x * _SQRT1_2)), _gelu_backward, self)

    def max(self, other):
        """torch.maximum (a number ``other`` as a constant tensor): nan if
        either is nan; a tie splits the gradient."""
        other = other if isinstance(other, Value) else Value(other)
        a, b = self.data, other.data
        return _node(NAN if a != a or b != b else (b if a < b else a), _max_backward, self, other)

    def min(self, other):
        """torch.minimum (a number ``other`` as a constant tensor): nan if
        either is nan; a tie splits the gradient."""
        other = other if isinstance(other, Value) else Value(other)
        a, b = self.data, other.data
        return _node(NAN if a != a or b != b else (b if b < a else a), _min_backward, self, other)

    def clamp(self, min, max):
        """torch.clamp with number bounds: std::min(std::max(x, min), max),
        so nan stays nan and a zero keeps its sign at a zero bound."""
        low, high = float(min), float(max)
        x = self.data
        y = low if x < low else x
        return _node(high if high < y else y, _clamp_backward, self, (low, high))

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
        # Every node found starts the pass at -0.0 (-0.0 + g is g exactly, so
        # a -0.0 gradient keeps its sign): a -0.0 of this pass's own, whose
        # identity tells the nodes found from those a pass has yet to reach.
        found = _reachable(self, float("-0.0"))
        # torch's engine runs ready nodes newest first (by sequence number):
        # that is every node after all the nodes built from it.  A set
        # iterates in address order, close to the order of creation, which
        # leaves the sort little to do (the order found, breadth first, costs
        # the sort several times as much on a random DAG).
        order = sorted(set(found), key=_creation_order, reverse=True)
        self._g = float(gradient)
        for node in order:
            g = node._g
            node.grad += g
            backward = node._backward
            if backward is not None:
                backward(node, g)


def _reachable(root, mark):
    """Every node reachable from root (root first, then in the order found),
    its _g slot set to ``mark``: a set of a million nodes costs more than the
    slot, which the pass sets anyway.

    Breadth first over the list itself (a loop over a list sees what is
    appended to it): iterative, so a 1,000,000-node chain needs no recursion
    limit.
    """
    root._g = mark
    found = [root]
    for node in found:
        a = node._a
        if a is None:
            continue
        if type(a) is tuple:
            for child in a:
                if child._g is not mark:
                    child._g = mark
                    found.append(child)
            continue
        if a._g is not mark:
            a._g = mark
            found.append(a)
        b = node._b
        if isinstance(b, Value) and b._g is not mark:
            b._g = mark
            found.append(b)
    return found


def topological_order(root):
    """Nodes reachable from root, in creation order: every node after all of
    its operands (an operand exists before the node built from it)."""
    seen = {root}
    found = [root]
    for node in found:  # breadth first, as _reachable
        for child in node._prev:
            if child not in seen:
                seen.add(child)
                found.append(child)
    return sorted(found, key=_creation_order)


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
    return _node(acc, _linear_backward, (bias, *weights, *inputs), (weights, inputs))


_new = object.__new__


def _node(data, backward, a, b=None):
    """A new node: its value, its backward, its operands (see Value's slots)."""
    out = _new(Value)
    out.data = data
    out.grad = 0.0
    out._g = 0.0
    out._seq = _next_seq()
    if _GradMode.enabled:
        out._a = a
        out._b = b
        out._backward = backward
    else:
        out._a = out._b = out._backward = None
    return out


# -- backward functions: (node, upstream gradient) -> accumulate into operands.
# Formulas as in PyTorch's derivatives.yaml / FunctionsManual.cpp.

def _add_constant_backward(node, g):
    node._a._g += g


def _sub_constant_backward(node, g):
    node._a._g += g


def _neg_backward(node, g):
    node._a._g += -g


def _rsub_backward(node, g):
    node._a._g += -g


def _add_backward(node, g):
    a, b = node._a, node._b
    a._g += g
    b._g += g


def _sub_backward(node, g):
    a, b = node._a, node._b
    a._g += g
    b._g += -g


def _mul_backward(node, g):
    a, b = node._a, node._b
    a._g += g * b.data
    b._g += g * a.data


def _scale_backward(node, g):
    node._a._g += g * node._b


def _div_backward(node, g):
    # div_tensor_self_backward: grad / other
    # div_tensor_other_backward: -grad * ((self / other) / other)
    a, b = node._a, node._b
    a._g += _div(g, b.data)
    b._g += -g * _div(node.data, b.data)


def _div_by_constant_backward(node, g):
    node._a._g += _div(g, node._b)


def _rdiv_backward(node, g):
    # mul's backward gives the reciprocal g * c; reciprocal's is -grad * r * r
    x = node._a
    r = _div(1.0, x.data)
    x._g += -(g * node._b) * (r * r)


def _pow_constant_exponent_backward(node, g):
    # pow_backward: zero where the exponent is 0, else grad * (e * x ** (e - 1))
    e = node._b
    if e != 0.0:
        x = node._a
        x._g += g * (e * _pow_by_constant(x.data, e - 1.0))


def _pow_backward(node, g):
    x, y = node._a, node._b
    # pow_backward_self: where(y == 0, 0, grad * (y * x ** (y - 1)))
    if y.data != 0.0:
        x._g += g * (y.data * _pow(x.data, y.data - 1.0))
    # pow_backward_exponent: grad * where(x == 0 & y >= 0, 0, result * log(x))
    if x.data == 0.0 and y.data >= 0.0:
        y._g += g * 0.0
    else:
        y._g += g * (node.data * floatmath.log(x.data))


def _pow_constant_base_backward(node, g):
    base = node._b
    y = node._a
    if base == 0.0 and y.data >= 0.0:
        y._g += g * 0.0
    else:
        y._g += g * (node.data * floatmath.log(base))


def _abs_backward(node, g):
    x = node._a
    x._g += g * floatmath.sign(x.data)


def _exp_backward(node, g):
    node._a._g += g * node.data


def _log_backward(node, g):
    x = node._a
    x._g += _div(g, x.data)


def _tanh_backward(node, g):
    node._a._g += g * floatmath.one_minus_square(node.data)


def _sigmoid_backward(node, g):
    y = node.data
    node._a._g += g * (1.0 - y) * y


def _relu_backward(node, g):
    # threshold_backward(grad, result, 0): result <= 0 ? 0 : grad
    if not node.data <= 0.0:
        node._a._g += g


def _sqrt_backward(node, g):
    node._a._g += _div(g, 2.0 * node.data)


def _sin_backward(node, g):
    x = node._a
    x._g += g * floatmath.cos(x.data)


def _cos_backward(node, g):
    x = node._a
    x._g += g * -floatmath.sin(x.data)


def _log1p_backward(node, g):
    x = node._a
    x._g += _div(g, x.data + 1.0)


def _expm1_backward(node, g):
    node._a._g += g * (node.data + 1.0)


def _exp2_backward(node, g):
    # grad * result * M_LN2, left to right
    node._a._g += g * node.data * _LN2


def _square_backward(node, g):
    # pow_backward(grad, x, 2): grad * (2 * x ** 1)
    x = node._a
    x._g += g * (2.0 * x.data)


def _reciprocal_backward(node, g):
    r = node.data
    node._a._g += -g * (r * r)


def _leaky_relu_backward(node, g):
    # leaky_relu_backward: x > 0 ? grad : grad * slope
    x = node._a
    x._g += g if x.data > 0.0 else g * node._b


def _elu_backward(node, g):
    # elu_backward(is_result=false): x <= 0 ? grad * exp(x) : grad (alpha = scale = 1)
    x = node._a
    x._g += g * floatmath.exp(x.data) if x.data <= 0.0 else g


def _softplus_backward(node, g):
    # softplus_backward: x > threshold ? grad : grad * z / (z + 1), z = exp(x)
    x = node._a
    if x.data > SOFTPLUS_THRESHOLD:
        x._g += g
    else:
        z = math.exp(x.data)
        x._g += g * z / (z + 1.0)


def _silu_backward(node, g):
    x = node._a.data
    s = 1.0 / (1.0 + floatmath.exp(-x))
    # dy * s * (1 + x * (1 - s)), the last sum fused by torch's compiled kernel
    node._a._g += g * s * _fma(x, 1.0 - s, 1.0)


def _gelu_backward(node, g):
    x = node._a.data
    cdf = 0.5 * (1.0 + math.erf(x * _SQRT1_2))
    pdf = _GELU_BETA * math.exp(x * x * -0.5)
    node._a._g += g * (cdf + x * pdf)


def _gelu_tanh_backward(node, g):
    x = node._a.data
    # torch's kernel, with the three sums its compiler fuses into fmas
    x_sq = x * x
    t = math.tanh(_GELU_TANH_BETA * _fma(_GELU_KAPPA, x_sq * x, x))
    left = 0.5 * x
    left_derivative = 0.5 * (1.0 + t)
    tanh_derivative = floatmath.one_minus_square(t)
    inner_derivative = _GELU_TANH_BETA * _fma(_GELU_3KAPPA, x_sq, 1.0)
    node._a._g += g * (left_derivative + left * tanh_derivative * inner_derivative)


def _max_backward(node, g):
    # where(a == b, grad / 2, grad).masked_fill_(a < b, 0) for a, and (a > b) for b
    a, b = node._a, node._b
    if a.data == b.data:
        a._g += g / 2.0
        b._g += g / 2.0
        return
    if not a.data < b.data:
        a._g += g
    if not a.data > b.data:
        b._g += g


def _min_backward(node, g):
    a, b = node._a, node._b
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
    low, high = node._b
    x = node._a
    if low <= x.data <= high:
        x._g += g


def _linear_backward(node, g):
    weights, inputs = node._b
    node._a[0]._g += g
    for w, x in zip(weights, inputs):
        w._g += g * x.data
        x._g += g * w.data


# The op each backward function stands for (Value._op): what engine.viz draws.
# A name may be a function of the node (a Function's nodes are named by it).
OP_NAMES = {
    _add_backward: "+", _add_constant_backward: "+", _sub_backward: "-", _sub_constant_backward: "-",
    _rsub_backward: "rsub", _mul_backward: "*", _scale_backward: "*", _div_backward: "/",
    _div_by_constant_backward: "/", _rdiv_backward: "rdiv", _pow_backward: "**",
    _pow_constant_exponent_backward: "**", _pow_constant_base_backward: "rpow", _neg_backward: "neg",
    _abs_backward: "abs", _exp_backward: "exp", _log_backward: "log", _tanh_backward: "tanh",
    _sigmoid_backward: "sigmoid", _relu_backward: "relu", _sqrt_backward: "sqrt", _sin_backward: "sin",
    _cos_backward: "cos", _log1p_backward: "log1p", _expm1_backward: "expm1", _exp2_backward: "exp2",
    _square_backward: "square", _reciprocal_backward: "reciprocal", _leaky_relu_backward: "leaky_relu",
    _elu_backward: "elu", _softplus_backward: "softplus", _silu_backward: "silu", _gelu_backward: "gelu",
    _gelu_tanh_backward: "gelu_tanh", _max_backward: "max", _min_backward: "min", _clamp_backward: "clamp",
    _linear_backward: "linear",
}
