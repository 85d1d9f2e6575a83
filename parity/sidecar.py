"""The sidecar (OUT.json beside OUT.csv): what it must hold, read strictly;
the identity of what wrote the rows; and the rows it vouches for.

A sidecar is input like any other: a merge, a resume, a compare or
``--same-as`` may be handed one that was edited, cut, or is not a sidecar
at all.  ``read_sidecar`` checks it against the schema below (hand-written:
a few fields, each with its type) and raises ReportError naming the file,
the field and the problem, so that nothing later meets a wrong type.

``identity`` is what a resume and a merge must find unchanged: a hash of
the engine's source files, its adapter options, the harness version, and a
hash of the case plan (the run's arguments and the source of the case
generators).  ``rows`` is what a merge and a compare check the CSV against:
its number of rows and a digest of its case ids, in file order.
"""
import dataclasses
import hashlib
import importlib.machinery
import json
import os
from pathlib import Path
import sys

from . import __version__
from .import_path import HARNESS_ROOT
from .plan import RunSpec
from .report import ReportError

MAX_DEPTH = 64  # JSON nesting: a run's sidecar needs a handful of levels
MAX_BYTES = 64 << 20
# The modules that decide which cases a run has: their source is part of the plan's hash.
PLAN_SOURCES = ("case.py", "cases.py", "functions.py", "generate.py", "graph.py", "ops.py", "plan.py")


def sidecar_path(out):
    return Path(out).with_suffix(".json")


