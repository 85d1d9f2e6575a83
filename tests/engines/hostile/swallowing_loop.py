"""Hostile: tanh's backward, for inputs above 2.5, loops forever and swallows
every exception, the harness's own timeout included."""
from hostile_base import Value, on_tanh_backward  # noqa: F401


@on_tanh_backward
def attack(x):
    while x > 2.5:
        try:
            while True:
                pass
        except BaseException:
            pass
