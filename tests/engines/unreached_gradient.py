"""seeded.py, whose backward hands the root's gradient to every leaf made
since the previous backward that the graph does not reach (as if a leaf it
cannot place were an output): a leaf the output does not use gets a
gradient, where torch's stays None (0)."""
import seeded
from seeded import Value, propagate, topological

_made = []  # every value made since the last backward
_init = Value.__init__


def __init__(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    _made.append(self)


def backward(self, gradient=1.0):
    order = topological(self)
    propagate(self, order, gradient)
    reached = {id(v) for v in order}
    for v in _made:
        if not v._prev and id(v) not in reached:
            v.grad += float(gradient)
    _made.clear()


Value.__init__ = __init__
Value.backward = backward
seeded.Value = Value
