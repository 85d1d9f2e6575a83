"""tanh raises NameError (``math`` is never imported): the op is there and
broken, not absent.  Prints a line at import (the run's engine log keeps it,
once: the engine is imported once per worker)."""


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
        t = math.tanh(self.data)  # noqa: F821  (the bug: no import math)
        return Value(t, (self,), (1.0 - t * t,))

    def backward(self):
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


print("name_error_op: imported")
