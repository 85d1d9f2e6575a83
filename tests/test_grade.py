"""Teacher mode (issue 11): `parity grade` grades tests/engines/class/ (see
its README: three correct lecture engines, three with one bug each, four
that crash, hang, exit or eat memory, three that do not load) with the
lecture rubric, as a teacher types it; and the rubric, the scoring, the
submissions' discovery and the gradebook's files on their own."""
import csv
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

from hypothesis import given, settings, strategies as st
import pytest

from parity.diagnosis import KINDS
from parity.gradebook import feedback, gradescope
from parity.rubric import RubricError, load_rubric, parse_rubric
from parity.scoring import ERROR, FAILED, MISSING, PASSED, score
from parity.submissions import Submission, SubmissionError, find_submissions

ROOT = Path(__file__).resolve().parent.parent
CLASS = Path(__file__).parent / "engines" / "class"
SCHEMA = Path(__file__).parent / "schemas" / "gradescope_results.schema.json"
CASES = ["--cases-per-family", "40"]  # per family: the same cases for all, a few seconds a submission
CORRECT = ("alice", "bob", "carol")
BUGGY = {"dave": "mul", "erin": "tanh", "frank": "exp"}            # the item each one's bug costs
NO_ANSWER = {"grace": "relu", "heidi": "exp", "ivan": "tanh", "mia": "div"}  # crash, hang, os._exit, memory
NOT_LOADING = {"judy": "SyntaxError", "ken": "defines a value class", "liam": "No module named 'numpyy'"}


