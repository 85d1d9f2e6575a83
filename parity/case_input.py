"""A case handed in by a user (``parity replay --json``), checked field by
field before anything runs it.

Generated cases are right by construction; a case from a file may have
been edited, cut or made up.  ``case_from_json`` gives a Case or a
ValueError naming the field and the problem.  The bounds keep a replay
small: it is one case, not a campaign.
"""
import json

from .case import Case
from .sidecar import json_depth

MAX_DEPTH = 64          # JSON nesting
MAX_VALUES = 200_000    # leaves and nodes (the deepest generated chain has 100,000)
MAX_PASSES = 10
MAX_STEPS = 1_000       # a training case's steps
MLP_FIELDS = {"nin": int, "nouts": list, "activation": str, "inputs": list, "targets": list}


def case_from_json(text):
    """The Case in JSON ``text``."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("not a case: JSON nested too deeply") from None
    if json_depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise ValueError(f"not a case: JSON nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise ValueError(f"not a case: a JSON object expected, found {type(data).__name__}")
    _check_fields(data)
    try:
        return Case.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a case: {type(exc).__name__}: {exc}") from None


def _check_fields(data):
    fields = {"case_id": str, "family": str, "seed": int, "index": int, "graph": dict, "leaves": list,
              "passes": int, "zero_grad_between": bool, "structure": str, "spec": dict, "name": str}
    for name in ("case_id", "family", "seed", "index", "graph", "leaves"):
        if name not in data:
            raise ValueError(f"not a case: field {name!r} is missing")
    for name, value in data.items():
        if name not in fields:
            raise ValueError(f"not a case: unknown field {name!r}")
        _expect(name, value, fields[name])
    graph = data["graph"]
    for name, kind in (("n_leaves", int), ("nodes", list), ("outputs", list)):
        if name not in graph:
            raise ValueError(f"not a case: field 'graph.{name}' is missing")
        _expect(f"graph.{name}", graph[name], kind)
    if not 1 <= graph["n_leaves"] <= MAX_VALUES or len(graph["nodes"]) > MAX_VALUES:
        raise ValueError(f"not a case: field 'graph': at most {MAX_VALUES:,} leaves and nodes")
    for i, node in enumerate(graph["nodes"]):
        _expect(f"graph.nodes[{i}]", node, dict)
        _expect(f"graph.nodes[{i}].op", node.get("op"), str)
        _expect(f"graph.nodes[{i}].args", node.get("args"), list)
        for a in node["args"]:
            _expect(f"graph.nodes[{i}].args", a, int)
        if node.get("const") is not None:
            _expect(f"graph.nodes[{i}].const", node["const"], (int, float, str))
    for o in graph["outputs"]:
        _expect("graph.outputs", o, int)
    if len(data["leaves"]) != graph["n_leaves"]:
        raise ValueError(f"not a case: field 'leaves': {len(data['leaves'])} values for "
                         f"{graph['n_leaves']} leaves")
    for leaf in data["leaves"]:
        _expect("leaves", leaf, (int, float, str))
    if not 1 <= data.get("passes", 1) <= MAX_PASSES:
        raise ValueError(f"not a case: field 'passes': from 1 to {MAX_PASSES}")
    _check_spec(data.get("spec", {}), data["family"])


def _check_spec(spec, family):
    steps = spec.get("steps", 0)
    _expect("spec.steps", steps, int)
    if not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"not a case: field 'spec.steps': from 0 to {MAX_STEPS}")
    if steps:
        _expect("spec.lr", spec.get("lr"), (int, float))
    if family == "mlp" and MLP_FIELDS.keys() <= spec.keys():  # our engine runs these through engine.nn
        for name, kind in MLP_FIELDS.items():
            _expect(f"spec.{name}", spec[name], kind)
        if not 1 <= spec["nin"] <= 1000 or not 1 <= len(spec["nouts"]) <= 10:
            raise ValueError("not a case: field 'spec': an MLP of at most 1000 inputs and 10 layers")
        for n in spec["nouts"]:
            _expect("spec.nouts", n, int)
            if not 1 <= n <= 1000:
                raise ValueError("not a case: field 'spec.nouts': layers of 1 to 1000 neurons")
        for x in spec["inputs"]:
            _expect("spec.inputs", x, list)
            if len(x) != spec["nin"] or not all(type(v) in (int, float) for v in x):
                raise ValueError(f"not a case: field 'spec.inputs': rows of {spec['nin']} numbers expected")
        if len(spec["targets"]) != len(spec["inputs"]) or not all(type(v) in (int, float) for v in spec["targets"]):
            raise ValueError("not a case: field 'spec.targets': one number per input row expected")
        if spec.get("output_activation") is not None:
            _expect("spec.output_activation", spec["output_activation"], str)


def _expect(name, value, kinds):
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if type(value) not in kinds:  # a bool is not an int here
        wanted = " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"not a case: field {name!r}: expected {wanted}, found {type(value).__name__}")

