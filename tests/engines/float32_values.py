"""A correct engine that computes in float32 (numpy scalars), as ports of
float32 libraries do: every value and gradient is rounded to 24 bits, so at
float64's precision it fails everywhere.  The harness must say that once -
a `precision` finding - not call every op wrong."""
import numpy as np

f32 = np.float32


class Value:
    def __init__(self, data, _children=(), _local=()):
        self.data = f32(data)
        self.grad = f32(0.0)
        self._prev = _children
        self._local = _local  # d self / d each child, float32

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (f32(1.0), f32(1.0)))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def tanh(self):
        t = np.tanh(self.data)
        return Value(t, (self,), (f32(1.0) - t * t,))

    def backward(self):
        order, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for child in v._prev:
                    visit(child)
                order.append(v)
        visit(self)
        self.grad = f32(1.0)
        for v in reversed(order):
            for child, local in zip(v._prev, v._local):
                child.grad = child.grad + local * v.grad
