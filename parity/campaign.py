"""Campaigns: run a plan of cases on worker processes, stream the rows to disk
as they finish, resume an interrupted run, split a campaign into shards and
merge them back.

A run writing OUT.csv leaves:
  OUT.csv.partial  the rows so far, flushed one by one: a valid CSV at any moment
  OUT.json         the sidecar: run arguments, shard, metadata, completeness
  OUT.csv          every row in case order, written at the end (temporary file,
                   then rename), when OUT.csv.partial is removed
The rows depend only on the run arguments (RunSpec), never on the number of
workers or on sharding: two runs differ in the timing columns only.
"""
import collections
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
import csv
import datetime
import heapq
import importlib.metadata
import itertools
import json
import multiprocessing
import multiprocessing.forkserver
import os
from pathlib import Path
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import NamedTuple, Optional

from . import __version__
from .case import FAMILIES
from .report import COLUMNS, ReportError, Summary, iter_report

# Without --cases, each family's fixed cases (named ones, the edge table) and
# this many random ones: a mix that runs in well under a minute on 2 cores.
DEFAULT_RANDOM_CASES = {"expr": 3200, "mlp": 63, "accumulation": 200, "function": 200, "edges": 800}
# The work in one task sent to a worker, in node evaluations (see cost()):
# a fraction of a second, so the workers stay balanced and Ctrl-C is not
# kept waiting; 4 times more per task ran no faster.
TASK_COST = 5_000
# Tasks submitted per worker ahead of the one whose rows are due next: rows
# are written in case order, so a slow task holds back the ones after it,
# and this many keep the workers busy meanwhile.
TASKS_IN_FLIGHT = 4


class CampaignError(ValueError):
    """A run or merge that cannot go ahead (the CLI exits with status 2)."""


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides which cases a run has and what their rows say."""
    engine: str = "engine"
    families: tuple = FAMILIES
    cases: Optional[int] = None       # per family; None: DEFAULT_RANDOM_CASES after the fixed ones
    seed: int = 0
    edge_rate: Optional[float] = None  # None: the generators' defaults
    max_nodes: Optional[int] = None
    ops: Optional[tuple] = None        # the expr family's op mix; None: every built-in op
    data_attr: str = "data"
    grad_attr: str = "grad"
    timeout: float = 10.0

    def __post_init__(self):
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"unknown families {unknown or '(none given)'}; known: {', '.join(FAMILIES)}")
        if self.cases is not None and self.cases < 1:
            raise ValueError(f"--cases must be at least 1, not {self.cases}")

    def n_cases(self, family):
        if self.cases is not None:
            return self.cases
        from .cases import n_fixed_cases
        return n_fixed_cases(family) + DEFAULT_RANDOM_CASES[family]

    def config(self):
        """The cases' config: the knobs given (build_cases keeps its defaults
        for the others), or None.  Raises ValueError for a bad knob."""
        knobs = {name: value for name, value in (("edge_rate", self.edge_rate), ("max_nodes", self.max_nodes),
                                                 ("ops", self.ops))
                 if value is not None}
        if not knobs:
            return None
        from .generate import ExprConfig
        ExprConfig(**knobs)  # its checks, now rather than in a worker
        return knobs

    def replay_command(self, case_id):
        """The shell command that replays one case of this run."""
        options = ["--engine", self.engine]
        for option, value, default in (("--data-attr", self.data_attr, "data"),
                                       ("--grad-attr", self.grad_attr, "grad"),
                                       ("--timeout", self.timeout, 10.0),
                                       ("--edge-rate", self.edge_rate, None),
                                       ("--max-nodes", self.max_nodes, None),
                                       ("--ops", self.ops and ",".join(self.ops), None)):
            if value != default:
                options += [option, str(value)]
        return shlex.join(["parity", "replay", case_id, *options])

    def to_json(self):
        return {**asdict(self), "families": list(self.families), "ops": self.ops and list(self.ops)}

    @classmethod
    def from_json(cls, data):
        ops = data.get("ops")
        return cls(**{**data, "families": tuple(data["families"]), "ops": ops and tuple(ops)})


class Shard(NamedTuple):
    k: int  # 1-based
    n: int

    @classmethod
    def parse(cls, text):
        try:
            k, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"shard must be K/N (e.g. 2/4), not {text!r}") from None
        if not 1 <= k <= n:
            raise ValueError(f"shard {text}: need 1 <= K <= N")
        return cls(k, n)

    def __str__(self):
        return f"{self.k}/{self.n}"


WHOLE = Shard(1, 1)


# -- the plan ----------------------------------------------------------------------
def plan(spec, shard=WHOLE):
    """This shard's cases, as groups of consecutive cases sharing a structure
    (torch evaluates each group as one batch), in case order: a generator,
    so that a run holds only the cases it is working on.

    Shards take the groups round-robin: every shard gets a similar mix of
    families and sizes, and a group is never split."""
    from .cases import iter_cases

    number, group = 0, []
    for family in spec.families:
        for case in iter_cases(family, spec.seed, spec.n_cases(family), spec.config()):
            if group and not (case.structure and group[-1].structure == case.structure):
                if number % shard.n == shard.k - 1:
                    yield group
                number, group = number + 1, []
            group.append(case)
    if group and number % shard.n == shard.k - 1:
        yield group


def cost(case):
    """A case's work, roughly: nodes evaluated forward and backward."""
    return case.graph.n_nodes * case.passes * max(1, case.spec.get("steps", 0))


