"""Campaigns: the same rows whatever the workers or shards, merging shards,
resuming interrupted runs, atomic files."""
import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity import campaign, judges, report_files
from parity.campaign import run
from parity.cases import build_cases, case_from_id
from parity.plan import RunSpec, Shard, cost, pack, plan
from parity.report_files import CampaignError, merge, partial_path, sidecar_path, write_atomic
from parity.report import TIMING_COLUMNS, read_report
from terminal import start_in_its_own_group

ROOT = Path(__file__).resolve().parent.parent
SMALL = RunSpec(families=("expr", "accumulation", "function", "edges"), cases=40, max_nodes=40)


def rows_text(path):
    """The report's rows without the timing columns, as CSV text."""
    return read_report(path).drop(columns=list(TIMING_COLUMNS)).to_csv(index=False, lineterminator="\n")


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "whole.csv"
    run(SMALL, out)
    return out


def test_a_run_writes_its_rows_in_case_order_and_a_complete_sidecar(whole):
    rows = read_report(whole)
    planned = [case.case_id for group in plan(SMALL) for case in group]
    assert list(rows["case_id"]) == planned
    sidecar = json.loads(sidecar_path(whole).read_text())
    assert sidecar["complete"] and sidecar["cases"] == len(planned) == sidecar["planned"] == 160
    assert sidecar["args"] == SMALL.to_json() and sidecar["shard"] == [1, 1]
    assert sidecar["metadata"]["python"] and sidecar["reference"]["name"] == SMALL.reference
    if SMALL.reference == "torch":
        assert sidecar["metadata"]["torch"].startswith("2.13")
    assert sidecar["tolerances"]["rtol"] > 0
    assert not partial_path(whole).exists()
    assert rows["replay"].iloc[0] == "parity replay expr-0-0 --engine engine --max-nodes 40" + (
        " --reference oracle" if SMALL.reference == "oracle" else "")


class FreezeCounts:
    """A stand-in for run_tasks that says what gc.get_freeze_count() was while it ran."""

    def __init__(self):
        self.seen = []

    def __call__(self, tasks, *backends):
        self.seen.append(gc.get_freeze_count())
        yield from ({"case_id": case.case_id} for task in tasks for case in task)


def test_the_judge_s_long_lived_objects_are_frozen_during_a_run_and_thawed_after(monkeypatch):
    # The objects held when the rows start (torch, the backends) are out of
    # the collector's way while they are made, and back in it afterwards: a
    # process running several runs (a test suite) collects them as before.
    import parity.runner

    counts = FreezeCounts()
    monkeypatch.setattr(parity.runner, "run_tasks", counts)
    assert gc.get_freeze_count() == 0
    batches = list(judges.rows_in_process([build_cases("accumulation", 0, 3)], SMALL, ()))
    assert [row["case_id"] for (row,) in batches] == ["accumulation-0-0", "accumulation-0-1", "accumulation-0-2"]
    assert counts.seen[0] > 0 and gc.get_freeze_count() == 0
    # Left early, it thaws them too.
    rows = judges.rows_in_process([build_cases("accumulation", 0, 3)], SMALL, ())
    next(rows)
    rows.close()
    assert gc.get_freeze_count() == 0


def test_a_run_leaves_what_its_process_froze_frozen(monkeypatch):
    import parity.runner

    counts = FreezeCounts()
    monkeypatch.setattr(parity.runner, "run_tasks", counts)
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        list(judges.rows_in_process([build_cases("accumulation", 0, 2)], SMALL, ()))
        assert counts.seen == [frozen] and gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_run_s_planned_count_is_the_number_of_cases_it_draws():
    # The sidecar's count comes from the spec alone (a million cases take
    # minutes to draw): it must be what the plan yields.
    spec = RunSpec()
    assert sum(map(spec.n_cases, spec.families)) == sum(len(group) for group in plan(spec)) > 7000


def test_shards_partition_the_cases_and_never_split_a_structure():
    whole = [[case.case_id for case in group] for group in plan(SMALL)]
    shards = [[[case.case_id for case in group] for group in plan(SMALL, Shard(k, 3))] for k in (1, 2, 3)]
    ids = [case_id for shard in shards for group in shard for case_id in group]
    assert sorted(ids) == sorted(case_id for group in whole for case_id in group)
    assert len(ids) == len(set(ids))
    assert all(group in whole for shard in shards for group in shard)  # whole structure groups
    assert all(shard for shard in shards)


def test_tasks_pack_whole_groups_up_to_a_budget():
    groups = list(plan(SMALL))
    tasks = list(pack(groups, budget=300))
    assert [case for task in tasks for case in task] == [case for group in groups for case in group]
    cases_by_structure = {}
    for number, task in enumerate(tasks):
        assert sum(map(cost, task)) <= 300 or len({case.structure for case in task}) == 1
        for case in task:
            cases_by_structure.setdefault(case.structure or case.case_id, set()).add(number)
    assert all(len(numbers) == 1 for numbers in cases_by_structure.values())  # a group in one task


