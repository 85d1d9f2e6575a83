"""Diagnosis: from verdicts to findings, each naming one thing the engine
gets wrong.

A finding names an op of the op table (or ``backward``, the machinery:
accumulation, topological order, repeated passes, depth, and the
gradcheck-style behaviour checks of cases.BEHAVIOURS - a seed
``backward(gradient=g)`` that does not scale the gradients, a zero seed
that leaves gradients other than torch's, two identical graphs that give
different gradients, an unreached leaf given a gradient), the part that is
wrong, a kind, how many of the run's fail/error cases it explains, and the
smallest case that shows it, with its numbers and its replay command.

Kinds, in the order they are reported:
- ``wrong``: wrong values or gradients on ordinary, finite, in-domain
  inputs - what a learner must fix;
- ``precision``: the engine computes in a narrower type than float64
  (float32: numpy scalars, a float32 library), and its cases agree with
  torch only to that type's precision (compare.py judges them again there);
- ``multi_pass``: single backward passes are right, repeated ``backward()``
  on one graph accumulates unlike torch's ``retain_graph=True``;
- ``limit``: only deep graphs fail (a recursive topological sort's
  RecursionError, a timeout);
- ``edge``: only domain edges disagree with torch (raises, returns
  complex/nan/inf where torch returns a float, signed zeros, kinks,
  overflow of a naive formula).

The evidence is the probes (probes.py), not co-occurrence: an op has a
finding only if a probe of that op alone (or with its operand reused) shows
it.  Then each bad case of the run is attributed to the first finding that
explains it (a depth failure to ``limit``, a case containing a wrong op to
that op, a repeated pass to ``multi_pass``, a behaviour check's case to its
behaviour's finding, a case containing an op wrong at its edges to that),
and whatever no finding explains is shrunk to a minimal failing graph
(shrink.py) and becomes a finding of its own, which explains the rest of
them that contain its ops (a few such findings at most).
"""
from dataclasses import asdict, dataclass, replace
import re
from typing import NamedTuple

from .cases import ACCUMULATION_LEAVES, ACCUMULATION_NAMED, BEHAVIOURS, behaviour
from .case import DERIVATIVE_FAMILIES
from .compare import NARROW, WITHIN_NARROW
from .forward_mode import FORWARD_PROBE, PERTURBATION_CONFUSION_INDEX, forward_probes
from .higher_order import SECOND_ORDER, second_order_probes
from .ops import OPS
from .probes import DEEP_OP, control_key, probe_cases
from .report import BAD_VERDICTS, CHUNK_ROWS, failing, iter_report

KINDS = ("wrong", "precision", "multi_pass", "limit", "edge")
# The kinds a lecture engine (micrograd's, built in class) is expected to
# have: `--expect lecture` reports them without failing the run.
LECTURE_KINDS = frozenset({"multi_pass", "limit", "edge"})
_DEPTH_ERRORS = ("RecursionError", "timeout", "maximum recursion depth")
_DEEP = 100  # a case this deep or deeper that errors on depth is a limit case


@dataclass
class Finding:
    op: str               # an op-table name, "backward", or the ops of a minimal graph joined by "+"
    part: str             # what of it is wrong: "gradient", "value", "operand used twice", ...
    kind: str             # one of KINDS
    example: str          # the case id of the smallest case showing it (a probe's, or the run's)
    detail: str           # that case's verdict: what the engine gives, torch, the oracle
    minimal_case: dict    # that case as JSON: `parity replay --json`
    name: str = ""        # what that case is: "tanh at (0.75,)"
    cases: int = 0        # the run's fail/error cases it explains
    run_example: str = ""  # the smallest of those
    replay: str = ""      # the command that replays ``example``

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, data):
        return cls(**data)

    def line(self):
        """Two lines a learner understands."""
        where = f"{self.name}: " if self.name else ""
        count = (f"{self.cases} case(s) of the run, e.g. {self.run_example}" if self.cases
                 else "found by its probe only")
        return (f"{self.kind:<10} {self.op}: {self.part} - {where}{self.detail}\n"
                f"           {count}; replay: {self.replay}")


