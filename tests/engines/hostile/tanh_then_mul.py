"""A bug that no op shows alone: mul's backward drops the gradient of its
second operand when a tanh made it (each op passes its own probes; a tanh
feeding a mul's right-hand side fails)."""
from hostile_base import Value

_mul, _tanh = Value.__mul__, Value.tanh


def tanh(self):
    out = _tanh(self)
    out.from_tanh = True
    return out


def mul(self, other):
    out = _mul(self, other)
    if getattr(other, "from_tanh", False):
        backward = out._backward

        def dropped():
            grad = other.grad
            backward()
            other.grad = grad  # the tanh's contribution is lost
        out._backward = dropped
    return out


Value.tanh, Value.__mul__ = tanh, mul
