"""The package's Value: ``from .backward import topological`` only works
when the file is imported as part of its package."""
import math

from .backward import topological


class Value:
    def __init__(self, data, _children=(), _local=()):
        self.data, self.grad, self._prev, self._local = float(data), 0.0, _children, _local

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,))

    def backward(self):
        self.grad += 1.0
        for node in reversed(topological(self)):
            for child, local in zip(node._prev, node._local):
                child.grad += local * node.grad
