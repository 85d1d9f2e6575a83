"""Raises an exception whose class name and message are spreadsheet
formulas, at ``a + a`` (the accumulation family's first case; no probe adds
a value to itself): no cell of a report may carry them as formulas."""
from hostile_base import Value

Formula = type('=HYPERLINK("http://example.com","click")', (Exception,), {})
_add = Value.__add__


def add(self, other):
    if other is self:
        raise Formula("+1 and -2 and @sum")
    return _add(self, other)


Value.__add__ = add
