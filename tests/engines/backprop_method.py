"""A correct engine whose backward is named ``backprop()`` (found without
``:Class`` and without ``--backward``)."""
import math


class Value:
    def __init__(self, data, _children=()):
        self.data = float(data)
        self.grad = 0.0
        self._prev = _children
        self._local = ()

    def _make(self, data, children, local):
        out = Value(data, children)
        out._local = local
        return out

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return self._make(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return self._make(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other if isinstance(other, Value) else -other)

    def tanh(self):
        t = math.tanh(self.data)
        return self._make(t, (self,), (1.0 - t * t,))

    def backprop(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((child, False) for child in node._prev)
        self.grad += 1.0
        for node in reversed(order):
            for child, local in zip(node._prev, node._local):
                child.grad += local * node.grad
