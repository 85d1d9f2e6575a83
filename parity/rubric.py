"""A rubric: what `parity grade` scores, read from a TOML file.

A rubric names items, each worth some points, each scored by the findings
of the diagnosis (diagnosis.py) that it is charged with: an item scores its
weight when its ops are all there and no finding of its kinds names them,
and 0 otherwise.  A finding is charged to the first item, in the file's
order, whose ``ops`` and ``kinds`` match it, so no bug costs twice.  A
weight of 0 reports a finding without costing a point (the lecture rubric's
edge semantics, repeated backward and deep graphs).

    name = "micrograd lecture"
    [run]                      # the cases every submission runs (the same for all)
    families = ["expr", "accumulation", "mlp"]
    cases = 300                # per family
    seed = 0
    edge_rate = 0.0            # share of edge points among the leaves (default: parity run's)
    [[item]]
    name = "tanh"              # the gradebook's column: letters, digits, _ and -
    title = "tanh: value and derivative"
    weight = 1
    ops = ["tanh"]             # op-table names, "backward" (the machinery), or "*" (any)
    kinds = ["wrong", "precision"]   # the default
    visibility = "visible"     # or "hidden", "after_due_date", "after_published" (Gradescope's)

The shipped rubrics are ``lecture`` and ``torch_parity`` (parity/rubrics/).
"""
from dataclasses import dataclass, field
import hashlib
from pathlib import Path
import re
import sys
from typing import Optional

from .case import FAMILIES
from .diagnosis import KINDS
from .ops import OPS

if sys.version_info >= (3, 11):
    import tomllib
else:  # the standard library reads TOML from 3.11 on
    import tomli as tomllib

RUBRICS = Path(__file__).parent / "rubrics"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
ANY_OP = "*"
MACHINERY = "backward"
DEFAULT_KINDS = ("wrong", "precision")
_NAME = re.compile(r"[A-Za-z0-9_-]+")


class RubricError(ValueError):
    """A rubric file that cannot be used: the message names the file and the item."""


@dataclass(frozen=True)
class Item:
    name: str
    title: str
    weight: float
    ops: tuple
    kinds: tuple = DEFAULT_KINDS
    visibility: str = "visible"

    @property
    def table_ops(self):
        """Its op-table ops: the ones an engine must have for it to score."""
        return tuple(op for op in self.ops if op in OPS)

    def charges(self, finding):
        """Whether a finding (diagnosis.Finding or its JSON) is this item's.
        A finding of a minimal graph ("mul+tanh") is an op item's only if
        all its ops are the item's."""
        kind, op = _get(finding, "kind"), _get(finding, "op")
        if kind not in self.kinds:
            return False
        return ANY_OP in self.ops or op in self.ops or set(op.split("+")) <= set(self.ops)


@dataclass(frozen=True)
class Rubric:
    name: str
    items: tuple
    families: tuple
    cases: int
    seed: int
    edge_rate: Optional[float] = None  # None: the generators' default
    source: str = ""          # the file's text: its digest is the rubric's identity
    path: str = ""
    description: str = ""
    ops: tuple = field(default=())  # the expr family's op mix: every op an item names

    @property
    def max_score(self):
        return sum(item.weight for item in self.items)

    @property
    def digest(self):
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    def item_of(self, finding):
        """The item a finding is charged to, or None."""
        return next((item for item in self.items if item.charges(finding)), None)


def _get(finding, name):
    return finding[name] if isinstance(finding, dict) else getattr(finding, name)


def load_rubric(given):
    """A rubric from a file path, or a shipped one by name ("lecture")."""
    path = Path(given)
    if not path.suffix and not path.exists():
        path = RUBRICS / f"{given}.toml"
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in RUBRICS.glob("*.toml")))
            raise RubricError(f"--rubric {given}: no such file, and no shipped rubric of that name ({shipped})")
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RubricError(f"--rubric {given}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise RubricError(f"{path}: not TOML: {exc}") from None
    return parse_rubric(data, source, str(path))


def parse_rubric(data, source="", path="<rubric>"):
    def fail(message):
        raise RubricError(f"{path}: {message}")

    unknown = set(data) - {"name", "description", "run", "item"}
    if unknown:
        fail(f"unknown key(s) {sorted(unknown)}; a rubric has name, description, [run] and [[item]]")
    run = data.get("run", {})
    run_keys = {"families", "cases", "seed", "edge_rate"}
    if set(run) - run_keys:
        fail(f"[run]: unknown key(s) {sorted(set(run) - run_keys)}; known: {', '.join(sorted(run_keys))}")
    families = tuple(run.get("families", ("expr", "accumulation", "mlp")))
    if not families or set(families) - set(FAMILIES):
        fail(f"[run] families {list(families)}: each one of {', '.join(FAMILIES)}")
    cases, seed = run.get("cases", 300), run.get("seed", 0)
    if type(cases) is not int or cases < 1 or type(seed) is not int:
        fail("[run] cases must be a positive integer and seed an integer")
    edge_rate = run.get("edge_rate")
    if edge_rate is not None and not (type(edge_rate) in (int, float) and 0 <= edge_rate <= 1):
        fail(f"[run] edge_rate must be a number from 0 to 1, not {edge_rate!r}")
    items = tuple(_item(raw, number, fail) for number, raw in enumerate(data.get("item", []), 1))
    if not items:
        fail("no [[item]]: a rubric needs at least one")
    names = [item.name for item in items]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        fail(f"item name(s) {repeated} used twice: each names a gradebook column")
    ops = tuple(dict.fromkeys(op for item in items for op in item.table_ops))
    return Rubric(name=str(data.get("name", Path(path).stem)), items=items, families=families, cases=cases,
                  seed=seed, edge_rate=None if edge_rate is None else float(edge_rate), source=source, path=path,
                  description=str(data.get("description", "")),
                  ops=ops or tuple(OPS))


def _item(raw, number, fail):
    where = f"item {number}" + (f" ({raw['name']!r})" if isinstance(raw.get("name"), str) else "")
    known = {"name", "title", "weight", "ops", "kinds", "visibility"}
    if set(raw) - known:
        fail(f"{where}: unknown key(s) {sorted(set(raw) - known)}; known: {', '.join(sorted(known))}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        fail(f"{where}: name must be letters, digits, _ or - (it names a gradebook column)")
    weight = raw.get("weight", 1)
    if type(weight) not in (int, float) or weight < 0:
        fail(f"{where}: weight must be a number >= 0, not {weight!r}")
    ops = raw.get("ops")
    if not isinstance(ops, list) or not ops or not all(isinstance(op, str) for op in ops):
        fail(f"{where}: ops must be a list of op names (the op table's, {MACHINERY!r} or {ANY_OP!r})")
    unknown_ops = [op for op in ops if op not in OPS and op not in (MACHINERY, ANY_OP)]
    if unknown_ops:
        fail(f"{where}: unknown op(s) {unknown_ops}; known: {', '.join(OPS)}, {MACHINERY}, {ANY_OP}")
    kinds = raw.get("kinds", list(DEFAULT_KINDS))
    if not isinstance(kinds, list) or not kinds or set(kinds) - set(KINDS):
        fail(f"{where}: kinds must be a list of {', '.join(KINDS)}")
    visibility = raw.get("visibility", "visible")
    if visibility not in VISIBILITIES:
        fail(f"{where}: visibility {visibility!r}: one of {', '.join(VISIBILITIES)}")
    return Item(name=name, title=str(raw.get("title", name)), weight=float(weight), ops=tuple(ops),
                kinds=tuple(kinds), visibility=visibility)
