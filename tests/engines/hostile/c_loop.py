"""Hostile: tanh's backward, for inputs above 2.5, runs a regular expression
that backtracks for hours inside C code: no Python-level timer can stop it."""
import re

from hostile_base import Value, on_tanh_backward  # noqa: F401


@on_tanh_backward
def attack(x):
    if x > 2.5:
        re.match(r"(a+)+$", "a" * 64 + "b")
