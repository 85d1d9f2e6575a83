"""IEEE-754 float64 arithmetic that never raises.

Python's float operations raise where C (and therefore PyTorch) return inf or
nan: ``1.0 / 0.0``, ``math.log(0.0)``, ``math.exp(1000.0)``, ``(-8.0) ** (1/3)``
(which is even complex).  These helpers return what a float64 tensor would.
They are only slow on the exceptional path: a ``try`` costs nothing in
CPython 3.11+ when nothing is raised.
"""
import math

INF = math.inf
NAN = math.nan


def div(a, b):
    """a / b with IEEE semantics: x/0 is ±inf, 0/0 and nan/0 are nan."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0.0 or a != a:
            return NAN
        # The sign of an infinite quotient is the xor of the operands' signs,
        # and b may be -0.0.
        return math.copysign(INF, a) * math.copysign(1.0, b)


def _is_odd_integer(y):
    return y.is_integer() and y % 2.0 == 1.0


def pow(x, y):
    """x ** y as C's pow(): no exception, never complex."""
    try:
        return math.pow(x, y)
    except ValueError:
        # Two domain errors: a zero base with a negative exponent (a pole),
        # and a negative finite base with a non-integer exponent (nan).
        if x == 0.0:
            if _is_odd_integer(y):
                return math.copysign(INF, x)
            return INF
        return NAN
    except OverflowError:
        if x < 0.0 and _is_odd_integer(y):
            return -INF
        return INF


def pow_by_constant(x, e):
    """Tensor ** number as torch's CPU kernel computes it: exponents 2, 3,
    -1 and -2 by multiplication and division, 0.5 by sqrt and -0.5 by rsqrt.
    These round differently from C's pow() and, for sqrt and rsqrt, differ
    at -0.0 and -inf."""
    if e == 2.0:
        return x * x
    if e == 3.0:
        return x * x * x
    if e == 0.5:
        return sqrt(x)
    if e == -0.5:
        return div(1.0, sqrt(x))
    if e == -1.0:
        return div(1.0, x)
    if e == -2.0:
        return div(1.0, x * x)
    return pow(x, e)


def one_minus_square(y):
    """1 - y*y rounded once, as torch's tanh backward computes it with a fused
    multiply-add; ``1.0 - y * y`` rounds twice and, near |y| = 1, loses up to
    half its digits to the cancellation.

    y*y = p + e exactly (Dekker's product, by Veltkamp's split), 1 - p = s + t
    exactly (Knuth's two-sum), so 1 - y*y = s + (t - e), rounded once at the
    end.  For |y| <= 1, as tanh gives, nothing overflows.
    """
    p = y * y
    scaled = 134217729.0 * y  # 2**27 + 1 splits y into two 26-bit halves
    high = scaled - (scaled - y)
    low = y - high
    e = ((high * high - p) + 2.0 * high * low) + low * low
    s = 1.0 - p
    virtual = s - 1.0
    t = (1.0 - (s - virtual)) + (-p - virtual)
    return s + (t - e)


def fma(a, b, c):
    """a * b + c rounded once, as C's fma() - and as torch's kernels compute
    ``a * b + c`` where its compiler fused them (silu's backward, gelu's tanh
    form).  Exactly, in integers: a float's ratio has a power-of-two
    denominator, and int / int rounds once (subnormals included).  Python
    3.13's math.fma would raise where C returns inf or nan."""
    try:
        (na, da), (nb, db) = a.as_integer_ratio(), b.as_integer_ratio()
    except (OverflowError, ValueError):  # an infinite or nan factor: IEEE's product is exact
        return a * b + c
    if not math.isfinite(c):  # a finite product (it may exceed float64) does not change c
        return c
    nc, dc = c.as_integer_ratio()
    numerator = na * nb * dc + nc * da * db
    if numerator == 0:
        # An exact zero: signed as IEEE's a * b + c when the product is a
        # zero, else +0.0 (a nonzero product cancelled, rounding to nearest).
        return a * b + c if na * nb == 0 else 0.0
    try:
        return numerator / (da * db * dc)
    except OverflowError:
        return INF if numerator > 0 else -INF


def exp(x):
    try:
        return math.exp(x)
    except OverflowError:
        return INF


def log(x):
    try:
        return math.log(x)
    except ValueError:
        if x == 0.0:
            return -INF
        return NAN


def sqrt(x):
    try:
        return math.sqrt(x)
    except ValueError:
        return NAN


def log1p(x):
    try:
        return math.log1p(x)
    except ValueError:
        if x == -1.0:
            return -INF
        return NAN


def expm1(x):
    try:
        return math.expm1(x)
    except OverflowError:
        return INF


def exp2(x):
    """2 ** x as C's exp2() (torch's kernel).  math.exp2 is C's exp2 from
    Python 3.11 on; before that, C's pow(2, x), which may differ from it by
    an ulp (the oracle judges ulps)."""
    try:
        return _exp2(x)
    except OverflowError:
        return INF


def _pow_of_two(x):
    return math.pow(2.0, x)


_exp2 = getattr(math, "exp2", _pow_of_two)


def sin(x):
    try:
        return math.sin(x)
    except ValueError:  # sin(±inf) is nan in C
        return NAN


def cos(x):
    try:
        return math.cos(x)
    except ValueError:
        return NAN


def sign(x):
    """torch.sgn for real numbers: -1, 0 or 1 (0 for nan too)."""
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0
