"""A submission's grade: its grading job's findings (grade_job.py) charged
to the rubric's items (rubric.py).

An item is
- ``passed`` (its weight): its ops all there, no finding charged to it;
- ``failed`` (0): a finding is charged to it (on a weight-0 item: reported);
- ``missing`` (0): an op it needs is not there (no method, no operator);
- ``error`` (0): what it was charged with is the engine not answering (a
  hang, a crash, an exit, out of memory: isolation.is_no_answer), or its
  evidence never ran (the submission did not load, its job was stopped).

The op items are decided by the probes, the job's first stage; an item of
any op's wrong values (``ops = ["*"]``, kind ``wrong``) needs the run's
cases too: if the job stopped before them, it is ``error``.
"""
from dataclasses import dataclass, field

from .isolation import is_no_answer
from .rubric import ANY_OP

PASSED, FAILED, MISSING, ERROR = "passed", "failed", "missing", "error"


@dataclass
class ItemGrade:
    item: object           # rubric.Item
    status: str
    score: float
    findings: list = field(default_factory=list)  # finding JSON (diagnosis.Finding.to_json) charged to it
    note: str = ""         # what a missing or error item lacks


@dataclass
class Grade:
    id: str
    engine: str
    items: list            # ItemGrade, in the rubric's order
    error: str = ""        # why it was not graded at all (it did not load), or why its job stopped
    other_findings: list = field(default_factory=list)  # charged to no item
    seconds: float = 0.0

    @property
    def score(self):
        return sum(grade.score for grade in self.items)

    @property
    def max_score(self):
        return sum(grade.item.weight for grade in self.items)

    @property
    def findings(self):
        return [f for grade in self.items for f in grade.findings] + self.other_findings


def score(submission, rubric, probed, result, stopped=""):
    """The Grade of a submission from its job's stage files' data
    (``probed``, ``result``: None where the job did not get there);
    ``stopped``: why the job ended early, if it did."""
    data = result or probed
    error = submission.problem or (data or {}).get("load_error") or ""
    if data is None and not error:
        error = f"the grading job ended before probing the engine: {stopped or 'no result'}"
    if error:
        return Grade(submission.id, submission.engine, [ItemGrade(item, ERROR, 0.0, note=error)
                                                        for item in rubric.items], error=error)
    charged = {item.name: [] for item in rubric.items}
    others = []
    for finding in data["findings"]:
        item = rubric.item_of(finding)
        (charged[item.name] if item else others).append(finding)
    absent = data.get("absent", {})
    items = [_item_grade(item, charged[item.name], absent, result is not None, stopped) for item in rubric.items]
    return Grade(submission.id, submission.engine, items, error="" if result else stopped,
                 other_findings=others, seconds=float((result or {}).get("seconds", 0.0)))


def _item_grade(item, findings, absent, ran, stopped):
    missing = [op for op in item.table_ops if op in absent]
    if missing:
        return ItemGrade(item, MISSING, 0.0, findings, "not there: " + "; ".join(
            f"{op} ({absent[op]})" for op in missing))
    if findings:
        gave_no_answer = all(is_no_answer(f["detail"]) for f in findings)
        return ItemGrade(item, ERROR if gave_no_answer else FAILED, 0.0, findings,
                         "the engine gave no answer (hang, crash, exit or out of memory)" if gave_no_answer else "")
    if not ran and ANY_OP in item.ops and "wrong" in item.kinds:
        return ItemGrade(item, ERROR, 0.0, note=f"its cases did not run: {stopped or 'the job stopped'}")
    return ItemGrade(item, PASSED, item.weight)
