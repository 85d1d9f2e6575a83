"""A correct engine whose backward sums gradients path by path: each node
pushes ``upstream * local`` down every path to the leaves, with no
topological sort, so a leaf's gradient is the sum over paths of the
products of the local derivatives along them - the same number as reverse
mode in exact arithmetic, rounded another way (products distributed over
sums, summed in another order).  Exponential in shared subgraphs: for small
graphs only.  The harness must not call any of it a fail."""
import math


class Value:
    def __init__(self, data, prev=(), local=()):
        self.data = float(data)
        self.grad = 0.0
        self._prev = prev
        self._local = local  # d self / d each of prev

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __sub__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data - other.data, (self, other), (1.0, -1.0))

    def __rsub__(self, other):
        return Value(other - self.data, (self,), (-1.0,))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def __truediv__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data / other.data, (self, other), (1.0 / other.data, -self.data / other.data ** 2))

    def __rtruediv__(self, other):
        return Value(other / self.data, (self,), (-other / self.data ** 2,))

    def __neg__(self):
        return Value(-self.data, (self,), (-1.0,))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,))

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def backward(self, upstream=1.0):
        self.grad += upstream
        for child, local in zip(self._prev, self._local):
            child.backward(upstream * local)