def test_workers_give_the_same_rows_as_one_process(whole, tmp_path, monkeypatch):
    # Small tasks, so that both workers get several.
    monkeypatch.setattr(campaign, "TASK_COST", 100)
    assert len(list(pack(plan(SMALL), 100))) > 4
    pools, rows_from_workers = [], judges.rows_from_judges

    def counted(*arguments, **keywords):
        pools.append(arguments)
        return rows_from_workers(*arguments, **keywords)

    monkeypatch.setattr(campaign, "rows_from_judges", counted)
    runs, write_ordered = [], report_files.write_ordered

    def recorded(paths, *arguments):
        key = report_files.case_order(SMALL, report_files._header(paths[0]))
        runs.extend(report_files._ascending_runs(paths[0], key))
        return write_ordered(paths, *arguments)

    monkeypatch.setattr(campaign, "write_ordered", recorded)
    out = tmp_path / "two.csv"
    run(SMALL, out, workers=2)
    assert len(pools) == 1  # the worker processes ran the cases
    assert runs == [(0, 160)]  # and delivered the rows in case order: nothing to sort
    assert rows_text(out) == rows_text(whole)
    assert json.loads(sidecar_path(out).read_text())["metadata"]["workers"] == 2


def test_merged_shards_give_the_rows_of_the_whole_run(whole, tmp_path):
    shards = []
    for k in (3, 1, 2):  # the order of the inputs does not matter
        shards.append(tmp_path / f"shard{k}.csv")
        run(SMALL, shards[-1], Shard(k, 3))
    merged = tmp_path / "merged.csv"
    merge(shards, merged)
    assert rows_text(merged) == rows_text(whole)
    sidecar = json.loads(sidecar_path(merged).read_text())
    assert sidecar["complete"] and sidecar["shard"] == [1, 1] and sidecar["cases"] == sidecar["planned"] == 160

    with pytest.raises(CampaignError, match="missing shard"):
        merge(shards[:2], tmp_path / "m.csv")
    with pytest.raises(CampaignError, match="shard 3/3 given twice"):
        merge(shards + shards[:1], tmp_path / "m.csv")


def test_merge_refuses_reports_of_other_runs_and_unfinished_ones(whole, tmp_path):
    other = tmp_path / "other.csv"
    run(RunSpec(families=("accumulation",), cases=3), other)
    with pytest.raises(CampaignError, match="from another run.*families"):
        merge([whole, other], tmp_path / "m.csv")

    sidecar = json.loads(sidecar_path(other).read_text())
    write_atomic(sidecar_path(other), json.dumps({**sidecar, "complete": False}))
    with pytest.raises(CampaignError, match="unfinished run"):
        merge([other], tmp_path / "m.csv")


def test_overlapping_shards_are_refused(tmp_path):
    spec = RunSpec(families=("accumulation",), cases=3)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    run(spec, first, Shard(1, 2))
    run(spec, second, Shard(2, 2))
    # A second shard that claims rows of the first: as from a wrong --shard.
    second.write_text(first.read_text())
    sidecar = json.loads(sidecar_path(first).read_text())
    sidecar_path(second).write_text(json.dumps({**sidecar, "shard": [2, 2]}))
    with pytest.raises(CampaignError, match="shards overlap: case accumulation-0-0"):
        merge([first, second], tmp_path / "m.csv")


def test_rows_written_in_several_runs_are_merged_into_case_order(whole, tmp_path):
    # As an interrupted run, resumed twice, leaves its partial file.
    header, *lines = whole.read_text().splitlines(keepends=True)
    scrambled = tmp_path / "scrambled.csv"
    scrambled.write_text(header + "".join(lines[100:] + lines[40:100] + lines[:40]))
    assert len(report_files._ascending_runs(scrambled, report_files.case_order(SMALL, report_files._header(scrambled)))) == 3
    out = tmp_path / "ordered.csv"
    summary, rows = report_files.write_ordered([scrambled], SMALL, out)
    assert out.read_text() == whole.read_text()
    assert summary.cases == rows["count"] == 160

    scrambled.write_text(header + "".join(lines + lines[5:6]))
    with pytest.raises(CampaignError, match=r"case expr-0-5 is in more than one row"):
        report_files.write_ordered([scrambled], SMALL, tmp_path / "twice.csv")
    assert not (tmp_path / "twice.csv").exists()


def test_resume_runs_only_the_missing_cases_and_ends_with_the_same_rows(whole, tmp_path):
    out = tmp_path / "resumed.csv"
    # What a kill leaves: the sidecar of an unfinished run and a partial CSV
    # whose last row was cut in the middle of its write.
    lines = whole.read_text().splitlines(keepends=True)
    partial_path(out).write_text("".join(lines[:51]) + lines[51][:30])
    sidecar = json.loads(sidecar_path(whole).read_text())
    sidecar_path(out).write_text(json.dumps({**sidecar, "complete": False}))

    outcome = run(SMALL, out, resume=True)
    assert outcome.ran == 160 - 50
    assert rows_text(out) == rows_text(whole)
    assert not partial_path(out).exists()


