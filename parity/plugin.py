"""A pytest plugin: parity checks of an engine against PyTorch, from any project.

Installed with gradparity, pytest loads it by itself (the ``pytest11`` entry
point ``parity.plugin``); ``pytest -p parity.plugin`` or ``pytest_plugins =
["parity.plugin"]`` in a conftest.py load it where gradparity is only on
the path.  It stays inert (no torch, no engine) until a test uses one of its
fixtures.  Options:

    --parity-engine SPEC   the engine under test (default "engine"; see
                           backends/engine.py for the spec forms)
    --parity-cases N       cases per parity_check call that gives no n (default 100)
    --parity-ops LIST      the expr family's ops for calls that give none:
                           comma-separated, or "supported" (the ops the engine has)
    --parity-adapter, --parity-data-attr, --parity-grad-attr,
    --parity-backward, --parity-timeout
                           how to drive the engine: parity run's --adapter ...

Fixtures: ``parity_engine`` (the loaded engine backend), ``parity_torch``,
``parity_oracle`` (session-wide), and ``parity_check``::

    def test_accumulation(parity_check):
        parity_check("accumulation", n=50, seed=1)

    def test_the_ops_my_engine_has(parity_check):
        parity_check("expr", cases=200, ops="supported", edge_rate=0.1)

which runs the cases and fails the test with one message: the findings
(diagnosis.py: which op or part of backward is wrong), then the worst cases,
each with its detail, a replay command that reproduces exactly that case (the
engine's options and the knobs included) and its graph with leaf values.  A
check that judged no case (every case needs an op the engine lacks, or none
was asked for) fails too, naming the ops it lacks, unless it passes
``allow_unsupported=True``.  Outside pytest fixtures,
``parity.assert_parity(family, ...)`` does the same and raises ParityFailure
(an AssertionError).

Tests using ``parity_check`` get the ``parity`` marker (``pytest -m parity``).
At the end of the session the terminal summary counts the verdicts of every
case checked, per family, under pytest-xdist too (each worker's counts go to
the controller).
"""
from dataclasses import asdict, dataclass, is_dataclass
import functools
import math
from typing import NamedTuple
import warnings

import pytest

DEFAULT_CASES = 100
SHOWN_CASES = 5      # the worst cases a failure message shows
GRAPH_LINES = 20     # of each one's graph
SHOWN_OPS = 12       # the missing ops a message names
BAD_VERDICTS = ("fail", "error")  # compare.FAIL, compare.ERROR (compare.py is imported only when checking)
UNSUPPORTED = "unsupported"
CLI_KNOBS = ("ops", "edge_rate", "max_nodes")  # the expr knobs `parity replay` has options for
ENGINE_OPTIONS = ("data_attr", "grad_attr", "backward", "adapter", "timeout")
_COUNTS = pytest.StashKey[dict]()  # {family: {verdict: count}} of the cases checked
_WORKER_OUTPUT = "parity_counts"  # the key of a pytest-xdist worker's counts in its workeroutput


class ParityFailure(AssertionError):
    """Some cases fail or error, or none was judged; ``rows`` has every
    case's row."""

    def __init__(self, message, rows):
        super().__init__(message)
        self.rows = rows


class UnsupportedCasesWarning(UserWarning):
    """Some of a check's cases were not judged: they need ops the engine lacks."""


# -- hooks -----------------------------------------------------------------------------
def pytest_addoption(parser):
    group = parser.getgroup("parity", "gradparity: engine against PyTorch")
    group.addoption("--parity-engine", default="engine", metavar="SPEC",
                    help="engine under test: 'engine', 'micrograd', 'pkg.module:Class' or 'file.py:Class'")
    group.addoption("--parity-cases", type=int, default=DEFAULT_CASES, metavar="N",
                    help=f"cases per parity_check call that gives no n (default {DEFAULT_CASES})")
    group.addoption("--parity-ops", metavar="LIST",
                    help="the expr family's ops for parity_check calls that give none: comma-separated, or "
                         "'supported' (those the engine has; default: every built-in op)")
    group.addoption("--parity-adapter", metavar="FILE.py",
                    help="an adapter file mapping our op names to the engine's calls (parity run's --adapter)")
    group.addoption("--parity-data-attr", metavar="NAME", help="the values' number attribute (default: detected)")
    group.addoption("--parity-grad-attr", metavar="NAME", help="the values' gradient attribute (default: detected)")
    group.addoption("--parity-backward", metavar="NAME",
                    help="the backward method or module function (default: detected)")
    group.addoption("--parity-timeout", type=float, metavar="SECONDS",
                    help="per case, for the engine (default: 10)")
    group.addoption("--parity-reference", choices=("torch", "oracle", "auto"), default="auto",
                    help="what parity_check compares the engine with: torch, oracle (the exact answer, no torch "
                         "needed) or auto: torch where it is installed (default)")


