"""An engine without a topological sort: backward pushes each gradient down
every path separately, so ``x = x + x`` repeated n times takes 2**n calls.
Correct, only slow."""


class Value:
    def __init__(self, data, _prev=(), _local=()):
        self.data = float(data)
        self.grad = 0.0
        self._prev = _prev
        self._local = _local

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def backward(self, grad=1.0):
        self.grad += grad
        for child, local in zip(self._prev, self._local):
            child.backward(grad * local)
