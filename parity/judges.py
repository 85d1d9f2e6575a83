"""Judging a run's tasks, in this process or in judge worker processes.

A judge holds torch, the oracle and the comparison (runner.run_cases), and
the engine under test behind its process boundary: each judge has an engine
of its own (backends/engine.py), in a sandboxed worker process unless it is
trusted.  Tasks go out in plan order and their rows come back in that
order, so the report needs no sort.
"""
import collections
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
import gc
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import multiprocessing.util
import os
import signal
import threading

from .isolation import EngineBroken, Limits

# Tasks submitted per worker ahead of the one whose rows are due next: rows
# are written in case order, so a slow task holds back the ones after it,
# and this many keep the workers busy meanwhile.
TASKS_IN_FLIGHT = 4


def load_engine(spec, isolation="auto", limits=Limits()):
    """The run's engine.  One that kills or hangs its worker before it can
    run a case is a BrokenEngine: every case an error with that cause."""
    from .backends.engine import BrokenEngine, load_engine

    try:
        return load_engine(spec.engine, isolation=isolation, limits=limits, **spec.engine_options())
    except EngineBroken as exc:
        return BrokenEngine(spec.engine, str(exc))


def load_backends(spec, engine=None, isolation="auto", limits=Limits()):
    """(engine, reference, oracle, tolerances): what runner.run_cases takes
    (the reference: torch, or the oracle's exact answer, by spec.reference),
    the judge's part checked once the engine is loaded (selfcheck.py)."""
    from .backends.oracle import OracleBackend
    from .backends.reference import make_reference
    from .compare import Tolerances
    from .selfcheck import check_judge

    engine = engine or load_engine(spec, isolation, limits)
    oracle = OracleBackend()
    backends = engine, make_reference(spec.reference, oracle), oracle, Tolerances()
    check_judge(*backends[1:])
    return backends


def run_task(cases, spec, backends):
    """Rows for some cases, with replay commands that carry the run's options."""
    from .runner import run_cases

    for row in run_cases(cases, *backends):
        row["replay"] = spec.replay_command(row["case_id"])
        yield row


def rows_in_process(tasks, spec, backends):
    """run_task's rows for each task in turn, as one stream: the engine
    starts on a task's first request while the last one's is judged."""
    from .runner import run_tasks

    with _long_lived_frozen():
        for row in run_tasks(tasks, *backends):
            row["replay"] = spec.replay_command(row["case_id"])
            yield [row]


@contextmanager
def _long_lived_frozen():
    """What this process holds by now (torch's modules, the backends: some
    200,000 objects, none of them garbage) out of the cycle collector's
    way meanwhile (gc.freeze): every full collection the run's allocations
    set off would walk them all, 3-5 % of a run's CPU time
    (bench/overhead.py).  Not in a process that froze objects already:
    freezing is the process's, and gc.unfreeze would thaw them too."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


_judge_state = None  # (spec, backends) in a judge worker process, or the exception that stopped them


def _start_judge(spec, isolation, limits):
    # Ctrl-C reaches the whole process group; the parent alone acts on it
    # (see _judge_context).  Forked by the fork server, a judge ignores it
    # from birth; spawned, from here on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    from . import cases  # noqa: F401  registers the ops that the plan registered (functions.py's)
    if spec.reference == "torch":
        import torch
        torch.set_num_threads(1)  # the workers are the parallelism: no oversubscribed cores
    global _judge_state
    try:
        _judge_state = spec, load_backends(spec, isolation=isolation, limits=limits)
    except Exception as exc:  # raised with its message by the first task (an initializer's is lost)
        _judge_state = exc
        return
    gc.freeze()  # a judge's process is the run's: what it holds now lives as long (see _long_lived_frozen)
    # A pool's process ends without running atexit: its engine's worker
    # and temporary directory go with multiprocessing's own finalizers.
    multiprocessing.util.Finalize(None, _judge_state[1][0].close, exitpriority=10)


def _die_with_parent():
    """End this judge as soon as the run that started it is gone, however it
    went (SIGKILL included): a pool's worker waits for its next task
    forever otherwise, and the fork server and the engine's worker wait
    for it.  The parent holds the only write end of a pipe whose read end
    is multiprocessing's parent sentinel: it reads as closed when the
    parent dies."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        multiprocessing.connection.wait([parent.sentinel])
        try:
            if isinstance(_judge_state, tuple):
                _judge_state[1][0].close()  # the engine's worker and its directory (the worker dies with us anyway)
        finally:
            os._exit(1)

    threading.Thread(target=watch, name="parity-parent-watch", daemon=True).start()


def _judge_task(cases):
    if isinstance(_judge_state, Exception):
        raise _judge_state
    spec, backends = _judge_state
    return list(run_task(cases, spec, backends))


# Imported once by the fork server, so that each judge starts with them
# loaded (importing torch takes about 2 s) instead of importing them itself.
JUDGE_PRELOAD = ["torch", "mpmath", "parity.cases", "parity.runner", "parity.backends.engine",
                 "parity.backends.oracle", "parity.backends.torch"]


def _judge_context(reference="torch"):
    # Not fork: torch's thread pools do not survive a fork once torch has run
    # ops, and the parent has.  The fork server is a fresh process that has
    # imported torch and run nothing; spawn where there is none (Windows).
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # A judge with the oracle as its reference never imports torch.
    context.set_forkserver_preload([m for m in JUDGE_PRELOAD if reference == "torch" or "torch" not in m])
    # Ctrl-C reaches the whole process group, and only the parent may act on
    # it (stop handing out work, keep what finished): a fork server or a
    # worker killed by it hangs the pool.  Started while the parent ignores
    # SIGINT, the fork server ignores it from its first instruction on, and
    # so does every worker it forks.  (Starting it does not wait for the
    # preload: the window in which a Ctrl-C is lost is short.)
    with _sigint_ignored(), _safe_path():
        multiprocessing.forkserver.ensure_running()
    return context


@contextmanager
def _safe_path():
    """The fork server (and multiprocessing's resource tracker) start as
    `python -c`, which puts the working directory first on sys.path: its
    preloads would import a learner's engine.py instead of ours.  Python
    3.11's PYTHONSAFEPATH leaves it off (import_path.py does the same for
    this process, whose sys.path the judges inherit)."""
    previous = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYTHONSAFEPATH"]
        else:
            os.environ["PYTHONSAFEPATH"] = previous


@contextmanager
def _sigint_ignored():
    """SIGINT ignored meanwhile (in the main thread; elsewhere it cannot be)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def rows_from_judges(tasks, spec, workers, keep, isolation="auto", limits=Limits()):
    """Rows of ``tasks`` from ``workers`` judge processes, task by task in
    order, with at most TASKS_IN_FLIGHT tasks per judge submitted: the plan
    is a generator, and a run of any length holds only these cases and their
    rows.  Interrupted, the tasks that finished ahead of their turn go to
    ``keep``."""
    with ProcessPoolExecutor(workers, mp_context=_judge_context(spec.reference),
                             initializer=_start_judge, initargs=(spec, isolation, limits)) as pool:
        running = collections.deque()
        try:
            for cases in tasks:
                running.append(pool.submit(_judge_task, cases))
                if len(running) >= TASKS_IN_FLIGHT * workers:
                    yield running.popleft().result()
            while running:
                yield running.popleft().result()
        except BaseException:
            for future in running:
                if future.done() and not future.cancelled() and future.exception() is None:
                    keep(future.result())
            raise
        finally:
            # Interrupted or failed: drop the queued tasks; leaving the
            # `with` waits for the running ones.
            for future in running:
                future.cancel()
