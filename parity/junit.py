"""``--junit-xml FILE`` of parity run, compare and grade: JUnit XML, the
test-result format CI systems render (GitHub through dorny/test-reporter or
mikepenz/action-junit-report, GitLab's ``artifacts:reports:junit``,
Jenkins' ``junit`` step; README: Results for CI).

What they read is Ant's JUnit report.  Every attribute and element that
its strictest schema requires is written (tests/schemas/junit.xsd checks
it: what both Ant's and Jenkins' schemas accept), so any of them reads it:

    <testsuites>
      <testsuite name id package tests failures errors skipped time timestamp hostname>
        <properties><property name value/>...</properties>
        <testcase name classname time>  at most one of
          <failure message type>text</failure>, <error message type>text</error>, <skipped message/>
        </testcase>...
        <system-out>...</system-out><system-err/>
      </testsuite>...
    </testsuites>

- run: a testsuite per family, a testcase per op its cases use (the
  function family's Functions by name): failed when one of those cases
  failed or errored, the message naming the finding that explains them and
  its minimal case's replay command; skipped when all of them are
  unsupported.  Then a testsuite ``findings``, a testcase per finding.
  Under ``--expect lecture`` what only the findings it allows explain is
  skipped ("expected"), as pytest's junitxml writes an xfail.
- compare: a testcase per finding of the current run that explains
  regressed cases (and one for those no finding explains); one passing
  testcase when nothing regressed.
- grade: a testsuite per submission, a testcase per rubric item.
"""
from collections import defaultdict
from dataclasses import dataclass, field
import re
import socket
import time
from typing import Optional
import xml.etree.ElementTree as ET

from . import __version__
from .diagnosis import KINDS, LECTURE_KINDS, explained_by
from .ops import OPS
from .report import VERDICTS, failing, iter_report
from .scoring import ERROR, FAILED, MISSING

LISTED = 100  # regressed cases listed in a testcase's text; the JSON has them all


@dataclass
class Case:
    name: str
    classname: str
    seconds: float = 0.0
    result: Optional[str] = None  # None (passed), "failure", "error" or "skipped"
    message: str = ""
    type: str = ""
    text: str = ""


@dataclass
class Suite:
    name: str
    cases: list
    properties: dict = field(default_factory=dict)
    seconds: float = 0.0
    out: str = ""  # its system-out


def xml(suites):
    """The JUnit XML text of ``suites``: ASCII (other characters as
    references), declared UTF-8."""
    root = ET.Element("testsuites")
    stamp, host = time.strftime("%Y-%m-%dT%H:%M:%S"), socket.gethostname() or "localhost"
    for number, suite in enumerate(suites):
        root.append(_suite(suite, number, stamp, host))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="us-ascii").decode() + "\n"


def _suite(suite, number, stamp, host):
    counts = {result: sum(1 for case in suite.cases if case.result == result)
              for result in ("failure", "error", "skipped")}
    element = ET.Element("testsuite", name=_clean(suite.name), id=str(number), package="gradparity",
                         tests=str(len(suite.cases)), failures=str(counts["failure"]), errors=str(counts["error"]),
                         skipped=str(counts["skipped"]), time=_seconds(suite.seconds), timestamp=stamp,
                         hostname=host)
    properties = ET.SubElement(element, "properties")
    for name, value in {"gradparity": __version__, **suite.properties}.items():
        ET.SubElement(properties, "property", name=name, value=_clean(value))
    for case in suite.cases:
        element.append(_case(case))
    ET.SubElement(element, "system-out").text = _clean(suite.out)
    ET.SubElement(element, "system-err")
    return element


def _case(case):
    element = ET.Element("testcase", name=_clean(case.name), classname=_clean(case.classname),
                         time=_seconds(case.seconds))
    if case.result == "skipped":
        ET.SubElement(element, "skipped", message=_clean(case.message))
    elif case.result:
        ET.SubElement(element, case.result, message=_clean(case.message), type=case.type).text = _clean(case.text)
    return element


def _seconds(seconds):
    return f"{max(seconds, 0.0):.3f}" if seconds == seconds else "0.000"  # nan: a case that never ran


# What XML 1.0 cannot hold at all, even as a reference: a hostile engine's
# message may carry any of them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text):
    return _NOT_XML.sub(lambda m: repr(m.group())[1:-1], str(text))