@dataclass
class Diagnosis:
    findings: list        # Findings, by kind then op
    bad_cases: int        # the run's fail/error cases
    unexplained: int = 0  # of them, those no probe explains (one finding, shrunk from the smallest)

    def to_json(self):
        return [f.to_json() for f in self.findings]

    def fails_under(self, expect):
        """Whether the run fails under a profile: "all" (every bad case
        fails it) or "lecture" (only `wrong` findings do)."""
        if expect == "lecture":
            return any(f.kind not in LECTURE_KINDS for f in self.findings)
        return self.bad_cases > 0

    def text(self):
        lines = [f"findings ({len(self.findings)}; what the engine gets wrong, the worst first):"]
        lines += ["  " + f.line() for f in self.findings]
        return "\n".join(lines)


# -- the probes' findings -----------------------------------------------------------
def probe_findings(rows, cases):
    """Findings from the probes' rows (runner.run_cases over probe cases).

    In order of evidence: an op whose ordinary probes fail is wrong; then an
    op whose reuse probes fail - unless several ops' do (at least
    SHARED_REUSE_FAILURES): a bug in one op's backward shows in that op's
    probes only, so the common cause is the machinery that adds up a node's
    gradient contributions, one finding, not one per op.  The machinery's
    own probes count only where no op found wrong takes part; the deep
    chains only if their op is right.  Edge findings are for ops not found
    wrong."""
    bad, narrow = {}, []
    for case, row in zip(cases, rows):
        if row["verdict"] in BAD_VERDICTS and WITHIN_NARROW in row["detail"]:
            narrow.append((case, row))  # right to the engine's precision: no evidence against the op
        elif row["verdict"] in BAD_VERDICTS:
            bad.setdefault((case.spec["op"], case.spec["probe"]), []).append((case, row))
    ops = list(dict.fromkeys(case.spec["op"] for case in cases if case.spec["op"] != "backward"))
    findings = {}
    failing = {op for op in ops if bad.get((op, "ordinary"))}
    for op in ops:
        ordinary = bad.get((op, "ordinary"))
        if ordinary and not built_from(op) & failing:  # else the op it may be built from explains it
            parts = sorted({_part(c, r) for c, r in ordinary}, key=_part_order)
            findings[op] = _finding(op, " and ".join(parts), "wrong", ordinary)
    reused = {}
    for op in ops:
        probes = [(c, r) for c, r in bad.get((op, "reused"), []) if not (set(c.graph.ops()) - {op}) & set(findings)]
        if probes and op not in findings and not built_from(op) & set(findings):
            reused[op] = probes
    blamed = _blamed_for_reuse(reused, cases, rows)
    machinery = []
    # Many ops failing, not all explained by one (as micrograd's mul explains
    # its neg, sub and div): the common cause is the machinery.
    if len(reused) >= SHARED_REUSE_FAILURES and len(blamed) > 1:
        machinery = [probe for probes in reused.values() for probe in probes]
    else:
        findings.update((op, _finding(op, REUSED, "wrong", reused[op])) for op in blamed)
    # wrong, or failing with a wrong op it may be built from
    wrong = set(findings) | {op for op in ops if built_from(op) & set(findings)}
    machinery += [(c, r) for c, r in bad.get(("backward", "machinery"), []) if not set(c.graph.ops()) & wrong]
    for op in ops:
        second, tangent = bad.get((op, SECOND_ORDER)), bad.get((op, FORWARD_PROBE))
        if second and op not in wrong:
            findings[op] = _finding(op, "second derivatives (its backward is not differentiable with Values, "
                                    "or a second-derivative formula is wrong)", "wrong", second)
        if tangent and op not in findings:  # forward mode has rules of its own: a first-order bug is apart
            parts = sorted({_part(c, r) for c, r in tangent})
            findings[op] = _finding(op, " and ".join(parts), "wrong", tangent)
    result = list(findings.values())
    if machinery and "add" not in findings:  # the machinery's probes sum their outputs with add
        result.append(_finding("backward", "gradients of a node used more than once (accumulation, or the "
                               "order of the topological sort)", "wrong", machinery))
    repeated = [(c, r) for c, r in bad.get(("backward", "multi_pass"), []) if not set(c.graph.ops()) & wrong]
    if repeated and not machinery:
        result.append(_finding("backward", "repeated backward() on one graph (torch accumulates, as with "
                               "retain_graph=True)", "multi_pass", repeated))
    result += _behaviour_findings(bad, cases, rows, wrong)
    deep = None if DEEP_OP[0] in findings else bad.get(("backward", "deep"))  # its op's own finding explains it
    if deep:
        depth = min(c.spec["depth"] for c, _ in deep)
        result.append(_finding("backward", f"deep graphs (a chain of {depth:,} ops)", "limit", deep))
    if narrow:
        result.append(_finding("arithmetic", f"{NARROW}, not float64: "
                               f"{len(narrow)} probe(s) agree with torch only to that precision",
                               "precision", narrow))
    for op in ops:
        edge = bad.get((op, "edge"))
        if edge and op not in wrong:
            points = ", ".join(dict.fromkeys(_point(c) for c, _ in edge[:4]))
            more = f" and {len(edge) - 4} more" if len(edge) > 4 else ""
            result.append(_finding(op, f"at edge points {points}{more}", "edge", edge))
    return result


