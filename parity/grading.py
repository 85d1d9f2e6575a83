"""`parity grade`: a class of submissions graded with one rubric, into one
folder.

Every submission runs the same cases (the rubric's [run], its seed
recorded in ``grade.json``) in a grading job of its own (grade_job.py: a
process holding the judge, the student's engine in its sandboxed worker),
``workers`` jobs at a time, each stopped at ``job_timeout``.  After each
job the gradebook files are written again, atomically (gradebook.py), so
that a crash or Ctrl-C leaves a valid gradebook of the submissions done;
``resume`` grades only the rest.  A reference solution, when given, is
graded first: the cases and probes it gets wrong are excused for everyone.

    OUT/grade.json                      the grading: rubric, cases, submissions
    OUT/gradebook.csv, gradebook.html   the class
    OUT/feedback/<id>.md                what a student sees
    OUT/results/<id>/results.json       Gradescope's format
    OUT/jobs/<id>/                      a job's stage files, report and log
"""
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
import shutil
import subprocess
import sys
from typing import Optional

from . import __version__
from .grade_job import PROBED, RESULT, read_json, write_json
from .gradebook import write_gradebook
from .isolation import Limits
from .plan import RunSpec
from .report_files import CampaignError
from .run_lock import output_lock
from .scoring import score
from .submissions import Submission

RECORD = "grade.json"
REFERENCE_ID = "reference"


@dataclass(frozen=True)
class GradeOptions:
    rubric: object                      # rubric.Rubric
    out: Path
    reference: Optional[Submission] = None
    workers: int = 1
    timeout: float = 5.0                # per case, as parity run's --timeout
    job_timeout: float = 600.0          # per submission: its job is stopped after this
    limits: Limits = Limits()
    cases: Optional[int] = None         # per family; None: the rubric's
    seed: Optional[int] = None          # None: the rubric's
    engine_options: tuple = ()          # (name, value) of data_attr, grad_attr, backward, adapter
    resume: bool = False

    def spec(self, engine):
        """The run every submission gets, for this one's engine."""
        return RunSpec(engine=engine, families=self.rubric.families, cases=self.cases or self.rubric.cases,
                       seed=self.rubric.seed if self.seed is None else self.seed, ops=self.rubric.ops,
                       edge_rate=self.rubric.edge_rate,
                       timeout=self.timeout, **dict(self.engine_options))


