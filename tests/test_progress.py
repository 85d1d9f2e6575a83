"""Honest long runs (issue 13): `--cases N` is the run's total, split by a
documented rule; the plan's size and an ETA come before the first case;
progress counts pass, fail and error as it goes, on a terminal or off it;
a resume builds none of the cases it has done."""
import io
import json

from hypothesis import given, strategies as st
import pytest

from parity import progress
from parity.case import FAMILIES
from parity.cli import main
from parity.plan import WHOLE, RunSpec, default_mix, parse_cases, plan, planned_ids, split_cases


@given(st.lists(st.sampled_from(FAMILIES), min_size=1, unique=True), st.integers(1, 10**7))
def test_a_total_is_split_exactly_with_at_least_one_case_a_family(families, total):
    families = tuple(families)
    if total < len(families):
        with pytest.raises(ValueError, match="at least one case per family"):
            split_cases(total, families)
        return
    counts = dict(split_cases(total, families))
    assert list(counts) == list(families) and sum(counts.values()) == total and min(counts.values()) >= 1
    # in proportion to the default mix, within the rounding and the floor of one
    weights = {f: default_mix(f) for f in families}
    for family, n in counts.items():
        assert abs(n - total * weights[family] / sum(weights.values())) <= len(families)


def test_the_default_mix_is_its_own_split():
    total = sum(map(default_mix, FAMILIES))
    assert dict(split_cases(total, FAMILIES)) == {f: default_mix(f) for f in FAMILIES}


def test_cases_per_family_by_name_and_bad_forms():
    assert parse_cases("expr=500,mlp=20", FAMILIES) == (("expr", "mlp"), (("expr", 500), ("mlp", 20)))
    for bad, message in (("x", r"a number \(cases in all\) or FAMILY=N"), ("expr=x", "is not FAMILY=N")):
        with pytest.raises(ValueError, match=message):
            parse_cases(bad, FAMILIES)
    with pytest.raises(ValueError, match="a count of at least 0 for each family"):
        RunSpec(families=("expr", "mlp"), family_cases=(("expr", 5),))


def test_cases_is_the_runs_total(tmp_path, capsys):
    out = tmp_path / "run.csv"
    assert main(["run", "--families", "expr,accumulation,edges", "--cases", "60", "--out", str(out), "--quiet"]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["planned"] == sidecar["cases"] == 60
    assert main(["run", "--families", "expr,accumulation", "--cases-per-family", "7", "--out", str(tmp_path / "b.csv"),
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["cases"] == 14


def rows(*verdicts):
    return [{"verdict": v} for v in verdicts]


def test_the_plan_line_comes_first_and_lines_count_the_verdicts(monkeypatch):
    monkeypatch.setattr(progress, "LINE_SECONDS", 0.0)
    spec = RunSpec(families=("expr", "mlp"), family_cases=(("expr", 300), ("mlp", 10)))
    stream = io.StringIO()
    shown = progress.Progress(spec, 310, 10, "lines", stream)
    assert stream.getvalue().startswith("parity: 310 cases planned (expr 300, mlp 10 in the whole run); "
                                        "10 done before, 300 to run; ETA about")
    shown.update(rows("pass", "pass", "fail", "error", "unsupported"))
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("parity: 5/300 cases (pass 2, fail 1, error 1), ") and "ETA" in last


def test_silent_progress_says_nothing():
    stream = io.StringIO()
    shown = progress.Progress(RunSpec(families=("expr",), cases=3), 3, 0, None, stream)
    shown.update(rows("pass"))
    shown.close()
    assert stream.getvalue() == ""


def test_a_bar_counts_the_verdicts(monkeypatch):
    stream = io.StringIO()
    shown = progress.Progress(RunSpec(families=("expr",), cases=3), 3, 0, "bar", stream)
    shown.update(rows("pass", "fail"))
    shown.close()
    assert "pass 1, fail 1, error 0" in stream.getvalue()


def test_a_resume_builds_none_of_the_cases_it_has_done(monkeypatch):
    from parity import cases

    spec = RunSpec(families=("expr",), cases=50)
    done = {f"expr-0-{i}" for i in range(40)}
    built = []
    original = cases._builder("expr")
    monkeypatch.setitem(cases.FAMILY_BUILDERS, "expr",
                        lambda seed, index, config=None: built.append(index) or original(seed, index, config))
    ids = [case.case_id for group in plan(spec, WHOLE, done) for case in group]
    assert ids == [f"expr-0-{i}" for i in range(40, 50)] and built == list(range(40, 50))
    planned = planned_ids(spec)
    assert planned("expr-0-49") and not planned("expr-0-50") and not planned("expr-1-3") and not planned("mlp-0-1")
