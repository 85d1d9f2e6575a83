"""The ops that only gradient graphs hold: torch's backward kernels as Values.

``backward(create_graph=True)`` and ``engine.grad`` build each gradient from
Value ops (graph_backward.py), so that the gradient can be differentiated
again.  Where torch's derivative formula calls a backward kernel
(``tanh_backward``, ``threshold_backward``, ``gelu_backward``, ...), the
gradient graph holds that kernel as one node here: its value is the engine's
first-order float formula to the bit, its own derivative torch's
(tools/autograd/derivatives.yaml, FunctionsManual.cpp's ``*_double_backward``).

Each node type is a rule, ``rule(node, gg) -> [(operand, contribution)]``,
in RULES under the node's backward function; that float backward runs the
rule on constants, so a first-order ``backward()`` through a gradient graph
(a gradient penalty) needs nothing else.
"""
import math

from . import floatmath
from .grad_mode import no_grad
from .value import (SOFTPLUS_THRESHOLD, Value, _GELU_BETA, _GELU_KAPPA, _GELU_3KAPPA, _GELU_TANH_BETA,
                    _SQRT1_2, OP_NAMES, _fma, _node)

RULES = {}  # a node's float backward function -> its graph rule


def graph_op(rule, name):
    """Register ``rule`` and return the float backward of its nodes, named ``name``."""
    def backward(node, g):
        with no_grad():
            for operand, contribution in rule(node, Value(g)):
                if contribution is not ZERO_TENSOR:
                    operand._g += contribution.data
    backward.__name__ = f"_{rule.__name__}_float"
    RULES[backward] = rule
    OP_NAMES[backward] = name
    return backward


def zero():
    """torch's zeros_like(grad): a gradient that is zero, not absent (0 * inf is still nan)."""
    return Value(0.0)


class ZeroTensor:
    """torch's efficient zero tensor, the derivative of sgn (abs's backward):
    products and quotients with it are itself (no 0 * inf = nan), a sum is the
    other term, and any other op sees a plain zero (torch's fallback
    materializes it: -z is -0.0, tanh_backward(z, y) is 0)."""
    __slots__ = ()
    data = 0.0

    def __mul__(self, other):
        return self

    __rmul__ = __truediv__ = __mul__

    def __rtruediv__(self, other):
        return other / Value(0.0)

    def __add__(self, other):
        return other

    __radd__ = __add__

    def __neg__(self):
        return Value(-0.0)

    def __float__(self):
        return 0.0

    def __repr__(self):
        return "ZERO_TENSOR"


ZERO_TENSOR = ZeroTensor()


def materialize(g):
    """A gradient as a Value: a zero tensor becomes a (constant) 0.0."""
    return Value(0.0) if g is ZERO_TENSOR else g


# -- where(cond, a, b), masked_fill (where(mask, 0, v)) ------------------------
def where(cond, a, b):
    """torch.where with a condition fixed by the forward values: either side a
    Value or a number (a constant)."""
    a = 0.0 if a is ZERO_TENSOR else a  # torch materializes it: a constant zero
    b = 0.0 if b is ZERO_TENSOR else b
    chosen = a if cond else b
    data = chosen.data if isinstance(chosen, Value) else float(chosen)
    prev = tuple(v for v in (a, b) if isinstance(v, Value))
    return _node(data, _where_backward, prev, (cond, isinstance(a, Value), isinstance(b, Value)))


def _where(node, gg):
    # derivatives.yaml: self: where(condition, grad, 0); other: where(condition, 0, grad)
    cond, a_is_value, b_is_value = node._b
    operands = iter(node._a)
    if a_is_value:
        yield next(operands), where(cond, gg, 0.0)
    if b_is_value:
        yield next(operands), where(cond, 0.0, gg)


_where_backward = graph_op(_where, "where")


# -- kernels with a grad_output operand -----------------------------------------
def tanh_backward(grad, y):
    grad = materialize(grad)
    return _node(grad.data * floatmath.one_minus_square(y.data), _tanh_backward_backward, grad, y)


def _tanh_backward(node, gg):
    # grad_output: tanh_backward(grad, output); output: grad * (-2 * output * grad_output)
    grad, y = node._a, node._b
    yield grad, tanh_backward(gg, y)
    yield y, gg * ((y * -2.0) * grad)


