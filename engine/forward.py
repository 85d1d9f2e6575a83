"""Forward mode: jvp, as torch.func.jvp, on torch.autograd.forward_ad's
levels (dual_level, make_dual, unpack_dual).

Every jvp call (every dual_level) opens a new level, newer than all before
it.  Inside, the inputs are Duals of that level; a Dual of an older level
reaching them (an outer jvp's input) is a constant at the new level, so an
inner derivative never picks up an outer perturbation: d/dx [x * d/dy (x + y)]
is 1, not 2.  What the inner jvp returns still carries the outer tangents
(Duals of the outer level), as torch.func.jvp's tensors do, so jvps nest into
higher derivatives.
"""
import itertools
from collections import namedtuple

from .dual import Dual

_new_level = itertools.count(1).__next__  # level 0 is a plain Dual()'s
_entered = []                            # the dual_levels inside one another, innermost last

UnpackedDual = namedtuple("UnpackedDual", "primal tangent")


class dual_level:
    """Context manager: a new level for make_dual and unpack_dual (``as``
    gives it), as torch.autograd.forward_ad.dual_level."""

    def __enter__(self):
        level = _new_level()
        _entered.append(level)
        return level

    def __exit__(self, *exc_info):
        _entered.pop()
        return False


def _current(level):
    if level is not None:
        return level
    if not _entered:
        raise RuntimeError("make_dual() outside a dual_level: enter one first (with engine.dual_level(): ...)")
    return _entered[-1]


def make_dual(primal, tangent, *, level=None):
    """A Dual of ``level`` (by default the innermost dual_level's)."""
    return Dual(primal, tangent, _current(level))


def unpack_dual(x, *, level=None):
    """(primal, tangent) of x at ``level`` (by default the innermost
    dual_level's); the tangent is None where x has none at that level."""
    if level is None and not _entered:
        return UnpackedDual(x, None)
    level = _current(level)
    if isinstance(x, Dual) and x.level == level:
        return UnpackedDual(x.primal, x.tangent)
    return UnpackedDual(x, None)


def jvp(func, primals, tangents):
    """(func(*primals), its directional derivative along tangents), as
    torch.func.jvp: func gets the primals as Duals of a new level and returns
    one output or a tuple (or list) of them; a number or a Dual of an older
    level is an output with tangent 0.0."""
    primals, tangents = _as_tuple(primals, "primals"), _as_tuple(tangents, "tangents")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp(): {len(primals)} primals but {len(tangents)} tangents")
    with dual_level() as level:
        outputs = func(*(make_dual(p, t, level=level) for p, t in zip(primals, tangents)))
        return _split(outputs, level)


def _as_tuple(xs, name):
    if not isinstance(xs, (tuple, list)):
        raise TypeError(f"jvp(): {name} must be a tuple (or list), not {type(xs).__name__}")
    return tuple(xs)


def _split(out, level):
    if isinstance(out, (tuple, list)):
        pairs = [_split(o, level) for o in out]
        return type(out)(p for p, _ in pairs), type(out)(t for _, t in pairs)
    if isinstance(out, Dual):
        primal, tangent = unpack_dual(out, level=level)
        return primal, 0.0 if tangent is None else tangent
    if isinstance(out, (float, int)):
        return float(out), 0.0
    raise TypeError(f"jvp(): func must return Duals or numbers (or a tuple of them), not {type(out).__name__}")