def _behaviour_findings(bad, cases, rows, wrong):
    """A `backward` finding per gradcheck-style behaviour (cases.BEHAVIOURS)
    whose probes fail where nothing else explains it: no op of the probe is
    wrong, and the same case without the behaviour (its control: a named
    case, or a ``control`` probe) passes - or, for a leaf the output does not
    reach, the first quantity that fails is that leaf's gradient."""
    passed = {control_key(case): row["verdict"] not in BAD_VERDICTS for case, row in zip(cases, rows)
              if case.spec["op"] == "backward" and case.spec["probe"] in ("machinery", "multi_pass", "control")}

    def explained_by_it(case, row):
        if set(case.graph.ops()) & wrong:
            return False
        if case.spec["probe"] == "unreached":
            return any(row["detail"].startswith(f"grad of leaf v{i}:") for i in case.spec["unreached"])
        return passed.get(control_key(case), False)

    findings = []
    for key, part in BEHAVIOURS.items():
        evidence = [(case, row) for case, row in bad.get(("backward", key), []) if explained_by_it(case, row)]
        if evidence:
            findings.append(_finding("backward", part, "wrong", evidence))
    return findings


def _blamed_for_reuse(reused, cases, rows):
    """The ops whose own backward loses a reused operand's contributions,
    of ``reused`` ({op: its failing reuse probes}).  A reuse probe also
    adds (and doubles): its failure is the op's own only where each other
    op in it is innocent (no reuse probe of it fails, or it alone on
    (a, a) passes).  Of those, an op an engine may build from another one
    blamed (a - b as a + (-b), -a as a * -1: OPS' built_from) is explained
    by that one."""
    alone_passes = {case.spec["op"] for case, row in zip(cases, rows)
                    if case.spec["probe"] == "reused" and set(case.graph.ops()) == {case.spec["op"]}
                    and row["verdict"] not in BAD_VERDICTS}
    innocent = lambda op: op not in reused or op in alone_passes  # noqa: E731
    own = {op for op, probes in reused.items()
           if any(all(innocent(other) for other in set(case.graph.ops()) - {op}) for case, _ in probes)}
    return sorted(op for op in own if not built_from(op) & own)


def built_from(op):
    """The ops an engine may build ``op`` from, and theirs (OPS' built_from)."""
    found, todo = set(), list(OPS[op].built_from if op in OPS else ())
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += OPS[name].built_from
    return found


# Probed whatever the run's cases use: enough ops that a bug of the machinery
# shows in several (see probe_findings).
CONTROL_OPS = ("add", "sub", "mul", "mul_const", "neg")
REUSED = "operand used twice (its gradient contributions overwrite instead of adding up)"
SHARED_REUSE_FAILURES = 3


def _finding(op, part, kind, evidence):
    case, row = min(evidence, key=lambda cr: (cr[0].graph.n_nodes, cr[0].index))
    return Finding(op=op, part=part, kind=kind, example=case.case_id, detail=row["detail"],
                   minimal_case=case.to_json(), name=case.name, replay=row["replay"])


