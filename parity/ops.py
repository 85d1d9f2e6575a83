"""The op table: every op the harness checks, described once, as data.

Each row says how to apply the op in PyTorch and in the high-precision
oracle (value and local derivatives, following torch's conventions at the
edges), how to sample operands and constants and which edge points to try;
its engine call (Python operators and methods only, so any engine can be
driven) comes by name from parity/sandbox/engine_ops.py, the one column the
sandboxed engine worker needs.  Generators, backends and reports read only
this table: adding an op is one row here, its line in engine_ops.py and its
engine method.

Operands are the op's Value inputs; ``const`` is its number operand, if any
(``x + c``, ``c - x``, ``x ** c`` ...).
"""
from dataclasses import dataclass
import math
from typing import Callable

import mpmath

from .sandbox.engine_ops import ENGINE_OPS, clamp_bounds
from .signs import Signs

INF = math.inf
NAN = math.nan

# Operand domains, used by the generator to pick operands (see generate.py).
ANY = "any"            # any real
POSITIVE = "positive"  # strictly positive, so log/sqrt/fractional powers stay real
NONZERO = "nonzero"    # denominators

# SLEEF's sin and cos (torch's vectorised kernels) promise 1 ulp for
# arguments up to 1e14 (its documentation); beyond, torch and a C library
# part by more than rounding (sin(1e17), cos(1e75) in a soak).
TRIG_ACCURATE_BELOW = 1e14

SPECIAL_POINTS = (0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1000.0, -1000.0,
                  710.0, -745.5, 1e-300, 1e308, INF, -INF, NAN)


@dataclass(frozen=True)
class Fact:
    """What torch computes for one op at one point (DESIGN.md's table of
    reference facts, per op): checked against live torch and against every
    engine in the edges family."""
    what: str
    operands: tuple
    value: float
    grads: tuple
    const: float = None


@dataclass(frozen=True)
class Op:
    name: str
    arity: int                    # number of Value operands
    torch: Callable               # (*tensors[, const]) -> tensor
    oracle: Callable              # (*mpf operands[, const]) -> mpf value
    partials: Callable            # (*mpf operands, out[, const]) -> tuple of d out / d operand;
                                  # None where torch's backward selects a zero (a nan upstream gives 0)
    domains: tuple = (ANY,)       # one per operand
    constants: tuple = ()         # constants this op is sampled with (empty: no const)
    edge_constants: tuple = ()    # those of them on an edge: random graphs take them at the edge rate
    edges: tuple = SPECIAL_POINTS  # operand values to try in the edges family
    kink: tuple = ()              # operand points where finite differences are meaningless
    facts: tuple = ()             # Facts: torch's values and gradients at its edges (the edges family's table)
    scalar_loop: bool = False     # torch's SIMD lambda rounds unlike its scalar one, which a 0-d tensor
                                  # runs: batches of draws must run the scalar loop (backends/torch.py)
    formula_error: Callable = None  # (*operands, out[, const]) -> (value's, (each partial's,)): how far
                                    # torch's own formula can be off, absolute, in units of float64's
                                    # unit roundoff u, where a cancellation inside the op (gelu's
                                    # 1 + erf(x) at x << 0) takes it beyond a rounding of the result;
                                    # both spread estimates add noise that size.  Plain arithmetic
                                    # only: it runs on mpf numbers and on tensors.
    accurate_below: float = INF   # operand magnitude up to which torch's kernel and a C library agree to
                                  # about an ulp of the result; beyond it (sin, cos of huge arguments:
                                  # their argument reductions differ) no cheap estimate holds
    built_from: tuple = ()        # ops a micrograd-style engine often builds this one from (a - b as
                                  # a + (-b), -a as a * -1): a wrong one of them explains this one's
                                  # failures (diagnosis.py)
    signs: Signs = None           # the signs of zeros and infinities where the op meets a zero: a formula
                                  # for the value and per partial, as torch computes them (signs.py); None:
                                  # the oracle asks torch (a row made at run time)
    symbol: str = ""              # for readable graphs: "+", "exp", ...
    engine: Callable = None       # (*operands[, const]) -> engine Value; None: ENGINE_OPS[name]

    def __post_init__(self):
        if len(self.domains) != self.arity:
            raise ValueError(f"op {self.name!r}: {len(self.domains)} domains for {self.arity} operands")
        if self.engine is None:
            if self.name not in ENGINE_OPS:
                raise ValueError(f"op {self.name!r} has no engine call: add it to parity/sandbox/engine_ops.py")
            object.__setattr__(self, "engine", ENGINE_OPS[self.name])

    @property
    def has_const(self):
        return bool(self.constants)

    def apply_engine(self, operands, const=None):
        return self.engine(*operands, const) if self.has_const else self.engine(*operands)

    def apply_torch(self, operands, const=None):
        return self.torch(*operands, const) if self.has_const else self.torch(*operands)

    def apply_oracle(self, operands, const=None):
        return self.oracle(*operands, const) if self.has_const else self.oracle(*operands)

    def oracle_partials(self, operands, out, const=None):
        if self.has_const:
            return self.partials(*operands, out, const)
        return self.partials(*operands, out)

    def formula_errors(self, operands, out, const=None):
        if self.has_const:
            return self.formula_error(*operands, out, const)
        return self.formula_error(*operands, out)