def pack(groups, budget):
    """Whole groups packed into tasks of at most ``budget`` cost (a group
    costlier than that is a task of its own); a generator, as plan()."""
    task, spent = [], 0
    for group in groups:
        group_cost = sum(map(cost, group))
        if task and spent + group_cost > budget:
            yield task
            task, spent = [], 0
        task.extend(group)
        spent += group_cost
    if task:
        yield task


def case_order(spec, header):
    """The sort key of a report's CSV rows (lists of strings, in ``header``'s
    columns): families in the run's order, then seed and index."""
    rank = {family: i for i, family in enumerate(spec.families)}
    family, seed, index = (header.index(column) for column in ("family", "seed", "index"))
    return lambda row: (rank.get(row[family], len(rank)), int(row[seed]), int(row[index]))


def ordered_rows(paths, spec):
    """(header, rows): the data rows of the CSV files at ``paths``, merged
    into case order.  Each file is cut into its ascending runs (a run's
    workers deliver rows in case order, so a file has one run per
    invocation that wrote it) and the runs are merged: memory holds a row
    per run, not the rows."""
    header = _header(paths[0])
    key = case_order(spec, header)
    runs = [_rows_of(path, start, stop) for path in paths for start, stop in _ascending_runs(path, key)]
    return header, heapq.merge(*runs, key=key)


def _header(path):
    with open(path, newline="") as file:
        return next(csv.reader(file), [])


def _rows_of(path, start=0, stop=None):
    with open(path, newline="") as file:
        yield from itertools.islice(csv.reader(file), start + 1, None if stop is None else stop + 1)


def _ascending_runs(path, key):
    """[(start, stop)]: row numbers of the maximal ascending runs of a CSV."""
    runs, start, last = [], 0, None
    for i, row in enumerate(_rows_of(path)):
        current = key(row)
        if last is not None and current <= last:
            runs.append((start, i))
            start = i
        last = current
    return runs + [(start, i + 1)] if last is not None else runs


def write_ordered(paths, spec, out, limit=100):
    """Write the rows of ``paths`` to ``out`` (atomically) in case order, and
    return their Summary; a case in two rows is a CampaignError."""
    header, rows = ordered_rows(paths, spec)
    key = case_order(spec, header)
    with atomic_file(out) as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        last = None
        for row in rows:
            if last is not None and key(row) == last:
                raise CampaignError(f"case {row[header.index('case_id')]} is in more than one row")
            last = key(row)
            writer.writerow(row)
    summary = Summary(limit)
    for chunk in iter_report(out):
        summary.add(chunk)
    return summary


