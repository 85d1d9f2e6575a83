"""A correct engine whose unary ops are module functions, ``exp(a)`` and
``tanh(a)``, not methods."""
import math


class Value:
    def __init__(self, data, children=(), local=()):
        self.data, self.grad, self.children, self.local = float(data), 0.0, children, local

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((child, False) for child in node.children)
        self.grad += 1.0
        for node in reversed(order):
            for child, local in zip(node.children, node.local):
                child.grad += local * node.grad


def exp(a):
    try:
        e = math.exp(a.data)
    except OverflowError:  # as torch: inf
        e = math.inf
    return Value(e, (a,), (e,))


def tanh(a):
    t = math.tanh(a.data)
    return Value(t, (a,), (1.0 - t * t,))
