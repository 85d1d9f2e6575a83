"""A run: ``parity run``'s way from its arguments to a finished report.

The plan (plan.py) gives the cases in order, packed into tasks; judges
(judges.py: torch, the oracle and the comparison, each with the engine
under test in a sandboxed worker of its own) turn tasks into rows; the
run's files (report_files.py) take the rows as they come: a partial report
flushed row by row, then the report in case order and its sidecar; when
some case failed, the diagnosis (diagnosis.py) turns them into findings.  The rows
depend only on the run's arguments (RunSpec), never on the number of
workers, on sharding or on isolation: two runs differ in the timing columns
only.
"""
from dataclasses import asdict, dataclass, replace
import importlib.metadata
import itertools
import json
import os
from pathlib import Path
import platform
import subprocess
import time
from typing import Optional

from . import __version__
from .backends.reference import version as reference_version
from .isolation import Limits
from .judges import load_backends, load_engine, rows_from_judges, rows_in_process
from .plan import TASK_COST, WHOLE, pack, plan
from .progress import Progress
from .report import Summary
from .report_files import (CampaignError, RowWriter, check_output, now, partial_path, resumable_rows,
                           sidecar_path, write_atomic, write_ordered)
from .run_lock import output_lock
from .sidecar import identity


@dataclass
class RunOutcome:
    summary: Summary  # of every row of the run, resumed ones included
    ran: int          # cases run by this invocation
    seconds: float    # this invocation's wall time
    engine_broken: Optional[str] = None  # why the engine could run no case at all, if it could not
    diagnosis: object = None  # diagnosis.Diagnosis of the fail/error cases, if any
    adapter: Optional[dict] = None  # how the engine was driven (sandbox/adapter.py), None for ours
    probe_lines: tuple = ()  # the op probes' findings, in a line or two
    engine_log: Optional[str] = None  # what the engine's workers printed, if they printed anything
    reference: str = "torch"  # what judged the rows (backends/reference.py): torch or oracle

    @property
    def judged(self):
        """Cases given a verdict other than unsupported."""
        return sum(n for verdict, n in self.summary.verdict_counts().items() if verdict != "unsupported")


def engine_log_path(out):
    """Where a run keeps what its engine's workers print (OUT.engine.log)."""
    return Path(out).with_suffix(".engine.log")


def run(spec, out, shard=WHOLE, workers=1, resume=False, progress=False, isolation="auto", limits=Limits(),
        resume_anyway=False, engine=None, prepare=None, started=None, diagnose=None):
    """Run this shard of the campaign into ``out``; see the module docstring
    and report_files.py for the files.  ``out`` is checked, and locked for
    the whole run (run_lock.py), before any work.  ``engine``: the run's
    engine backend, if the caller loaded it already; ``prepare()``, called
    once ``out`` is locked, gives ``(spec, engine)`` (``--ops supported``
    probes the engine to make the spec): either way the engine is imported
    once, not once per step, and closed here.  ``started(spec, engine)``
    is called once the run's checks passed, before any case runs.
    ``diagnose(spec, report, engine)`` gives the Diagnosis of a run with a
    fail or error case (default: diagnosis.diagnose's, with its own probes)."""
    out = Path(out)
    holder = [engine]  # the engine to close, whoever loaded it
    try:
        check_output(out)
        with output_lock(out):
            if prepare is not None:
                spec, holder[0] = prepare(holder)
            return _run(spec, out, shard, workers, resume, progress, isolation, limits, resume_anyway, holder,
                        started, diagnose or _diagnose)
    finally:
        if holder[0] is not None:
            holder[0].close()