def test_resume_refuses_a_run_of_other_arguments(whole, tmp_path):
    out = tmp_path / "run.csv"
    for source, target in ((whole, out), (sidecar_path(whole), sidecar_path(out))):
        target.write_bytes(source.read_bytes())
    with pytest.raises(CampaignError, match="other arguments.*seed: 0 there, 1 here"):
        run(RunSpec(**{**SMALL.to_json(), "families": SMALL.families, "seed": 1}), out, resume=True)
    with pytest.raises(CampaignError, match="nothing to resume"):
        run(SMALL, tmp_path / "none.csv", resume=True)


def test_an_unfinished_run_is_not_overwritten_without_resume(tmp_path):
    out = tmp_path / "run.csv"
    partial_path(out).write_text("case_id\n")
    with pytest.raises(CampaignError, match="pass --resume"):
        run(SMALL, out)
    assert partial_path(out).read_text() == "case_id\n"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_interrupted_run_keeps_its_rows_and_resumes(tmp_path, workers):
    out = tmp_path / "run.csv"
    # Enough cases that the run is still going when the signal comes (600
    # were over, now and then, before it came: exit 0, not 130).
    n = 3000
    argv = [sys.executable, "-m", "parity.cli", "run", "--families", "expr", "--cases-per-family", str(n),
            "--workers", workers, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Its own process group, which gets the SIGINT, as from Ctrl-C in a terminal.
    process = start_in_its_own_group(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not partial_path(out).exists()
                                           or partial_path(out).read_text().count("\n") < 20):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and not out.exists()
    kept = read_report(partial_path(out))
    assert 19 <= len(kept) < n

    resumed = subprocess.run(argv + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode in (0, 1), resumed.stderr
    rows = read_report(out)
    assert list(rows["case_id"]) == [f"expr-0-{i}" for i in range(n)]
    assert f"ran {n - len(kept)} cases" in resumed.stdout


def test_atomic_writes_replace_the_file_and_leave_nothing_else(tmp_path):
    path = tmp_path / "deep" / "file.csv"
    write_atomic(path, "old\n")
    write_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert os.listdir(path.parent) == ["file.csv"]
    mask = os.umask(0o022)
    try:
        write_atomic(path, "newer\n")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644  # as open() would have made it


@pytest.mark.parametrize("arguments, message", [
    ({"families": ("expr", "mlps")}, "unknown families"),
    ({"cases": 0}, "at least 1"),
    ({"draws_per_graph": 0}, "--draws-per-graph must be a whole number of at least 1"),
])
def test_run_arguments_are_checked(arguments, message):
    with pytest.raises(ValueError, match=message):
        RunSpec(**arguments)


def test_knobs_are_checked_by_the_generators_own_rules():
    with pytest.raises(ValueError, match="edge_rate"):
        RunSpec(edge_rate=1.5).config()
    assert RunSpec(max_nodes=5).config() == {"max_nodes": 5}


def test_draws_per_graph_is_an_opt_in_knob_of_the_expr_cases():
    # Without it, the spec's JSON (sidecars, identities) and the cases are
    # those of every run before it; with it, torch gets larger batches of
    # other cases, and their replay commands say so.
    default, wide = RunSpec(families=("expr", "edges"), cases=64), RunSpec(families=("expr", "edges"), cases=64,
                                                                           draws_per_graph=32)
    assert "draws_per_graph" not in default.to_json() and default.config() is None
    assert RunSpec.from_json(default.to_json()) == default and RunSpec.from_json(wide.to_json()) == wide
    assert wide.config() == {"draws_per_graph": 32}
    structures = [{case.structure for case in group} for group in plan(wide)]
    assert [len(group) for group in plan(wide)][:2] == [32, 32] and len(structures[0]) == 1
    expr = [case for group in plan(wide) for case in group if case.family == "expr"]
    assert [c.leaves for c in expr] != [c.leaves for group in plan(default) for c in group if c.family == "expr"]
    assert [c.to_json() for group in plan(wide) for c in group if c.family == "edges"] == [
        c.to_json() for group in plan(default) for c in group if c.family == "edges"]
    assert wide.replay_command("expr-0-40").endswith("--draws-per-graph 32")
    assert case_from_id("expr-0-40", wide.config()).to_json() == expr[40].to_json()


def test_replay_commands_carry_every_option_that_changes_the_case():
    spec = RunSpec(engine="tests/engines/value_gradient.py:Value", data_attr="value", grad_attr="gradient",
                   edge_rate=0.5, reference="torch")
    assert spec.replay_command("expr-0-3") == ("parity replay expr-0-3 --engine tests/engines/value_gradient.py:Value "
                                               "--data-attr value --grad-attr gradient --edge-rate 0.5")


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b"])
def test_a_bad_shard_is_refused(text):
    with pytest.raises(ValueError, match="shard"):
        Shard.parse(text)