# -- parity run ---------------------------------------------------------------------
@dataclass
class _Tally:
    cases: int = 0
    unsupported: int = 0
    seconds: float = 0.0
    bad: list = field(default_factory=list)  # its fail/error rows


BAD_COLUMNS = ["case_id", "family", "ops", "depth", "n_nodes", "verdict", "detail", "replay"]


def run_suites(report, spec, outcome, expect):
    """A run's testsuites, from its report (read a chunk at a time)."""
    tallies, seconds = _tallies(report)
    findings = outcome.diagnosis.findings if outcome.diagnosis else []
    bad = {row["case_id"]: row for ops in tallies.values() for tally in ops.values() for row in tally.bad}
    explained = explained_by(findings, list(bad.values()), spec)
    allowed = LECTURE_KINDS if expect == "lecture" else frozenset()
    properties = {"engine": spec.engine, "seed": spec.seed, "report": report, "expect": expect,
                  "reference": spec.reference}
    suites = []
    for family in [f for f in spec.families if f in tallies]:
        cases = [_op_case(family, op, tallies[family][op], explained, allowed)
                 for op in sorted(tallies[family], key=_op_rank)]
        verdicts = outcome.summary.verdicts
        out = ", ".join(f"{v} {verdicts[family, v]}" for v in VERDICTS if verdicts[family, v])
        suites.append(Suite(family, cases, properties, seconds[family], out))
    if findings:
        suites.append(Suite("findings", [_finding_case(f, allowed) for f in findings], properties))
    return suites


def _tallies(report):
    """{family: {op: _Tally of every case using that op}} (a case counts
    toward each of its ops; one using none toward "(no op)"), and each
    family's seconds (engine and torch)."""
    tallies, seconds = defaultdict(lambda: defaultdict(_Tally)), defaultdict(float)
    for chunk in iter_report(report):
        spent = (chunk["engine_seconds"].fillna(0.0) + chunk["torch_seconds"].fillna(0.0)).tolist()
        for family, ops, verdict, case_seconds in zip(chunk["family"], chunk["ops"], chunk["verdict"], spent):
            seconds[family] += case_seconds
            for op in _ops(ops):
                tally = tallies[family][op]
                tally.cases += 1
                tally.unsupported += verdict == "unsupported"
                tally.seconds += case_seconds
        for row in failing(chunk)[BAD_COLUMNS].to_dict("records"):
            for op in _ops(row["ops"]):
                tallies[row["family"]][op].bad.append(row)
    return tallies, seconds


def _ops(ops):
    return [op for op in str(ops).split(";") if op] or ["(no op)"]


def _op_rank(op):
    """The op table's order, then the rest by name."""
    return (list(OPS).index(op), "") if op in OPS else (len(OPS), op)


def _op_case(family, op, tally, explained, allowed):
    case = Case(op, f"parity.{family}", tally.seconds)
    if tally.bad:
        return _failed_op_case(case, family, tally, explained, allowed)
    if tally.unsupported == tally.cases:
        case.result = "skipped"
        case.message = f"all {tally.cases} case(s) unsupported: the engine lacks an op they use"
    return case


def _failed_op_case(case, family, tally, explained, allowed):
    """A family x op testcase with fail/error cases, headed by the worst
    finding that explains some of them; skipped when only findings that
    --expect allows do."""
    rows = sorted(tally.bad, key=lambda row: (int(row["n_nodes"]), row["case_id"]))
    ranked = _by_finding(rows, explained)
    failing_ = [(finding, its) for finding, its in ranked if finding is None or finding.kind not in allowed]
    head, head_rows = (failing_ or ranked)[0]
    case.message = f"{len(rows)}/{tally.cases} failed - {_headline(head, head_rows[0])}"
    case.text = "\n".join([f"{len(rows)} of the {tally.cases} {family} case(s) using {case.name} failed or "
                           f"errored; explained by:",
                           *(f"  {len(its):>6}  " + (finding.line() if finding else f"no finding: {_said(its[0])}")
                             for finding, its in ranked),
                           f"the smallest of them: {rows[0]['replay']}    # {_said(rows[0])}"])
    if failing_:
        case.result, case.type = "failure", head.kind if head else head_rows[0]["verdict"]
    else:
        case.result, case.message = "skipped", f"expected (--expect lecture): {case.message}"
    return case