def _part(case, row):
    if row["verdict"] == "error":  # what it raised, or how its worker ended: up to the first ':', ';' or '('
        return f"raises ({re.split(r'[:;(]', row['detail'])[0].strip()})"
    if case.spec.get("nested"):
        return "perturbation confusion: a nested jvp's inner derivative picks up the outer perturbation"
    if row["detail"].startswith("tangent of"):
        tangents = case.spec["tangents"]
        along = tangents.index(1.0) + 1 if case.graph.n_leaves > 1 and 1.0 in tangents else None
        return "tangent (forward mode)" + (f" along operand {along}" if along else "")
    order = re.match(r"(d[23] loss|Hessian-vector)", row["detail"])
    if order:
        return "third derivative" if order.group(1) == "d3 loss" else "second derivative"
    match = re.match(r"grad of leaf v(\d+)", row["detail"])
    if match:
        n_operands = case.graph.n_leaves
        return "gradient" if n_operands == 1 else f"gradient of operand {int(match.group(1)) + 1}"
    return "value"


def _part_order(part):
    return (not part.startswith("value"), part)


def _point(case):
    const = case.spec.get("const")
    leaves = ", ".join(repr(x) for x in case.leaves)
    return f"({leaves})" + (f" c={const!r}" if const is not None else "")


# -- attributing the run's bad cases ---------------------------------------------------
def attribute(findings, bad_rows, passes_of):
    """Count, for each finding, the bad rows it explains (the first that
    does, by KINDS' order of precedence as in the module doc), and return
    the rows none explains.  ``bad_rows``: dicts with case_id, ops, depth,
    n_nodes, detail; ``passes_of(case_id)``: backward passes of a case."""
    unexplained = []
    for row, finding in assign(findings, bad_rows, passes_of):
        if finding is None:
            unexplained.append(row)
            continue
        finding.cases += 1
        if not finding.run_example:
            finding.run_example = row["case_id"]
    return unexplained


def assign(findings, bad_rows, passes_of):
    """(row, the finding that explains it, or None) for each bad row, the
    smallest first, as attribute() counts them."""
    by_kind = {kind: [f for f in findings if f.kind == kind] for kind in KINDS}
    return [(row, _explaining(row, by_kind, passes_of))
            for row in sorted(bad_rows, key=lambda r: (int(r["n_nodes"]), r["case_id"]))]


def explained_by(findings, bad_rows, spec):
    """{case_id: the finding that explains that bad row of a run of
    ``spec``, or None}."""
    return {row["case_id"]: finding for row, finding in assign(findings, bad_rows, lambda c: _passes(c, spec))}


def _explaining(row, by_kind, passes_of):
    ops = _ops(row)
    depth_error = row["verdict"] == "error" and any(e in row["detail"] for e in _DEPTH_ERRORS)
    if depth_error and int(row["depth"]) >= _DEEP and by_kind["limit"]:
        return by_kind["limit"][0]
    if by_kind["precision"] and WITHIN_NARROW in row["detail"]:
        return by_kind["precision"][0]
    # an op built from a wrong one (a - b as a + (-b)) fails with it
    ops = ops.union(*map(built_from, ops))
    if row.get("family") == "higher_order":  # an engine builds its gradients' graphs with these too
        ops |= set(CONTROL_OPS)
    if row["case_id"].startswith("forward-") and row["case_id"].endswith(f"-{PERTURBATION_CONFUSION_INDEX}"):
        ops |= {"jvp"}
    for finding in by_kind["wrong"]:
        if finding.op in ops:
            return finding
    if by_kind["multi_pass"] and passes_of(row["case_id"]) > 1:
        return by_kind["multi_pass"][0]
    checks = _behaviour_of(row["case_id"])
    for finding in by_kind["wrong"]:  # a behaviour check's case: its own finding
        if checks and finding.op == "backward" and finding.part == BEHAVIOURS[checks]:
            return finding
    for finding in by_kind["wrong"]:  # the machinery (no behaviour's finding explains other cases)
        if finding.op == "backward" and finding.part not in _BEHAVIOUR_PARTS:
            return finding
    for finding in by_kind["edge"]:
        if finding.op in ops:
            return finding
    return None


_BEHAVIOUR_PARTS = frozenset(BEHAVIOURS.values())


def _behaviour_of(case_id):
    """The BEHAVIOURS key a run's case checks (a named accumulation case), or None."""
    family, _, index = case_id.rpartition("-")
    if not family.startswith("accumulation-") or not index.isdigit():
        return None
    named = int(index) // len(ACCUMULATION_LEAVES)
    return behaviour(ACCUMULATION_NAMED[named][4]) if named < len(ACCUMULATION_NAMED) else None


def order(findings):
    """Findings by kind (KINDS' order), then most cases first, then op."""
    return sorted(findings, key=_rank)


