"""Dual: a number and its tangent, for forward-mode differentiation.

Every op of Value, on the same terms (numbers on either side, the same
methods).  A Dual's primal is computed by Value itself, so it is Value's
forward bit for bit; its tangent follows torch's forward-AD formula
(derivatives.yaml's ``result:`` lines; for ``auto_element_wise`` ops the
backward formula with the tangent as the gradient, which is Value's backward
expression too).

Levels keep perturbations apart: a Dual belongs to a level (an int, 0 for a
plain ``Dual(primal, tangent)``; engine.forward hands out newer ones) and its
primal and tangent are numbers or Duals of older levels, so a derivative of a
derivative is a Dual of Duals.  An op works at the newest level among its
operands; an operand of an older level is a constant there, with no tangent
(torch's undefined tangent: an exact zero, which stays 0 even times inf).
"""
import math
import numbers
from collections import namedtuple

from . import floatmath
from .value import (_GELU_3KAPPA, _GELU_BETA, _GELU_KAPPA, _GELU_TANH_BETA, _LN2, _SQRT1_2, SOFTPLUS_THRESHOLD,
                    Value)

_NUMBER = (float, int)  # as Value's operators: bool and numpy.float64 are numbers too


class Dual:
    __slots__ = ("primal", "tangent", "level")

    def __init__(self, primal, tangent, level=0):
        if type(level) is not int or level < 0:
            raise TypeError(f"Dual()'s level is an int >= 0, not {level!r}")
        self.primal = _component(primal, level, "primal")
        self.tangent = _component(tangent, level, "tangent")
        self.level = level

    def __repr__(self):
        level = f", level={self.level}" if self.level else ""
        return f"Dual(primal={self.primal!r}, tangent={self.tangent!r}{level})"

    def __float__(self):
        return float(self.primal)

    # -- operators, as Value's: a number operand is a constant (Value's
    # number paths: x / c, c / x and x ** c round as torch's scalar kernels)
    def __add__(self, other):
        return _binary(ADD, ADD_CONST, self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return _binary(SUB, SUB_CONST, self, other)

    def __rsub__(self, other):
        return _reflected(RSUB, self, other)

    def __mul__(self, other):
        return _binary(MUL, MUL_CONST, self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return _binary(DIV, DIV_CONST, self, other)

    def __rtruediv__(self, other):
        return _reflected(RDIV, self, other)

    def __pow__(self, other):
        return _binary(POW, POW_CONST, self, other)

    def __rpow__(self, other):
        return _reflected(RPOW, self, other)

    def __neg__(self):
        return _apply(NEG, (self,))

    def __abs__(self):
        return _apply(ABS, (self,))

    # -- methods ----------------------------------------------------------
    def exp(self): return _apply(EXP, (self,))
    def log(self): return _apply(LOG, (self,))
    def tanh(self): return _apply(TANH, (self,))
    def sigmoid(self): return _apply(SIGMOID, (self,))
    def relu(self): return _apply(RELU, (self,))
    def sqrt(self): return _apply(SQRT, (self,))
    def sin(self): return _apply(SIN, (self,))
    def cos(self): return _apply(COS, (self,))
    def log1p(self): return _apply(LOG1P, (self,))
    def expm1(self): return _apply(EXPM1, (self,))
    def exp2(self): return _apply(EXP2, (self,))
    def square(self): return _apply(SQUARE, (self,))
    def reciprocal(self): return _apply(RECIPROCAL, (self,))
    def elu(self): return _apply(ELU, (self,))
    def softplus(self): return _apply(SOFTPLUS, (self,))
    def silu(self): return _apply(SILU, (self,))

    def leaky_relu(self, negative_slope=0.01):
        return _apply(LEAKY_RELU, (self,), float(negative_slope))

    def gelu(self, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', not {approximate!r}")
        return _apply(GELU_TANH if approximate == "tanh" else GELU, (self,))

    def max(self, other):
        """torch.maximum; a number ``other`` is a constant operand."""
        return _apply(MAX, (self, _operand(other)))

    def min(self, other):
        """torch.minimum; a number ``other`` is a constant operand."""
        return _apply(MIN, (self, _operand(other)))

    def clamp(self, min, max):
        return _apply(CLAMP, (self,), (float(min), float(max)))


def _component(x, level, what):
    if isinstance(x, Dual):
        if x.level >= level:
            raise ValueError(f"a level-{level} Dual's {what} is a level-{x.level} Dual: "
                             f"it must be of an older (lower) level")
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, complex):
        return float(x)
    raise TypeError(f"a Dual's {what} is a real number or a Dual, not {type(x).__name__}: {x!r}")


def _operand(x):
    if isinstance(x, Dual):
        return x
    if isinstance(x, _NUMBER):
        return float(x)
    raise TypeError(f"expected a Dual or a number, not {type(x).__name__}: {x!r}")


def _binary(rule, const_rule, a, b):
    if isinstance(b, Dual):
        return _apply(rule, (a, b))
    if isinstance(b, _NUMBER):
        return _apply(const_rule, (a,), float(b))
    return NotImplemented


def _reflected(rule, a, number):
    if isinstance(number, _NUMBER):
        return _apply(rule, (a,), float(number))
    return NotImplemented


# -- the one place ops are evaluated --------------------------------------
Rule = namedtuple("Rule", "forward tangent")
# forward(*operands[, const]) on floats; tangent(*tangents, *primals, result[, const]),
# where a tangent is None for an operand that has none at the op's level.


def _apply(rule, operands, *const):
    """The op on floats and Duals of any levels: its result at the newest
    level, whose primal is the op one level down (floats at the bottom)."""
    level = -1
    for x in operands:
        if isinstance(x, Dual) and x.level > level:
            level = x.level
    if level < 0:
        return rule.forward(*operands, *const)
    primals, tangents = [], []
    for x in operands:
        if isinstance(x, Dual) and x.level == level:
            primals.append(x.primal)
            tangents.append(x.tangent)
        else:
            primals.append(x)
            tangents.append(None)
    result = _apply(rule, primals, *const)
    out = Dual.__new__(Dual)
    out.primal = result
    out.tangent = rule.tangent(*tangents, *primals, result, *const)
    out.level = level
    return out


def _on_values(call, arity=1):
    """A forward computed by Value: ``call`` gets the operands as Values."""
    def forward(*args):
        return call(*[Value(x) for x in args[:arity]], *args[arity:]).data
    return forward


# Tangent formulas are written once for floats and Duals alike: the helpers
# below are ops themselves, so a formula's own tangent (a second derivative)
# comes out of the same machinery.  Tensor-tensor ops (torch's formulas
# divide tensors) go through _apply, which treats floats as constant operands.
def _div(a, b):
    return _apply(DIV, (a, b))


def _real(x):
    return float(x)  # the float at the bottom of a Dual: branches compare values


# torch's efficient zero tensor, for an undefined tangent (None): x + 0 is x
# (a -0.0 stays), 0 - x is -x and 0 * x is 0.
def _plus(a, b):
    return b if a is None else a if b is None else a + b


def _minus(a, b):
    return a if b is None else -b if a is None else a - b


def _times(a, b):
    return None if a is None or b is None else a * b


_2_SQRTPI = 1.12837916709551257390  # M_2_SQRTPI: erf'(z) = 2 / sqrt(pi) * exp(-z * z)

# -- ops inside formulas that are not Value's ------------------------------
ERF = Rule(math.erf, lambda t, z, y: t * (_2_SQRTPI * _apply(EXP, (-(z * z),))))
ONE_MINUS_SQUARE = Rule(floatmath.one_minus_square, lambda t, y, r: t * (-2.0 * y))
FMA = Rule(floatmath.fma, lambda at, bt, ct, a, b, c, r: _plus(_plus(_times(at, b), _times(a, bt)), ct))

# -- Value's ops ----------------------------------------------------------
ADD = Rule(_on_values(lambda a, b: a + b, 2), lambda at, bt, a, b, y: _plus(at, bt))
SUB = Rule(_on_values(lambda a, b: a - b, 2), lambda at, bt, a, b, y: _minus(at, bt))
MUL = Rule(_on_values(lambda a, b: a * b, 2),
           lambda at, bt, a, b, y: _plus(_times(bt, a), _times(at, b)))
DIV = Rule(_on_values(lambda a, b: a / b, 2),
           lambda at, bt, a, b, y: _div(_minus(at, _times(bt, y)), b))


def _pow_tangent(at, bt, x, e, y):
    # pow_backward_self(at) + pow_backward_exponent(bt): where(e == 0, 0, ...) is a
    # zero even for an undefined tangent; the exponent's part keeps the undefined one.
    self_part = 0.0 if at is None or _real(e) == 0.0 else at * (e * _apply(POW, (x, e - 1.0)))
    zero_log = _real(x) == 0.0 and _real(e) >= 0.0
    return _plus(self_part, _times(bt, 0.0 if zero_log else y * _apply(LOG, (x,))))


POW = Rule(_on_values(lambda a, b: a ** b, 2), _pow_tangent)


def _max_min_tangent(wins):
    # other_t + where(a == b, 0.5, wins(a, b)) * (self_t - other_t): torch's own
    # formula, which rounds (b_t + (a_t - b_t) need not be a_t) and takes the
    # other's tangent at a nan.
    def tangent(at, bt, a, b, y):
        a, b = _real(a), _real(b)
        weight = 0.5 if a == b else float(wins(a, b))
        return _plus(bt, _times(weight, _minus(at, bt)))
    return tangent


MAX = Rule(_on_values(lambda a, b: a.max(b), 2), _max_min_tangent(lambda a, b: a > b))
MIN = Rule(_on_values(lambda a, b: a.min(b), 2), _max_min_tangent(lambda a, b: a < b))

ADD_CONST = Rule(_on_values(lambda a, c: a + c), lambda t, x, y, c: t)
SUB_CONST = Rule(_on_values(lambda a, c: a - c), lambda t, x, y, c: t)
RSUB = Rule(_on_values(lambda a, c: c - a), lambda t, x, y, c: -t)
MUL_CONST = Rule(_on_values(lambda a, c: a * c), lambda t, x, y, c: t * c)
DIV_CONST = Rule(_on_values(lambda a, c: a / c), lambda t, x, y, c: _apply(DIV_CONST, (t,), c))


def _rdiv_tangent(t, x, y, c):
    # torch's c / x is x.reciprocal() * c: reciprocal's tangent, times c
    r = _apply(RECIPROCAL, (x,))
    return (-t * (r * r)) * c


RDIV = Rule(_on_values(lambda a, c: c / a), _rdiv_tangent)
POW_CONST = Rule(_on_values(lambda a, c: a ** c),
                 lambda t, x, y, c: 0.0 if c == 0.0 else t * (c * _apply(POW_CONST, (x,), c - 1.0)))
RPOW = Rule(_on_values(lambda a, c: c ** a),
            lambda t, x, y, c: t * (0.0 if c == 0.0 and _real(x) >= 0.0 else y * floatmath.log(c)))


NEG = Rule(_on_values(lambda a: -a), lambda t, x, y: -t)
ABS = Rule(_on_values(abs), lambda t, x, y: t * floatmath.sign(_real(x)))  # sgn: a constant, derivative 0
EXP = Rule(_on_values(Value.exp), lambda t, x, y: t * y)
LOG = Rule(_on_values(Value.log), lambda t, x, y: _div(t, x))
TANH = Rule(_on_values(Value.tanh), lambda t, x, y: t * _apply(ONE_MINUS_SQUARE, (y,)))
SIGMOID = Rule(_on_values(Value.sigmoid), lambda t, x, y: t * (1.0 - y) * y)
# threshold_backward(t, result, 0): result <= 0 ? 0 : t
RELU = Rule(_on_values(Value.relu), lambda t, x, y: 0.0 if _real(y) <= 0.0 else t)
SQRT = Rule(_on_values(Value.sqrt), lambda t, x, y: _div(t, 2.0 * y))
SIN = Rule(_on_values(Value.sin), lambda t, x, y: t * _apply(COS, (x,)))
COS = Rule(_on_values(Value.cos), lambda t, x, y: t * -_apply(SIN, (x,)))
LOG1P = Rule(_on_values(Value.log1p), lambda t, x, y: _div(t, x + 1.0))
EXPM1 = Rule(_on_values(Value.expm1), lambda t, x, y: t * (y + 1.0))
EXP2 = Rule(_on_values(Value.exp2), lambda t, x, y: t * y * _LN2)
SQUARE = Rule(_on_values(Value.square), lambda t, x, y: t * (2.0 * x))  # pow_backward(t, x, 2)
RECIPROCAL = Rule(_on_values(Value.reciprocal), lambda t, x, y: -t * (y * y))
LEAKY_RELU = Rule(_on_values(Value.leaky_relu), lambda t, x, y, slope: t if _real(x) > 0.0 else t * slope)
CLAMP = Rule(_on_values(lambda a, bounds: a.clamp(*bounds)),
             lambda t, x, y, bounds: t if bounds[0] <= _real(x) <= bounds[1] else 0.0)


# Kinks at second order: torch differentiates elu_backward and softplus_backward
# with masks of their own (elu_double_backward's x < 0, softplus_double_backward's
# x < threshold), strict where the first derivative's are not: at the kink
# itself the x-dependence is a constant (its float), so the second derivative is 0.
def _elu_tangent(t, x, y):
    if not _real(x) <= 0.0:
        return t
    return t * _apply(EXP, (_real(x) if _real(x) == 0.0 else x,))


def _softplus_tangent(t, x, y):
    if _real(x) > SOFTPLUS_THRESHOLD:
        return t
    z = _apply(EXP, (_real(x) if _real(x) == SOFTPLUS_THRESHOLD else x,))
    return _div(t * z, z + 1.0)


def _silu_tangent(t, x, y):
    # infinitely_differentiable_silu_backward, the formula torch runs with grad
    # mode on (jvp's default): unfused, unlike Value's backward (silu_backward's kernel)
    s = _apply(SIGMOID, (x,))
    return t * s * (1.0 + x * (1.0 - s))


def _gelu_tangent(t, x, y):
    cdf = 0.5 * (1.0 + _apply(ERF, (x * _SQRT1_2,)))
    pdf = _GELU_BETA * _apply(EXP, (x * x * -0.5,))
    return t * (cdf + x * pdf)


def _gelu_tanh_tangent(t, x, y):
    # Value's backward, the fused sums as fmas: torch's kernel
    x_sq = x * x
    tanh = _apply(TANH, (_GELU_TANH_BETA * _apply(FMA, (_GELU_KAPPA, x_sq * x, x)),))
    left = 0.5 * x
    left_derivative = 0.5 * (1.0 + tanh)
    tanh_derivative = _apply(ONE_MINUS_SQUARE, (tanh,))
    inner_derivative = _GELU_TANH_BETA * _apply(FMA, (_GELU_3KAPPA, x_sq, 1.0))
    return t * (left_derivative + left * tanh_derivative * inner_derivative)


ELU = Rule(_on_values(Value.elu), _elu_tangent)
SOFTPLUS = Rule(_on_values(Value.softplus), _softplus_tangent)
SILU = Rule(_on_values(Value.silu), _silu_tangent)
GELU = Rule(_on_values(Value.gelu), _gelu_tangent)
GELU_TANH = Rule(_on_values(lambda a: a.gelu(approximate="tanh")), _gelu_tanh_tangent)
