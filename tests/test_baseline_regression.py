"""The regression check in CI: rerun reports/baseline.csv's cases with the
engine as it is now and compare, case by case.  An engine change that breaks
parity fails here; reports/README.md says how to update the baseline when a
change is meant."""
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from parity.campaign import run  # noqa: E402
from parity.plan import RunSpec  # noqa: E402
from parity.report import compare_reports, read_report  # noqa: E402

REPORTS = Path(__file__).resolve().parent.parent / "reports"
UPDATE = "if the change is meant, update the baseline as reports/README.md says"


@pytest.fixture(scope="module")
def baseline():
    return read_report(REPORTS / "baseline.csv")


@pytest.fixture(scope="module")
def current(baseline, tmp_path_factory):
    sidecar = json.loads((REPORTS / "baseline.json").read_text())
    out = tmp_path_factory.mktemp("regression") / "current.csv"
    run(RunSpec.from_json(sidecar["args"]), out)
    return read_report(out)  # as `parity compare` reads it


def test_the_baseline_is_a_complete_run_of_our_engine(baseline):
    sidecar = json.loads((REPORTS / "baseline.json").read_text())
    assert sidecar["complete"] and sidecar["cases"] == len(baseline) >= 300
    assert set(baseline["engine"]) == {"engine"}
    assert set(baseline["family"]) == {"expr", "mlp", "accumulation", "function", "edges"}


def test_the_baseline_describes_the_cases_generated_today(baseline, current):
    shape = ["case_id", "n_nodes", "n_leaves", "depth", "ops"]
    assert current[shape].equals(baseline[shape]), f"the case generators changed: {UPDATE}"


def test_no_case_regressed_against_the_baseline(baseline, current):
    comparison = compare_reports(baseline, current)
    assert not comparison.regressed, f"{comparison.format()}\n{UPDATE}"
    assert not comparison.added and not comparison.missing