def _rank(finding):
    return KINDS.index(finding.kind), -finding.cases, finding.op


# -- a run's diagnosis ----------------------------------------------------------------
BAD_ROW_COLUMNS = ("case_id", "family", "ops", "depth", "n_nodes", "verdict", "detail")


def bad_rows(report, checked=False):
    """The fail/error rows of a report, as dicts, a chunk at a time.
    ``checked``: the report was read back whole already (a run's, just
    written): only these columns of these rows are parsed, a tenth of the
    cost of checking every value of every row again."""
    if checked:
        return _bad_rows_of_checked(report)
    rows = []
    for chunk in iter_report(report):
        bad = failing(chunk)
        rows += bad[list(BAD_ROW_COLUMNS)].to_dict("records")
    return rows


def _bad_rows_of_checked(report):
    import pandas as pd

    rows = []
    with pd.read_csv(report, dtype=str, keep_default_na=False, usecols=BAD_ROW_COLUMNS,
                     chunksize=CHUNK_ROWS) as chunks:
        for chunk in chunks:
            for row in failing(chunk)[list(BAD_ROW_COLUMNS)].to_dict("records"):
                rows.append({**row, "depth": int(row["depth"]), "n_nodes": int(row["n_nodes"])})
    return rows


def diagnose(rows, backends, spec):
    """The Diagnosis of a run's bad rows: the probes of the ops they use,
    run through ``backends`` (engine, torch, oracle, tolerances), their
    findings, and the rows attributed."""
    ops = {op for row in rows for op in str(row["ops"]).split(";") if op in OPS}
    higher, forward = ({op for row in rows if row.get("family") == family for op in _ops(row) | set(CONTROL_OPS)
                        if op in OPS} for family in DERIVATIVE_FAMILIES)
    return explain(probe(ops, backends, spec, higher=higher, forward=forward).findings, rows, backends, spec)


class Probed(NamedTuple):
    findings: list  # probe_findings'
    bad: list       # the case ids of the probes that failed or errored


def probe(ops, backends, spec, excused=frozenset(), higher=frozenset(), forward=frozenset()):
    """The probes of ``ops`` (and CONTROL_OPS) and of the machinery, the
    second-order ones of ``higher`` and the tangent ones of ``forward``
    (ops of failing higher_order and forward cases), run, leaving out
    those whose case ids are ``excused``."""
    from .judges import run_task

    if (getattr(backends[0], "adapter", None) or {}).get("tangent"):  # a dual number: forward mode is all it has
        probes = forward_probes(set(forward) | set(ops))
    else:
        probes = probe_cases(sorted(set(ops) | set(CONTROL_OPS))) + second_order_probes(higher) + forward_probes(forward)
    probes = [case for case in probes if case.case_id not in excused]
    # A probe is the same case whatever the run's knobs: its replay needs none.
    probe_spec = replace(spec, edge_rate=None, max_nodes=None, ops=None, draws_per_graph=None)
    rows = list(run_task(probes, probe_spec, backends))
    return Probed(probe_findings(rows, probes), [row["case_id"] for row in rows if row["verdict"] in BAD_VERDICTS])


def explain(findings, rows, backends, spec):
    """The Diagnosis of bad rows given the probes' findings: the rows
    attributed, what none explains shrunk to findings of its own."""
    unexplained = attribute(findings, rows, lambda case_id: _passes(case_id, spec))
    findings = findings + _shrunk_findings(unexplained, backends, spec)
    return Diagnosis(order(findings), len(rows), len(unexplained))


MAX_SHRUNK_FINDINGS = 3  # each costs a shrink (up to shrink.BUDGET_SECONDS)


def _shrunk_findings(rows, backends, spec):
    """What no probe explains, as findings of minimal graphs: the smallest
    such case shrunk, and the rows whose ops include its minimal graph's
    counted to it (they may fail for the same reason); then the smallest
    of the rest, up to MAX_SHRUNK_FINDINGS.  Rows beyond those are counted
    to the last."""
    findings = []
    while rows:
        first, rows = rows[0], rows[1:]  # attribute() sorted them smallest first
        finding = _unexplained(first, backends, spec)
        needs = set(finding.op.split("+")) - {"(no op)"}
        if len(findings) == MAX_SHRUNK_FINDINGS - 1:
            same, rows = rows, []
        else:
            same = [row for row in rows if needs <= _ops(row)]
            rows = [row for row in rows if not needs <= _ops(row)]
        finding.cases = 1 + len(same)
        findings.append(finding)
    return findings


