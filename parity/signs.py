"""Signed zeros and infinities, as data: each op row's sign rules.

mpmath has no -0.0, and the sign of a zero decides the sign of an
infinity: 1 / -0.0 is -inf, sqrt(-0.0) is -0.0 and its derivative
1 / (2 * -0.0) is -inf.  The oracle (backends/oracle.py) computes
magnitudes in mpmath and keeps each zero's float64 sign beside it; where an
op meets a zero (a zero operand or a zero result) it takes the signs from
the op row's ``signs``: a formula for the value and one per partial
derivative, written as torch computes them, over the float64 operands.

A formula is a Python expression over ``x`` and ``y`` (the operands, zeros
signed) and ``c`` (the op's number operand), with ``+ - * / **``, numbers and the functions below.  It is
evaluated in IEEE float64 arithmetic that never raises (1 / -0.0 is -inf,
0 ** -1 is inf, log(0) is -inf, sqrt(-0.0) is -0.0, a negative base to a
fractional power nan) and only its *sign* is read:

- a value that is zero at the node takes the formula's sign (``x * y``:
  -0.0 for -3 * 0.0; ``x + y``: -0.0 only for -0.0 + -0.0, as IEEE sums);
  an infinite one too (``x / y``: 1 / -0.0 is -inf, where mpmath's
  division by its unsigned zero gives inf);
- an infinite partial derivative takes its formula's sign (div's
  ``-(x / y) / y``, torch's -grad * ((self / other) / other)); ``None``
  means the row's mpmath partial already has torch's sign wherever it is
  infinite (its infinities never come from a zero's sign);
- a nan formula says nothing: the mpmath number keeps its sign.

The functions: ``log`` and ``sqrt`` (C's, never raising), ``abs``,
``max``/``min`` (torch's kernels, std::max and std::min: ``b if a < b else
a`` and ``b if b < a else a``, so the first of two equal zeros; nan if
either is nan), and ``powc(x, e)``, torch's pow by a number (``x ** c``
runs sqrt at 0.5 and 1 / sqrt at -0.5, where C's pow gives sqrt(-0.0) as
+0.0, not sqrt's -0.0).  ``1`` is the formula of an op whose zeros and
infinities are all positive (exp, sigmoid, softplus).

The rules were read off torch's kernels and derivative formulas and checked
against torch, once and in every test run on a Python with torch
(tests/test_signs.py): at every op's edge points and at every pair of
special points, the sign of each zero or infinite value and of each
infinite partial is torch's.
"""
import ast
from dataclasses import dataclass
import math

INF = math.inf
NAN = math.nan


@dataclass(frozen=True)
class Signs:
    """An op row's sign rules: the value's formula, then one per operand's
    partial derivative (None: the mpmath partial's own sign holds)."""
    value: str
    partials: tuple = ()

    def __post_init__(self):
        # Compiled once, checked for the small language above.
        object.__setattr__(self, "_value", compile_formula(self.value))
        object.__setattr__(self, "_partials", tuple(None if p is None else compile_formula(p)
                                                     for p in self.partials))

    def evaluate(self, operands, const=None):
        """(value, (partial, ...)) as floats whose signs are torch's, at the
        float64 ``operands`` (zeros signed); nan where a rule says nothing."""
        x = operands[0]
        y = operands[1] if len(operands) > 1 else NAN
        c = NAN if const is None else float(const)
        value = self._value(x, y, c)
        partials = tuple(NAN if p is None else p(x, y, c) for p in self._partials)
        return value, partials + (NAN,) * (len(operands) - len(partials))


# -- IEEE float64 arithmetic that never raises ------------------------------------
def _is_odd_integer(y):
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0.0


def ieee_div(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)


def ieee_pow(x, y):
    """C99 pow()."""
    try:
        return math.pow(x, y)
    except ValueError:  # a zero to a negative power (a pole), or a negative base to a fraction
        if x == 0:
            return math.copysign(INF, x) if _is_odd_integer(y) else INF
        return NAN
    except OverflowError:
        return -INF if (x < 0 and _is_odd_integer(y)) else INF


def ieee_log(x):
    if x != x or x < 0:
        return NAN
    if x == 0:
        return -INF
    return math.log(x)


def ieee_sqrt(x):
    if x != x or x < 0:
        return NAN
    return math.sqrt(x)  # sqrt(-0.0) is -0.0


def torch_maximum(a, b):
    if a != a or b != b:
        return NAN
    return b if a < b else a


def torch_minimum(a, b):
    if a != a or b != b:
        return NAN
    return b if b < a else a


def torch_pow_by_number(x, e):
    """torch's pow of a tensor by a number: sqrt at 0.5, rsqrt at -0.5."""
    if e == 0.5:
        return ieee_sqrt(x)
    if e == -0.5:
        return ieee_div(1.0, ieee_sqrt(x))
    return ieee_pow(x, e)


FUNCTIONS = {"log": ieee_log, "sqrt": ieee_sqrt, "abs": abs, "max": torch_maximum, "min": torch_minimum,
             "powc": torch_pow_by_number}
NAMES = ("x", "y", "c")
_OPERATORS = {ast.Add: "_add", ast.Sub: "_sub", ast.Mult: "_mul", ast.Div: "_div", ast.Pow: "_pow"}
_RUNTIME = {"_add": lambda a, b: a + b, "_sub": lambda a, b: a - b, "_mul": lambda a, b: a * b,
            "_div": ieee_div, "_pow": ieee_pow, **FUNCTIONS}


def compile_formula(text):
    """A function (x, y, c) -> float for one formula, checked to use
    only the language of the module doc (a ValueError names what not)."""
    tree = ast.parse(text, mode="eval")
    _Check(text).visit(tree)
    body = _ToCalls().visit(tree).body
    arguments = ast.arguments(posonlyargs=[], args=[ast.arg(arg=name) for name in NAMES], kwonlyargs=[],
                              kw_defaults=[], defaults=[])
    function = ast.fix_missing_locations(ast.Expression(body=ast.Lambda(args=arguments, body=body)))
    return eval(compile(function, f"<sign rule {text!r}>", "eval"), dict(_RUNTIME))  # noqa: S307  (checked)


class _Check(ast.NodeVisitor):
    ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Call, ast.Name, ast.Load,
               ast.Constant) + tuple(_OPERATORS)

    def __init__(self, text):
        self.text = text

    def generic_visit(self, node):
        if not isinstance(node, self.ALLOWED):
            raise ValueError(f"sign rule {self.text!r}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Name) and node.id not in NAMES + tuple(FUNCTIONS):
            raise ValueError(f"sign rule {self.text!r}: unknown name {node.id!r}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
                                               and not node.keywords):
            raise ValueError(f"sign rule {self.text!r}: only {', '.join(FUNCTIONS)} may be called")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise ValueError(f"sign rule {self.text!r}: {node.value!r} is not a number")
        super().generic_visit(node)


class _ToCalls(ast.NodeTransformer):
    """a / b -> _div(a, b) and so on: IEEE arithmetic that never raises."""

    def visit_BinOp(self, node):
        self.generic_visit(node)
        name = _OPERATORS[type(node.op)]
        return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=[node.left, node.right], keywords=[])

    def visit_Constant(self, node):
        return ast.Constant(value=float(node.value))


def sign(x):
    """-1.0 or 1.0 for a signed number (zeros and infinities included); None for nan."""
    if x != x:
        return None
    return math.copysign(1.0, x)
