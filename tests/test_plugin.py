"""The pytest plugin from a project of its own (pytester): its registration
(the pytest11 entry point, -p, a conftest), options, fixtures, the failure
message and its replay commands, checks that judge nothing, the terminal
summary (under pytest-xdist too), the parity marker; and assert_parity
without pytest fixtures.

The runs that import torch go to a subprocess (runpytest_subprocess), with
this checkout first on PYTHONPATH: its parity, not an installed one.  (In
this process, pytester's sys.modules snapshot would unload the torch
modules a run imported, and the next run's import of them can crash the
interpreter.)"""
import importlib.metadata
import json
import os
from pathlib import Path
import re
import shlex
import subprocess
import sys

import pytest

import parity
from parity.plugin import ParityFailure, UnsupportedCasesWarning, assert_parity

pytest_plugins = ["pytester"]

REPO = Path(parity.__file__).resolve().parent.parent
ENGINES = Path(__file__).parent / "engines"
# An engine whose backward assigns gradients instead of adding them.
OVERWRITING_ENGINE = (ENGINES / "overwriting.py").read_text()


@pytest.fixture
def checkout_first(monkeypatch):
    """Subprocesses import this checkout's parity."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def copy_engine(pytester, *names):
    for name in names:
        (pytester.path / Path(name).name).write_text((ENGINES / name).read_text())


# -- registration ------------------------------------------------------------------------
def test_the_entry_point_registers_the_plugin_without_p(pytester):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the harness extra's tomli
        import tomli as tomllib

    entry_points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert entry_points == {"parity.plugin": "parity.plugin"}
    # gradparity installed: its metadata as pip writes it, on the path.
    site = pytester.mkdir("site")
    dist = site / "gradparity_entry_point_check-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gradparity-entry-point-check\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    found = [ep for dist_ in importlib.metadata.distributions(path=[str(site)]) for ep in dist_.entry_points]
    assert [(ep.name, ep.group, ep.load()) for ep in found] == [("parity.plugin", "pytest11", parity.plugin)]
    pytester.syspathinsert(site)
    pytester.makepyfile("""
        import parity.plugin

        def test_registered_once(pytestconfig):
            manager = pytestconfig.pluginmanager
            assert [name for name, p in manager.list_name_plugin() if p is parity.plugin] == ["parity.plugin"]
            assert pytestconfig.getoption("parity_engine") == "nowhere.py:Value"
    """)
    # By the entry point alone; and with -p or a conftest's pytest_plugins
    # naming it too, once.  (Nothing here imports torch: in this process.)
    pytester.runpytest("--parity-engine", "nowhere.py:Value").assert_outcomes(passed=1)
    pytester.runpytest("-p", "parity.plugin", "--parity-engine", "nowhere.py:Value").assert_outcomes(passed=1)
    pytester.makeconftest('pytest_plugins = ["parity.plugin"]')
    pytester.runpytest("--parity-engine", "nowhere.py:Value").assert_outcomes(passed=1)
    # Turned off by its name.
    result = pytester.runpytest("-p", "no:parity.plugin", "-p", "no:xdist", "--parity-engine", "x")
    result.stderr.fnmatch_lines(["*unrecognized arguments: --parity-engine*"])


def test_the_installed_gradparity_declares_the_entry_point():
    """Where this checkout is the installed gradparity (pip install -e)."""
    try:
        dist = importlib.metadata.distribution("gradparity")
        url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    except importlib.metadata.PackageNotFoundError:
        url = ""
    if Path(url.removeprefix("file://")).resolve() != REPO:
        pytest.skip("gradparity is not installed from this checkout")
    assert [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "pytest11"] == [
        ("parity.plugin", "parity.plugin")]


def test_help_lists_the_options(pytester):
    result = pytester.runpytest("-p", "parity.plugin", "--help")
    result.stdout.fnmatch_lines(["*--parity-engine=SPEC*", "*--parity-cases=N*", "*--parity-ops=LIST*",
                                 "*--parity-adapter=FILE.py*"])


def test_importing_the_plugin_imports_no_torch_and_no_engine():
    code = "import sys, parity.plugin; print(sorted(m for m in ('torch', 'numpy', 'engine', 'parity.cases') " \
           "if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"


# -- fixtures and options -------------------------------------------------------------------
def test_fixtures_options_and_the_summary(pytester, checkout_first):
    pytester.makeconftest('pytest_plugins = ["parity.plugin"]')
    pytester.makepyfile("""
        def test_accumulation(parity_check):
            rows = parity_check("accumulation", n=12, seed=2)
            assert [r["case_id"] for r in rows] == [f"accumulation-2-{i}" for i in range(12)]

        def test_backends(parity_engine, parity_reference, parity_oracle):
            assert parity_engine.name == "engine" and parity_engine.is_ours
            assert parity_reference.name in ("torch", "oracle") and parity_oracle.name == "oracle"

        def test_defaults(parity_check):
            assert len(parity_check("expr")) == 7  # --parity-cases
            assert len(parity_check("expr", n=3)) == 3
            assert len(parity_check("expr", cases=2)) == 2
            rows = parity_check("expr", n=16)  # --parity-ops
            assert set(";".join(r["ops"] for r in rows).split(";")) <= {"add", "tanh"}
            assert "--ops add,tanh" in rows[0]["replay"]
            assert len(parity_check("expr", n=3, config={"ops": "supported"})) == 3  # every op, for ours
    """)
    result = pytester.runpytest_subprocess("--parity-cases", "7", "--parity-ops", "add,tanh")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*= parity =*"])
    result.stdout.fnmatch_lines(["accumulation: 12 cases: pass 12"])
    result.stdout.fnmatch_lines(["expr: 31 cases: pass *"])  # ill_conditioned too against the oracle


# -- what a check fails with ----------------------------------------------------------------
def test_a_check_that_judges_no_case_fails(pytester, checkout_first):
    """An engine with no op of the op table (its only op is a.plus(b)):
    every case is unsupported, which checks nothing."""
    copy_engine(pytester, "no_ops.py", "backprop_method.py")
    pytester.makepyfile("""
        def test_nothing_judged(parity_check):
            parity_check("expr", n=20)

        def test_allowed(parity_check):
            rows = parity_check("expr", n=20, allow_unsupported=True)
            assert {r["verdict"] for r in rows} == {"unsupported"}

        def test_the_supported_ops_are_none(parity_check):
            parity_check("expr", n=20, ops="supported")

        def test_no_case(parity_check):
            parity_check("accumulation", n=0)
    """)
    result = pytester.runpytest_subprocess("-p", "parity.plugin", "--parity-engine", "no_ops.py:Value")
    result.assert_outcomes(failed=3, passed=1)
    result.stdout.fnmatch_lines([
        "*_ test_nothing_judged _*",
        "parity: no case was judged: each of the 20 expr cases needs an op engine 'no_ops.py:Value' lacks "
        "(abs, add, *), so the check tested nothing.",
        "the engine's ops: absent (*): add, sub, mul, *",
        "fix: ops='supported' checks only the ops the engine has (--parity-ops supported for every check); "
        "or map our op names to the engine's calls with an adapter file*; or pass allow_unsupported=True*",
        "*_ test_the_supported_ops_are_none _*",
        "parity: ops='supported': engine 'no_ops.py:Value' has no op of the op table*",
        "*_ test_no_case _*",
        "parity: no accumulation case was checked (n=0)*",
    ])
    result.stdout.fnmatch_lines(["expr: 40 cases: unsupported 40"])


def test_knob_mistakes_are_errors():
    with pytest.raises(TypeError, match="ops given twice"):
        assert_parity("expr", n=1, ops="add", config={"ops": ["mul"]})
    with pytest.raises(ValueError, match="the accumulation family's cases are fixed"):
        assert_parity("accumulation", n=1, edge_rate=0.5)
    with pytest.raises(TypeError, match="give one"):
        assert_parity("expr", n=1, cases=2)
    with pytest.raises(TypeError, match="unknown engine_options"):
        assert_parity("expr", n=1, engine_options={"data": "x"})


def test_a_check_judging_only_some_cases_warns():
    engine = f"{ENGINES / 'backprop_method.py'}:Value"  # no sin
    with pytest.warns(UnsupportedCasesWarning, match=r"16 of 48 expr cases were not judged .* \(sin\)"):
        rows = assert_parity("expr", n=48, engine=engine, ops="add,mul,sin", max_nodes=2)
    assert sorted({r["verdict"] for r in rows}) == ["pass", "unsupported"]


def test_a_failure_is_one_message_findings_first(pytester, checkout_first):
    pytester.makepyfile(overwriting=OVERWRITING_ENGINE)
    pytester.makepyfile(test_it="""
        import parity

        def test_fixture(parity_check):
            parity_check("accumulation", n=3)

        def test_assert_parity():
            parity.assert_parity("accumulation", n=2, engine="overwriting.py:Value")
    """)
    result = pytester.runpytest_subprocess("-p", "parity.plugin", "--parity-engine", "overwriting.py:Value")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "During handling of the above exception" not in out
    # The plugin's own source is not shown: only the test's line.
    for source in ("__tracebackhide__", "pytest.fail(", "raise ParityFailure", "_check("):
        assert source not in out
    result.stdout.fnmatch_lines([
        "*_ test_fixture _*",
        "parity: 3 of 3 accumulation cases fail or error on engine 'overwriting.py:Value'",
        "findings (*; what the engine gets wrong, the worst first):",
        "  wrong      backward: gradients of a node used more than once*",
        "           3 case(s) of the run, e.g. accumulation-0-0; replay: parity replay probe-* "
        "--engine overwriting.py:Value*",
        "the worst 3 of the 3 *",
        "--- accumulation-0-0 (a + a): fail",
        "grad of leaf v0: engine 1.0, * 2.0*",  # torch's, or the oracle's exact answer
        "replay: parity replay accumulation-0-0 --engine overwriting.py:Value*",
        "v0: leaf = 1.5",
        "v1 = v0 + v0",
        "--- accumulation-0-1 (a + a): fail",
        "*_ test_assert_parity _*",
        ">       parity.assert_parity(\"accumulation\", n=2, engine=\"overwriting.py:Value\")",
        "E * parity.plugin.ParityFailure: parity: 2 of 2 accumulation cases fail or error on engine "
        "'overwriting.py:Value'",
        "E * findings (*",
    ])
    result.stdout.fnmatch_lines(["accumulation: 3 cases: fail 3"])
    # Each message once in the failures (pytest's short summary below them
    # repeats its first line: cut to the terminal's width on a terminal,
    # whole when CI is set, as in .ci/run).
    failures = out.split("short test summary info")[0]
    assert failures.count("parity: 3 of 3 accumulation cases fail") == 1


def test_the_replay_commands_reproduce_the_failing_cases(pytester, checkout_first):
    """The cases of a check with knobs (ops, edge_rate; config's depth,
    which parity replay has no option for: replayed as JSON) replay as the
    check ran them."""
    copy_engine(pytester, "hostile/wrong_tanh.py", "hostile/hostile_base.py")
    pytester.makepyfile("""
        def test_knobs(parity_check):
            parity_check("expr", n=16, ops="tanh,add,mul", edge_rate=0.0)

        def test_config(parity_check):
            parity_check("expr", n=4, config={"depth": 3, "ops": ["tanh"]})
    """)
    result = pytester.runpytest_subprocess("-p", "parity.plugin", "--parity-engine", "wrong_tanh.py:Value")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "  wrong      tanh: gradient" in out
    cases = re.findall(r"^--- (expr-0-\d+): fail\n(.*)\nreplay: (parity replay .*)$", out, re.MULTILINE)
    by_test = {"--ops": [c for c in cases if "--json" not in c[2]], "--json": [c for c in cases if "--json" in c[2]]}
    assert by_test["--ops"] and by_test["--json"]
    for case_id, detail, command in (by_test["--ops"][0], by_test["--json"][0]):
        if "--json" not in command:
            assert command.removesuffix(" --reference oracle") == (
                f"parity replay {case_id} --engine wrong_tanh.py:Value --edge-rate 0.0 --ops tanh,add,mul")
        argv = shlex.split(command)
        done = subprocess.run([sys.executable, "-m", "parity.cli", *argv[1:]], capture_output=True, text=True,
                              cwd=pytester.path, timeout=300)
        assert done.returncode == 1, done.stdout + done.stderr
        verdict = done.stdout.strip().splitlines()[-1]
        # the same numbers (the replay's detail names the oracle's answer too)
        assert verdict.startswith("verdict: fail: " + detail.split(";")[0].split(", torch")[0])
        assert f"case {case_id} " in done.stdout


# -- the summary under pytest-xdist, the marker ---------------------------------------------
def test_the_summary_counts_every_worker_and_m_parity_selects(pytester, checkout_first):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.parametrize("seed", range(4))
        def test_accumulation(parity_check, seed):
            parity_check("accumulation", n=3, seed=seed)

        def test_expr(parity_check):
            parity_check("expr", n=2)

        def test_not_a_parity_check():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "parity.plugin", "-n", "2", "-m", "parity")
    result.assert_outcomes(passed=5)  # test_not_a_parity_check deselected (by the workers: xdist counts no deselected)
    result.stdout.fnmatch_lines(["*= parity =*"])
    result.stdout.fnmatch_lines(["accumulation: 12 cases: pass 12"])
    result.stdout.fnmatch_lines(["expr: 2 cases: *"])


# -- without pytest fixtures -------------------------------------------------------------
def test_assert_parity_without_pytest_fixtures(tmp_path):
    assert len(parity.assert_parity("function", n=5)) == 5
    (tmp_path / "overwriting.py").write_text(OVERWRITING_ENGINE)
    with pytest.raises(ParityFailure) as failure:
        assert_parity("accumulation", n=2, engine=f"{tmp_path / 'overwriting.py'}:Value")
    assert "2 of 2 accumulation cases fail" in str(failure.value)
    # The findings lead: the overwriting engine's add and mul each lose a
    # reused operand's contribution.
    assert str(failure.value).splitlines()[1].startswith("findings (")
    assert "wrong      backward: gradients of a node used more than once" in str(failure.value)
    assert [r["verdict"] for r in failure.value.rows] == ["fail", "fail"]
    assert isinstance(failure.value, AssertionError)
    with pytest.raises(ParityFailure, match="no case was judged"):
        assert_parity("expr", n=3, engine=f"{ENGINES / 'no_ops.py'}:Value")