# -- the oracle's real-valued mpmath functions, with C/torch conventions -----
# mpmath returns complex numbers outside the real domain and raises at poles;
# float64 kernels return nan and ±inf.
mpf = mpmath.mpf
M_INF = mpf("inf")
M_NAN = mpf("nan")


def _isnan(x):
    return mpmath.isnan(x)


def m_log(x):
    if _isnan(x) or x < 0:
        return M_NAN
    if x == 0:
        return -M_INF
    return mpmath.log(x)


def m_sqrt(x):
    if _isnan(x) or x < 0:
        return M_NAN
    return mpmath.sqrt(x)


def m_div(a, b):
    if b == 0:
        if a == 0 or _isnan(a):
            return M_NAN
        return M_INF if a > 0 else -M_INF  # mpf has no -0.0: a zero divisor counts as +0
    return a / b


def _is_integer(y):
    return mpmath.isfinite(y) and y == mpmath.floor(y)


def m_pow(x, y):
    """C99 pow() on mpf, including its special cases."""
    if y == 0:
        return mpf(1)
    if x == 1:
        return mpf(1)
    if _isnan(x) or _isnan(y):
        return M_NAN
    if mpmath.isinf(y):
        ax = abs(x)
        if ax == 1:
            return mpf(1)
        return (M_INF if ax > 1 else mpf(0)) if y > 0 else (mpf(0) if ax > 1 else M_INF)
    if mpmath.isinf(x):
        if x > 0:
            return M_INF if y > 0 else mpf(0)
        odd = _is_integer(y) and int(y) % 2 == 1
        if y > 0:
            return -M_INF if odd else M_INF
        return mpf(0)
    if x == 0:
        if y > 0:
            return mpf(0)
        return M_INF
    if x < 0 and not _is_integer(y):
        return M_NAN
    return mpmath.power(x, y)


def m_pow_by_constant(x, e):
    # torch runs x ** 0.5 as sqrt and x ** -0.5 as rsqrt: nan at -inf
    if x == -M_INF and e in (0.5, -0.5):
        return M_NAN
    return m_pow(x, e)


def m_exp(x):
    return mpmath.exp(x)


def m_tanh(x):
    if mpmath.isinf(x):
        return mpf(1) if x > 0 else mpf(-1)
    return mpmath.tanh(x)


def m_sigmoid(x):
    if _isnan(x):
        return M_NAN
    return 1 / (1 + mpmath.exp(-x))


def m_relu(x):
    if _isnan(x):
        return M_NAN
    return x if x > 0 else mpf(0)


def m_sign(x):
    if _isnan(x) or x == 0:
        return mpf(0)
    return mpf(1) if x > 0 else mpf(-1)


def m_abs(x):
    return abs(x)


def m_sin(x):
    if mpmath.isinf(x):
        return M_NAN
    return mpmath.sin(x)


def m_cos(x):
    if mpmath.isinf(x):
        return M_NAN
    return mpmath.cos(x)


def m_log1p(x):
    if _isnan(x) or x < -1:
        return M_NAN
    if x == -1:
        return -M_INF
    return mpmath.log1p(x)


