"""Results for CI (issue 13): `parity run|compare|grade --json FILE
--junit-xml FILE`.  Every document is checked against its schema: the JSON
against tests/schemas/gradparity-result.schema.json, the XML against
tests/schemas/junit.xsd (what Ant's and Jenkins' JUnit schemas both
accept, the format GitHub's, GitLab's and Jenkins' test reports read)."""
import csv
import json
from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from parity import junit, results_json

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = Path(__file__).parent / "schemas"
WRONG_TANH = "tests/engines/hostile/wrong_tanh.py:Value"
CLASS = Path(__file__).parent / "engines" / "class"
# The run of the brief: a wrong tanh derivative, and micrograd's repeated backward.
RUN = ["--families", "expr,accumulation", "--cases-per-family", "30", "--ops", "add,mul,neg,sub,tanh"]


def parity(*args):
    return subprocess.run([sys.executable, "-m", "parity.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def checked_json(path):
    """The document at ``path``, valid under its JSON Schema."""
    import jsonschema

    document = json.loads(Path(path).read_text())
    schema = json.loads((SCHEMAS / "gradparity-result.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    return document


def checked_xml(path):
    """The JUnit XML at ``path``, valid under the JUnit XSD: its suites
    {name: {testcase name: testcase element}}."""
    import xmlschema

    xmlschema.XMLSchema(SCHEMAS / "junit.xsd").validate(str(path))
    root = ET.parse(path).getroot()
    for suite in root:  # the counts agree with the testcases
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        for result in ("failure", "error", "skipped"):
            assert int(suite.get(result + "s" if result != "skipped" else result)) == \
                sum(1 for case in cases if case.find(result) is not None)
    return {suite.get("name"): {case.get("name"): case for case in suite.findall("testcase")} for suite in root}


def run(tmp, name, *args):
    out = tmp / name
    done = parity("run", *args, "--out", out.with_suffix(".csv"), "--json", out.with_suffix(".result.json"),
                  "--junit-xml", out.with_suffix(".xml"))
    return done, out.with_suffix(".csv"), checked_json(out.with_suffix(".result.json")), \
        checked_xml(out.with_suffix(".xml"))


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    """The failing run: a wrong tanh derivative."""
    return run(tmp_path_factory.mktemp("ci"), "failing", "--engine", WRONG_TANH, *RUN)


@pytest.fixture(scope="module")
def passing(tmp_path_factory):
    """A passing run of the same cases: our engine."""
    return run(tmp_path_factory.mktemp("ci"), "passing", *RUN)


def bad_ops(report):
    """{(family, op)} of the report's fail/error cases."""
    with open(report, newline="") as f:
        return {(row["family"], op) for row in csv.DictReader(f) if row["verdict"] in ("fail", "error")
                for op in row["ops"].split(";")}


# -- parity run ----------------------------------------------------------------------
def test_a_failing_runs_json_has_its_summary_findings_and_exit_reason(failing):
    done, report, document, _ = failing
    assert done.returncode == 1, done.stderr
    assert document["command"] == "run" and document["schema"] == "gradparity-result/1"
    assert document["exit"] == {"status": 1, "reason": "fail: 1 finding of kind wrong, 1 of kind multi_pass"}
    assert document["report"] == str(report)
    summary = document["summary"]
    assert summary["cases"] == 60 and summary["seconds"] > 0
    assert sum(summary["verdicts"]["expr"].values()) == sum(summary["verdicts"]["accumulation"].values()) == 30
    assert summary["totals"]["fail"] == sum(counts.get("fail", 0) for counts in summary["verdicts"].values())
    assert [(f["kind"], f["op"]) for f in document["findings"]] == [("wrong", "tanh"), ("multi_pass", "backward")]
    assert all(f["replay"].startswith("parity replay probe-") for f in document["findings"])


def test_a_failing_runs_junit_fails_the_ops_of_its_failing_cases_naming_the_finding_and_its_replay(failing):
    _, report, document, suites = failing
    assert list(suites) == ["expr", "accumulation", "findings"]
    tanh = document["findings"][0]
    failure = suites["expr"]["tanh"].find("failure")
    assert failure.get("type") == "wrong"
    assert "wrong tanh: gradient" in failure.get("message") and f"replay: {tanh['replay']}" in failure.get("message")
    assert "the smallest of them: parity replay expr-0-" in failure.text
    # a testcase fails exactly where one of its cases failed
    bad = bad_ops(report)
    for family in ("expr", "accumulation"):
        for op, case in suites[family].items():
            assert (case.find("failure") is not None) == ((family, op) in bad), (family, op)
    # one testcase per finding
    findings = suites["findings"]
    assert list(findings) == [f"{f['kind']} {f['op']}: {f['part']}" for f in document["findings"]]
    assert tanh["replay"] in findings[f"wrong tanh: {tanh['part']}"].find("failure").get("message")


def test_a_passing_run_says_ok_and_fails_no_testcase(passing):
    done, _, document, suites = passing
    assert done.returncode == 0, done.stderr
    assert document["exit"] == {"status": 0, "reason": "ok"} and document["findings"] == []
    # against the oracle's exact answer, a case torch and the engine round alike may be ill_conditioned
    totals = document["summary"]["totals"]
    assert totals == {"pass": 60} if document["reference"] == "torch" else (
        set(totals) <= {"pass", "ill_conditioned"} and sum(totals.values()) == 60)
    assert list(suites) == ["expr", "accumulation"]  # no finding, no findings suite
    assert set(suites["expr"]) == {"add", "mul", "neg", "sub", "tanh"}
    assert all(len(case) == 0 for cases in suites.values() for case in cases.values())


def test_expect_lecture_skips_what_it_allows_and_says_so(tmp_path):
    # alice's lecture engine: correct, but for micrograd's repeated backward
    done, _, document, suites = run(tmp_path, "lecture", "--engine", CLASS / "alice" / "micrograd.py",
                                    "--families", "accumulation", "--cases-per-family", "30", "--expect", "lecture")
    assert done.returncode == 0, done.stderr
    assert document["exit"]["reason"] == "ok: 1 finding of kind multi_pass, 1 of kind limit, allowed by --expect lecture"
    skipped = [case.find("skipped") for cases in suites.values() for case in cases.values()
               if case.find("skipped") is not None]
    assert skipped and all(s.get("message").startswith("expected (--expect lecture): ") for s in skipped)
    assert not any(case.find("failure") is not None for cases in suites.values() for case in cases.values())


def test_a_run_that_judged_nothing_skips_every_testcase(tmp_path):
    done, _, document, suites = run(tmp_path, "none", "--engine", "tests/engines/no_ops.py", "--families", "expr",
                                    "--cases-per-family", "3")
    assert done.returncode == 2
    assert document["exit"]["reason"].startswith("nothing judged")
    assert all(case.find("skipped") is not None for case in suites["expr"].values())


# -- parity compare ------------------------------------------------------------------
def test_compare_groups_the_regressions_by_finding_in_json_and_junit(passing, failing, tmp_path):
    (_, baseline, _, _), (_, current, failed, _) = passing, failing
    done = parity("compare", baseline, current, "--json", tmp_path / "c.json", "--junit-xml", tmp_path / "c.xml")
    assert done.returncode == 1, done.stderr
    document, suites = checked_json(tmp_path / "c.json"), checked_xml(tmp_path / "c.xml")
    regressed = failed["summary"]["totals"]["fail"]
    assert document["exit"] == {"status": 1, "reason": f"regressions: {regressed}"}
    assert document["baseline"] == str(baseline) and document["report"] == str(current)
    groups = document["regressions"]["by_finding"]
    assert [(g["finding"]["op"], g["new"]) for g in groups] == [("tanh", True), ("backward", True)]
    assert sum(g["cases"] for g in groups) == document["regressions"]["count"] == regressed
    assert f"{regressed} regressed case(s), explained by:" in done.stdout  # the text says the same
    cases = suites["compare"]
    assert list(cases) == ["wrong tanh: gradient (new)",
                           f"multi_pass backward: {groups[1]['finding']['part']} (new)"]
    failure = cases["wrong tanh: gradient (new)"].find("failure")
    assert failure.get("message").startswith(f"{groups[0]['cases']} regressed case(s)")
    assert groups[0]["finding"]["replay"] in failure.get("message")


def test_compare_without_regressions_passes_one_testcase_and_json_goes_to_stdout(passing, tmp_path):
    report = passing[1]
    done = parity("compare", report, report, "--json", "-", "--junit-xml", tmp_path / "c.xml")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # only the document: the text went to stderr
    assert document["exit"] == {"status": 0, "reason": "ok"} and document["regressions"]["count"] == 0
    assert "regressed: 0" in done.stderr
    suites = checked_xml(tmp_path / "c.xml")
    assert list(suites["compare"]) == ["no case regressed"]


# -- parity grade --------------------------------------------------------------------
def test_grade_gives_a_testsuite_per_submission_and_a_testcase_per_rubric_item(tmp_path):
    from parity.rubric import load_rubric

    lecture = load_rubric("lecture")
    done = parity("grade", CLASS / "alice", CLASS / "erin", "--cases-per-family", "20", "--workers", "2",
                  "--out", tmp_path / "grades", "--json", tmp_path / "g.json", "--junit-xml", tmp_path / "g.xml")
    assert done.returncode == 0, done.stderr
    document, suites = checked_json(tmp_path / "g.json"), checked_xml(tmp_path / "g.xml")
    assert document["exit"] == {"status": 0, "reason": "ok"} and document["report"] == str(tmp_path / "grades")
    grades = {g["id"]: g for g in document["grades"]}
    assert (grades["alice"]["score"], grades["erin"]["score"]) == (lecture.max_score, lecture.max_score - 1)
    assert [i["name"] for i in grades["erin"]["items"] if i["status"] == "failed" and i["weight"]] == ["tanh"]
    assert list(suites) == ["alice", "erin"]
    for cases in suites.values():
        assert list(cases) == [item.name for item in lecture.items]
        for item in lecture.items:  # weight-0 items report (skipped), never fail
            assert item.weight or cases[item.name].find("failure") is None
    failure = suites["erin"]["tanh"].find("failure")
    assert "wrong tanh: gradient" in failure.get("message") and "replay: parity replay" in failure.text
    assert not any(case.find("failure") is not None for case in suites["alice"].values())


# -- when a command cannot finish -----------------------------------------------------
def test_a_usage_error_still_writes_both_files_saying_why(tmp_path):
    done = parity("compare", tmp_path / "none.csv", tmp_path / "none2.csv", "--json", tmp_path / "c.json",
                  "--junit-xml", tmp_path / "c.xml")
    assert done.returncode == 2
    document = checked_json(tmp_path / "c.json")
    assert document["exit"]["status"] == 2 and document["exit"]["reason"].startswith("error: ")
    assert "no such file" in document["exit"]["reason"] and document["summary"] is None
    error = checked_xml(tmp_path / "c.xml")["parity compare"]["parity compare"].find("error")
    assert error.get("message") == document["exit"]["reason"]


def test_an_unwritable_result_file_is_refused_before_any_work(tmp_path):
    done = parity("run", "--cases", "1", "--out", tmp_path / "r.csv", "--json", tmp_path,
                  "--junit-xml", tmp_path / "r.xml")
    assert done.returncode == 2 and "is a directory" in done.stderr
    assert done.stderr.count("parity: error:") == 1
    assert not (tmp_path / "r.csv").exists()
    assert "is a directory" in checked_xml(tmp_path / "r.xml")["parity run"]["parity run"].find("error").get("message")


def test_json_and_junit_cannot_both_go_to_stdout(tmp_path):
    done = parity("run", "--cases", "1", "--out", tmp_path / "r.csv", "--json", "-", "--junit-xml", "-")
    assert done.returncode == 2 and "share the standard output" in done.stderr
    assert json.loads(done.stdout)["exit"]["status"] == 2  # the JSON alone


# -- the writers on their own ---------------------------------------------------------
def test_any_text_an_engine_prints_makes_valid_xml(tmp_path):
    hostile = "raised \x00\x1b[31m\ud800 \ufffe <&> \"quoted\" \u00e9\n" + "x" * 10
    case = junit.Case("tanh\x07", "parity.expr", float("nan"), "failure", hostile, "wrong", hostile)
    (tmp_path / "h.xml").write_text(junit.xml([junit.Suite("expr\x01", [case], {"engine": hostile}, out=hostile)]),
                                    encoding="ascii")
    failure = checked_xml(tmp_path / "h.xml")["expr\\x01"]["tanh\\x07"].find("failure")
    assert failure.get("message").startswith("raised \\x00\\x1b[31m\\ud800 \\ufffe <&> \"quoted\" \u00e9")


def test_the_json_is_strict_json():
    document = results_json.document("run", 1, "fail", summary={"seconds": float("nan")},
                                     findings=[{"minimal_case": {"spec": {"const": float("inf")}}}])
    text = results_json.dumps(document)
    assert text.isascii()
    assert json.loads(text, parse_constant=pytest.fail)["summary"]["seconds"] == "nan"
    assert json.loads(text)["findings"][0]["minimal_case"]["spec"]["const"] == "inf"
