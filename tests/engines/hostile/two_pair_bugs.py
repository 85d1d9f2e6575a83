"""Two bugs that no op shows alone: tanh_then_mul's, and a subtraction
dropping the gradient of its right operand when that is a sum (a - (b + c)).
Two findings of minimal graphs, each explaining the cases that contain
its ops."""
from hostile_base import Value
import tanh_then_mul  # noqa: F401  its bug, patched into Value

_add = Value.__add__


def add(self, other):
    out = _add(self, other)
    out.from_add = True
    return out


def sub(self, other):
    out = Value(self.data - other.data, (self, other))

    def _backward():
        self.grad += out.grad
        if not getattr(other, "from_add", False):  # the sum's gradient is lost
            other.grad -= out.grad
    out._backward = _backward
    return out


Value.__add__, Value.__sub__ = add, sub
