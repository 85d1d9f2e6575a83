"""``--json FILE`` of parity run, compare and grade: the result as one JSON
document, for CI systems and scripts (README: Results for CI).

The shape is versioned by its ``schema`` key: a change that drops, renames
or retypes a key makes a new version; keys may be added within one.
tests/schemas/gradparity-result.schema.json describes it:

    schema       "gradparity-result/1"
    command      "run", "compare" or "grade"
    gradparity   the harness's version
    exit         {"status": the exit status, "reason": it in words: "ok", "fail: 2 findings of kind wrong",
                  "nothing judged: ...", "regressions: 71", "error: ...", "interrupted"}
    report       the report written (run), the current one (compare), the gradebook's folder (grade);
                 null when the command stopped before one
    summary      run, compare: {"cases", "ran", "seconds", "verdicts": {family: {verdict: cases}},
                 "totals": {verdict: cases}}; grade: {"submissions", "not_graded_in_full", "lowest",
                 "highest", "max_score", "seconds"}; null when the command stopped before one
    findings     diagnosis.Finding.to_json() of each finding: the run's, or the current report's (compare);
                 a grade's are in its grades
    reference    run only: what judged the cases, "torch" or "oracle" (backends/reference.py)
    baseline, changes, regressions      compare only
    rubric, grades                      grade only
"""
from collections import Counter
import json
import math

from . import __version__
from .diagnosis import KINDS, LECTURE_KINDS
from .report import VERDICTS

SCHEMA = "gradparity-result/1"


def document(command, status, reason, report=None, summary=None, findings=(), **more):
    return {"schema": SCHEMA, "command": command, "gradparity": __version__,
            "exit": {"status": status, "reason": reason}, "report": None if report is None else str(report),
            "summary": summary, "findings": list(findings), **more}


def dumps(document):
    """The document as JSON text: strict JSON (no NaN or Infinity, which
    JavaScript's JSON.parse refuses: they are spelt as strings, as a case's
    JSON spells them), ASCII only."""
    return json.dumps(_strict(document), indent=2, allow_nan=False) + "\n"


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


# -- parity run ---------------------------------------------------------------------
def run_document(outcome, report, status, expect):
    findings = outcome.diagnosis.findings if outcome.diagnosis else []
    return document("run", status, run_reason(outcome, expect), report,
                    summary_of(outcome.summary, outcome.seconds, outcome.ran), [f.to_json() for f in findings],
                    reference=outcome.reference)


def summary_of(summary, seconds=None, ran=None):
    """A report.Summary's verdict counts, per family and in all."""
    verdicts = {}
    for family, verdict in sorted(summary.verdicts, key=lambda fv: (fv[0], VERDICTS.index(fv[1]))):
        verdicts.setdefault(family, {})[verdict] = summary.verdicts[family, verdict]
    return {"cases": summary.cases, "ran": summary.cases if ran is None else ran, "seconds": seconds,
            "verdicts": verdicts, "totals": summary.verdict_counts()}


def run_reason(outcome, expect):
    """Why parity run exits as it does (cli.run_command's status), in words."""
    if not outcome.judged:
        return "nothing judged: every case needs an op the engine lacks"
    if outcome.engine_broken:
        return f"fail: the engine ran no case: {outcome.engine_broken}"
    diagnosis = outcome.diagnosis
    if diagnosis is None:
        return "ok"
    kinds = Counter(f.kind for f in diagnosis.findings)
    if not diagnosis.fails_under(expect):
        return f"ok: {_kinds(kinds)}, allowed by --expect lecture"
    failing = {kind: n for kind, n in kinds.items() if expect != "lecture" or kind not in LECTURE_KINDS}
    return "fail: " + (_kinds(failing) or f"{diagnosis.bad_cases} case(s) failed")


def _kinds(counts):
    """"2 findings of kind wrong, 1 of kind multi_pass", the worst kind first."""
    present = [kind for kind in KINDS if counts.get(kind)]
    parts = [f"{counts[kind]} of kind {kind}" for kind in present]
    if parts:
        n = counts[present[0]]
        parts[0] = f"{n} finding{'s' if n > 1 else ''} of kind {present[0]}"
    return ", ".join(parts)


# -- parity compare -----------------------------------------------------------------
def compare_document(status, baseline, current, comparison, groups, summary, findings):
    """``groups``: diagnosis.RegressionGroups of the regressed cases."""
    regressions = {"count": len(comparison.regressed),
                   "by_finding": [{"finding": g.finding and g.finding.to_json(), "new": g.new,
                                   "cases": len(g.case_ids), "case_ids": g.case_ids} for g in groups],
                   "cases": [{"case_id": c.case_id, "what": c.what} for c in comparison.regressed]}
    changes = {name: len(getattr(comparison, name)) for name in ("regressed", "fixed", "changed", "added", "missing")}
    reason = f"regressions: {len(comparison.regressed)}" if comparison.regressed else "ok"
    return document("compare", status, reason, current, summary_of(summary), findings, baseline=str(baseline),
                    changes=changes, regressions=regressions)


# -- parity grade -------------------------------------------------------------------
def grade_document(status, grades, rubric, out, seconds):
    scores = [g.score for g in grades]
    summary = {"submissions": len(grades), "not_graded_in_full": sum(1 for g in grades if g.error),
               "lowest": min(scores, default=None), "highest": max(scores, default=None),
               "max_score": rubric.max_score, "seconds": seconds}
    return document("grade", status, "ok", out, summary, rubric={"name": rubric.name, "digest": rubric.digest},
                    grades=[_grade(g) for g in grades])


def _grade(grade):
    return {"id": grade.id, "engine": grade.engine, "score": grade.score, "max_score": grade.max_score,
            "error": grade.error, "seconds": grade.seconds,
            "items": [{"name": g.item.name, "title": g.item.title, "weight": g.item.weight, "status": g.status,
                       "score": g.score, "note": g.note, "findings": g.findings} for g in grade.items],
            "other_findings": grade.other_findings}
