"""One writer per output: a lock on a run's (or a merge's) output.

Two runs writing one partial file at once interleave their rows into a
CSV nobody can read, and two resumes duplicate every row.  So a writer
holds an OS advisory lock (flock) on OUT.csv.lock, beside its output, from
before it looks at the files until it is done with them; a second one is
refused at once, told the holder's pid.  The kernel releases the lock when
its holder dies, however it dies, so the lock of a killed run is stale as
soon as it is left, and the next run takes it over: nothing to clean up by
hand.
"""
from contextlib import contextmanager
import fcntl
import os
from pathlib import Path

from .report_files import CampaignError


class OutputBusy(CampaignError):
    """Another process writes this output."""


def lock_path(out):
    return Path(f"{out}.lock")


@contextmanager
def output_lock(out):
    """Hold the lock on ``out`` for the block, or raise OutputBusy."""
    path = lock_path(out)
    fd = _acquire(path, out)
    try:
        yield
    finally:
        # Removed while held: a process that opened it meanwhile finds it
        # replaced once it gets the lock (see _acquire), and tries again.
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


def _acquire(path, out):
    while True:
        try:
            # No symlink followed; close-on-exec, so that no child started
            # meanwhile (the engine's worker, git) keeps the lock alive.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise CampaignError(f"cannot lock {out} ({path}): {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OutputBusy(f"{out} is being written by another parity process ({holder}, holding {path}): "
                             f"wait for it to end, or write elsewhere (--out)") from None
        try:
            current = os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # its holder finished and removed it between our open and our lock
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _holder(fd):
    """The holder's pid, as it wrote it in the lock file."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid not yet written"