def parity(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "parity.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def gradebook(out):
    with open(Path(out) / "gradebook.csv", newline="") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def class_grades(tmp_path_factory):
    out = tmp_path_factory.mktemp("grades")
    done = parity("grade", str(CLASS / "*"), "--out", str(out), "--workers", "2", *CASES)
    assert done.returncode == 0, done.stderr
    return out, gradebook(out), done


LECTURE = load_rubric("lecture")
POINTS = {item.name: item.weight for item in LECTURE.items}


def lost(row):
    return {name for name, weight in POINTS.items() if float(row[name]) < weight}


def test_correct_lecture_engines_get_full_marks(class_grades):
    _, rows, _ = class_grades
    for name in CORRECT:
        assert float(rows[name]["score"]) == LECTURE.max_score, rows[name]
        # their lecture behaviours are reported, not counted
        assert "edge " in rows[name]["findings"] and "multi_pass backward" in rows[name]["findings"]


def test_each_buggy_engine_loses_exactly_the_item_of_its_bug_and_its_feedback_names_the_op(class_grades):
    out, rows, _ = class_grades
    for name, item in BUGGY.items():
        assert lost(rows[name]) == {item}, rows[name]
        text = (out / "feedback" / f"{name}.md").read_text()
        assert f"## {item}: failed (0/1)" in text and f"**wrong `{item}`**" in text
        assert "replay it: `parity replay" in text


def test_dave_is_blamed_for_mul_not_for_backward(class_grades):
    # Regression: a reuse bug in mul's backward made every op built on mul
    # fail its reuse probes, and the diagnosis blamed the machinery.
    _, rows, _ = class_grades
    assert "wrong mul: operand used twice" in rows["dave"]["findings"]
    assert "wrong backward" not in rows["dave"]["findings"]


def test_crashing_hanging_exiting_and_memory_eating_engines_get_the_items_they_finished(class_grades):
    out, rows, _ = class_grades
    for name, item in NO_ANSWER.items():
        assert lost(rows[name]) == {item}, rows[name]
        result = json.loads((out / "results" / name / "results.json").read_text())
        test = next(t for t in result["tests"] if t["name"] == item)
        assert test["tags"] == [ERROR] and test["score"] == 0


def test_an_op_that_hangs_on_its_probe_is_not_run_again(class_grades):
    # Regression: heidi's exp hangs; each of its cases cost a timeout.
    out, _, _ = class_grades
    with open(out / "jobs" / "heidi" / "report.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if "exp" in row["ops"].split(";")]
    assert rows and all(row["verdict"] == "error" for row in rows)
    assert all("(when exp was probed alone; its cases are not run)" in row["detail"] for row in rows)


def test_submissions_that_do_not_load_get_zero_and_the_reason(class_grades):
    out, rows, _ = class_grades
    for name, why in NOT_LOADING.items():
        assert float(rows[name]["score"]) == 0 and why in rows[name]["status"], rows[name]
        assert why in (out / "feedback" / f"{name}.md").read_text()


def test_the_others_grades_do_not_depend_on_the_hostile_ones(class_grades, tmp_path):
    _, rows, _ = class_grades
    alone = ("alice", "dave", "erin")
    done = parity("grade", *(str(CLASS / name) for name in alone), "--out", str(tmp_path), *CASES)
    assert done.returncode == 0, done.stderr
    again = gradebook(tmp_path)
    for name in alone:
        assert {k: v for k, v in again[name].items() if k != "engine"} == \
            {k: v for k, v in rows[name].items() if k != "engine"}


def test_every_results_json_follows_gradescopes_schema(class_grades):
    import jsonschema

    out, rows, _ = class_grades
    schema = json.loads(SCHEMA.read_text())
    for name in rows:
        result = json.loads((out / "results" / name / "results.json").read_text())
        jsonschema.validate(result, schema)
        assert result["score"] == float(rows[name]["score"])
        assert [t["name"] for t in result["tests"]] == [item.name for item in LECTURE.items]


def test_the_schema_check_refuses_what_gradescope_would():
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    for bad in ({"tests": [{"name": "x"}]},                                   # no score anywhere
                {"score": 1, "tests": [{"score": 1, "visibility": "public"}]},  # not a visibility
                {"score": 1, "tests": [{"score": 1, "status": "ok"}]},          # not a status
                {"score": "1"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_chromium_renders_the_class_gradebook(class_grades, tmp_path):
    import matplotlib.image

    out, _, _ = class_grades
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
                    (out / "gradebook.html").as_uri()], check=True, capture_output=True, timeout=120)
    rgb = (matplotlib.image.imread(shot)[..., :3] * 255).round().reshape(-1, 3)
    # the heatmap's passed, failed and error cells, and the histogram's bars
    for colour in ((0x2e, 0x9d, 0x4f), (0xd6, 0x45, 0x41), (0xf2, 0x9d, 0x38), (0x4a, 0x7f, 0xc1)):
        assert (abs(rgb - colour).max(axis=1) <= 2).sum() > 100, colour


def test_the_gradebook_page_shows_what_to_teach_again(class_grades):
    out, _, _ = class_grades
    page = (out / "gradebook.html").read_text()
    assert "Most common findings" in page and "operand used twice" in page
    # what costs points comes first, however many more show what is only reported
    assert page.index("operand used twice") < page.index("at edge points")
    assert "<script" not in page  # self-contained, and nothing of a submission's text runs


def test_resume_grades_only_the_rest_and_a_used_folder_is_refused(tmp_path):
    out = tmp_path / "grades"
    first = parity("grade", str(CLASS / "alice"), str(CLASS / "erin"), "--out", str(out), *CASES)
    assert first.returncode == 0, first.stderr
    kept = (out / "jobs" / "alice" / "result.json").stat().st_mtime_ns
    refused = parity("grade", str(CLASS / "alice"), "--out", str(out), *CASES)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    other_cases = parity("grade", str(CLASS / "alice"), "--out", str(out), "--cases-per-family", "41", "--resume")
    assert other_cases.returncode == 2 and "another run" in other_cases.stderr
    resumed = parity("grade", str(CLASS / "alice"), str(CLASS / "erin"), str(CLASS / "judy"), "--out", str(out),
                     *CASES, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "3 submission(s), 1 to grade" in resumed.stderr
    assert (out / "jobs" / "alice" / "result.json").stat().st_mtime_ns == kept
    assert set(gradebook(out)) == {"alice", "erin", "judy"}


def test_sigterm_leaves_a_valid_gradebook_of_those_done_and_no_job_running(tmp_path):
    import signal
    import time

    out = tmp_path / "grades"
    names = ("alice", "erin", "bob")
    argv = [sys.executable, "-m", "parity.cli", "grade", *(str(CLASS / n) for n in names), "--out", str(out), *CASES]
    grading = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "gradebook.csv").exists() and time.monotonic() < deadline and grading.poll() is None:
        time.sleep(0.1)
    grading.send_signal(signal.SIGTERM)
    _, stderr = grading.communicate(timeout=120)
    assert grading.returncode == 130, stderr
    assert "--resume" in stderr
    done = gradebook(out)
    assert 1 <= len(done) < len(names)  # the ones done, whole
    assert not [p for p in Path("/proc").glob("[0-9]*") if _cmdline_mentions(p, str(out))]
    resumed = parity(*argv[3:], "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert set(gradebook(out)) == set(names)


def _cmdline_mentions(process, text):
    try:
        return text in (process / "cmdline").read_bytes().decode(errors="replace")
    except OSError:  # ended meanwhile
        return False


def test_a_submission_stopped_at_its_time_limit_is_graded_error(tmp_path):
    done = parity("grade", str(CLASS / "alice"), "--out", str(tmp_path), *CASES, "--submission-timeout", "0.5")
    assert done.returncode == 0, done.stderr
    row = gradebook(tmp_path)["alice"]
    assert float(row["score"]) == 0 and "--submission-timeout 0.5" in row["status"]


def test_a_reference_excuses_what_it_gets_wrong(tmp_path):
    # erin's tanh derivative is the course's convention here: with erin as
    # the reference, erin passes tanh, and so does alice (torch's tanh),
    # since nothing is demanded where the reference disagrees with torch.
    done = parity("grade", str(CLASS / "alice"), str(CLASS / "erin"), "--reference", str(CLASS / "erin"),
                  "--out", str(tmp_path), *CASES)
    assert done.returncode == 0, done.stderr
    rows = gradebook(tmp_path)
    assert float(rows["alice"]["score"]) == float(rows["erin"]["score"]) == LECTURE.max_score, rows
    assert "excused" in done.stderr


def test_bad_usage_exits_2_naming_what_to_fix(tmp_path):
    missing = parity("grade", str(tmp_path / "nobody" / "*.py"), "--out", str(tmp_path / "g"))
    assert missing.returncode == 2 and "matches no Python file or folder" in missing.stderr
    rubric = tmp_path / "r.toml"
    rubric.write_text('[[item]]\nname = "x"\nops = ["tanhh"]\n')
    bad = parity("grade", str(CLASS / "alice"), "--rubric", str(rubric), "--out", str(tmp_path / "g"))
    assert bad.returncode == 2 and f"{rubric}: item 1 ('x'): unknown op(s) ['tanhh']" in bad.stderr


# -- the rubric -----------------------------------------------------------------------
def test_the_shipped_rubrics_load_and_name_only_known_ops():
    for name in ("lecture", "torch_parity"):
        rubric = load_rubric(name)
        assert rubric.max_score > 0 and rubric.items
    assert set(load_rubric("lecture").ops) == {"add", "add_const", "radd", "mul", "mul_const", "rmul", "neg", "sub",
                                               "sub_const", "rsub", "div", "div_const", "rdiv", "pow_const", "exp",
                                               "tanh", "relu"}


@pytest.mark.parametrize("text, message", [
    ('[[item]]\nname = "a b"\nops = ["add"]', "name must be letters"),
    ('[[item]]\nname = "a"\nops = ["add"]\nvisibility = "public"', "visibility 'public'"),
    ('[[item]]\nname = "a"\nops = ["add"]\nkinds = ["bad"]', "kinds must be a list of"),
    ('[[item]]\nname = "a"\nops = ["add"]\n[[item]]\nname = "a"\nops = ["mul"]', "used twice"),
    ('[[item]]\nname = "a"\nops = ["add"]\nweight = -1', "weight must be a number >= 0"),
    ('[run]\nfamilies = ["nope"]\n[[item]]\nname = "a"\nops = ["add"]', "[run] families"),
    ('[run]\nedge_rate = 2\n[[item]]\nname = "a"\nops = ["add"]', "edge_rate must be a number from 0 to 1"),
    ('name = "x"', "no [[item]]"),
    ('nme = "x"', "unknown key(s) ['nme']"),
])
def test_a_bad_rubric_is_refused_naming_the_file_and_the_item(tmp_path, text, message):
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    with pytest.raises(RubricError, match=str(path)) as error:
        load_rubric(str(path))
    assert message in str(error.value)


def test_a_rubric_that_is_not_toml_or_not_there_is_refused(tmp_path):
    path = tmp_path / "rubric.toml"
    path.write_text("[[item]\n")
    with pytest.raises(RubricError, match="not TOML"):
        load_rubric(str(path))
    with pytest.raises(RubricError, match="no shipped rubric of that name"):
        load_rubric("lectur")


def finding(op, kind="wrong", detail="grad of leaf v0: engine 1.0, torch 2.0"):
    return {"op": op, "part": "gradient", "kind": kind, "example": "probe-0-1", "detail": detail,
            "minimal_case": {}, "name": f"{op} at (0.75,)", "cases": 3, "run_example": "expr-0-1",
            "replay": "parity replay probe-0-1"}


def test_a_finding_is_charged_to_the_first_item_that_matches_it():
    assert LECTURE.item_of(finding("tanh")).name == "tanh"
    assert LECTURE.item_of(finding("tanh", "edge")).name == "edges"
    assert LECTURE.item_of(finding("backward")).name == "reuse"
    assert LECTURE.item_of(finding("backward", "multi_pass")).name == "repeated_backward"
    assert LECTURE.item_of(finding("mul+tanh")).name == "graphs"  # a minimal graph of several ops
    assert LECTURE.item_of(finding("mul_const+rmul")).name == "mul"  # all of them one item's
    assert LECTURE.item_of(finding("arithmetic", "precision")).name == "float64"


SUBMISSION = Submission("s", "s.py", "s.py")
OPS = sorted(set(LECTURE.ops) | {"backward", "sigmoid", "mul+tanh"})


@given(st.lists(st.tuples(st.sampled_from(OPS), st.sampled_from(KINDS), st.booleans()), max_size=8),
       st.sets(st.sampled_from(LECTURE.ops), max_size=3), st.booleans())
@settings(max_examples=200, deadline=None)
def test_scores_are_between_0_and_the_maximum_and_each_finding_costs_one_item_at_most(found, absent, ran):
    findings = [finding(op, kind, "timeout after 5 s" if no_answer else "grad: engine 1, torch 2")
                for op, kind, no_answer in found]
    probed = {"findings": findings, "absent": {op: "AttributeError" for op in absent}}
    grade = score(SUBMISSION, LECTURE, probed, probed if ran else None)
    assert 0 <= grade.score <= grade.max_score == LECTURE.max_score
    charged = [f for g in grade.items for f in g.findings]
    assert len(charged) + len(grade.other_findings) == len(findings)
    for g in grade.items:
        assert (g.status == PASSED) == (g.score == g.item.weight and not g.findings and g.status != MISSING)
        if any(op in absent for op in g.item.table_ops):
            assert g.status == MISSING
        elif g.findings:
            no_answer = all(f["detail"].startswith("timeout") for f in g.findings)
            assert g.status == (ERROR if no_answer else FAILED)


def test_a_job_stopped_after_its_probes_keeps_the_op_items_and_errors_the_run_items():
    probed = {"findings": [finding("tanh")], "absent": {}}
    grade = score(SUBMISSION, LECTURE, probed, None, stopped="stopped after --submission-timeout 60 s")
    status = {g.item.name: g.status for g in grade.items}
    assert status["tanh"] == FAILED and status["add"] == PASSED and status["graphs"] == ERROR
    assert "--submission-timeout" in grade.error


def test_feedback_shows_no_hidden_item_and_gradescope_gets_its_visibility():
    rubric = parse_rubric({"item": [{"name": "shown", "ops": ["add"]},
                                    {"name": "secret", "ops": ["tanh"], "visibility": "hidden"}]})
    grade = score(SUBMISSION, rubric, {"findings": [finding("tanh")], "absent": {}},
                  {"findings": [finding("tanh")], "absent": {}})
    text = feedback(grade, rubric)
    assert "secret" not in text and "tanh" not in text and "1 hidden item(s)" in text
    tests = {t["name"]: t for t in gradescope(grade)["tests"]}
    assert tests["secret"]["visibility"] == "hidden" and tests["secret"]["status"] == "failed"


# -- the submissions ------------------------------------------------------------------
def test_submissions_get_short_distinct_ids():
    found = find_submissions([str(CLASS / "*")])
    assert [s.id for s in found] == sorted(p.name for p in CLASS.iterdir() if p.is_dir())  # no README
    assert find_submissions([str(CLASS / "carol")])[0].engine.endswith("carol/engine.py")
    named = find_submissions([f"{CLASS / 'carol' / 'engine.py'}:Scalar", str(CLASS / "alice" / "micrograd.py")])
    assert [s.id for s in named] == ["carol", "alice"] and named[0].engine.endswith("engine.py:Scalar")


def test_a_folder_with_two_engine_files_is_a_problem_and_a_repeated_submission_an_error(tmp_path):
    for name in ("a.py", "b.py"):
        (tmp_path / "student" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "student" / name).write_text("class V:\n    def backward(self): pass\n")
    (only,) = find_submissions([str(tmp_path / "student")])
    assert "several files" in only.problem and "a.py, b.py" in only.problem
    with pytest.raises(SubmissionError, match="named twice"):
        find_submissions([str(CLASS / "alice"), str(CLASS / "alice" / "micrograd.py")])


def test_same_file_names_in_different_folders_never_collide(tmp_path):
    for name in ("x/a", "y/a", "x-a"):
        os.makedirs(tmp_path / name)
        (tmp_path / name / "micrograd.py").write_text("class V:\n    def backward(self): pass\n")
    ids = [s.id for s in find_submissions([str(tmp_path / "*" / "micrograd.py"), str(tmp_path / "*/*/micrograd.py")])]
    assert len(set(ids)) == 3, ids