def m_leaky_relu(x, slope):
    return x if x > 0 else x * slope  # nan is not > 0: nan * slope, nan


def _leaky_relu_partials(x, out, slope):
    return (mpf(1) if x > 0 else mpf(slope),)


def m_elu(x):
    return x if (_isnan(x) or x > 0) else mpmath.expm1(x)


def _elu_partials(x, out):
    return (mpf(1) if (_isnan(x) or x > 0) else mpmath.exp(x),)


SOFTPLUS_THRESHOLD = 20  # torch's default: x itself above it (beta = 1)


def m_softplus(x):
    return x if x > SOFTPLUS_THRESHOLD else mpmath.log1p(mpmath.exp(x))


def _softplus_partials(x, out):
    if x > SOFTPLUS_THRESHOLD:
        return (mpf(1),)
    z = mpmath.exp(x)
    return (z / (z + 1),)


def m_silu(x):
    if x == -M_INF:
        return M_NAN  # -inf / (1 + exp(inf)) = -inf / inf in float64
    return x * m_sigmoid(x)


def _silu_partials(x, out):
    s = m_sigmoid(x)
    return (s * (1 + x * (1 - s)),)  # nan at ±inf, as torch's: 0 * -inf, inf * 0


# gelu's constants are torch's float64 ones (M_SQRT1_2, M_2_SQRTPI, M_SQRT2,
# 0.044715): the oracle computes torch's function exactly, not a nearby one.
_SQRT1_2 = mpf(0.70710678118654752440)
_GELU_BETA = mpf(1.12837916709551257390 * 0.70710678118654752440 * 0.5)
_GELU_TANH_BETA = mpf(1.41421356237309504880 * 1.12837916709551257390 * 0.5)
_GELU_KAPPA = mpf(0.044715)


def _erfc(z):
    # mpmath's erfc fails beyond about 1e307; past 1e5 it is below 2**-1e10
    return mpf(0) if z > 1e5 else mpmath.erfc(z)


def m_gelu(x):
    # x / 2 * (1 + erf(x / sqrt 2)), the sum as erfc: exact where it is tiny
    if mpmath.isinf(x):
        return x if x > 0 else M_NAN  # -inf * 0 in float64
    return x / 2 * _erfc(-x * _SQRT1_2)


def _gelu_partials(x, out):
    if mpmath.isinf(x):
        return (M_NAN,)  # torch's cdf + x * pdf: inf * 0
    return (_erfc(-x * _SQRT1_2) / 2 + x * _GELU_BETA * mpmath.exp(-x * x / 2),)


# torch's gelu computes 1 + erf(x / sqrt 2) (or 1 + tanh(...)), which cancels
# for x << 0: the erf's (tanh's) rounding, about u, is then the sum's whole
# error, absolute: x / 2 * u or so in the value.  Its backward adds x * pdf
# to cdf = (1 + erf) / 2, as far off; the tanh form's adds the tanh
# derivative 1 - t**2, off by 2u from t's rounding, times x / 2 times the
# inner derivative sqrt(2 / pi) (1 + 3 * 0.044715 * x**2).  In units of u.
def _gelu_formula_error(x, out):
    return abs(x), (2,)


def _gelu_tanh_formula_error(x, out):
    return abs(x), (2 + abs(x) * (1 + 0.135 * x * x),)


def _gelu_tanh_inner(x):
    return _GELU_TANH_BETA * (x + _GELU_KAPPA * x ** 3)


def m_gelu_tanh(x):
    if mpmath.isinf(x):
        return x if x > 0 else M_NAN
    return x / 2 * (1 + m_tanh(_gelu_tanh_inner(x)))


def _gelu_tanh_partials(x, out):
    if math.isinf(float(x) * float(x)):
        return (M_NAN,)  # torch's x * x overflows: 0.5 x * (1 - tanh**2) * inf is x * 0 * inf
    t = m_tanh(_gelu_tanh_inner(x))
    return ((1 + t) / 2 + x / 2 * (1 - t * t) * _GELU_TANH_BETA * (1 + 3 * _GELU_KAPPA * x * x),)


