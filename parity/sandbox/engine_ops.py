"""The op table's engine column: how each op is spelled for a micrograd-style
engine, with Python operators and methods only, so that any engine can be
driven.  ``c`` is the op's number operand.

This is all the sandboxed worker knows of the op table.  parity/ops.py holds
the rest of each row (torch, the oracle, domains, constants, edge points) and
takes its engine call from here by name: adding an op is its row there, its
line here and its engine method.

The methods are those micrograd-style engines commonly name them (torch's
names where clones follow torch): ``a.leaky_relu(slope)``, ``a.gelu()`` and
``a.gelu(approximate="tanh")`` as torch.nn.functional spells them,
``a.max(b)`` and ``a.min(b)`` for torch.maximum and torch.minimum,
``a.clamp(low, high)``.
"""
from .engine_functions import FUNCTION_ENGINE_OPS


def clamp_bounds(c):
    """The clamp row clamps to [c, c + 1]: two bounds from the one number
    operand a node has, unequal in size, so that swapped bounds show."""
    return c, c + 1.0


ENGINE_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "add_const": lambda a, c: a + c,
    "radd": lambda a, c: c + a,
    "sub_const": lambda a, c: a - c,
    "rsub": lambda a, c: c - a,
    "mul_const": lambda a, c: a * c,
    "rmul": lambda a, c: c * a,
    "div_const": lambda a, c: a / c,
    "rdiv": lambda a, c: c / a,
    "pow_const": lambda a, c: a ** c,
    "rpow": lambda a, c: c ** a,
    "neg": lambda a: -a,
    "abs": lambda a: abs(a),
    "exp": lambda a: a.exp(),
    "log": lambda a: a.log(),
    "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(),
    "relu": lambda a: a.relu(),
    "sqrt": lambda a: a.sqrt(),
    "sin": lambda a: a.sin(),
    "cos": lambda a: a.cos(),
    "leaky_relu": lambda a, c: a.leaky_relu(c),
    "softplus": lambda a: a.softplus(),
    "silu": lambda a: a.silu(),
    "gelu": lambda a: a.gelu(),
    "gelu_tanh": lambda a: a.gelu(approximate="tanh"),
    "elu": lambda a: a.elu(),
    "log1p": lambda a: a.log1p(),
    "expm1": lambda a: a.expm1(),
    "square": lambda a: a.square(),
    "reciprocal": lambda a: a.reciprocal(),
    "max": lambda a, b: a.max(b),
    "min": lambda a, b: a.min(b),
    "clamp": lambda a, c: a.clamp(*clamp_bounds(c)),
    "exp2": lambda a: a.exp2(),
    **FUNCTION_ENGINE_OPS,
}