def _run(spec, out, shard, workers, resume, progress, isolation, limits, resume_anyway, holder, started, diagnose):
    from .backends.engine import BrokenEngine
    from .compare import Tolerances

    partial = partial_path(out)
    if not resume and partial.exists():
        raise CampaignError(f"{partial} holds an unfinished run: pass --resume to continue it, or delete it")
    who = identity(spec)
    done = resumable_rows(spec, shard, out, who, resume_anyway) if resume else set()
    log = engine_log_path(out)
    if not resume and log.exists():
        log.unlink()  # a fresh run's log starts empty
    limits = replace(limits, log=str(log.resolve()))
    engine = holder[0]
    if engine is None:
        engine = holder[0] = load_engine(spec, isolation, limits)  # a bad engine spec fails here, before any work
    elif getattr(engine, "sandbox", None) is not None:
        engine.sandbox.limits = replace(engine.sandbox.limits, log=limits.log)
    broken = engine.cause if isinstance(engine, BrokenEngine) else None
    if started is not None:
        started(spec, engine)
    # A shard's share depends on the structures drawn; the whole is known
    # without drawing a million cases.
    planned = (sum(map(spec.n_cases, spec.families)) if shard == WHOLE
               else sum(len(group) for group in plan(spec, shard)))
    sidecar = {"args": spec.to_json(), "shard": list(shard), "complete": False, "planned": planned,
               "started": now(), "identity": who, "metadata": run_metadata(engine, workers, limits),
               "tolerances": asdict(Tolerances()), "adapter": engine.adapter,
               "reference": {"name": spec.reference, "version": reference_version(spec.reference)},
               "probes": {status: {op: why for op, (s, why) in sorted(engine.probe_findings.items()) if s == status}
                          for status in ("absent", "broken")}}
    write_atomic(sidecar_path(out), json.dumps(sidecar, indent=2) + "\n")

    # The plan again, lazily: building cases is cheap, holding them all is not.
    tasks = pack((todo for todo in ([c for c in group if c.case_id not in done] for group in plan(spec, shard, done))
                  if todo), TASK_COST)
    bar = Progress(spec, planned, len(done), progress)
    start, ran = time.perf_counter(), 0
    writer = batches = None
    try:
        writer = RowWriter(partial, append=resume)
        first_tasks = list(itertools.islice(tasks, 2))  # one task alone is not worth a pool
        tasks = itertools.chain(first_tasks, tasks)
        if workers <= 1 or len(first_tasks) <= 1 or broken:  # a broken engine's rows need no judges
            batches = rows_in_process(tasks, spec, load_backends(spec, engine))
        else:
            # Each judge has an engine of its own; this one waits, idle, for
            # the diagnosis (the engine is imported once per worker).
            batches = rows_from_judges(tasks, spec, workers, writer.write_all, isolation, limits)
        for rows in batches:
            writer.write_all(rows)
            ran += len(rows)
            bar.update(rows)
    except BaseException:
        if batches is not None:
            batches.close()
            batches = None
        if writer is not None:
            writer.close()
            writer = None
        if not resume and ran == 0:
            # Nothing to resume: an empty partial must not block the next run.
            partial.unlink(missing_ok=True)
        raise
    finally:
        if batches is not None:
            batches.close()  # before the writer: an interrupted pool hands it what finished
        if writer is not None:
            writer.close()
        bar.close()
    seconds = time.perf_counter() - start

    # The partial goes last: until the sidecar says complete, a resume
    # finds every row there.
    summary, rows = write_ordered([partial], spec, out)
    diagnosis = diagnose(spec, out, engine) if summary.failed and not broken else None
    engine.close()  # its worker's log goes to the run's engine log
    sidecar.update(complete=True, finished=now(), cases=summary.cases, rows=rows,
                   verdicts=summary.verdict_counts(), diagnosis=diagnosis and diagnosis.to_json())
    if log.exists():
        sidecar["metadata"]["engine_log"] = str(log)
    write_atomic(sidecar_path(out), json.dumps(sidecar, indent=2) + "\n")
    partial.unlink()
    return RunOutcome(summary, ran, seconds, broken, diagnosis, engine.adapter,
                      tuple(engine.probe_summary(spec.ops)), str(log) if log.exists() else None, spec.reference)


def _diagnose(spec, report, engine):
    """The findings of a report's fail/error cases (diagnosis.py), with the
    run's engine and a judge of their own."""
    from .diagnosis import bad_rows, diagnose

    backends = load_backends(spec, engine)
    return diagnose(bad_rows(report, checked=True), backends, spec)  # write_ordered read it back


def run_metadata(engine_backend, workers, limits):
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "gradparity": __version__, "git": _git_revision(),
        "engine": engine_backend.name, "engine_version": engine_backend.version,
        "isolation": engine_backend.isolation,
        "sandbox": ({**limits.to_json(), "network": getattr(engine_backend, "network", None) or "allowed"}
                    if engine_backend.isolation == "process" else None),
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

