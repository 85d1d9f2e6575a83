"""Hostile: prints a megabyte of noise in every tanh backward, through
Python and straight to the file descriptors."""
import os
import sys

from hostile_base import Value, on_tanh_backward  # noqa: F401

_NOISE = "noise " * (1 << 17)


@on_tanh_backward
def attack(x):
    print(_NOISE)
    print(_NOISE, file=sys.stderr)
    os.write(1, b"raw " * 1000)