def grade_class(submissions, options, say=lambda line: print(line, file=sys.stderr, flush=True)):
    """Grade ``submissions`` into ``options.out``; the Grades, in order."""
    out = Path(options.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CampaignError(f"--out {out}: cannot make it: {exc.strerror}") from None
    with output_lock(out / "gradebook.csv"):
        record = _record(submissions, options)
        done = _check_record(out, record, options.resume)
        write_json(out / RECORD, record)
        excused = _reference_excused(options, say) if options.reference else ()
        grades = {}
        for submission in submissions:
            if submission.id in done or submission.problem:  # graded before, or nothing to run
                grades[submission.id] = _grade_of(submission, options)
        todo = [s for s in submissions if s.id not in grades]
        if grades:
            write_gradebook(out, [grades[s.id] for s in submissions if s.id in grades], options.rubric, record)
        say(f"parity grade: {len(submissions)} submission(s), {len(todo)} to grade, "
            f"{options.workers} at a time; rubric {options.rubric.name!r} ({options.rubric.max_score:g} points)")
        jobs = set()  # the job processes running now: stopped with this grading
        with ThreadPoolExecutor(max_workers=options.workers) as pool:
            running = {pool.submit(_run_job, s, options, excused, jobs): s for s in todo}
            try:
                for future in as_completed(running):
                    submission = running[future]
                    grades[submission.id] = grade = _grade_of(submission, options, future.result())
                    write_gradebook(out, [grades[s.id] for s in submissions if s.id in grades], options.rubric,
                                    record)
                    say(f"  {submission.id}: {grade.score:g}/{grade.max_score:g}"
                        + (f" ({grade.error})" if grade.error else "") + f" [{len(grades)}/{len(submissions)}]")
            except BaseException:  # Ctrl-C, SIGTERM: no new job, and the running ones stopped
                pool.shutdown(wait=False, cancel_futures=True)
                for job in list(jobs):
                    job.kill()
                raise
        return [grades[s.id] for s in submissions]


def _record(submissions, options):
    spec = options.spec("<submission>")
    rubric = options.rubric
    return {"gradparity": __version__, "rubric": {"name": rubric.name, "path": rubric.path, "digest": rubric.digest},
            "run": {k: v for k, v in spec.to_json().items() if k != "engine"},
            "job_timeout": options.job_timeout, "limits": options.limits.to_json(),
            "reference": options.reference and options.reference.engine,
            "submissions": [{"id": s.id, "engine": s.engine, "path": s.path} for s in submissions]}


def _check_record(out, record, resume):
    """The ids graded already (for --resume); CampaignError where the
    folder holds another grading."""
    previous = read_json(out / RECORD)
    if previous is None:
        if resume:
            raise CampaignError(f"--resume: {out} holds no grading ({RECORD}); run without --resume")
        return set()
    if not resume:
        raise CampaignError(f"{out} holds a gradebook already: pass --resume to grade the rest, or another --out")
    for key in ("rubric", "run", "reference"):
        if previous.get(key) != record[key]:
            raise CampaignError(f"--resume: {out}/{RECORD} was graded with another {key} "
                                f"({previous.get(key)} vs {record[key]}); grade into another --out")
    paths = {s["id"]: s["engine"] for s in previous["submissions"]}
    return {s["id"] for s in record["submissions"]
            if paths.get(s["id"]) == s["engine"] and (read_json(_job_dir(out, s["id"]) / RESULT) or {}).get("complete")}


def _job_dir(out, id_):
    return Path(out) / "jobs" / id_


def _run_job(submission, options, excused, jobs=None):
    """Run a submission's job (its process in ``jobs`` while it runs); why
    it stopped early, or ""."""
    folder = _job_dir(options.out, submission.id)
    shutil.rmtree(folder, ignore_errors=True)  # a resumed job starts again
    folder.mkdir(parents=True)
    spec = options.spec(submission.engine)
    job = {"spec": spec.to_json(), "rubric_ops": list(options.rubric.ops), "excused": sorted(excused),
           "dir": str(folder.resolve()), "limits": options.limits.to_json()}
    write_json(folder / "job.json", job)
    jobs = set() if jobs is None else jobs
    with open(folder / "job.log", "wb") as log, \
            subprocess.Popen([sys.executable, "-m", "parity.grade_job", str(folder / "job.json")],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT) as job:
        jobs.add(job)
        try:
            status = job.wait(timeout=options.job_timeout)
        except subprocess.TimeoutExpired:
            job.kill()  # its engine's worker dies with it (a parent-death signal)
            return f"stopped after --submission-timeout {options.job_timeout:g} s"
        finally:
            jobs.discard(job)
    if status != 0:
        return f"its grading job failed (exit status {status}; see {folder / 'job.log'})"
    return ""


def _grade_of(submission, options, stopped=""):
    folder = _job_dir(options.out, submission.id)
    return score(submission, options.rubric, read_json(folder / PROBED), read_json(folder / RESULT), stopped)


def _reference_excused(options, say):
    """The case ids the reference gets wrong (its job run first)."""
    reference = replace(options.reference, id=REFERENCE_ID)
    say(f"parity grade: the reference {reference.engine} first")
    stopped = _run_job(reference, options, ())
    result = read_json(_job_dir(options.out, REFERENCE_ID) / RESULT)
    if result is None or result.get("load_error"):
        raise CampaignError(f"--reference {reference.engine}: could not be graded: "
                            f"{(result or {}).get('load_error') or stopped}")
    grade = _grade_of(reference, options, stopped)
    say(f"  reference: {grade.score:g}/{grade.max_score:g}; {len(result['bad_cases'])} case(s) it gets wrong "
        f"are excused")
    return frozenset(result["bad_cases"])

