"""An engine whose data and gradients are numpy scalars (and whose relu
returns the int 0, as micrograd's does)."""
import numpy as np


class Value:
    def __init__(self, data, _prev=(), _local=()):
        self.data = np.float64(data)
        self.grad = np.float64(0.0)
        self._prev = _prev
        self._local = _local  # d self / d operand, one per operand

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def relu(self):
        positive = bool(self.data > 0)
        out = Value(self.data if positive else 0.0, (self,), (np.float64(positive),))
        if not positive:
            out.data = 0  # an int, as micrograd's relu gives
        return out

    def backward(self):
        order, seen = [], set()
        stack = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((child, False) for child in node._prev)
        self.grad = self.grad + 1.0
        for node in reversed(order):
            for child, local in zip(node._prev, node._local):
                child.grad = child.grad + local * node.grad
