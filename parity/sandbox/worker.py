"""The sandboxed worker: the process the engine under test runs in.

parity/isolation.py starts it as ``python -I -B -c BOOTSTRAP FD PROGRESS
PATH...`` with a minimal environment, in a fresh temporary directory, its
output going to a log file there; FD is its end of a socket pair to the
harness, PROGRESS a file both map, where it writes the number of the item
it is on.
Before it imports the engine it confines itself with limits the engine
cannot raise again (address space, file size, CPU time, no core files), cuts
itself off the network where the system allows, and bounds what Python code
may print.  Then it answers, one JSON message (wire.py) per item:

  harness: {"engine": SPEC, "data_attr", "grad_attr", "backward", "adapter", "cwd", "timeout", "limits",
            "harness": its pid}
  worker:  {"loaded": {"version", "is_ours", "network", "adapter": what it detected}} or {"spec_error": TEXT}
  harness: {"probe": [[op, operands, const], ...]}  worker: [status, detail], per probe
  harness: {"graphs": [...], "cases": [...]}         worker: [values, grads, error, seconds], per case
  harness: {"trace": {"graphs": ..., "cases": ...}}  worker: [node values, node grads, error], per case

The replies of a request go back in lists, one at least every CHUNK_SECONDS
(wire.py), not one message per item: each message wakes the harness, and
waking it per case costs more than the engine's work on a small one.  The
worker never exits on its own while the harness is there: any exit, signal
or silence is the engine's doing.
"""
import io
import math
import mmap
import os
import resource
import signal
import sys
import time

from multiprocessing.connection import Connection

from . import wire
from .wire import CHUNK_SECONDS, PROGRESS_BYTES, progress_at

PR_SET_PDEATHSIG = 1
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


def main(fd, progress_fd):
    # The harness alone acts on Ctrl-C (the worker has its own session, but
    # an engine may share a terminal): see isolation.py.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    connection = Connection(fd)
    progress = mmap.mmap(progress_fd, PROGRESS_BYTES)
    hello = wire.loads(connection.recv_bytes())
    limits = hello["limits"]
    network = _confine(limits, hello.get("harness"))
    from .engine_runner import EngineSpecError, load  # after the limits: it imports our engine, then theirs

    # The engine is imported once, here: probes, cases and traces all use it.
    # What it prints meanwhile goes to the worker's log like the rest.
    try:
        runner = load(hello["engine"], hello.get("data_attr"), hello.get("grad_attr"), hello["timeout"],
                      backward=hello.get("backward"), adapter=hello.get("adapter"), cwd=hello.get("cwd"))
    except EngineSpecError as exc:
        connection.send_bytes(wire.dumps({"spec_error": str(exc)}))
        return
    connection.send_bytes(wire.dumps({"loaded": {"version": str(runner.version), "is_ours": runner.is_ours,
                                                 "network": network, "adapter": _json_safe(runner.report)}}))
    cpu_limit = _cpu_limit_per_case(hello["timeout"])
    while True:
        try:
            request = wire.loads(connection.recv_bytes())
        except (EOFError, OSError):  # the harness is done (or gone)
            return
        if "probe" in request:
            replies = (runner.probe(*probe) for probe in request["probe"])
        elif "trace" in request:
            replies = (runner.trace(case) for case in wire.decode_cases(request["trace"]))
        else:
            replies = (list(result) for result in runner.iter_results(wire.decode_cases(request), cpu_limit))
        _send_in_chunks(connection, replies, progress)


def _json_safe(value):
    """The adapter's report as plain JSON (its text is the engine's names)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _send_in_chunks(connection, replies, progress):
    """Send the replies as lists, a message at least every CHUNK_SECONDS and
    at the end; before each item, its number goes to ``progress`` (shared
    with the harness), so that a death between two messages is blamed on the
    item it happened in."""
    chunk, sent_at = [], time.monotonic()
    number = 0
    while True:
        progress_at(progress, number)
        try:
            reply = next(replies)
        except StopIteration:
            break
        chunk.append(reply)
        number += 1
        if time.monotonic() - sent_at >= CHUNK_SECONDS:
            connection.send_bytes(wire.dumps(chunk))
            chunk, sent_at = [], time.monotonic()
    connection.send_bytes(wire.dumps(chunk))


def _confine(limits, harness):
    """Limits, no network, bounded output; returns how the network stands."""
    _limit(resource.RLIMIT_CORE, 0)  # a crash leaves no core file behind
    if limits.get("memory"):
        _limit(resource.RLIMIT_AS, limits["memory"])
    if limits.get("file_size"):
        _limit(resource.RLIMIT_FSIZE, limits["file_size"])
    if limits.get("cpu"):
        _limit(resource.RLIMIT_CPU, int(limits["cpu"]) + 1)
    network = "allowed" if limits.get("network") else _leave_network()
    _die_with_parent(harness)
    bounded = _BoundedOutput(sys.__stdout__, limits.get("output", 1 << 20))
    sys.stdout = sys.stderr = bounded
    return network


def _limit(which, value):
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))  # the hard limit too: the engine cannot raise it again


def _cpu_limit_per_case(timeout):
    """Before each case: the soft CPU limit a second past the per-case
    timeout from now (SIGXCPU there).  The wall-clock limit, enforced from
    outside, is the one that cannot be dodged and comes first for one busy
    thread; this one stops a case that burns several cores at once."""
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]

    def before_each():
        soft = math.ceil(time.process_time() + timeout) + 1
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    return before_each


def _libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def _leave_network():
    """A network namespace of its own (no interface but a down loopback):
    root may make one; others through a user namespace where the kernel
    allows unprivileged ones."""
    if not sys.platform.startswith("linux"):
        return f"not isolated: no network namespaces on {sys.platform}"
    import ctypes
    libc = _libc()
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        return f"not isolated: unshare: {os.strerror(ctypes.get_errno())}"
    return "isolated"


def _die_with_parent(harness):
    # No orphan: killed when the process that started it dies, however it
    # dies; and if that happened already (before the signal was asked
    # for), now.
    if sys.platform.startswith("linux"):
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if harness is not None and os.getppid() != harness:
        os._exit(1)


class _BoundedOutput(io.TextIOBase):
    """What the engine prints, kept up to ``limit`` characters (in the
    worker's log), the rest counted and dropped: a chatty engine is not an
    error.  Writes around Python (C code, os.write) meet the file size limit."""

    def __init__(self, stream, limit):
        self.stream, self.left = stream, limit

    def writable(self):
        return True

    def write(self, text):
        if self.left > 0:
            kept = text[:self.left]
            self.left -= len(kept)
            self.stream.write(kept)
            if self.left <= 0:
                self.stream.write("\n[gradparity: the engine's output is cut here]\n")
            self.stream.flush()
        return len(text)
