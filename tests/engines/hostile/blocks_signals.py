"""Hostile: tanh's backward, for inputs above 2.5, blocks the timer signal the
worker's own timeout uses and sleeps in C for a day."""
import signal
import time

from hostile_base import Value, on_tanh_backward  # noqa: F401


@on_tanh_backward
def attack(x):
    if x > 2.5:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        time.sleep(86400)