def m_maximum(a, b):
    if _isnan(a) or _isnan(b):
        return M_NAN
    return b if a < b else a


def m_minimum(a, b):
    if _isnan(a) or _isnan(b):
        return M_NAN
    return b if b < a else a


def _tie_split_partials(a, b, loses):
    """torch.maximum's and minimum's backward: where(a == b, grad / 2, grad),
    then masked_fill_(loses(operand, other), 0) - a selected zero (None)."""
    if a == b:
        return mpf(0.5), mpf(0.5)
    return (None if loses(a, b) else mpf(1)), (None if loses(b, a) else mpf(1))


def m_clamp(x, c):
    low, high = map(mpf, clamp_bounds(c))
    if _isnan(x):
        return M_NAN
    y = low if x < low else x
    return high if high < y else y


def _clamp_partials(x, out, c):
    # clamp_backward: where(min <= x <= max, grad, 0): the bounds pass it
    low, high = clamp_bounds(c)
    return (mpf(1) if low <= x <= high else None,)


_LN2 = mpf(0.693147180559945309417)  # M_LN2: torch's grad * result * M_LN2


def _functional(name, **kwargs):
    """torch.nn.functional.<name>, imported on the first call (importing
    torch takes seconds, and the table is read without it)."""
    def apply(*args):
        import torch.nn.functional
        return getattr(torch.nn.functional, name)(*args, **kwargs)
    return apply


def _pow_partials(x, y, out):
    # pow_backward_self / pow_backward_exponent (FunctionsManual.cpp)
    dx = None if y == 0 else y * m_pow(x, y - 1)
    dy = mpf(0) if (x == 0 and y >= 0) else out * m_log(x)
    return dx, dy


def _rdiv_torch(x, c):
    return x.reciprocal() * c  # exactly what Tensor.__rtruediv__ does


_SUM_CONSTANTS = (1.0, -1.0, 0.5, 2.0, 3.0, -0.25, 0.0)
_LEAKY_SLOPES = (0.01, 0.2, 0.1)   # torch's default first
_CLAMP_LOWS = (0.0, -1.0, -0.5, 2.0)  # clamp to [c, c + 1]
_CLAMP_KINKS = tuple(sorted({b for c in _CLAMP_LOWS for b in clamp_bounds(c)}))
_POW_EXPONENTS = (2.0, 3.0, 0.5, -1.0, -0.5, 1.5, -2.0, 0.0, 1.0, 4.0)
_POW_BASES = (2.0, 0.5, 3.0, 10.0, 1.0, 0.0, -2.0)