_tanh_backward_backward = graph_op(_tanh_backward, "tanh_backward")


def sigmoid_backward(grad, y):
    grad = materialize(grad)
    return _node(grad.data * (1.0 - y.data) * y.data, _sigmoid_backward_backward, grad, y)


def _sigmoid_backward(node, gg):
    # grad_output: sigmoid_backward(grad, output); output: grad * grad_output * (-2 * output + 1)
    grad, y = node._a, node._b
    yield grad, sigmoid_backward(gg, y)
    yield y, (gg * grad) * ((y * -2.0) + 1.0)


_sigmoid_backward_backward = graph_op(_sigmoid_backward, "sigmoid_backward")


def threshold_backward(grad, y):
    """relu's: result <= 0 ? 0 : grad (nan passes the gradient)."""
    grad = materialize(grad)
    return _node(0.0 if y.data <= 0.0 else grad.data, _threshold_backward_backward, grad, y)


def _threshold_backward(node, gg):
    # grad_output: threshold_backward(grad, self, threshold); self: zeros_like(grad)
    grad, y = node._a, node._b
    yield grad, threshold_backward(gg, y)
    yield y, zero()


_threshold_backward_backward = graph_op(_threshold_backward, "threshold_backward")


def leaky_relu_backward(grad, x, slope):
    grad = materialize(grad)
    g = grad.data
    return _node(g if x.data > 0.0 else g * slope, _leaky_relu_backward_backward, (grad, x), slope)


def _leaky_relu_backward(node, gg):
    # grad_output: leaky_relu_backward(grad, self, slope, false); self: zeros_like(grad)
    grad, x = node._a
    yield grad, leaky_relu_backward(gg, x, node._b)
    yield x, zero()


_leaky_relu_backward_backward = graph_op(_leaky_relu_backward, "leaky_relu_backward")


def elu_backward(grad, x):
    """alpha = scale = input_scale = 1: x <= 0 ? grad * exp(x) : grad."""
    grad = materialize(grad)
    g = grad.data
    return _node(g * floatmath.exp(x.data) if x.data <= 0.0 else g, _elu_backward_backward, grad, x)


def _elu_backward(node, gg):
    # self: elu_double_backward: elu_backward(grad * grad_output * input_scale, ...) * (self < 0)
    grad, x = node._a, node._b
    yield grad, elu_backward(gg, x)
    yield x, elu_backward(gg * grad, x) * (1.0 if x.data < 0.0 else 0.0)


_elu_backward_backward = graph_op(_elu_backward, "elu_backward")


def softplus_backward(grad, x):
    """beta = 1, threshold = 20: x > 20 ? grad : grad * z / (z + 1), z = exp(x)."""
    grad = materialize(grad)
    g = grad.data
    if x.data > SOFTPLUS_THRESHOLD:
        data = g
    else:
        z = math.exp(x.data)
        data = g * z / (z + 1.0)
    return _node(data, _softplus_backward_backward, grad, x)


def _softplus_backward(node, gg):
    # self: softplus_double_backward(grad * grad_output, self, beta, threshold):
    #   sigmoid_backward(grad, x.sigmoid()) * (x < threshold) * beta, x = self * beta
    grad, x = node._a, node._b
    yield grad, softplus_backward(gg, x)
    yield x, sigmoid_backward(gg * grad, x.sigmoid()) * (1.0 if x.data < SOFTPLUS_THRESHOLD else 0.0)


_softplus_backward_backward = graph_op(_softplus_backward, "softplus_backward")


def gelu_backward(grad, x):
    grad = materialize(grad)
    v = x.data
    cdf = 0.5 * (1.0 + math.erf(v * _SQRT1_2))
    pdf = _GELU_BETA * math.exp(v * v * -0.5)
    return _node(grad.data * (cdf + v * pdf), _gelu_backward_backward, grad, x)


def _gelu_backward(node, gg):
    # self: gelu_double_backward(grad, grad_output, self, "none"):
    #   ggI * gO * (2 * pdf - x^2 * pdf), pdf = kBeta * exp(-0.5 * x^2)
    grad, x = node._a, node._b
    yield grad, gelu_backward(gg, x)
    x_sq = x * x
    pdf = (x_sq * -0.5).exp() * _GELU_BETA
    yield x, (gg * grad) * (pdf * 2.0 - x_sq * pdf)


