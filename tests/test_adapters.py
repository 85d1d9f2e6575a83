"""Engines of other shapes (issue 15): each API form of tests/engines/ is
driven, or refused with a message naming the flag to give, and no run exits
0 without judging a case.  Runs are small (one family, a few ops, 20-30
cases); each `parity run` is a subprocess, as a learner types it.
"""
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

from parity.backends.engine import EngineSpecError, load_engine
from parity.plan import RunSpec

ROOT = Path(__file__).resolve().parent.parent
ENGINES = Path(__file__).parent / "engines"
SMALL = ["--families", "expr", "--cases-per-family", "24", "--edge-rate", "0"]


def parity(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "parity.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def run(tmp_path, engine, *args, cwd=ROOT):
    out = tmp_path / "run.csv"
    done = parity("run", "--engine", engine, "--out", str(out), *SMALL, *args, cwd=cwd)
    return done, out


def sidecar(out):
    return json.loads(out.with_suffix(".json").read_text())


# -- each API form, driven ---------------------------------------------------------------
@pytest.mark.parametrize("engine, ops, found", [
    ("backprop_method.py", "add,mul,tanh", "backward: method backprop() (detected)"),
    ("backward_function.py", "add,mul,tanh", "backward: function backward(root) of the module (detected)"),
    ("module_functions.py", "add,mul,tanh,exp", "ops called otherwise: exp by function exp(a, ...) of the module; "
                                                "tanh by function tanh(a, ...) of the module"),
    ("renamed_attributes.py", "add,mul,neg", "leaves Scalar(x, requires_grad=True); number .val (detected), "
                                             "gradient .g"),
    ("package_engine/value.py", "add,mul,tanh", "class Value (detected: the only candidate)"),
])
def test_each_api_form_is_detected_driven_and_judged(tmp_path, engine, ops, found):
    done, out = run(tmp_path, f"tests/engines/{engine}", "--ops", ops)  # no :Class, no attribute flags
    assert done.returncode == 0, done.stdout + done.stderr
    assert found in done.stderr  # what was found: before the run, beside the progress bar
    assert "no case failed" in done.stdout
    meta = sidecar(out)
    assert meta["verdicts"].get("pass", 0) + meta["verdicts"].get("ill_conditioned", 0) == 24
    assert meta["adapter"]["backward"] and meta["adapter"]["data"] and meta["adapter"]["grad"]


def test_the_adapter_s_decisions_are_in_the_sidecar(tmp_path):
    done, out = run(tmp_path, "tests/engines/renamed_attributes.py", "--ops", "add,mul")
    assert done.returncode == 0, done.stderr
    adapter = sidecar(out)["adapter"]
    assert (adapter["class"], adapter["data"], adapter["grad"]) == ("Scalar", "val", "g")
    assert adapter["constructor"] == "Scalar(x, requires_grad=True)"
    assert adapter["class_found"].startswith("detected")
    assert sidecar(out)["probes"]["absent"]["tanh"]


# -- broken, not absent ---------------------------------------------------------------------
@pytest.mark.parametrize("engine, why", [
    ("name_error_op.py", "tanh: NameError: name 'math' is not defined"),
    ("nested_data.py", "tanh: the value of its result is a Value, not a number (a value nested"),
])
def test_an_op_that_is_there_but_broken_is_supported_and_its_cases_fail(tmp_path, engine, why):
    done, out = run(tmp_path, f"tests/engines/{engine}", "--ops", "add,mul,tanh")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"ops there but broken (1): {why}" in done.stderr
    meta = sidecar(out)
    assert "tanh" in meta["probes"]["broken"] and "tanh" not in meta["probes"]["absent"]
    assert meta["verdicts"].get("unsupported", 0) == 0
    assert meta["verdicts"].get("error", 0) + meta["verdicts"].get("fail", 0) > 0
    assert any(finding["op"] == "tanh" for finding in meta["diagnosis"])


@pytest.mark.parametrize("engine, op, status", [
    ("name_error_op.py", "tanh", "broken"), ("nested_data.py", "tanh", "broken"),
    ("name_error_op.py", "exp", "absent"), ("micrograd.py", "rsub", "absent"),
    ("backprop_method.py", "rdiv", "absent"), ("no_ops.py", "add", "absent"),
])
def test_probes_tell_absent_from_broken_in_process(engine, op, status):
    backend = load_engine(f"{ENGINES / engine}", isolation="none")
    assert backend.probe_findings[op][0] == status
    assert backend.supports(op) == (status != "absent")


def test_micrograd_s_refusals_stay_unsupported():
    pytest.importorskip("micrograd")
    backend = load_engine("micrograd", isolation="none")
    # assert isinstance(other, (int, float)) in __pow__: a refusal, not a bug
    assert backend.probe_findings["pow"][0] == "absent"
    assert not backend.supports("pow") and backend.supports("pow_const")


# -- refused, naming the flag -------------------------------------------------------------
def test_no_backward_names_what_the_class_has_and_the_flag(tmp_path):
    done, out = run(tmp_path, "tests/engines/no_backward.py")
    assert done.returncode == 2
    assert "no backward() found" in done.stderr
    assert "the class has compute_gradients(): `--backward compute_gradients`" in done.stderr
    assert not Path(f"{out}.partial").exists() and not out.exists()
    done, out = run(tmp_path, "tests/engines/no_backward.py", "--backward", "compute_gradients", "--ops", "add,mul")
    assert done.returncode == 0, done.stderr
    assert "backward: method compute_gradients() (--backward)" in done.stderr
    assert sidecar(out)["args"]["backward"] == "compute_gradients"


def test_two_candidate_classes_are_listed_with_the_flag(tmp_path):
    done, _ = run(tmp_path, "tests/engines/two_classes.py")
    assert done.returncode == 2
    assert ("tests/engines/two_classes.py: 2 classes could be the engine's values (Value, Tensor): choose one "
            "with --engine tests/engines/two_classes.py:Value (or :Tensor)") in done.stderr
    done, _ = run(tmp_path, "tests/engines/two_classes.py:Tensor", "--ops", "add,mul")
    assert done.returncode == 0, done.stderr


def test_wrong_attribute_flags_are_named_as_flags(tmp_path):
    done, _ = run(tmp_path, "tests/engines/renamed_attributes.py", "--data-attr", "data")
    assert done.returncode == 2
    assert "no attribute 'data'; name the right one with --data-attr" in done.stderr
    assert "data_attr" not in done.stderr


# -- nothing judged: exit 2, never "no case failed", no partial left ----------------------------
def test_a_run_whose_every_case_is_unsupported_exits_2_with_the_probes_findings(tmp_path):
    done, out = run(tmp_path, "tests/engines/backprop_method.py", "--ops", "exp,log")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no case failed" not in done.stdout + done.stderr
    assert "parity: no case was judged" in done.stderr and "exp, log" in done.stderr
    assert not Path(f"{out}.partial").exists()
    rerun, _ = run(tmp_path, "tests/engines/backprop_method.py", "--ops", "add")  # nothing blocks a rerun
    assert rerun.returncode == 0, rerun.stderr


def test_ops_supported_with_no_supported_op_is_a_usage_error_not_a_crash(tmp_path):
    done, out = run(tmp_path, "tests/engines/no_ops.py", "--ops", "supported")
    assert done.returncode == 2, done.stderr
    assert "--ops supported: the engine has no op of the op table (absent (" in done.stderr
    assert "Traceback" not in done.stderr and "IndexError" not in done.stderr
    assert not Path(f"{out}.partial").exists()


def test_an_adapter_file_maps_our_op_names_and_goes_into_the_replay_commands(tmp_path):
    adapter = "tests/engines/no_ops_adapter.py"
    done, out = run(tmp_path, "tests/engines/no_ops.py", "--adapter", adapter, "--ops", "add")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ops called otherwise: add by adapter file" in done.stderr
    meta = sidecar(out)
    assert meta["adapter"]["adapter_file"]["path"].endswith("no_ops_adapter.py")
    assert meta["adapter"]["ops"] == {"add": "adapter file"}
    assert meta["args"]["adapter"] == adapter
    import csv
    with open(out, newline="") as file:
        replay = next(csv.DictReader(file))["replay"]
    assert f"--adapter {adapter}" in replay
    again = parity("replay", *replay.split()[2:])
    assert again.returncode == 0, again.stdout + again.stderr


def test_replay_commands_carry_the_adapter_flags_and_the_module_path():
    spec = RunSpec(engine="mymod:Value", data_attr="val", grad_attr="g", backward="backprop",
                   adapter="my adapter.py", pythonpath="/some/where", reference="torch")
    assert spec.replay_command("expr-0-1") == (
        "PYTHONPATH=/some/where parity replay expr-0-1 --engine mymod:Value --data-attr val --grad-attr g "
        "--backward backprop --adapter 'my adapter.py'")
    assert RunSpec(reference="torch").replay_command("expr-0-1") == "parity replay expr-0-1 --engine engine"
    assert RunSpec(reference="oracle").replay_command("expr-0-1") == ("parity replay expr-0-1 --engine engine "
                                                                      "--reference oracle")


# -- loading as Python users expect ----------------------------------------------------------
def test_a_module_spec_is_found_in_the_working_directory_first(tmp_path):
    shutil.copy(ENGINES / "backprop_method.py", tmp_path / "learner_engine.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "parity.cli", "run", "--engine", "learner_engine", "--out",
                           "r.csv", *SMALL, "--ops", "add,mul"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "class Value (detected: the only candidate)" in done.stderr


def test_a_folder_shadowed_by_the_installed_package_is_refused_naming_both(tmp_path):
    pytest.importorskip("micrograd")
    shadowing = ENGINES / "shadowing"
    done = parity("run", "--engine", "micrograd.engine:Value", "--out", str(tmp_path / "r.csv"), *SMALL,
                  cwd=shadowing)
    assert done.returncode == 2
    assert ("'micrograd' resolves to the installed distribution micrograd 0.1.0 at" in done.stderr
            and "not to micrograd/ here" in done.stderr and "add an empty micrograd/__init__.py" in done.stderr)
    done, _ = run(tmp_path, "tests/engines/shadowing/micrograd/nn.py")
    assert done.returncode == 2
    assert "not to tests/engines/shadowing/micrograd/ here" in done.stderr


def test_a_file_in_a_package_keeps_its_relative_imports_in_process():
    backend = load_engine(str(ENGINES / "package_engine" / "value.py"), isolation="none")
    assert backend.value_class.__module__.endswith("package_engine.value")
    assert {"add", "mul", "tanh"} <= backend.supported_ops


def test_the_engine_is_imported_once_per_worker_and_its_output_kept(tmp_path):
    # --ops supported probes it, the run runs it, the diagnosis probes it again: one import.
    done, out = run(tmp_path, "tests/engines/name_error_op.py", "--ops", "supported")
    assert done.returncode == 1, done.stderr
    log = out.with_suffix(".engine.log")
    assert f"the engine printed: {log}" in done.stdout
    assert log.read_text().count("name_error_op: imported") == 1
    assert sidecar(out)["metadata"]["engine_log"] == str(log)


@pytest.mark.parametrize("isolation", ["process", "none"])
def test_no_backward_is_a_spec_error_in_either_isolation(isolation):
    with pytest.raises(EngineSpecError, match="no backward\\(\\) found: Value has no method"):
        load_engine(str(ENGINES / "no_backward.py"), isolation=isolation)
