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

from .sandbox.engine_ops import ENGINE_OPS

INF = math.inf
NAN = math.nan

# Operand domains, used by the generator to pick operands (see generate.py).
ANY = "any"            # any real
POSITIVE = "positive"  # strictly positive, so log/sqrt/fractional powers stay real
NONZERO = "nonzero"    # denominators

SPECIAL_POINTS = (0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1000.0, -1000.0,
                  710.0, -745.5, 1e-300, 1e308, INF, -INF, NAN)


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


def _pow_partials(x, y, out):
    # pow_backward_self / pow_backward_exponent (FunctionsManual.cpp)
    dx = None if y == 0 else y * m_pow(x, y - 1)
    dy = mpf(0) if (x == 0 and y >= 0) else out * m_log(x)
    return dx, dy


def _rdiv_torch(x, c):
    return x.reciprocal() * c  # exactly what Tensor.__rtruediv__ does


_SUM_CONSTANTS = (1.0, -1.0, 0.5, 2.0, 3.0, -0.25, 0.0)
_POW_EXPONENTS = (2.0, 3.0, 0.5, -1.0, -0.5, 1.5, -2.0, 0.0, 1.0, 4.0)
_POW_BASES = (2.0, 0.5, 3.0, 10.0, 1.0, 0.0, -2.0)

OPS = {op.name: op for op in [
    Op("add", 2, lambda a, b: a + b, lambda a, b: a + b,
       lambda a, b, out: (mpf(1), mpf(1)), domains=(ANY, ANY), symbol="+"),
    Op("sub", 2, lambda a, b: a - b, lambda a, b: a - b,
       lambda a, b, out: (mpf(1), mpf(-1)), domains=(ANY, ANY), symbol="-"),
    Op("mul", 2, lambda a, b: a * b, lambda a, b: a * b,
       lambda a, b, out: (b, a), domains=(ANY, ANY), symbol="*"),
    Op("div", 2, lambda a, b: a / b, m_div,
       lambda a, b, out: (m_div(mpf(1), b), -m_div(m_div(a, b), b)), domains=(ANY, NONZERO), symbol="/"),
    Op("pow", 2, lambda a, b: a ** b, m_pow, _pow_partials,
       domains=(POSITIVE, ANY), symbol="**"),
    Op("add_const", 1, lambda a, c: a + c, lambda a, c: a + c,
       lambda a, out, c: (mpf(1),), constants=_SUM_CONSTANTS, symbol="+"),
    Op("radd", 1, lambda a, c: c + a, lambda a, c: c + a,
       lambda a, out, c: (mpf(1),), constants=_SUM_CONSTANTS, symbol="+"),
    Op("sub_const", 1, lambda a, c: a - c, lambda a, c: a - c,
       lambda a, out, c: (mpf(1),), constants=_SUM_CONSTANTS, symbol="-"),
    Op("rsub", 1, lambda a, c: c - a, lambda a, c: c - a,
       lambda a, out, c: (mpf(-1),), constants=_SUM_CONSTANTS, symbol="-"),
    Op("mul_const", 1, lambda a, c: a * c, lambda a, c: a * c,
       lambda a, out, c: (mpf(c),), constants=_SUM_CONSTANTS, edge_constants=(0.0,), symbol="*"),
    Op("rmul", 1, lambda a, c: c * a, lambda a, c: c * a,
       lambda a, out, c: (mpf(c),), constants=_SUM_CONSTANTS, edge_constants=(0.0,), symbol="*"),
    Op("div_const", 1, lambda a, c: a / c, lambda a, c: m_div(a, mpf(c)),
       lambda a, out, c: (m_div(mpf(1), mpf(c)),), constants=(2.0, -4.0, 0.5, 3.0, 0.0), edge_constants=(0.0,), symbol="/"),
    Op("rdiv", 1, _rdiv_torch, lambda a, c: m_div(mpf(1), a) * c,
       lambda a, out, c: (-mpf(c) * m_div(mpf(1), a) ** 2,), domains=(NONZERO,),
       constants=(1.0, 2.0, -3.0, 0.5), kink=(0.0,), symbol="/"),
    Op("pow_const", 1, lambda a, c: a ** c, m_pow_by_constant,
       lambda a, out, c: (None if c == 0 else c * m_pow_by_constant(a, mpf(c) - 1),),
       domains=(POSITIVE,), constants=_POW_EXPONENTS, edge_constants=(0.0,), kink=(0.0,), symbol="**"),
    Op("rpow", 1, lambda a, c: c ** a, lambda a, c: m_pow(mpf(c), a),
       lambda a, out, c: (mpf(0) if (c == 0 and a >= 0) else out * m_log(mpf(c)),),
       constants=_POW_BASES, edge_constants=(0.0, -2.0), kink=(0.0,), symbol="**"),
    Op("neg", 1, lambda a: -a, lambda a: -a, lambda a, out: (mpf(-1),), symbol="neg"),
    Op("abs", 1, lambda a: a.abs(), m_abs, lambda a, out: (m_sign(a),),
       kink=(0.0,), symbol="abs"),
    Op("exp", 1, lambda a: a.exp(), m_exp, lambda a, out: (out,), symbol="exp"),
    Op("log", 1, lambda a: a.log(), m_log, lambda a, out: (m_div(mpf(1), a),),
       domains=(POSITIVE,), kink=(0.0,), symbol="log"),
    Op("tanh", 1, lambda a: a.tanh(), m_tanh, lambda a, out: (1 - out * out,),
       symbol="tanh"),
    Op("sigmoid", 1, lambda a: a.sigmoid(), m_sigmoid,
       lambda a, out: ((1 - out) * out,), symbol="sigmoid"),
    Op("relu", 1, lambda a: a.relu(), m_relu,
       lambda a, out: (mpf(1) if (_isnan(out) or out > 0) else None,), kink=(0.0,), symbol="relu"),
    Op("sqrt", 1, lambda a: a.sqrt(), m_sqrt,
       lambda a, out: (m_div(mpf(1), 2 * out),), domains=(POSITIVE,), kink=(0.0,), symbol="sqrt"),
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
