"""seeded.py with a one-entry cache of the last backward's topological
order, keyed by the root's number and its operands' as text ("the same
expression again: its order is known"): right for repeated passes on one
graph, but a second graph equal to the first gets the first one's order, so
its own leaves get no gradient (the first graph's get it)."""
from seeded import Value, propagate, topological

_last = {"key": None, "order": None}


def backward(self, gradient=1.0):
    key = repr((self.data, [child.data for child in self._prev]))
    if key != _last["key"]:
        _last["key"], _last["order"] = key, topological(self)
    propagate(self, _last["order"], gradient)


Value.backward = backward