def pytest_configure(config):
    config.stash[_COUNTS] = {}
    config.addinivalue_line("markers", "parity: a parity check of an engine against PyTorch (every test using "
                                       "the parity_check fixture gets it): select them with -m parity")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistController(config), "parity.plugin.xdist")


class _XdistController:
    """pytest-xdist's controller side: each worker's verdict counts (an
    xdist hook, registered only where xdist is)."""

    def __init__(self, config):
        self.config = config

    def pytest_testnodedown(self, node, error):
        _add_counts(self.config, (getattr(node, "workeroutput", None) or {}).get(_WORKER_OUTPUT) or {})


def pytest_sessionfinish(session):
    # In a pytest-xdist worker: its counts go to the controller.
    output = getattr(session.config, "workeroutput", None)
    counts = session.config.stash.get(_COUNTS, None)
    if output is not None and counts:
        output[_WORKER_OUTPUT] = counts


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items):
    for item in items:
        if "parity_check" in getattr(item, "fixturenames", ()) and item.get_closest_marker("parity") is None:
            item.add_marker(pytest.mark.parity)


def pytest_terminal_summary(terminalreporter, config):
    counts = config.stash.get(_COUNTS, None)
    if not counts:
        return
    terminalreporter.section("parity")
    for family, verdicts in counts.items():
        shown = ", ".join(f"{verdict} {count}" for verdict, count in verdicts.items() if count)
        terminalreporter.write_line(f"{family}: {sum(verdicts.values())} cases: {shown}")


def _add_counts(config, counts):
    total = config.stash.setdefault(_COUNTS, {})
    for family, verdicts in counts.items():
        mine = total.setdefault(family, {})
        for verdict, count in verdicts.items():
            mine[verdict] = mine.get(verdict, 0) + count


# -- fixtures ----------------------------------------------------------------------------
def _engine_options(pytestconfig):
    return {name: value for name in ENGINE_OPTIONS
            if (value := pytestconfig.getoption(f"parity_{name}")) is not None}


@pytest.fixture(scope="session")
def parity_engine(pytestconfig):
    from .backends.engine import load_engine

    engine = load_engine(pytestconfig.getoption("parity_engine"), **_engine_options(pytestconfig))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def parity_torch():
    pytest.importorskip("torch")
    from .backends.torch import TorchBackend

    return TorchBackend()


@pytest.fixture(scope="session")
def parity_oracle():
    from .backends.oracle import OracleBackend

    return OracleBackend()


