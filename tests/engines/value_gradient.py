"""An engine that calls its attributes ``value`` and ``gradient``."""


class Value:
    def __init__(self, value, _prev=(), _local=()):
        self.value = float(value)
        self.gradient = 0.0
        self._prev = _prev
        self._local = _local

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.value + other.value, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.value * other.value, (self, other), (other.value, self.value))

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

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
        self.gradient += 1.0
        for node in reversed(order):
            for child, local in zip(node._prev, node._local):
                child.gradient += local * node.gradient
