"""The engine under test's worker process, from the harness's side.

The engine runs in a process of its own (sandbox/worker.py), never in one
that holds the judge (torch, the oracle, the comparison, the reports).  The
worker starts with a minimal environment in a fresh temporary directory,
under limits it cannot raise (Limits), cut off the network where the system
allows, and talks to the harness only in JSON (sandbox/wire.py).  Every way
it can go wrong becomes a cause, given to the case it happened in:

- it returns nothing for ``timeout`` + grace(timeout) seconds: killed ("timeout");
- it exits, is killed by a signal, closes the connection or sends what is
  not a well-formed reply: the cause says which;
and the next cases go to a fresh worker.  An engine that cannot even be
imported without killing its worker is reported once (EngineBroken).

What this guarantees and what it does not is the README's "Isolation".
"""
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional

from .import_path import HARNESS_ROOT
from .sandbox import wire
from .sandbox.engine_runner import EngineSpecError
from .sandbox.text import clean

# Seconds past the per-case timeout before the worker is killed: the
# worker's own timer (engine_runner._time_limit) reports a plain Python loop
# itself, without losing the worker; this catches what it cannot.
def grace(timeout):
    return 0.25 + 0.1 * timeout


# How long a worker whose connection closed gets to exit.
EXIT_WAIT = 1.0
# Importing the engine and answering the first message: twice the per-case
# timeout, and at least this long (an engine that imports numpy needs a
# second on a busy machine).
LOAD_TIMEOUT = 5.0
MAX_REPLY = 16 << 20  # bytes: a worker's reply longer than this is malformed
MALFORMED_REPLY = "the engine's worker sent a malformed reply"
# The environment variables a worker keeps (the rest are dropped): what
# finds programs and the engine's modules, the locale, and the OpenBLAS
# settings some processors need for numpy to run at all.
KEPT_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE",
                    "OPENBLAS_L2_SIZE", "SYSTEMROOT")
BOOTSTRAP = ("import sys; sys.path[:0] = sys.argv[3:]; "
             "from parity.sandbox.worker import main; main(int(sys.argv[1]), int(sys.argv[2]))")


@dataclass(frozen=True)
class Limits:
    """What a worker may use.  The per-case wall-clock timeout is the run's
    ``--timeout``; the rest are here."""
    memory: Optional[int] = 4 << 30        # bytes of address space (RLIMIT_AS); None: no limit
    cpu: Optional[float] = None            # CPU seconds one worker may use in all (RLIMIT_CPU)
    file_size: Optional[int] = 64 << 20    # bytes: the largest file it may write, its log included
    output: int = 1 << 20                  # characters of its printing kept in its log
    network: bool = False                  # False: a network namespace of its own, where possible
    user: Optional[str] = None             # run it as this user (the harness must be root)
    log: Optional[str] = None              # the run's engine log: each worker's log is appended there as it ends

    def to_json(self):
        return asdict(self)


# How an error begins (or what it says) when the engine did not answer: it
# hung (the worker's own time limit, or killed from outside), its worker
# died or broke the protocol, or it ran out of memory.  An op whose lone
# probe ends so is not run again (backends/engine.py); `parity grade`
# scores an item lost so `error`, not wrong.
_NO_ANSWER = ("timeout after", "killed by", "the engine ended its worker", "the engine broke its worker",
              "the engine's worker sent a malformed")


def is_no_answer(error):
    """Whether a case's error (or a probe's) says the engine gave no answer."""
    return error.startswith(_NO_ANSWER) or "(out of memory" in error


class EngineBroken(Exception):
    """The engine kills, hangs or exits its worker before it can run a case."""


class Death:
    """In place of a reply: the worker died (or was killed) on this item."""

    def __init__(self, cause):
        self.cause = cause


MALFORMED = object()


class _Request:
    def __init__(self, items, message):
        self.items, self.message = items, message
        self.cause = None  # why it could not be sent, if it could not


