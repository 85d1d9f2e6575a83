"""The pytest plugin from a project of its own (pytester): options, fixtures,
the failure message, the terminal summary; and assert_parity without pytest."""
from pathlib import Path

import pytest

import parity
from parity.plugin import ParityFailure, assert_parity

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

# An engine whose backward assigns gradients instead of adding them.
OVERWRITING_ENGINE = (Path(__file__).parent / "engines" / "overwriting.py").read_text()


def test_fixtures_run_a_family_and_the_summary_counts_it(pytester):
    pytester.makepyfile("""
        def test_accumulation(parity_check):
            rows = parity_check("accumulation", n=12, seed=2)
            assert [r["case_id"] for r in rows] == [f"accumulation-2-{i}" for i in range(12)]

        def test_backends(parity_engine, parity_torch, parity_oracle):
            assert parity_engine.name == "engine" and parity_engine.is_ours
            assert parity_torch.name == "torch" and parity_oracle.name == "oracle"
    """)
    result = pytester.runpytest("-p", "parity.plugin")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*= parity =*", "accumulation: 12 cases: pass 12"])


def test_parity_cases_sets_the_default_count(pytester):
    pytester.makeconftest('pytest_plugins = ["parity.plugin"]')
    pytester.makepyfile("""
        def test_expr(parity_check):
            assert len(parity_check("expr")) == 7
            assert len(parity_check("expr", n=3)) == 3
    """)
    pytester.runpytest("--parity-cases", "7").assert_outcomes(passed=1)


def test_a_broken_engine_fails_with_detail_replay_and_graph(pytester):
    pytester.makepyfile(overwriting=OVERWRITING_ENGINE)
    pytester.makepyfile(test_it="""
        def test_accumulation(parity_check):
            parity_check("accumulation", n=3)
    """)
    result = pytester.runpytest("-p", "parity.plugin", "--parity-engine", "overwriting.py:Value")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*parity: 3 of 3 accumulation cases fail or error on engine 'overwriting.py:Value'*",
        "*--- accumulation-0-0 (a + a): fail*",
        "*grad of leaf v0: engine 1.0, torch 2.0*",
        "*replay: parity replay accumulation-0-0 --engine overwriting.py:Value*",
        "*v0: leaf = 1.5*",
        "*v1 = v0 + v0*",
    ])
    result.stdout.fnmatch_lines(["accumulation: 3 cases: fail 3"])


def test_help_lists_the_options(pytester):
    result = pytester.runpytest("-p", "parity.plugin", "--help")
    result.stdout.fnmatch_lines(["*--parity-engine=SPEC*", "*--parity-cases=N*"])


def test_assert_parity_without_pytest_fixtures(tmp_path, monkeypatch):
    assert len(parity.assert_parity("function", n=5)) == 5
    (tmp_path / "overwriting.py").write_text(OVERWRITING_ENGINE)
    with pytest.raises(ParityFailure) as failure:
        assert_parity("accumulation", n=2, engine=f"{tmp_path / 'overwriting.py'}:Value")
    assert "2 of 2 accumulation cases fail" in str(failure.value)
    # The findings lead: the overwriting engine's backward assigns every
    # node's gradient contributions (one bug of the machinery, not of add).
    assert str(failure.value).splitlines()[1].startswith("findings (")
    assert "wrong      backward: gradients of a node used more than once" in str(failure.value)
    assert [r["verdict"] for r in failure.value.rows] == ["fail", "fail"]
    assert isinstance(failure.value, AssertionError)