@pytest.fixture(scope="session")
def parity_reference(pytestconfig, parity_oracle):
    """What parity_check compares the engine with (--parity-reference):
    torch's backend, or the oracle's exact answer as one."""
    from .backends.reference import make_reference, resolve

    try:
        name = resolve(pytestconfig.getoption("parity_reference"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    return make_reference(name, parity_oracle)


@pytest.fixture
def parity_check(pytestconfig, parity_engine, parity_reference, parity_oracle):
    """parity_check(family, n=None, seed=0, config=None, tolerances=None, *,
    cases=None, ops=None, edge_rate=None, max_nodes=None,
    allow_unsupported=False) -> rows; fails the test if a case's verdict is
    fail or error, or if no case was judged (see assert_parity)."""
    def check(family, n=None, seed=0, config=None, tolerances=None, *, cases=None, ops=None, edge_rate=None,
              max_nodes=None, allow_unsupported=False):
        __tracebackhide__ = True
        default_ops = pytestconfig.getoption("parity_ops")
        if ops is None and default_ops is not None and family == "expr" and "ops" not in _config_dict(config):
            ops = default_ops
        outcome = _check(family, _count(n, cases, pytestconfig.getoption("parity_cases")), seed, parity_engine,
                         config, dict(ops=ops, edge_rate=edge_rate, max_nodes=max_nodes),
                         _engine_options(pytestconfig), (parity_reference, parity_oracle, tolerances),
                         allow_unsupported)
        from .runner import summarize
        _add_counts(pytestconfig, summarize(outcome.rows))
        if outcome.message is not None:
            pytest.fail(outcome.message, pytrace=False)
        return outcome.rows
    return check


# -- the check ---------------------------------------------------------------------------
def assert_parity(family, n=None, seed=0, engine="engine", config=None, *, cases=None, ops=None, edge_rate=None,
                  max_nodes=None, allow_unsupported=False, engine_options=None, torch_backend=None, oracle=None,
                  tolerances=None):
    """Run the first n cases (``cases``: the same; default 100) of ``family``
    for ``seed`` on ``engine`` (a spec, loaded with ``engine_options``:
    data_attr, grad_attr, backward, adapter, timeout; or a loaded backend,
    which ``engine_options`` then only describe for the replay commands)
    against torch, judged with the oracle; return the rows, or raise
    ParityFailure (an AssertionError): the findings, then the worst cases,
    each with its replay command.

    The expr family's knobs, as ``parity run``'s options: ``ops`` (a list, a
    comma-separated string, or "supported": the ops the engine has),
    ``edge_rate``, ``max_nodes``; ``config`` takes them too, and the
    generator's others (``depth``, ``chain_share``, ``shape``, ...: cases.py),
    whose cases replay as JSON.

    A check that judged no case (each needs an op the engine lacks, or none
    was asked for) fails, unless ``allow_unsupported``; one that judged only
    some warns (UnsupportedCasesWarning)."""
    __tracebackhide__ = True
    options = dict(engine_options or {})
    unknown = set(options) - set(ENGINE_OPTIONS)
    if unknown:
        raise TypeError(f"unknown engine_options {sorted(unknown)}; known: {', '.join(ENGINE_OPTIONS)}")
    loaded = None
    if isinstance(engine, str):
        from .backends.engine import load_engine
        engine = loaded = load_engine(engine, **options)
    try:
        outcome = _check(family, _count(n, cases, DEFAULT_CASES), seed, engine, config,
                         dict(ops=ops, edge_rate=edge_rate, max_nodes=max_nodes), options,
                         (torch_backend, oracle, tolerances), allow_unsupported)
    finally:
        if loaded is not None:
            loaded.close()
    if outcome.message is not None:
        raise ParityFailure(outcome.message, outcome.rows)
    return outcome.rows


class _Outcome(NamedTuple):
    rows: list
    message: object  # the failure's message, or None


def check_spec(engine_name, family, seed, n, knobs, extra, engine_options, reference="torch"):
    """The RunSpec (plan.py) of a check: its replay commands carry the
    engine's options and the knobs; with ``extra`` knobs (config's depth,
    chain_share, ...: none of parity replay's options) an expr case replays
    as JSON, built as the check built it."""
    from .cli import _pythonpath

    return _spec_class()(engine=engine_name, families=(family,), cases=max(n, 1), seed=seed,
                         pythonpath=_pythonpath(engine_name), **knobs, **engine_options,
                         extra=tuple(sorted(extra.items())), reference=reference)


@functools.cache
def _spec_class():
    """RunSpec with the extra knobs (defined on first use: importing the
    plugin imports no more of the harness than it needs)."""
    from .plan import RunSpec

    @dataclass(frozen=True)
    class CheckSpec(RunSpec):
        extra: tuple = ()  # (name, value) pairs: the expr knobs parity replay has no option for

        def config(self):
            base = super().config()
            return {**(base or {}), **dict(self.extra)} if self.extra else base

        def replay_command(self, case_id):
            if not self.extra or not case_id.startswith("expr-"):
                return super().replay_command(case_id)
            from .cases import case_from_id
            from .diagnosis import _json_replay
            return _json_replay(case_from_id(case_id, self.config()).to_json(), self)

    return CheckSpec


def _count(n, cases, default):
    if n is not None and cases is not None and n != cases:
        raise TypeError(f"n={n} and cases={cases}: give one (cases is another name for n)")
    count = n if n is not None else cases if cases is not None else default
    if count < 0:
        raise ValueError(f"the number of cases must not be negative, not {count}")
    return count


def _config_dict(config):
    if config is None:
        return {}
    return asdict(config) if is_dataclass(config) else dict(config)


def _knobs(family, config, given):
    """(the CLI's knobs, the others) of a check: ``given`` (the keywords)
    over ``config``; one given both ways differently is a TypeError."""
    knobs = _config_dict(config)
    for name, value in given.items():
        if value is None:
            continue
        if name in knobs and knobs[name] != value:
            raise TypeError(f"{name} given twice, as {value!r} and in config as {knobs[name]!r}")
        knobs[name] = value
    if knobs and family != "expr":
        raise ValueError(f"{', '.join(sorted(knobs))}: the expr family's knobs; the {family} family's cases are "
                         f"fixed (check family 'expr' to choose ops, edge_rate, max_nodes)")
    ops = knobs.get("ops")
    if isinstance(ops, str) and ops != "supported":
        ops = tuple(name.strip() for name in ops.split(",") if name.strip())
    elif ops is not None and ops != "supported":
        ops = tuple(ops)
    if ops is not None:
        knobs["ops"] = ops
    return ({name: knobs.pop(name) for name in CLI_KNOBS if name in knobs}, knobs)


def _check(family, n, seed, engine, config, given, engine_options, judges, allow_unsupported):
    """The rows of a check, and the message it fails with (or None)."""
    from .cases import build_cases
    from .ops import OP_NAMES

    knobs, extra = _knobs(family, config, given)
    if knobs.get("ops") == "supported":
        knobs["ops"] = tuple(name for name in OP_NAMES if engine.supports(name))
        if not knobs["ops"]:
            if allow_unsupported:
                return _Outcome([], None)
            return _Outcome([], f"parity: ops='supported': engine {engine.name!r} has no op of the op table, so "
                                f"no case can be checked ({'; '.join(engine.probe_summary(OP_NAMES))}); map our "
                                f"op names to its calls with an adapter file (--parity-adapter FILE, or "
                                f"engine_options={{'adapter': FILE}}; README: Engines of other shapes), or pass "
                                f"allow_unsupported=True")
    backends = _backends(engine, *judges)
    spec = check_spec(engine.name, family, seed, n, knobs, extra, engine_options,
                      getattr(backends[1], "name", "torch"))
    cases = build_cases(family, seed, n, spec.config())
    from .runner import run_cases
    rows = []
    for case, row in zip(cases, run_cases(cases, *backends)):
        row["replay"] = spec.replay_command(case.case_id)
        rows.append(row)

    unsupported = [case for case, row in zip(cases, rows) if row["verdict"] == UNSUPPORTED]
    lacking = [row["detail"] for row in rows if row["verdict"] == UNSUPPORTED]
    if len(unsupported) == len(rows):
        if allow_unsupported:
            return _Outcome(rows, None)
        return _Outcome(rows, _nothing_judged(family, n, engine, unsupported, knobs, lacking))
    bad = [(case, row) for case, row in zip(cases, rows) if row["verdict"] in BAD_VERDICTS]
    if unsupported and not allow_unsupported:
        warnings.warn(UnsupportedCasesWarning(
            f"parity: {len(unsupported)} of {n} {family} cases were not judged on engine {engine.name!r}: they need "
            f"ops it lacks ({_missing(engine, unsupported, lacking)}); {_remedy(family)}"), stacklevel=3)
    if not bad:
        return _Outcome(rows, None)
    diagnosis, why = None, ""
    try:
        from .diagnosis import diagnose
        diagnosis = diagnose([row for _, row in bad], backends, spec)
    except Exception as exc:  # the cases' own message still stands
        why = f"(no findings: the diagnosis failed: {type(exc).__name__}: {exc})"
    return _Outcome(rows, failure_message(family, engine.name, n, bad, diagnosis, len(unsupported), why))


def _backends(engine, torch_backend, oracle, tolerances):
    from .compare import Tolerances
    if oracle is None:
        from .backends.oracle import OracleBackend
        oracle = OracleBackend()
    if torch_backend is None:  # torch where it is installed, else the oracle's exact answer
        from .backends.reference import make_reference, resolve
        torch_backend = make_reference(resolve("auto"), oracle)
    return engine, torch_backend, oracle, tolerances or Tolerances()


def _missing(engine, cases, details=()):
    """The ops the engine lacks that these cases need, in a few words; then
    what else their verdicts say it lacks (``details``: "engine lacks
    backward(gradient=g): ...", a feature of backward a case asks for)."""
    missing = sorted({op for case in cases for op in engine.missing_ops(case.graph)})
    more = f", ... ({len(missing)} ops)" if len(missing) > SHOWN_OPS else ""
    ops = set(missing)
    other = [d.removeprefix("engine lacks ") for d in dict.fromkeys(details)
             if d.startswith("engine lacks ") and not set(d.removeprefix("engine lacks ").split(",")) <= ops]
    return "; ".join(filter(None, [", ".join(missing[:SHOWN_OPS]) + more, *other]))


def _remedy(family):
    ways = ["map our op names to the engine's calls with an adapter file (--parity-adapter FILE, or "
            "engine_options={'adapter': FILE}; README: Engines of other shapes)"]
    if family == "expr":
        ways.insert(0, "ops='supported' checks only the ops the engine has (--parity-ops supported for every check)")
    return "; or ".join(ways)


def _nothing_judged(family, n, engine, unsupported, knobs, lacking=()):
    if not n:
        return (f"parity: no {family} case was checked (n=0): the check tested nothing; ask for cases, or pass "
                f"allow_unsupported=True")
    ops = f" of ops {','.join(knobs['ops'])}" if knobs.get("ops") else ""
    return (f"parity: no case was judged: each of the {n} {family} cases{ops} needs an op engine {engine.name!r} "
            f"lacks ({_missing(engine, unsupported, lacking)}), so the check tested nothing.\n"
            f"the engine's ops: {'; '.join(engine.probe_summary()) or 'every op probed is there'}\n"
            f"fix: {_remedy(family)}; or pass allow_unsupported=True where that is expected")


def failure_message(family, engine_name, n_cases, bad, diagnosis=None, n_unsupported=0, note=""):
    """The findings first (diagnosis.py), then the worst bad cases, each with
    its replay command and graph."""
    unsupported = f" ({n_unsupported} more not judged: ops the engine lacks)" if n_unsupported else ""
    lines = [f"parity: {len(bad)} of {n_cases} {family} cases fail or error on engine {engine_name!r}{unsupported}"]
    if diagnosis is not None:
        lines.append(diagnosis.text())
    if note:
        lines.append(note)
    worst = _worst(bad)
    lines += ["", f"the worst {len(worst)} of the {len(bad)} (errors, then the largest error; one a graph first); "
                  f"each replay command reproduces its case:" if len(bad) > 1 else "the case:"]
    shown = {}  # id(graph) -> the case id it was drawn for
    for case, row in worst:
        title = f"{case.case_id} ({case.name})" if case.name else case.case_id
        lines += ["", f"--- {title}: {row['verdict']}", row["detail"], f"replay: {row['replay']}"]
        if id(case.graph) in shown:
            leaves = ", ".join(f"v{i} = {x!r}" for i, x in enumerate(case.leaves))
            lines.append(f"the graph of {shown[id(case.graph)]}, at {_clip(leaves)}")
        else:
            shown[id(case.graph)] = case.case_id
            lines += [_clip(line) for line in case.graph.render(case.leaves, limit=GRAPH_LINES).splitlines()]
    if len(bad) > len(worst):
        lines += ["", f"... and {len(bad) - len(worst)} more (every case's row: the rows of ParityFailure, or "
                      f"the report of `parity run`)"]
    return "\n".join(lines)


def _worst(bad):
    """The SHOWN_CASES worst (case, row) pairs by _badness, the worst of
    each graph first: cases of one structure share it, and its worst shows
    its bug."""
    ranked = sorted(bad, key=_badness)
    first, seen = [], set()
    for pair in ranked:
        if id(pair[0].graph) not in seen:
            seen.add(id(pair[0].graph))
            first.append(pair)
    rest = [pair for pair in ranked if not any(pair is chosen for chosen in first)]
    return (first + rest)[:SHOWN_CASES]


def _clip(line, width=160):
    return line if len(line) <= width else line[:width - 5] + " ..."


def _badness(case_row):
    """Sort key: errors first, then the largest relative error, then the
    smaller graph."""
    case, row = case_row
    errors = [row.get(key) for key in ("max_rel_err_data", "max_rel_err_grad")]
    worst = max((math.inf if e is None or (isinstance(e, float) and math.isnan(e)) else float(e) for e in errors),
                default=math.inf)
    return (row["verdict"] != "error", -worst, case.graph.n_nodes, case.index)