class Sandbox:
    """One engine's worker process, restarted whenever it dies."""

    def __init__(self, engine_spec, data_attr=None, grad_attr=None, timeout=10.0, limits=Limits(), backward=None,
                 adapter=None):
        self.process = self.connection = self.workdir = self.progress = None
        if limits.user is not None and (not hasattr(os, "geteuid") or os.geteuid() != 0):
            raise EngineSpecError(f"--sandbox-user {limits.user}: only root can run the engine as another user")
        if adapter is not None and not os.path.isfile(adapter):
            raise EngineSpecError(f"--adapter {adapter}: no such file")
        # The worker runs in a directory of its own: paths go absolute, and
        # the working directory goes along, where a module spec is looked
        # for first (as `python -m` does).
        self.hello = {"engine": _absolute(engine_spec), "data_attr": data_attr, "grad_attr": grad_attr,
                      "backward": backward, "adapter": adapter and os.path.abspath(adapter), "cwd": os.getcwd(),
                      "timeout": timeout, "limits": limits.to_json(), "harness": os.getpid()}
        self.timeout, self.limits = timeout, limits
        where = engine_spec.rpartition(":")[0] if ":" in engine_spec else engine_spec
        self.given_path = where if self.hello["engine"] != engine_spec else None
        self.broken = None  # the cause, once a restart has failed: every later item gets it
        self.deaths = 0
        self.info = self._start()

    # -- requests ---------------------------------------------------------------
    def replies(self, items, message, valid):
        """One reply per item, in order (``message(items)`` is the request for
        a list of them), or a Death where the worker died, hung or broke the
        protocol on that item (``valid(item, reply)`` is false); the items
        after it go to a fresh worker."""
        return self.finish(self.send(items, message), valid)

    def send(self, items, message):
        """Start a request (see replies): the worker works on it while this
        process does something else, until finish().  One at a time."""
        request = _Request(items, message)
        self._send(request, list(range(len(items))))
        return request

    def finish(self, request, valid):
        """The replies to a request from send(), as replies() gives them."""
        items, out = request.items, [None] * len(request.items)
        todo = list(range(len(items)))
        alone = False  # each item of todo in a request of its own, the first one sent
        while todo:
            if self.broken is not None:
                for i in todo:
                    out[i] = Death(self.broken)
                break
            sent = todo[:1] if alone else todo
            got, cause = ([], request.cause) if request.cause else self._collect([items[i] for i in sent], valid)
            for i, reply in zip(sent, got):
                out[i] = reply
            if cause is None:
                if not alone:
                    break
                todo = todo[1:]
                self._send(request, todo[:1])
                continue
            self.deaths += 1
            if alone:
                out[todo[0]] = Death(cause)
                todo = todo[1:]
            elif cause.startswith(MALFORMED_REPLY):
                # The engine wrote to its connection and ran on until the
                # reply was read: the item it is on by then may be a later
                # one.  The ones not answered run again, each alone.
                todo, alone = todo[len(got):], True
            else:
                # The item it died on: the one it said it was on, if that is
                # one it had not answered (the engine can write that number too).
                on = wire.progress_of(self.progress)
                on = on if len(got) <= on < len(todo) else len(got)
                out[todo[on]] = Death(cause)
                # Items it finished but had not sent yet run again.
                todo = todo[len(got):on] + todo[on + 1:]
            self._restart()
            self._send(request, todo[:1] if alone else todo)
        return out

    def _send(self, request, todo):
        request.cause = None
        if self.broken is None and todo:
            wire.progress_at(self.progress, 0)
            try:
                self.connection.send_bytes(wire.dumps(request.message([request.items[i] for i in todo])))
            except OSError:
                request.cause = self._cause_of_death()

    def _collect(self, items, valid):
        """(replies, None) for the items, or (the replies so far, the cause)
        when the worker dies, hangs or misbehaves first."""
        got = []
        patience = self.timeout + grace(self.timeout) + wire.CHUNK_SECONDS if self.timeout else None
        while len(got) < len(items):
            if not self.connection.poll(patience):
                self._kill()
                return got, f"timeout after {self.timeout:g} s (the engine did not return; its worker was killed)"
            try:
                chunk = wire.loads(self.connection.recv_bytes(MAX_REPLY))
            except (EOFError, OSError):
                return got, self._cause_of_death()
            except (ValueError, RecursionError):
                chunk = None
            if type(chunk) is not list or len(got) + len(chunk) > len(items):
                chunk = [MALFORMED]
            for reply in chunk:
                if reply is MALFORMED or not valid(items[len(got)], reply):
                    self._kill()
                    return got, f"{MALFORMED_REPLY} (the engine wrote to its connection to the harness); its worker was killed"
                got.append(reply)
        return got, None

    # -- the process --------------------------------------------------------------
    def _start(self):
        self.workdir = tempfile.mkdtemp(prefix="parity-engine-")
        user = self.limits.user
        if user is not None:
            shutil.chown(self.workdir, user, _group_of(user))
        ours, theirs = socket.socketpair()
        progress_file = tempfile.TemporaryFile()  # outside its directory: the engine cannot swap it
        progress_file.write(bytes(wire.PROGRESS_BYTES))
        progress_file.flush()
        self.progress = mmap.mmap(progress_file.fileno(), wire.PROGRESS_BYTES)
        with open(os.path.join(self.workdir, "output.log"), "wb") as log, progress_file:
            try:
                self.process = self._popen(log, theirs, progress_file)
            except OSError as exc:
                ours.close()
                who = f"--sandbox-user {user}: " if user else ""
                raise EngineSpecError(f"{who}cannot start the engine's worker ({sys.executable}: {exc.strerror}); "
                                      f"the user must be able to run this Python and read the engine") from None
            finally:
                theirs.close()
        self.connection = Connection(ours.detach())
        try:
            self.connection.send_bytes(wire.dumps(self.hello))
        except OSError:
            pass  # it died already: the poll below finds out why
        patience = max(LOAD_TIMEOUT, 2 * self.timeout)
        if not self.connection.poll(patience):
            self._kill()
            raise EngineBroken(f"timeout after {patience:g} s while importing the engine (its worker was killed)")
        try:
            reply = wire.loads(self.connection.recv_bytes(MAX_REPLY))
        except (EOFError, OSError):
            raise EngineBroken(self._cause_of_death() + " while importing the engine") from None
        except (ValueError, RecursionError):
            self._kill()
            raise EngineBroken("the engine's worker sent a malformed reply while importing the engine") from None
        if isinstance(reply, dict) and "spec_error" in reply:
            self.close()
            message = clean(reply["spec_error"], 2000)
            if self.given_path:  # the user's spelling of the engine's path, not the worker's absolute one
                message = message.replace(os.path.abspath(self.given_path), self.given_path)
            raise EngineSpecError(message)
        if not (isinstance(reply, dict) and isinstance(reply.get("loaded"), dict)):
            self._kill()
            raise EngineBroken("the engine's worker sent a malformed reply while importing the engine")
        return reply["loaded"]

    def _popen(self, log, theirs, progress_file):
        user = self.limits.user
        fds = (theirs.fileno(), progress_file.fileno())
        return subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", BOOTSTRAP, *map(str, fds), *_worker_path()],
            cwd=self.workdir, env=self._environment(), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, pass_fds=fds, start_new_session=True,
            **({"user": user, "group": _group_of(user), "extra_groups": []} if user else {}))

    def _restart(self):
        self.close()
        try:
            self._start()
        except (EngineBroken, EngineSpecError) as exc:
            self.broken = f"{exc} (restarting its worker after: {self.deaths} death(s))"

    def _environment(self):
        env = {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}
        # Its temporary directory is its home; one thread per library (the
        # harness's workers are the parallelism).
        env.update(HOME=self.workdir, TMPDIR=self.workdir, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        return env

    def _cause_of_death(self):
        """Why the worker stopped answering, once its connection closed."""
        try:
            status = self.process.wait(timeout=EXIT_WAIT)
        except subprocess.TimeoutExpired:
            self._kill()
            return ("the engine broke its worker's connection to the harness (wrote into it or closed it); "
                    "its worker was killed")
        if status >= 0:
            cause = f"the engine ended its worker: exit status {status} (sys.exit, SystemExit or os._exit)"
        else:
            cause = _signal_cause(-status, self.timeout, self.limits)
        tail = self.output_tail()
        return f"{cause}; its last output: {tail}" if tail else cause

    def output_tail(self, size=200):
        """The end of what the worker printed, cleaned (it is the engine's text)."""
        try:
            with open(os.path.join(self.workdir, "output.log"), "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - size))
                text = log.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return clean(text.splitlines()[-1] if text else "", size)

    def _kill(self):
        """The worker and every process it started in its session."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
            self.process.wait()

    def _keep_log(self):
        """Append what the worker printed (its import included) to the run's
        engine log, if the run keeps one and the worker printed anything."""
        if not self.limits.log or self.workdir is None:
            return
        try:
            with open(os.path.join(self.workdir, "output.log"), "rb") as log:
                text = log.read(self.limits.output * 4 + 4096)
            if text.strip():
                header = f"== an engine worker ({time.strftime('%H:%M:%S')}) printed:\n".encode()
                fd = os.open(self.limits.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, header + text + (b"" if text.endswith(b"\n") else b"\n"))
                finally:
                    os.close(fd)
        except OSError:
            pass  # the log is a courtesy: a full disk does not stop the run here

    def close(self):
        """End the worker (EOF first, then SIGKILL) and remove its directory."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.process is not None:
            try:
                self.process.wait(timeout=EXIT_WAIT)
            except subprocess.TimeoutExpired:
                pass
            self._kill()
            # Whatever it left running in its session goes too.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process = None
        if self.workdir is not None:
            self._keep_log()
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __del__(self):
        self.close()


def _signal_cause(number, timeout, limits):
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if name == "SIGXCPU":
        return (f"killed by SIGXCPU: over its CPU time limit (the timeout, {timeout:g} s, a case"
                + (f"; {limits.cpu:g} s in all)" if limits.cpu else ")"))
    if name == "SIGXFSZ":
        return f"killed by SIGXFSZ: a file it wrote (or its output) grew past {limits.file_size:,} bytes"
    if name == "SIGKILL":
        return "killed by SIGKILL (out of memory" + (", or its CPU time limit)" if limits.cpu else ")")
    return f"killed by {name}" + (" (a crash: in the engine's code or a C extension it calls)"
                                  if name in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT") else "")


def _absolute(spec):
    """A file spec with its path made absolute: the worker runs elsewhere."""
    where, sep, name = spec.rpartition(":")
    if not sep:
        where, name = spec, None
    if where.endswith(".py") or "/" in where or "\\" in where:
        if not os.path.isfile(where):
            raise EngineSpecError(f"engine file not found: {where}")
        return os.path.abspath(where) + (f":{name}" if name is not None else "")
    return spec


def _worker_path():
    """sys.path for the worker: the harness's own root first, so that no file
    of the working directory or the engine's can stand in for parity or
    engine, then what this process finds modules on (the engine's package,
    PYTHONPATH), the working directory last if this process has it (so that
    its files shadow nothing, not even the standard library)."""
    path = [str(HARNESS_ROOT)]
    for entry in sys.path:
        if entry and os.path.abspath(entry) not in path:
            path.append(os.path.abspath(entry))
    if "" in sys.path and os.getcwd() not in path:
        path.append(os.getcwd())
    return path


def _group_of(user):
    import pwd
    return pwd.getpwnam(user).pw_gid