def _ops(row):
    return set(filter(None, str(row["ops"]).split(";")))


def _unexplained(row, backends, spec):
    """A bad row no probe explains, as a finding: its case shrunk
    (shrink.py) to a graph that still fails."""
    from .cases import case_from_id
    from .runner import run_cases
    from .shrink import shrink

    case = case_from_id(row["case_id"], spec.config())

    def verdict(candidate):
        return next(run_cases([candidate], *backends))

    # An mlp case is a network (a trajectory, engine.nn), a higher_order
    # case's derivatives name its leaves: each is shown as it is.
    node_values = None
    if case.family not in ("mlp", *DERIVATIVE_FAMILIES):
        try:
            node_values = backends[1].trace(case)[0]
        except Exception:  # torch cannot evaluate it node by node: the case as it is
            pass
    small = case if node_values is None else shrink(case, lambda c: verdict(c)["verdict"] in BAD_VERDICTS,
                                                    node_values)
    minimal = small.to_json()
    replay = _json_replay(minimal, spec) if small is not case else spec.replay_command(case.case_id)
    ops = "+".join(small.graph.ops()) or "(no op)"
    return Finding(op=ops, part=f"fails together ({small.graph.n_nodes} of the case's {case.graph.n_nodes} nodes) "
                   f"where each op passes its probes", kind="wrong", example=case.case_id,
                   detail=verdict(small)["detail"], minimal_case=minimal, name=case.name,
                   run_example=row["case_id"], replay=replay)


def _json_replay(case_json, spec):
    import json
    import shlex

    # "parity replay X --engine ...": a case as JSON needs none of the run's knobs
    options = shlex.split(replace(spec, edge_rate=None, max_nodes=None, ops=None,
                                  draws_per_graph=None).replay_command("X"))[3:]
    return shlex.join(["parity", "replay", "--json", json.dumps(case_json, separators=(",", ":")), *options])


def _passes(case_id, spec):
    family = case_id.split("-")[0]
    if family not in ("accumulation", "function"):  # the only families with repeated passes
        return 1
    from .cases import case_from_id
    return case_from_id(case_id, spec.config()).passes


# -- regressions, by finding ----------------------------------------------------------
class RegressionGroup(NamedTuple):
    finding: object  # a Finding of the current run (.cases: the regressed rows it explains), None: no finding's
    new: bool        # the baseline's diagnosis lacks it
    case_ids: list   # its regressed rows' case ids, the smallest case first


def group_regressions(rows, current, baseline, spec):
    """The regressed rows grouped by the current run's finding that explains
    them (``current``, ``baseline``: the runs' sidecar diagnoses), the worst
    finding first; the rows no finding explains last."""
    findings = [Finding.from_json(f) for f in current]
    known = {(f["op"], f["part"], f["kind"]) for f in baseline or []}
    by_finding = {}  # id(finding), id(None) for none -> case ids
    for row, finding in assign(findings, rows, lambda case_id: _passes(case_id, spec)):
        by_finding.setdefault(id(finding), []).append(row["case_id"])
    groups = sorted((RegressionGroup(replace(f, cases=len(ids), run_example=ids[0]),
                                     (f.op, f.part, f.kind) not in known, ids)
                     for f in findings if (ids := by_finding.get(id(f)))), key=lambda g: _rank(g.finding))
    unexplained = by_finding.get(id(None))
    return groups + ([RegressionGroup(None, False, unexplained)] if unexplained else [])


def explain_regressions(groups):
    """Lines saying which of the current run's findings explain the
    regressed rows (group_regressions' groups), each marked "(new)" when
    the baseline's diagnosis lacks it."""
    lines = [f"{sum(len(g.case_ids) for g in groups)} regressed case(s), explained by:"]
    for group in groups:
        f = group.finding
        if f is None:
            lines.append(f"  {len(group.case_ids):>6}  no finding of the current run (e.g. {group.case_ids[0]})")
        else:
            lines.append(f"  {f.cases:>6}  {f.kind} {f.op}: {f.part}{' (new)' if group.new else ''}; "
                         f"e.g. {f.run_example}")
    return lines