# -- running the cases ---------------------------------------------------------------
def load_engine(spec):
    from .backends.engine import load_engine
    return load_engine(spec.engine, spec.data_attr, spec.grad_attr, spec.timeout)


def load_backends(spec, engine=None):
    """(engine, torch, oracle, tolerances): what runner.run_cases takes."""
    from .backends.oracle import OracleBackend
    from .backends.torch import TorchBackend
    from .compare import Tolerances

    return engine or load_engine(spec), TorchBackend(), OracleBackend(), Tolerances()


def run_task(cases, spec, backends):
    """Rows for some cases, with replay commands that carry the run's options."""
    from .runner import run_cases

    for row in run_cases(cases, *backends):
        row["replay"] = spec.replay_command(row["case_id"])
        yield row


_worker_state = None  # (spec, backends) in a worker process


def _start_worker(spec):
    # Ctrl-C reaches the whole process group; the parent alone acts on it
    # (see _worker_context).  Forked by the fork server, a worker ignores it
    # from birth; spawned, from here on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import cases  # noqa: F401  registers the ops that the plan registered (functions.py's)
    try:
        import torch
        torch.set_num_threads(1)  # the workers are the parallelism: no oversubscribed cores
    except ImportError:
        pass
    global _worker_state
    _worker_state = spec, load_backends(spec)


def _run_in_worker(cases):
    spec, backends = _worker_state
    return list(run_task(cases, spec, backends))


# Imported once by the fork server, so that each worker starts with them
# loaded (importing torch takes about 2 s) instead of importing them itself.
WORKER_PRELOAD = ["torch", "mpmath", "parity.cases", "parity.runner", "parity.backends.engine",
                  "parity.backends.oracle", "parity.backends.torch"]


def _worker_context():
    # Not fork: torch's thread pools do not survive a fork once torch has run
    # ops, and the parent has.  The fork server is a fresh process that has
    # imported torch and run nothing; spawn where there is none (Windows).
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    # Ctrl-C reaches the whole process group, and only the parent may act on
    # it (stop handing out work, keep what finished): a fork server or a
    # worker killed by it hangs the pool.  Started while the parent ignores
    # SIGINT, the fork server ignores it from its first instruction on, and
    # so does every worker it forks.  (Starting it does not wait for the
    # preload: the window in which a Ctrl-C is lost is short.)
    with _sigint_ignored():
        multiprocessing.forkserver.ensure_running()
    return context


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


def _rows_in_process(tasks, spec, backends):
    for cases in tasks:
        for row in run_task(cases, spec, backends):
            yield [row]


def _rows_from_workers(tasks, spec, workers, keep):
    # Rows in task order, so that the report needs no sort, with at most
    # TASKS_IN_FLIGHT tasks per worker submitted: the plan is a generator,
    # and a run of any length holds only these cases and their rows.
    # Interrupted, the tasks that finished ahead of their turn go to ``keep``.
    with ProcessPoolExecutor(workers, mp_context=_worker_context(),
                             initializer=_start_worker, initargs=(spec,)) as pool:
        running = collections.deque()
        try:
            for cases in tasks:
                running.append(pool.submit(_run_in_worker, cases))
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


# -- files --------------------------------------------------------------------------
def sidecar_path(out):
    return Path(out).with_suffix(".json")


def partial_path(out):
    return Path(f"{out}.partial")


def write_atomic(path, text):
    """Write ``text`` to a temporary file beside ``path``, then rename it over
    ``path``: a reader sees the old file or the new one, never half of one."""
    with atomic_file(path) as file:
        file.write(text)


def copy_atomic(source, path):
    with atomic_file(path) as file, open(source, newline="") as original:
        shutil.copyfileobj(original, file)