_gelu_backward_backward = graph_op(_gelu_backward, "gelu_backward")


def gelu_tanh_backward(grad, x):
    grad = materialize(grad)
    v = x.data
    v_sq = v * v
    t = math.tanh(_GELU_TANH_BETA * _fma(_GELU_KAPPA, v_sq * v, v))
    left_derivative = 0.5 * (1.0 + t)
    tanh_derivative = floatmath.one_minus_square(t)
    inner_derivative = _GELU_TANH_BETA * _fma(_GELU_3KAPPA, v_sq, 1.0)
    data = grad.data * (left_derivative + 0.5 * v * tanh_derivative * inner_derivative)
    return _node(data, _gelu_tanh_backward_backward, grad, x)


def _gelu_tanh_backward(node, gg):
    # self: gelu_double_backward(grad, grad_output, self, "tanh"), term by term
    grad, x = node._a, node._b
    yield grad, gelu_tanh_backward(gg, x)
    beta, kappa = _GELU_TANH_BETA, _GELU_KAPPA
    inner = (x + (x ** 3.0) * kappa) * beta
    tanh_inner = inner.tanh()
    sech_inner = 1.0 / cosh(inner)
    f = x * 0.5
    g = 1.0 - tanh_inner * tanh_inner
    h = (((x * (3.0 * kappa)) * x) + 1.0) * beta
    f_prime_gh = (g * 0.5) * h
    g_prime = ((sech_inner * 2.0) * ((-sech_inner) * tanh_inner)) * h
    g_prime_fh = (f * h) * g_prime
    h_prime = (x * (6.0 * kappa)) * beta
    h_prime_fg = (f * g) * h_prime
    yield x, (gg * grad) * (((f_prime_gh + f_prime_gh) + g_prime_fh) + h_prime_fg)


_gelu_tanh_backward_backward = graph_op(_gelu_tanh_backward, "gelu_tanh_backward")


# -- sgn (abs's derivative) ------------------------------------------------------
def sgn(x):
    """torch.sgn: -1, 0 or 1 (0 for nan); its derivative is an efficient zero tensor."""
    return _node(floatmath.sign(x.data), _sgn_backward, x)


def _sgn(node, gg):
    # sgn_backward: at::_efficientzerotensor for real inputs
    yield node._a, ZERO_TENSOR


_sgn_backward = graph_op(_sgn, "sgn")


# -- cosh and sinh (gelu_tanh's double backward) ------------------------------
def _overflowing(f, x):
    try:
        return f(x)
    except OverflowError:
        return math.copysign(math.inf, x) if f is math.sinh else math.inf


def cosh(x):
    return _node(_overflowing(math.cosh, x.data), _cosh_backward, x)


def sinh(x):
    return _node(_overflowing(math.sinh, x.data), _sinh_backward, x)


def _cosh(node, gg):
    x = node._a
    yield x, gg * sinh(x)  # grad * self.sinh()


def _sinh(node, gg):
    x = node._a
    yield x, gg * cosh(x)  # grad * self.cosh()


_cosh_backward = graph_op(_cosh, "cosh")
_sinh_backward = graph_op(_sinh, "sinh")


# -- a value with another expression's derivative ---------------------------
def surrogate(data, expression):
    """``data`` (the first-order kernel's rounding), differentiated as
    ``expression`` (the formula torch differentiates): silu's gradient, whose
    kernel fuses a multiply-add that the differentiable formula does not."""
    if expression is ZERO_TENSOR:
        return expression
    return _node(data, _surrogate_backward, expression)


def _surrogate(node, gg):
    yield node._a, gg


_surrogate_backward = graph_op(_surrogate, "surrogate")


# -- once_differentiable: a gradient that must not be differentiated ------------
def delayed_error(data, prev, message):
    """A gradient value whose own backward raises (torch's DelayedError)."""
    return _node(data, _delayed_error_backward, tuple(prev), message)


def _delayed_error(node, gg):
    raise RuntimeError(node._b)


_delayed_error_backward = graph_op(_delayed_error, "once_differentiable")
