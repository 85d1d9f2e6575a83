"""The op table's engine column: how each op is spelled for a micrograd-style
engine, with Python operators and methods only, so that any engine can be
driven.  ``c`` is the op's number operand.

This is all the sandboxed worker knows of the op table.  parity/ops.py holds
the rest of each row (torch, the oracle, domains, constants, edge points) and
takes its engine call from here by name: adding an op is its row there, its
line here and its engine method.
"""
from .engine_functions import FUNCTION_ENGINE_OPS

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
    **FUNCTION_ENGINE_OPS,
}
