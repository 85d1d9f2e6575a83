"""Scaling out (issue 13): `parity run --shard auto` under the schedulers
users have (Slurm job arrays, GitLab's parallel:, a GitHub Actions matrix
through PARITY_SHARD), `--out DIR/` and `{shard}` names, and `parity merge
DIR` or a glob, which refuses missing, repeated and inconsistent shards by
name.  The campaign's rows never depend on how it was split."""
import json
import os
from pathlib import Path
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from parity.cli import _out_path, _parser, main, merge_command, run_command
from parity.plan import RunSpec, Shard, plan
from parity.report import TIMING_COLUMNS, read_report
from parity.schedulers import shard_from_environment
from test_report_files import refused  # tests/ is on the path (pytest rootdir conftest)

ROOT = Path(__file__).resolve().parent.parent
ARGS = ("--families", "expr,accumulation", "--cases-per-family", "40")
SPEC = RunSpec(families=("expr", "accumulation"), cases=40)
SCHEDULER_VARIABLES = ("PARITY_SHARD", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
                       "SLURM_ARRAY_TASK_COUNT", "CI_NODE_INDEX", "CI_NODE_TOTAL")
SLURM_1_TO_16 = {"SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "16", "SLURM_ARRAY_TASK_COUNT": "16"}


# -- --shard auto: the environment's shard ---------------------------------------------
@pytest.mark.parametrize("environ, shard, where", [
    ({"PARITY_SHARD": "3/16"}, (3, 16), "PARITY_SHARD=3/16"),
    ({"SLURM_ARRAY_TASK_ID": "3", **SLURM_1_TO_16}, (3, 16), "the Slurm job array (SLURM_ARRAY_TASK_ID=3, "),
    # --array=0-15: task 0 is the first shard.
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "16"}, (1, 16), "Slurm"),
    ({"CI_NODE_INDEX": "16", "CI_NODE_TOTAL": "16"}, (16, 16), "GitLab's parallel: (CI_NODE_INDEX=16, "),
    # The variable set on purpose first, then the innermost scheduler.
    ({"PARITY_SHARD": "2/4", "SLURM_ARRAY_TASK_ID": "3", **SLURM_1_TO_16}, (2, 4), "PARITY_SHARD"),
    ({"SLURM_ARRAY_TASK_ID": "3", **SLURM_1_TO_16, "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "2"}, (3, 16), "Slurm"),
    # Set but empty is unset, as in a shell.
    ({"PARITY_SHARD": "", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "2"}, (1, 2), "GitLab"),
])
def test_the_shard_comes_from_the_scheduler_s_variables(environ, shard, where):
    found, said = shard_from_environment(environ)
    assert found == Shard(*shard) and where in said


@pytest.mark.parametrize("environ, message", [
    ({}, "no shard in the environment; looked for PARITY_SHARD (K/N), SLURM_ARRAY_TASK_ID with "
         "SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT (a Slurm job array), CI_NODE_INDEX with CI_NODE_TOTAL"),
    ({"CI_NODE_TOTAL": "1"}, "no shard in the environment"),  # a GitLab job without parallel:
    ({"PARITY_SHARD": "3"}, "PARITY_SHARD: shard must be K/N"),
    ({"PARITY_SHARD": "5/4"}, "PARITY_SHARD: shard 5/4: need 1 <= K <= N"),
    ({"CI_NODE_INDEX": "5", "CI_NODE_TOTAL": "4"}, "CI_NODE_INDEX=5, CI_NODE_TOTAL=4) makes shard 5/4"),
    ({"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "4"}, "makes shard 0/4"),
    ({"CI_NODE_INDEX": "2"}, "CI_NODE_INDEX is set but CI_NODE_TOTAL is not"),
    ({"CI_NODE_INDEX": "two", "CI_NODE_TOTAL": "4"}, "CI_NODE_INDEX='two' is not a whole number"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1"}, "SLURM_ARRAY_TASK_COUNT is not"),
    ({"SLURM_ARRAY_TASK_ID": "20", **SLURM_1_TO_16}, "makes shard 20/16"),
    # --array=1-15:2: 8 tasks with IDs 1, 3, ..., 15.
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "15",
      "SLURM_ARRAY_TASK_COUNT": "8"}, "the Slurm job array has gaps or a step"),
])
def test_inconsistent_or_missing_variables_are_refused(environ, message):
    with pytest.raises(ValueError, match="^--shard auto: ") as raised:
        shard_from_environment(environ)
    assert message in str(raised.value)


def test_shard_auto_without_a_scheduler_is_a_usage_error_before_any_work(capsys, tmp_path, monkeypatch):
    for name in SCHEDULER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    err = refused(capsys, "run", "--shard", "auto", "--out", tmp_path / "run.csv")
    assert "looked for PARITY_SHARD (K/N), SLURM_ARRAY_TASK_ID" in err and "CI_NODE_INDEX" in err
    assert not list(tmp_path.iterdir())


def test_out_names_the_shard_so_that_a_matrix_job_needs_no_arithmetic():
    assert _out_path("shards/", Shard(3, 16)) == Path("shards/shard-03-of-16.csv")
    assert _out_path("shards/parity-{shard}.csv", Shard(12, 16)) == Path("shards/parity-12-of-16.csv")
    assert _out_path("run.csv", Shard(3, 16)) == Path("run.csv")
    assert _out_path("runs/", Shard(1, 1)) == Path("runs/shard-1-of-1.csv")


# -- a case depends on the campaign's seed and its index, never on the split --------------
@pytest.mark.parametrize("n", [2, 4, 7])
def test_a_case_is_the_same_whatever_the_number_of_shards(n):
    whole = {case.case_id: case.to_json() for group in plan(SPEC) for case in group}
    split = {case.case_id: case.to_json() for k in range(1, n + 1) for group in plan(SPEC, Shard(k, n))
             for case in group}
    assert split == whole and len(whole) == 80


# -- a campaign split across schedulers, merged -------------------------------------------
def scheduled(environ, *argv):
    """`parity run --shard auto ...` in a process of its own, under a
    scheduler's variables (and none of the test run's own)."""
    env = {name: value for name, value in os.environ.items() if name not in SCHEDULER_VARIABLES}
    env.update(PYTHONPATH=str(ROOT), **environ)
    done = subprocess.run([sys.executable, "-m", "parity.cli", "run", "--shard", "auto", *ARGS, "--quiet",
                           *map(str, argv)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """(whole.csv, the directory of its 4 shards): shard 1 from a Slurm
    array, 2 from GitLab, 3 from PARITY_SHARD (a GitHub matrix), 4 from a
    Slurm array numbered from 0 and named with {shard}."""
    where = tmp_path_factory.mktemp("campaign")
    shards = where / "shards"
    said = [
        scheduled({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "4",
                   "SLURM_ARRAY_TASK_COUNT": "4"}, "--out", f"{shards}/"),
        scheduled({"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"}, "--out", f"{shards}/"),
        scheduled({"PARITY_SHARD": "3/4"}, "--out", f"{shards}/"),
        scheduled({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"},
                  "--out", shards / "parity-{shard}.csv"),
    ]
    assert "parity: shard 1/4 from the Slurm job array (SLURM_ARRAY_TASK_ID=1, " in said[0]
    assert "parity: shard 2/4 from GitLab's parallel: (CI_NODE_INDEX=2, CI_NODE_TOTAL=4)" in said[1]
    assert "parity: shard 3/4 from PARITY_SHARD=3/4" in said[2]
    assert "parity: shard 4/4 from the Slurm job array (SLURM_ARRAY_TASK_ID=3, SLURM_ARRAY_TASK_MIN=0" in said[3]
    whole = where / "whole.csv"
    assert main(["run", *ARGS, "--quiet", "--out", str(whole)]) == 0
    return whole, shards


def rows_text(path):
    """The report's rows without the timing columns, as CSV text."""
    return read_report(path).drop(columns=list(TIMING_COLUMNS)).to_csv(index=False, lineterminator="\n")


def shard_files(shards, k):
    """Shard k's report and sidecar (the fourth was named with {shard})."""
    stem = "parity-4-of-4" if k == 4 else f"shard-{k}-of-4"
    return shards / f"{stem}.csv", shards / f"{stem}.json"


def copied(shards, to):
    """A copy of the shards' directory, to damage."""
    return Path(shutil.copytree(shards, to))


def test_shards_from_several_schedulers_merge_into_the_whole_run(campaign, capsys, tmp_path):
    whole, shards = campaign
    assert sorted(p.name for p in shards.glob("*.csv")) == [
        "parity-4-of-4.csv", "shard-1-of-4.csv", "shard-2-of-4.csv", "shard-3-of-4.csv"]
    artifacts = tmp_path / "artifacts"  # as actions/download-artifact leaves them: a folder per artifact
    for k in range(1, 5):
        (artifacts / f"parity-shard-{k}").mkdir(parents=True)
        for path in shard_files(shards, k):
            shutil.copy(path, artifacts / f"parity-shard-{k}")
    for argument in (shards, f"{shards}/*.csv", f"{artifacts}/**/*.csv"):
        merged = tmp_path / "merged.csv"
        assert main(["merge", str(argument), "--out", str(merged)]) == 0
        assert f"merged 4 shards, 80 cases: {merged}" in capsys.readouterr().out
        assert rows_text(merged) == rows_text(whole)
    # Into the shards' own directory, twice: the merge is never one of its shards.
    for _ in range(2):
        assert main(["merge", str(shards), "--out", str(shards / "merged.csv")]) == 0
    assert rows_text(shards / "merged.csv") == rows_text(whole)
    for path in (shards / "merged.csv", shards / "merged.json"):
        path.unlink()


def test_a_missing_shard_is_named(campaign, capsys, tmp_path):
    _, shards = campaign
    given = [shard_files(shards, k)[0] for k in (1, 2, 4)]
    err = refused(capsys, "merge", *given, "--out", tmp_path / "merged.csv")
    assert "missing shard 3/4: 3 report(s) given, of 4 shards" in err
    assert not (tmp_path / "merged.csv").exists()


def test_an_unfinished_shard_in_a_directory_is_named_not_missing(campaign, capsys, tmp_path):
    _, shards = campaign
    copy = copied(shards, tmp_path / "shards")
    report, sidecar = shard_files(copy, 2)
    report.rename(f"{report}.partial")  # as a job stopped at its time limit leaves it
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "complete": False}))
    err = refused(capsys, "merge", copy, "--out", tmp_path / "merged.csv")
    assert f"{report} is an unfinished run: finish it with `parity run ... --resume` first" in err


def test_a_shard_given_twice_is_named_with_both_files(campaign, capsys, tmp_path):
    _, shards = campaign
    copy = copied(shards, tmp_path / "shards")
    for path in shard_files(copy, 2):
        shutil.copy(path, copy / f"again{path.suffix}")
    err = refused(capsys, "merge", copy, "--out", tmp_path / "merged.csv")
    assert f"shard 2/4 given twice: {copy / 'again.csv'} and {copy / 'shard-2-of-4.csv'} both claim it" in err
    report = shard_files(shards, 1)[0]
    err = refused(capsys, "merge", shards, report, "--out", tmp_path / "merged.csv")
    assert f"shard 1/4 given twice: {report} is named twice" in err


def test_shards_of_other_runs_or_engines_are_named_with_the_difference(campaign, capsys, tmp_path, monkeypatch):
    _, shards = campaign
    first = shard_files(shards, 1)[0]
    other = tmp_path / "seed1.csv"
    monkeypatch.setenv("PARITY_SHARD", "2/4")
    assert main(["run", "--shard", "auto", *ARGS, "--seed", "1", "--quiet", "--out", str(other)]) == 0
    capsys.readouterr()
    err = refused(capsys, "merge", first, other, "--out", tmp_path / "merged.csv")
    assert f"{other} is from another run than {first}: seed: 1 in {other}, 0 in {first}" in err

    changed = copied(shards, tmp_path / "engine")
    report, sidecar = shard_files(changed, 3)
    data = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**data, "identity": {**data["identity"], "engine_source": "0" * 64}}))
    err = refused(capsys, "merge", changed, "--out", tmp_path / "merged.csv")
    assert (f"{report} is from another run than {shard_files(changed, 4)[0]}: the engine's source changed since "
            in err)

    split = copied(shards, tmp_path / "split")
    report, sidecar = shard_files(split, 2)
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "shard": [2, 5]}))
    err = refused(capsys, "merge", split, "--out", tmp_path / "merged.csv")
    assert f"shards of different splits: {shard_files(split, 4)[0]} is shard 4/4, {report} is shard 2/5" in err