def read_sidecar(report):
    """The checked sidecar of ``report`` (a dict), or ReportError."""
    path = sidecar_path(report)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file (the run's sidecar, written by `parity run`)") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ReportError(f"{path}: larger than {MAX_BYTES >> 20} MiB: not a sidecar")
    try:
        sidecar = json.loads(data)
    except RecursionError:
        raise ReportError(f"{path}: JSON nested too deeply: not a sidecar") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise ReportError(f"{path}: not JSON: {exc}") from None
    check(sidecar, path)
    return sidecar


def check(sidecar, path):
    """ReportError unless ``sidecar`` (parsed JSON) fits the schema."""
    if json_depth(sidecar) > MAX_DEPTH:
        raise ReportError(f"{path}: JSON nested deeper than {MAX_DEPTH} levels: not a sidecar")
    if not isinstance(sidecar, dict):
        raise ReportError(f"{path}: not a sidecar: a JSON object expected, found {_kind(sidecar)}")
    for name, (required, checker) in SCHEMA.items():
        if name not in sidecar:
            if required or (name == "cases" and sidecar.get("complete") is True):
                raise ReportError(f"{path}: field {name!r}: missing")
            continue
        problem = checker(sidecar[name])
        if problem:
            raise ReportError(f"{path}: field {name!r}: {problem}")


# -- the schema: a checker per field returns the problem, or None ---------------------
def _kind(value):
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _is(*types, what=None):
    def checker(value):
        if type(value) not in types:  # bool is not an int here
            return f"expected {what or ' or '.join(_kind(t()) for t in types)}, found {_kind(value)} {_show(value)}"
    return checker


def _show(value):
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _optional(checker):
    return lambda value: None if value is None else checker(value)


def _at_least(low, checker=_is(int)):
    def at_least(value):
        return checker(value) or (f"must be at least {low}, not {value}" if value < low else None)
    return at_least


def _list_of(checker, length=None):
    def list_of(value):
        if type(value) is not list:
            return f"expected an array, found {_kind(value)} {_show(value)}"
        if length is not None and len(value) != length:
            return f"expected {length} items, found {len(value)}"
        for i, item in enumerate(value):
            problem = checker(item)
            if problem:
                return f"item {i}: {problem}"
    return list_of


def _object_of(fields, others=None):
    """An object with these fields ({name: (required, checker)}), and other
    keys checked by ``others`` (None: no other keys)."""
    def object_of(value):
        if type(value) is not dict:
            return f"expected an object, found {_kind(value)} {_show(value)}"
        for name, (required, checker) in fields.items():
            if name not in value:
                if required:
                    return f"{name!r} is missing"
                continue
            problem = checker(value[name])
            if problem:
                return f"{name!r}: {problem}"
        for name, item in value.items():
            if name not in fields:
                if others is None:
                    return f"unknown key {name!r}"
                problem = others(item)
                if problem:
                    return f"{name!r}: {problem}"
    return object_of


_STR, _INT, _BOOL = _is(str), _is(int), _is(bool)
_NUMBER = _is(int, float, what="a number")
_ANY = lambda value: None  # noqa: E731  (any JSON, depth bounded by check())
_HEX = lambda value: _STR(value) or (None if len(value) == 64 and all(c in "0123456789abcdef" for c in value)  # noqa: E731
                                     else f"expected a sha256 digest (64 hex digits), found {_show(value)}")


def _NAME_OR_COUNT(value):  # a [family, count] pair's items: RunSpec checks which is which
    return None if isinstance(value, (str, int)) and not isinstance(value, bool) else \
        f"expected a family name or a count, found {_show(value)}"


def _args(value):
    problem = _object_of({
        "engine": (True, _STR), "families": (True, _list_of(_STR)), "cases": (False, _optional(_INT)),
        "family_cases": (False, _list_of(_list_of(_NAME_OR_COUNT, length=2))), "seed": (False, _INT), "edge_rate": (False, _optional(_NUMBER)), "max_nodes": (False, _optional(_INT)),
        "ops": (False, _optional(_list_of(_STR))), "draws_per_graph": (False, _optional(_at_least(1))),
        "data_attr": (False, _optional(_STR)),
        "grad_attr": (False, _optional(_STR)), "timeout": (False, _NUMBER), "backward": (False, _optional(_STR)),
        "adapter": (False, _optional(_STR)), "pythonpath": (False, _optional(_STR)),
        "reference": (False, _STR)})(value)
    if problem:
        return problem
    try:
        RunSpec.from_json(value)
    except ValueError as exc:  # RunSpec's own checks: unknown families, --cases below 1
        return str(exc)


def _shard(value):
    problem = _list_of(_INT, length=2)(value)
    if problem:
        return problem
    if not 1 <= value[0] <= value[1]:
        return f"{value[0]}/{value[1]}: need 1 <= K <= N"


def _diagnosis(value):
    """Findings as diagnosis.Finding.to_json writes them."""
    from .diagnosis import Finding
    kinds = {str: _STR, int: _INT, dict: _is(dict)}
    fields = {f.name: (f.default is dataclasses.MISSING, kinds.get(f.type, _ANY)) for f in dataclasses.fields(Finding)}
    return _list_of(_object_of(fields))(value)


SCHEMA = {  # name: (required, checker); keys not named here are allowed (a later version's)
    "args": (True, _args),
    "shard": (True, _shard),
    "complete": (True, _BOOL),
    "planned": (True, _at_least(0)),
    "cases": (False, _at_least(0)),  # required once complete
    "started": (False, _STR),
    "finished": (False, _STR),
    "verdicts": (False, _object_of({}, others=_at_least(0))),
    "tolerances": (False, _object_of({}, others=_ANY)),
    "metadata": (False, _object_of({}, others=_ANY)),
    "diagnosis": (False, _optional(_diagnosis)),
    "merged_from": (False, _list_of(_STR)),
    # What judged the rows: {"name": "torch" or "oracle", "version": ...}; a
    # sidecar without it is a run judged by torch (args.reference says so too).
    "reference": (False, _object_of({"name": (True, _STR), "version": (False, _optional(_STR))})),
    "identity": (False, _object_of({"engine_source": (True, _HEX), "adapter": (True, _object_of({}, others=_ANY)),
                                    "harness": (True, _STR), "plan": (True, _HEX)})),
    "rows": (False, _object_of({"count": (True, _at_least(0)), "case_ids": (True, _HEX)})),
    # How the engine was driven (sandbox/adapter.py's report): null for ours.
    "adapter": (False, _optional(_object_of({
        "class": (True, _STR), "class_found": (False, _STR), "data": (True, _STR), "grad": (True, _STR),
        "backward": (True, _STR), "backward_gradient": (False, _STR), "constructor": (False, _STR),
        "found": (False, _object_of({}, others=_STR)),
        "ops": (False, _object_of({}, others=_STR)),
        "adapter_file": (False, _object_of({"path": (True, _STR), "sha256": (True, _HEX)}))}))),
    # The op probes' findings: {op: why} of the ops the engine lacks, and of those it has but broken.
    "probes": (False, _object_of({"absent": (True, _object_of({}, others=_STR)),
                                  "broken": (True, _object_of({}, others=_STR))})),
}


def json_depth(value, limit=MAX_DEPTH):
    """The nesting depth of parsed JSON (counted up to just past ``limit``),
    without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= limit:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return deepest


# -- identity ---------------------------------------------------------------------------
def identity(spec):
    """What a resume or a merge must find unchanged (see the module docstring);
    the same for every shard of a run."""
    adapter = {"data_attr": spec.data_attr, "grad_attr": spec.grad_attr}
    if spec.backward or spec.adapter:
        adapter.update(backward=spec.backward, adapter=spec.adapter, adapter_source=_file_hash(spec.adapter))
    return {"engine_source": engine_source_hash(spec.engine), "adapter": adapter,
            "harness": __version__, "plan": _plan_hash(spec)}


def _file_hash(path):
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def engine_source_hash(engine):
    """A hash of the engine's source, found without importing it (importing
    runs its code, which belongs in its sandbox): ours and PyPI micrograd,
    their package's .py files; a file engine, its file and the .py files
    beside it (it may import them); a module engine, the files of its
    top-level package.  What cannot be found hashes as the spec itself."""
    where, sep, _ = engine.rpartition(":")
    if not sep:
        where = engine
        sep = where.endswith(".py") or "/" in where or "\\" in where
    if engine == "engine":
        files = sorted((HARNESS_ROOT / "engine").rglob("*.py"))
    elif sep and (where.endswith(".py") or "/" in where or "\\" in where):
        file = Path(where).resolve()
        root = file.parent
        while (root / "__init__.py").is_file() and root.parent != root:  # a file in a package: the package's
            root = root.parent
        files = (sorted({file, *file.parent.glob("*.py")}) if root == file.parent
                 else sorted({file, *(root / file.relative_to(root).parts[0]).rglob("*.py")}))
    else:
        top = (engine if engine == "micrograd" else where).partition(".")[0]
        files = _module_files(top)
    digest = hashlib.sha256(engine.encode())
    for file in files:
        digest.update(b"\0" + file.name.encode() + b"\0")
        try:
            digest.update(file.read_bytes())
        except OSError as exc:
            digest.update(f"unreadable: {exc.strerror}".encode())
    return digest.hexdigest()


def _module_files(top):
    path = [os.getcwd()] + [entry or os.getcwd() for entry in sys.path]  # the working directory first, as the engine's import
    try:
        found = importlib.machinery.PathFinder.find_spec(top, path)
    except (ImportError, ValueError):
        found = None
    if found is None:
        return []
    if found.submodule_search_locations:
        return sorted(f for location in found.submodule_search_locations for f in Path(location).rglob("*.py"))
    return [Path(found.origin)] if found.origin and os.path.isfile(found.origin) else []


def _plan_hash(spec):
    digest = hashlib.sha256(json.dumps(spec.to_json(), sort_keys=True).encode())
    for name in PLAN_SOURCES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def identity_change(recorded, current, recorded_as="the partial", current_as="this run"):
    """What differs between a sidecar's identity (``recorded_as`` says whose)
    and ``current_as``'s, in words (None if nothing does)."""
    if recorded is None:
        return f"{recorded_as} was written by an older parity (its sidecar records no engine identity)"
    if recorded["engine_source"] != current["engine_source"]:
        return f"the engine's source changed since {recorded_as} was written"
    if recorded["adapter"] != current["adapter"]:
        return (f"the engine's adapter options changed ({recorded['adapter']} in {recorded_as}, "
                f"{current['adapter']} in {current_as})")
    if recorded["harness"] != current["harness"]:
        return f"{recorded_as} was written by gradparity {recorded['harness']}, {current_as} by {current['harness']}"
    if recorded["plan"] != current["plan"]:
        return f"the case generators changed since {recorded_as} was written"
    return None


# -- rows ------------------------------------------------------------------------------
class RowDigest:
    """The ``rows`` field: a count and a digest of the case ids, in order."""

    def __init__(self):
        self.count, self._digest = 0, hashlib.sha256()

    def add(self, case_id):
        self.count += 1
        self._digest.update(case_id.encode("utf-8", "surrogatepass") + b"\n")

    def to_json(self):
        return {"count": self.count, "case_ids": self._digest.hexdigest()}


def rows_of(case_ids):
    digest = RowDigest()
    for case_id in case_ids:
        digest.add(case_id)
    return digest.to_json()
