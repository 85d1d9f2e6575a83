"""The gradebook's files, from the Grades (scoring.py), each written
atomically and whole after every graded submission:

- ``gradebook.csv``: a row per submission: id, score, max_score, a column
  per rubric item (its score), status (graded or why not), the findings in
  words;
- ``gradebook.html``: the class at a glance (gradebook_html.py);
- ``feedback/<id>.md``: what a student is told: each item, what is wrong,
  the smallest case with its numbers and how to replay it; hidden items
  only counted;
- ``results/<id>/results.json``: Gradescope's results format, a test per
  item with its visibility.
"""
import csv
import io
import json
from pathlib import Path

from .gradebook_html import gradebook_html
from .report_files import write_atomic
from .scoring import ERROR, FAILED, MISSING, PASSED

GRADESCOPE_STATUS = {PASSED: "passed", FAILED: "failed", MISSING: "failed", ERROR: "failed"}


def write_gradebook(out, grades, rubric, record):
    out = Path(out)
    write_atomic(out / "gradebook.csv", gradebook_csv(grades, rubric))
    for grade in grades:
        write_atomic(out / "feedback" / f"{grade.id}.md", feedback(grade, rubric))
        write_atomic(out / "results" / grade.id / "results.json", json.dumps(gradescope(grade), indent=2) + "\n")
    write_atomic(out / "gradebook.html", gradebook_html(grades, rubric, record))


def gradebook_csv(grades, rubric):
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "score", "max_score", *(item.name for item in rubric.items), "status", "findings",
                     "engine"])
    for grade in grades:
        writer.writerow([grade.id, f"{grade.score:g}", f"{grade.max_score:g}",
                         *(f"{g.score:g}" for g in grade.items), grade.error or "graded",
                         "; ".join(finding_words(f) for f in grade.findings), grade.engine])
    return text.getvalue()


def finding_words(finding):
    return f"{finding['kind']} {finding['op']}: {finding['part']}"


def _shown(grade):
    return [g for g in grade.items if g.item.visibility != "hidden"]


def feedback(grade, rubric):
    """A student's feedback, Markdown: the visible items (and those shown
    after the due date), with what is wrong and how to see it."""
    shown = _shown(grade)
    hidden = len(grade.items) - len(shown)
    lines = [f"# Feedback: {grade.id}", "",
             f"Rubric: {rubric.name}. Score on the items below: "
             f"**{sum(g.score for g in shown):g} / {sum(g.item.weight for g in shown):g}**"
             + (f" ({hidden} hidden item(s) are graded too, not shown here)." if hidden else "."), ""]
    if grade.error:
        lines += [f"Your engine could not be checked in full: {grade.error}", ""]
    for g in shown:
        worth = f"{g.score:g}/{g.item.weight:g}" if g.item.weight else "reported, worth no points"
        lines += [f"## {g.item.name}: {g.status} ({worth})", "", g.item.title, ""]
        if g.note:
            lines += [g.note, ""]
        for finding in g.findings:
            lines += _finding_lines(finding)
    if grade.other_findings:
        lines += ["## Other findings (no rubric item)", ""]
        for finding in grade.other_findings:
            lines += _finding_lines(finding)
    return "\n".join(lines).rstrip() + "\n"


def _finding_lines(finding):
    where = f" ({finding['name']})" if finding.get("name") else ""
    count = f" It shows in {finding['cases']} case(s) of the run." if finding.get("cases") else ""
    return [f"- **{finding['kind']} `{finding['op']}`**: {finding['part']}.{count}",
            f"  - smallest case{where}: {finding['detail']}",
            f"  - replay it: `{finding['replay']}`", ""]


def gradescope(grade):
    """Gradescope's results.json: the score, and a test per item."""
    tests = []
    for number, g in enumerate(grade.items, 1):
        output = "\n".join([g.item.title, g.note, *(line for f in g.findings for line in _finding_lines(f))])
        tests.append({"name": g.item.name, "number": str(number), "score": g.score, "max_score": g.item.weight,
                      "status": GRADESCOPE_STATUS[g.status], "output": output.strip(), "output_format": "md",
                      "visibility": g.item.visibility, "tags": [g.status]})
    return {"score": grade.score, "execution_time": round(grade.seconds), "output": grade.error or "",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}