def test_a_directory_or_glob_without_reports_is_refused(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "empty: a directory holding no report (*.csv)" in refused(
        capsys, "merge", tmp_path / "empty", "--out", tmp_path / "merged.csv")
    assert "a glob matching no report (*.csv)" in refused(
        capsys, "merge", f"{tmp_path}/*.csv", "--out", tmp_path / "merged.csv")
    assert "gone/: no such directory" in refused(capsys, "merge", f"{tmp_path}/gone/", "--out", tmp_path / "m.csv")



# -- the examples ------------------------------------------------------------------------
@pytest.mark.parametrize("name, sixteen", [
    ("github-actions-parity.yml", r"shard: \[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16\]"),
    ("slurm-parity.sbatch", r"#SBATCH --array=1-16 "),
])
def test_the_examples_run_16_shards_and_merge_them_with_commands_that_exist(name, sixteen, monkeypatch):
    text = (ROOT / "examples" / name).read_text()
    assert re.search(sixteen, text)
    commands = re.findall(r"parity ((?:run|merge|report) [^'&|#\n]*)", text)
    assert sorted(command.split()[0] for command in commands) == ["merge", "report", "run"]
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    for command in commands:
        args = _parser().parse_args(shlex.split(os.path.expandvars(command)))  # exits on an unknown option
        if args.command is run_command:
            assert args.shard == "auto" and _out_path(args.out, Shard(3, 16)) == Path("shards/shard-03-of-16.csv")
        if args.command is merge_command:
            assert args.reports == ["shards/"]
