"""Hostile: tanh's backward, for inputs above 1, raises an exception whose
message is a megabyte, with newlines, control characters and HTML in it."""
from hostile_base import Value, on_tanh_backward  # noqa: F401


@on_tanh_backward
def attack(x):
    if x > 1.0:
        raise ValueError("<script>alert(1)</script>\n\x1b[31m" + "x" * (1 << 20))
