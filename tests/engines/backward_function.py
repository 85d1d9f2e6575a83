"""A correct engine with no backward method: a module-level function
``backward(node)`` takes the root."""
import math


class Node:
    def __init__(self, data, parents=(), local=()):
        self.data, self.grad, self.parents, self.local = float(data), 0.0, parents, local

    def __add__(self, other):
        other = other if isinstance(other, Node) else Node(other)
        return Node(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Node) else Node(other)
        return Node(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def tanh(self):
        t = math.tanh(self.data)
        return Node(t, (self,), (1.0 - t * t,))


def backward(node):
    order, seen, stack = [], set(), [(node, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded:
            order.append(current)
        elif id(current) not in seen:
            seen.add(id(current))
            stack.append((current, True))
            stack.extend((parent, False) for parent in current.parents)
    node.grad += 1.0
    for current in reversed(order):
        for parent, local in zip(current.parents, current.local):
            parent.grad += local * current.grad