def _by_finding(rows, explained):
    """[(the finding that explains them or None, rows)], the worst kind
    first (none: first of all), then the most rows."""
    groups = {}
    for row in rows:
        finding = explained.get(row["case_id"])
        groups.setdefault(id(finding), (finding, []))[1].append(row)
    return sorted(groups.values(), key=lambda g: (KINDS.index(g[0].kind) if g[0] else -1, -len(g[1])))


def _headline(finding, row):
    if finding is None:
        return f"{_said(row)}; replay: {row['replay']}"
    return f"{finding.kind} {finding.op}: {finding.part}; replay: {finding.replay}"


def _said(row):
    return f"{row['verdict']}: {row['detail']}"


def _finding_case(finding, allowed):
    case = Case(f"{finding.kind} {finding.op}: {finding.part}", "parity.findings", text=finding.line())
    where = f"{finding.name}: " if finding.name else ""
    message = f"{where}{finding.detail}; replay: {finding.replay}"
    if finding.kind in allowed:
        case.result, case.message = "skipped", f"expected (--expect lecture): {message}"
    else:
        case.result, case.type, case.message = "failure", finding.kind, message
    return case


# -- parity compare -----------------------------------------------------------------
def compare_suites(baseline, current, comparison, groups):
    """``groups``: diagnosis.RegressionGroups of the regressed cases."""
    what = defaultdict(list)
    for change in comparison.regressed:
        what[change.case_id].append(change.what)
    cases = [_regression_case(group, what) for group in groups]
    if not cases:
        cases = [Case("no case regressed", "parity.compare")]
    properties = {"baseline": baseline, "current": current}
    out = "; ".join(f"{name} {len(getattr(comparison, name))}"
                    for name in ("regressed", "fixed", "changed", "added", "missing"))
    return [Suite("compare", cases, properties, out=out)]


def _regression_case(group, what):
    finding, ids = group.finding, group.case_ids
    listed = [f"  {case_id}: {'; '.join(what[case_id])}" for case_id in ids[:LISTED]]
    more = [f"  ... and {len(ids) - LISTED} more"] if len(ids) > LISTED else []
    if finding is None:
        return Case("no finding of the current run", "parity.compare", result="failure", type="regression",
                    message=f"{len(ids)} regressed case(s) no finding explains, e.g. {ids[0]}",
                    text="\n".join(["regressed:", *listed, *more]))
    name = f"{finding.kind} {finding.op}: {finding.part}" + (" (new)" if group.new else "")
    return Case(name, "parity.compare", result="failure", type="regression",
                message=f"{len(ids)} regressed case(s), e.g. {ids[0]}; replay: {finding.replay}",
                text="\n".join([finding.line(), "regressed:", *listed, *more]))


# -- parity grade -------------------------------------------------------------------
def grade_suites(grades, rubric):
    return [Suite(grade.id, [_item_case(grade, item) for item in grade.items],
                  {"engine": grade.engine, "rubric": rubric.name, "score": f"{grade.score:g}",
                   "max_score": f"{grade.max_score:g}"}, grade.seconds,
                  f"{grade.score:g}/{grade.max_score:g}" + (f": {grade.error}" if grade.error else ""))
            for grade in grades]


def _item_case(grade, item):
    case = Case(item.item.name, f"grade.{grade.id}")
    words = "; ".join(f"{f['kind']} {f['op']}: {f['part']}" for f in item.findings)
    text = "\n".join(filter(None, [item.item.title, item.note, *(
        f"{f['kind']} {f['op']}: {f['part']} - {f['detail']}\n  replay: {f['replay']}" for f in item.findings)]))
    if item.status == FAILED and not item.item.weight:
        case.result, case.message = "skipped", f"reported, worth no points: {words}"
    elif item.status in (FAILED, MISSING, ERROR):
        case.result = "error" if item.status == ERROR else "failure"
        case.type, case.text = item.status, text
        case.message = f"{item.score:g}/{item.item.weight:g}: {item.note or words}"
    return case


# -- a command that could not finish --------------------------------------------------
def error_suites(command, status, reason):
    """One testcase, in error: a CI system shows why, not "no test results"."""
    return [Suite(f"parity {command}", [Case(f"parity {command}", "parity", result="error",
                                             type=f"exit status {status}", message=reason)])]
