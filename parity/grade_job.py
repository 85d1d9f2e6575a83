"""One submission's grading, in a process of its own (``python -m
parity.grade_job JOB.json``): the judge for that submission alone, its
engine in a sandboxed worker as in any run.

It works in stages, each leaving a file in the submission's directory, so
that a job killed at its time limit leaves what it finished:

1. ``probed.json``: the engine loaded (or why it could not be), which ops
   it lacks, and the findings of the probes of every rubric op
   (diagnosis.probe): the evidence of the op items;
2. ``report.csv`` (and its sidecar): the rubric's run, the same cases for
   every submission;
3. ``result.json``: the run's fail/error cases attributed to the probes'
   findings and the rest shrunk (diagnosis.explain), the verdicts, and the
   cases it got wrong (a reference's are excused for the others).

Cases and probes that the reference solution gets wrong (``excused``, from
``--reference``) are left out: a student is held to torch only where the
reference agrees with it.
"""
import json
from pathlib import Path
import sys
import time

from .plan import RunSpec
from .report_files import write_atomic

PROBED, RESULT, REPORT = "probed.json", "result.json", "report.csv"


def write_json(path, data):
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def read_json(path):
    """A stage file's data, or None if the job did not get that far."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def grade(job):
    """Run a job (its JSON: spec, rubric_ops, excused, dir, limits)."""
    from .backends.engine import BrokenEngine, EngineSpecError
    from .campaign import run
    from .diagnosis import bad_rows, explain, probe
    from .isolation import Limits
    from .judges import load_backends, load_engine

    spec, folder = RunSpec.from_json(job["spec"]), Path(job["dir"])
    excused = frozenset(job.get("excused", ()))
    limits = Limits(**job["limits"])
    start = time.perf_counter()
    try:
        engine = load_engine(spec, "process", limits)
    except EngineSpecError as exc:  # it does not import, has no value class, ...: graded 0, with the reason
        engine = BrokenEngine(spec.engine, str(exc))
    loaded = {"load_error": engine.cause if isinstance(engine, BrokenEngine) else None,
              "adapter": engine.adapter, "version": engine.version,
              "absent": {op: why for op, (status, why) in engine.probe_findings.items() if status == "absent"},
              "broken": {op: why for op, (status, why) in engine.probe_findings.items() if status == "broken"}}
    if loaded["load_error"]:
        engine.close()
        write_json(folder / PROBED, {**loaded, "findings": []})
        write_json(folder / RESULT, {**loaded, "findings": [], "verdicts": {}, "bad_cases": [],
                                     "seconds": time.perf_counter() - start, "complete": True})
        return
    ops = [op for op in job["rubric_ops"] if engine.supports(op)]
    probed = {}

    def probes_first(spec, engine):
        probed["probes"] = probe(ops, load_backends(spec, engine), spec, excused)
        write_json(folder / PROBED, {**loaded, "findings": [f.to_json() for f in probed["probes"].findings]})

    def attributed(spec, report, engine):
        rows = bad_rows(report, checked=True)  # run() read it back whole
        probed["bad_cases"] = [row["case_id"] for row in rows]
        kept = [row for row in rows if row["case_id"] not in excused]
        return explain(probed["probes"].findings, kept, load_backends(spec, engine), spec)

    outcome = run(spec, folder / REPORT, engine=engine, started=probes_first, diagnose=attributed)
    findings = outcome.diagnosis.findings if outcome.diagnosis else probed["probes"].findings
    write_json(folder / RESULT, {
        **loaded, "findings": [f.to_json() for f in findings],
        "verdicts": outcome.summary.verdict_counts(),
        "bad_cases": probed["probes"].bad + probed.get("bad_cases", []),
        "seconds": time.perf_counter() - start, "complete": True})


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    grade(json.loads(Path(argv[0]).read_text()))


if __name__ == "__main__":
    from parity.import_path import harness_first
    harness_first()
    main()