OPS = {op.name: op for op in [
    Op("add", 2, lambda a, b: a + b, lambda a, b: a + b,
       lambda a, b, out: (mpf(1), mpf(1)), domains=(ANY, ANY), signs=Signs("x + y"), symbol="+"),
    Op("sub", 2, lambda a, b: a - b, lambda a, b: a - b,
       lambda a, b, out: (mpf(1), mpf(-1)), domains=(ANY, ANY), built_from=("add", "neg"),
       signs=Signs("x - y"), symbol="-"),
    Op("mul", 2, lambda a, b: a * b, lambda a, b: a * b,
       lambda a, b, out: (b, a), domains=(ANY, ANY), signs=Signs("x * y"), symbol="*"),
    Op("div", 2, lambda a, b: a / b, m_div,
       lambda a, b, out: (m_div(mpf(1), b), -m_div(m_div(a, b), b)), domains=(ANY, NONZERO),
       built_from=("mul", "pow_const"), signs=Signs("x / y", ("1 / y", "-(x / y) / y")), symbol="/"),
    Op("pow", 2, lambda a, b: a ** b, m_pow, _pow_partials,
       domains=(POSITIVE, ANY), scalar_loop=True,
       signs=Signs("x ** y", ("y * x ** (y - 1)", "x ** y * log(x)")), symbol="**"),
    Op("add_const", 1, lambda a, c: a + c, lambda a, c: a + c,
       lambda a, out, c: (mpf(1),), constants=_SUM_CONSTANTS, built_from=("add",), signs=Signs("x + c"), symbol="+"),
    Op("radd", 1, lambda a, c: c + a, lambda a, c: c + a,
       lambda a, out, c: (mpf(1),), constants=_SUM_CONSTANTS, built_from=("add", "add_const"),
       signs=Signs("c + x"), symbol="+"),
    Op("sub_const", 1, lambda a, c: a - c, lambda a, c: a - c,
       lambda a, out, c: (mpf(1),), constants=_SUM_CONSTANTS,
       built_from=("add", "add_const", "neg", "sub"), signs=Signs("x - c"), symbol="-"),
    Op("rsub", 1, lambda a, c: c - a, lambda a, c: c - a,
       lambda a, out, c: (mpf(-1),), constants=_SUM_CONSTANTS,
       built_from=("add", "add_const", "neg", "sub"), signs=Signs("c - x"), symbol="-"),
    Op("mul_const", 1, lambda a, c: a * c, lambda a, c: a * c,
       lambda a, out, c: (mpf(c),), constants=_SUM_CONSTANTS, edge_constants=(0.0,), built_from=("mul",),
       signs=Signs("x * c"), symbol="*"),
    Op("rmul", 1, lambda a, c: c * a, lambda a, c: c * a,
       lambda a, out, c: (mpf(c),), constants=_SUM_CONSTANTS, edge_constants=(0.0,),
       built_from=("mul", "mul_const"), signs=Signs("c * x"), symbol="*"),
    Op("div_const", 1, lambda a, c: a / c, lambda a, c: m_div(a, mpf(c)),
       lambda a, out, c: (m_div(mpf(1), mpf(c)),), constants=(2.0, -4.0, 0.5, 3.0, 0.0), edge_constants=(0.0,),
       built_from=("mul", "mul_const", "pow_const", "div"), signs=Signs("x / c"), symbol="/"),
    Op("rdiv", 1, _rdiv_torch, lambda a, c: m_div(mpf(1), a) * c,
       lambda a, out, c: (-mpf(c) * m_div(mpf(1), a) ** 2,), domains=(NONZERO,),
       constants=(1.0, 2.0, -3.0, 0.5), kink=(0.0,), built_from=("mul", "mul_const", "pow_const", "div"),
       signs=Signs("1 / x * c"), symbol="/"),
    Op("pow_const", 1, lambda a, c: a ** c, m_pow_by_constant,
       lambda a, out, c: (None if c == 0 else c * m_pow_by_constant(a, mpf(c) - 1),),
       domains=(POSITIVE,), constants=_POW_EXPONENTS, edge_constants=(0.0,), kink=(0.0,), scalar_loop=True,
       signs=Signs("powc(x, c)", ("c * powc(x, c - 1)",)), symbol="**"),
    Op("rpow", 1, lambda a, c: c ** a, lambda a, c: m_pow(mpf(c), a),
       lambda a, out, c: (mpf(0) if (c == 0 and a >= 0) else out * m_log(mpf(c)),),
       constants=_POW_BASES, edge_constants=(0.0, -2.0), kink=(0.0,), scalar_loop=True,
       signs=Signs("c ** x"), symbol="**"),
    Op("neg", 1, lambda a: -a, lambda a: -a, lambda a, out: (mpf(-1),),
       built_from=("mul", "mul_const"), signs=Signs("-x"), symbol="neg"),
    Op("abs", 1, lambda a: a.abs(), m_abs, lambda a, out: (m_sign(a),),
       kink=(0.0,), signs=Signs("abs(x)"), symbol="abs"),
    Op("exp", 1, lambda a: a.exp(), m_exp, lambda a, out: (out,), signs=Signs("1"), symbol="exp"),
    Op("log", 1, lambda a: a.log(), m_log, lambda a, out: (m_div(mpf(1), a),),
       domains=(POSITIVE,), kink=(0.0,), signs=Signs("log(x)", ("1 / x",)), symbol="log"),
    Op("tanh", 1, lambda a: a.tanh(), m_tanh, lambda a, out: (1 - out * out,),
       signs=Signs("x"), symbol="tanh"),
    Op("sigmoid", 1, lambda a: a.sigmoid(), m_sigmoid,
       lambda a, out: ((1 - out) * out,), scalar_loop=True, signs=Signs("1"), symbol="sigmoid"),
    Op("relu", 1, lambda a: a.relu(), m_relu,
       lambda a, out: (mpf(1) if (_isnan(out) or out > 0) else None,), kink=(0.0,),
       signs=Signs("max(x, 0)"), symbol="relu"),
    Op("sqrt", 1, lambda a: a.sqrt(), m_sqrt,
       lambda a, out: (m_div(mpf(1), 2 * out),), domains=(POSITIVE,), kink=(0.0,),
       signs=Signs("sqrt(x)", ("1 / (2 * sqrt(x))",)), symbol="sqrt"),
    Op("sin", 1, lambda a: a.sin(), m_sin, lambda a, out: (m_cos(a),),
       facts=(Fact("sin(inf)", (INF,), NAN, (NAN,)),), accurate_below=TRIG_ACCURATE_BELOW,
       signs=Signs("x"), symbol="sin"),
    Op("cos", 1, lambda a: a.cos(), m_cos, lambda a, out: (-m_sin(a),),
       facts=(Fact("cos(-inf)", (-INF,), NAN, (NAN,)),), accurate_below=TRIG_ACCURATE_BELOW,
       signs=Signs("1"), symbol="cos"),
    Op("leaky_relu", 1, lambda a, c: _functional("leaky_relu")(a, c), m_leaky_relu, _leaky_relu_partials,
       constants=_LEAKY_SLOPES, kink=(0.0,),
       facts=(Fact("leaky_relu(x) at 0: the slope's side", (0.0,), 0.0, (0.01,), const=0.01),
              Fact("leaky_relu(nan): the slope's side", (NAN,), NAN, (0.01,), const=0.01)),
       signs=Signs("x * c"), symbol="leaky_relu"),
    Op("softplus", 1, _functional("softplus"), m_softplus, _softplus_partials,
       edges=SPECIAL_POINTS + (20.0, 20.000000000000004, 19.999999999999996), kink=(20.0,),
       facts=(Fact("softplus(x) at its threshold 20: log1p(exp(x))", (20.0,), 20.000000002061153,
                   (0.9999999979388464,)),
              Fact("softplus(x) above its threshold 20: x", (20.000000000000004,), 20.000000000000004, (1.0,)),
              Fact("softplus(-inf)", (-INF,), 0.0, (0.0,))),
       scalar_loop=True, signs=Signs("1"), symbol="softplus"),
    Op("silu", 1, _functional("silu"), m_silu, _silu_partials,
       facts=(Fact("silu(-inf): -inf / inf", (-INF,), NAN, (NAN,)),
              Fact("silu(-1000): exp(1000) overflows", (-1000.0,), -0.0, (0.0,))),
       scalar_loop=True, signs=Signs("x"), symbol="silu"),
    Op("gelu", 1, _functional("gelu"), m_gelu, _gelu_partials, formula_error=_gelu_formula_error,
       facts=(Fact("gelu(-inf): -inf * 0", (-INF,), NAN, (NAN,)), Fact("gelu(inf)", (INF,), INF, (NAN,))),
       scalar_loop=True, signs=Signs("x"), symbol="gelu"),
    Op("gelu_tanh", 1, _functional("gelu", approximate="tanh"), m_gelu_tanh, _gelu_tanh_partials,
       formula_error=_gelu_tanh_formula_error,
       facts=(Fact("gelu_tanh(-inf): -inf * 0", (-INF,), NAN, (NAN,)),), scalar_loop=True,
       signs=Signs("x"), symbol="gelu_tanh"),
    Op("elu", 1, _functional("elu"), m_elu, _elu_partials,
       facts=(Fact("elu(-0.0): expm1 keeps the sign", (-0.0,), -0.0, (1.0,)),
              Fact("elu(-inf)", (-INF,), -1.0, (0.0,)), Fact("elu(nan): the identity's side", (NAN,), NAN, (1.0,))),
       scalar_loop=True, signs=Signs("x"), symbol="elu"),
    Op("log1p", 1, lambda a: a.log1p(), m_log1p, lambda a, out: (m_div(mpf(1), a + 1),),
       domains=(POSITIVE,), edges=SPECIAL_POINTS + (-1.0000000000000002, -0.9999999999999999), kink=(-1.0,),
       facts=(Fact("log1p(x) at -1", (-1.0,), -INF, (INF,)), Fact("log1p(x) at -2", (-2.0,), NAN, (-1.0,))),
       scalar_loop=True, signs=Signs("x"), symbol="log1p"),
    Op("expm1", 1, lambda a: a.expm1(), lambda a: mpmath.expm1(a), lambda a, out: (out + 1,),
       edges=SPECIAL_POINTS + (709.782712893384,),
       facts=(Fact("expm1(-inf)", (-INF,), -1.0, (0.0,)), Fact("expm1(1000)", (1000.0,), INF, (INF,))),
       signs=Signs("x"), symbol="expm1"),
    Op("square", 1, lambda a: a.square(), lambda a: a * a, lambda a, out: (2 * a,),
       built_from=("mul", "pow_const"), signs=Signs("x * x"), symbol="square"),
    Op("reciprocal", 1, lambda a: a.reciprocal(), lambda a: m_div(mpf(1), a), lambda a, out: (-(out * out),),
       domains=(NONZERO,), kink=(0.0,),
       facts=(Fact("reciprocal(x) at 0", (0.0,), INF, (-INF,)), Fact("reciprocal(x) at -0.0", (-0.0,), -INF, (-INF,))),
       signs=Signs("1 / x"), symbol="reciprocal"),
    Op("max", 2, lambda a, b: a.maximum(b), m_maximum,
       lambda a, b, out: _tie_split_partials(a, b, lambda x, y: x < y), domains=(ANY, ANY),
       facts=(Fact("max(a, b) at a tie: half the gradient each", (2.0, 2.0), 2.0, (0.5, 0.5)),
              Fact("max(a, nan): nan, and the gradient to both", (1.0, NAN), NAN, (1.0, 1.0)),
              Fact("max(-0.0, 0.0): the first of equals", (-0.0, 0.0), -0.0, (0.5, 0.5))),
       scalar_loop=True, signs=Signs("max(x, y)"), symbol="max"),
    Op("min", 2, lambda a, b: a.minimum(b), m_minimum,
       lambda a, b, out: _tie_split_partials(a, b, lambda x, y: x > y), domains=(ANY, ANY),
       facts=(Fact("min(a, b) at a tie: half the gradient each", (2.0, 2.0), 2.0, (0.5, 0.5)),
              Fact("min(nan, b): nan, and the gradient to both", (NAN, 1.0), NAN, (1.0, 1.0))),
       scalar_loop=True, signs=Signs("min(x, y)"), symbol="min"),
    Op("clamp", 1, lambda a, c: a.clamp(*clamp_bounds(c)), m_clamp, _clamp_partials,
       constants=_CLAMP_LOWS, kink=_CLAMP_KINKS,
       facts=(Fact("clamp(x, 0, 1) at its min: the gradient passes", (0.0,), 0.0, (1.0,), const=0.0),
              Fact("clamp(x, 0, 1) at its max: the gradient passes", (1.0,), 1.0, (1.0,), const=0.0),
              Fact("clamp(x, 0, 1) beyond its max", (1.5,), 1.0, (0.0,), const=0.0),
              Fact("clamp(nan, 0, 1)", (NAN,), NAN, (0.0,), const=0.0)),
       signs=Signs("min(max(x, c), c + 1)"), symbol="clamp"),
    Op("exp2", 1, lambda a: a.exp2(), lambda a: mpmath.power(2, a), lambda a, out: (out * _LN2,),
       edges=SPECIAL_POINTS + (1024.0, 1023.9999999999999, -1074.0, -1075.0),
       facts=(Fact("exp2(1024)", (1024.0,), INF, (INF,)), Fact("exp2(-inf)", (-INF,), 0.0, (0.0,))),
       scalar_loop=True, signs=Signs("1"), symbol="exp2"),
]}

OP_NAMES = tuple(OPS)


def register_op(op):
    """Add a row to OPS (custom Functions, see functions.py).

    OP_NAMES keeps naming the built-in ops only: random graphs and the edge
    sweep draw from it, so registering ops elsewhere changes none of them.
    """
    if OPS.get(op.name, op) is not op:
        raise ValueError(f"op {op.name!r} is already registered")
    OPS[op.name] = op
    return op
