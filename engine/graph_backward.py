"""Every op's backward as Value ops: the gradient as a differentiable graph.

``RULES[node._backward](node, grad)`` yields ``(operand, contribution)``
pairs: the contributions value.py's float backward adds to the operands'
gradients, in the same order and to the same bit, built from Values so that
backward(create_graph=True) and engine.grad can differentiate them again.
Each formula is torch's (tools/autograd/derivatives.yaml and
FunctionsManual.cpp), op for op, so that its derivatives are torch's double
backward: ``where`` keeps both branches as torch does (a zero gradient still
reaches the masked branch, and 0 * inf is nan there too), a backward kernel
is one node of backward_ops.py with its own derivative.

Where value.py skips a contribution that torch makes as a zero (relu, clamp,
max and min on their losing side, pow where the exponent is 0), the graph
adds torch's +0.0: the sum differs from the float path's at most in the sign
of a zero, which ``.grad`` (0.0 + g) does not show.
"""
from . import backward_ops as ops
from . import floatmath, value as v
from .backward_ops import where, zero

_LN2 = v._LN2


def _identity(node, g):           # x + c, x - c
    yield node._a, g


def _neg(node, g):                # -x, c - x
    yield node._a, -g


def _add(node, g):
    a, b = node._a, node._b
    yield a, g
    yield b, g


def _sub(node, g):
    a, b = node._a, node._b
    yield a, g
    yield b, -g


def _mul(node, g):                # mul_tensor_backward: grad * other
    a, b = node._a, node._b
    yield a, g * b
    yield b, g * a


def _scale(node, g):              # x * c
    yield node._a, g * node._b


def _div(node, g):                # grad / other; -grad * ((self / other) / other)
    a, b = node._a, node._b
    yield a, g / b
    yield b, -g * ((a / b) / b)    # self / other anew, as torch's formula: not the node itself


def _div_by_constant(node, g):
    yield node._a, g / node._b


def _rdiv(node, g):
    # torch: c / x is x.reciprocal() * c; reciprocal's backward -grad * (r * r)
    x = node._a
    r = x.reciprocal()
    yield x, -(g * node._b) * (r * r)


def _pow_constant_exponent(node, g):
    # pow_backward: zeros_like(self) for exponent 0, else grad * (e * self.pow(e - 1))
    e = node._b
    x = node._a
    yield x, zero() if e == 0.0 else g * ((x ** (e - 1.0)) * e)


def _pow(node, g):
    x, y = node._a, node._b
    # pow_backward_self: where(exponent == 0, 0, grad * (exponent * self.pow(exponent - 1)))
    yield x, where(y.data == 0.0, 0.0, g * (y * (x ** (y - 1.0))))
    # pow_backward_exponent: grad * where(self == 0 & exponent >= 0, 0, result * self.log())
    yield y, g * where(x.data == 0.0 and y.data >= 0.0, 0.0, node * x.log())


def _pow_constant_base(node, g):
    # pow_backward_exponent(grad, Scalar base, ...): grad * where(exponent >= 0, 0, result * log(0))
    # for base 0, grad * (result * log(base)) otherwise
    base = node._b
    y = node._a
    log_base = floatmath.log(base)
    if base == 0.0:
        yield y, g * where(y.data >= 0.0, 0.0, node * log_base)
    else:
        yield y, g * (node * log_base)


def _abs(node, g):                # grad * self.sgn()
    x = node._a
    yield x, g * ops.sgn(x)


def _exp(node, g):
    yield node._a, g * node


def _log(node, g):
    x = node._a
    yield x, g / x


def _tanh(node, g):
    yield node._a, ops.tanh_backward(g, node)


def _sigmoid(node, g):
    yield node._a, ops.sigmoid_backward(g, node)


def _relu(node, g):
    yield node._a, ops.threshold_backward(g, node)


def _sqrt(node, g):               # grad / (2 * result)
    yield node._a, g / (node * 2.0)


def _sin(node, g):
    x = node._a
    yield x, g * x.cos()


def _cos(node, g):
    x = node._a
    yield x, g * -x.sin()


def _log1p(node, g):              # log1p_backward: grad / (self + 1)
    x = node._a
    yield x, g / (x + 1.0)


