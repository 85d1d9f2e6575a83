"""Hostile: tanh's backward, for inputs above 1, raises an exception whose
str() and repr() raise, of a class named like a spreadsheet formula."""
from hostile_base import Value, on_tanh_backward  # noqa: F401


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")

    def __repr__(self):
        raise RuntimeError("no repr either")


Unprintable.__name__ = '=HYPERLINK("http://example.invalid","click")'


@on_tanh_backward
def attack(x):
    if x > 1.0:
        raise Unprintable()