@contextmanager
def atomic_file(path):
    """A text file to write that replaces ``path`` when the block ends
    without an exception (and is deleted otherwise)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; a report is not
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def read_sidecar(out):
    path = sidecar_path(out)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CampaignError(f"{path}: no such file (the run's sidecar, written by `parity run`)") from None
    except (OSError, ValueError) as exc:
        raise CampaignError(f"{path}: unreadable sidecar: {exc}") from None


class RowWriter:
    """Appends rows to a CSV, flushing each, so that the file is a valid CSV
    of every finished case whenever the run stops."""

    def __init__(self, path, append):
        fresh = not append or not Path(path).exists() or Path(path).stat().st_size == 0
        if not fresh:
            _drop_torn_line(path)
        self.file = open(path, "a" if append else "w", newline="")
        self.writer = csv.DictWriter(self.file, COLUMNS, extrasaction="ignore", lineterminator="\n")
        if fresh:
            self.writer.writeheader()
            self.file.flush()

    def write_all(self, rows):
        self.writer.writerows(rows)
        self.file.flush()

    def close(self):
        self.file.close()


def _drop_torn_line(path):
    # A kill in the middle of a write can leave a last line without its
    # newline: that row did not finish, and its case runs again.
    data = Path(path).read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


def run_metadata(engine_backend, workers):
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "gradparity": __version__, "git": _git_revision(),
        "engine": engine_backend.name, "engine_version": engine_backend.version,
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "torch": version("torch"), "numpy": version("numpy"), "mpmath": version("mpmath"),
        "pandas": version("pandas"), "platform": platform.platform(), "cpus": os.cpu_count(),
        "workers": workers,
    }


def _git_revision():
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# -- a run --------------------------------------------------------------------------
@dataclass
class RunOutcome:
    summary: Summary  # of every row of the run, resumed ones included
    ran: int          # cases run by this invocation
    seconds: float    # this invocation's wall time


def run(spec, out, shard=WHOLE, workers=1, resume=False, progress=False):
    """Run this shard of the campaign into ``out``; see the module docstring."""
    from .compare import Tolerances

    out = Path(out)
    partial = partial_path(out)
    if not resume and partial.exists():
        raise CampaignError(f"{partial} holds an unfinished run: pass --resume to continue it, or delete it")
    engine = load_engine(spec)  # a bad engine spec fails here, before any work
    # A shard's share depends on the structures drawn; the whole is known
    # without drawing a million cases.
    planned = (sum(map(spec.n_cases, spec.families)) if shard == WHOLE
               else sum(len(group) for group in plan(spec, shard)))
    done = _resumable_rows(spec, shard, out) if resume else set()
    sidecar = {"args": spec.to_json(), "shard": list(shard), "complete": False, "planned": planned,
               "started": _now(), "metadata": run_metadata(engine, workers),
               "tolerances": asdict(Tolerances())}
    write_atomic(sidecar_path(out), json.dumps(sidecar, indent=2) + "\n")

    # The plan again, lazily: building cases is cheap, holding them all is not.
    tasks = pack((todo for todo in ([c for c in group if c.case_id not in done] for group in plan(spec, shard))
                  if todo), TASK_COST)
    bar = _progress_bar(planned - len(done)) if progress else None
    start, ran = time.perf_counter(), 0
    writer = RowWriter(partial, append=resume)
    batches = None
    try:
        first_tasks = list(itertools.islice(tasks, 2))  # one task alone is not worth a pool
        tasks = itertools.chain(first_tasks, tasks)
        batches = (_rows_in_process(tasks, spec, load_backends(spec, engine))
                   if workers <= 1 or len(first_tasks) <= 1
                   else _rows_from_workers(tasks, spec, workers, keep=writer.write_all))
        for rows in batches:
            writer.write_all(rows)
            ran += len(rows)
            if bar is not None:
                bar.update(len(rows))
    finally:
        if batches is not None:
            batches.close()  # before the writer: an interrupted pool hands it what finished
        writer.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start

    summary = write_ordered([partial], spec, out)
    partial.unlink()
    sidecar.update(complete=True, finished=_now(), cases=summary.cases, verdicts=summary.verdict_counts())
    write_atomic(sidecar_path(out), json.dumps(sidecar, indent=2) + "\n")
    return RunOutcome(summary, ran, seconds)


def _resumable_rows(spec, shard, out):
    """The case_ids already done by the run being resumed into ``out``."""
    partial = partial_path(out)
    if not partial.exists():
        if not out.exists():
            raise CampaignError(f"nothing to resume: neither {partial} nor {out} exists")
        copy_atomic(out, partial)  # a finished run: rerun nothing, rewrite the same
    sidecar = read_sidecar(out)
    if sidecar.get("args") != spec.to_json() or sidecar.get("shard") != list(shard):
        raise CampaignError(f"cannot resume {out}: it was run with other arguments "
                            f"({_difference(sidecar, spec, shard)})")
    _drop_torn_line(partial)
    try:
        done = {case_id for chunk in iter_report(partial) for case_id in chunk["case_id"]}
    except ReportError as exc:
        raise CampaignError(f"cannot resume: {exc}") from None
    strangers = set(done)
    for group in plan(spec, shard):
        strangers.difference_update(case.case_id for case in group)
    if strangers:
        raise CampaignError(f"cannot resume {out}: it has cases this run does not plan, e.g. {min(strangers)}")
    return done


def _difference(sidecar, spec, shard):
    theirs = {**sidecar.get("args", {}), "shard": sidecar.get("shard")}
    ours = {**spec.to_json(), "shard": list(shard)}
    return "; ".join(f"{key}: {theirs.get(key)!r} there, {ours[key]!r} here"
                     for key in ours if theirs.get(key) != ours[key])


def _progress_bar(total):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar
        return None
    return tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True)


# -- merging shards -----------------------------------------------------------------
def merge(paths, out):
    """Join every shard's report into ``out`` (and its sidecar): the same rows
    as the run without shards.  Refuses reports of other runs, unfinished
    ones, a missing shard, and shards that overlap."""
    if not paths:
        raise CampaignError("merge needs at least one report")
    sidecars = [read_sidecar(path) for path in paths]
    first = sidecars[0]
    for path, sidecar in zip(paths, sidecars):
        if sidecar.get("args") != first.get("args"):
            raise CampaignError(f"{path} is from another run than {paths[0]}: "
                                f"{_difference(sidecar, RunSpec.from_json(first['args']), first['shard'])}")
        if not sidecar.get("complete"):
            raise CampaignError(f"{path} is an unfinished run: finish it with `parity run ... --resume` first")
    shards = [Shard(*s["shard"]) for s in sidecars]
    if len({s.n for s in shards}) > 1:
        raise CampaignError(f"shards of different splits: {', '.join(map(str, shards))}")
    if len(set(shards)) < len(shards):
        raise CampaignError(f"the same shard given twice: {', '.join(map(str, shards))}")
    missing = sorted(set(range(1, shards[0].n + 1)) - {s.k for s in shards})
    if missing:
        raise CampaignError(f"missing shard(s) {', '.join(f'{k}/{shards[0].n}' for k in missing)}")

    headers = [_header(path) for path in paths]
    for path, header in zip(paths, headers):
        if header != headers[0]:
            raise CampaignError(f"{path} has other columns than {paths[0]}")
        try:
            for _ in iter_report(path):  # every value checked, a chunk at a time
                pass
        except ReportError as exc:
            raise CampaignError(f"cannot merge: {exc}") from None
    try:
        summary = write_ordered(paths, RunSpec.from_json(first["args"]), out)
    except CampaignError as exc:
        raise CampaignError(f"shards overlap: {exc}") from None
    # The first shard's metadata and tolerances stand for all (same arguments).
    merged = {**first, "shard": list(WHOLE), "complete": True, "cases": summary.cases,
              "planned": sum(s.get("planned", 0) for s in sidecars), "verdicts": summary.verdict_counts(),
              "merged_from": [str(p) for p in paths], "finished": _now()}
    write_atomic(sidecar_path(out), json.dumps(merged, indent=2) + "\n")
    return summary, merged