def _expm1(node, g):
    yield node._a, g * (node + 1.0)


def _exp2(node, g):               # grad * result * M_LN2
    yield node._a, g * node * _LN2


def _square(node, g):
    # torch.square is pow(self, 2): pow_backward's grad * (2 * self.pow(1))
    x = node._a
    yield x, g * ((x ** 1.0) * 2.0)


def _reciprocal(node, g):         # -grad * (result * result)
    yield node._a, -g * (node * node)


def _leaky_relu(node, g):
    x = node._a
    yield x, ops.leaky_relu_backward(g, x, node._b)


def _elu(node, g):
    x = node._a
    yield x, ops.elu_backward(g, x)


def _softplus(node, g):
    x = node._a
    yield x, ops.softplus_backward(g, x)


def _silu(node, g):
    # With grad mode on, torch differentiates infinitely_differentiable_silu_backward:
    # grad * s * (1 + x * (1 - s)), s = sigmoid(x).  Its value here stays the
    # first-order kernel's (a fused multiply-add), as the float path rounds it.
    x = node._a
    s = x.sigmoid()
    formula = (g * s) * (1.0 + x * (1.0 - s))
    xv = x.data
    sv = 1.0 / (1.0 + floatmath.exp(-xv))
    yield x, ops.surrogate(g.data * sv * v._fma(xv, 1.0 - sv, 1.0), formula)


def _gelu(node, g):
    x = node._a
    yield x, ops.gelu_backward(g, x)


def _gelu_tanh(node, g):
    x = node._a
    yield x, ops.gelu_tanh_backward(g, x)


def _max(node, g):
    # self: where(self == other, grad / 2, grad).masked_fill_(self < other, 0)
    # other: where(self == other, grad / 2, grad).masked_fill_(self > other, 0)
    a, b = node._a, node._b
    tie = a.data == b.data
    yield a, where(a.data < b.data, 0.0, where(tie, g / 2.0, g))
    yield b, where(a.data > b.data, 0.0, where(tie, g / 2.0, g))


def _min(node, g):
    a, b = node._a, node._b
    tie = a.data == b.data
    yield a, where(a.data > b.data, 0.0, where(tie, g / 2.0, g))
    yield b, where(a.data < b.data, 0.0, where(tie, g / 2.0, g))


def _clamp(node, g):              # clamp_backward: where(min <= self <= max, grad, 0)
    low, high = node._b
    x = node._a
    yield x, where(low <= x.data <= high, g, 0.0)


def _linear(node, g):
    weights, inputs = node._b
    yield node._a[0], g
    for w, x in zip(weights, inputs):
        yield w, g * x
        yield x, g * w


RULES = {
    v._add_constant_backward: _identity,
    v._sub_constant_backward: _identity,
    v._neg_backward: _neg,
    v._rsub_backward: _neg,
    v._add_backward: _add,
    v._sub_backward: _sub,
    v._mul_backward: _mul,
    v._scale_backward: _scale,
    v._div_backward: _div,
    v._div_by_constant_backward: _div_by_constant,
    v._rdiv_backward: _rdiv,
    v._pow_constant_exponent_backward: _pow_constant_exponent,
    v._pow_backward: _pow,
    v._pow_constant_base_backward: _pow_constant_base,
    v._abs_backward: _abs,
    v._exp_backward: _exp,
    v._log_backward: _log,
    v._tanh_backward: _tanh,
    v._sigmoid_backward: _sigmoid,
    v._relu_backward: _relu,
    v._sqrt_backward: _sqrt,
    v._sin_backward: _sin,
    v._cos_backward: _cos,
    v._log1p_backward: _log1p,
    v._expm1_backward: _expm1,
    v._exp2_backward: _exp2,
    v._square_backward: _square,
    v._reciprocal_backward: _reciprocal,
    v._leaky_relu_backward: _leaky_relu,
    v._elu_backward: _elu,
    v._softplus_backward: _softplus,
    v._silu_backward: _silu,
    v._gelu_backward: _gelu,
    v._gelu_tanh_backward: _gelu_tanh,
    v._max_backward: _max,
    v._min_backward: _min,
    v._clamp_backward: _clamp,
    v._linear_backward: _linear,
    **ops.RULES,
}
