"""A pytest plugin: parity checks of an engine against PyTorch, from any project.

Enable it with ``pytest -p parity.plugin`` or ``pytest_plugins = ["parity.plugin"]``
in a conftest.py.  Options:

    --parity-engine SPEC   the engine under test (default "engine"; see
                           backends/engine.py for the spec forms)
    --parity-cases N       cases per parity_check call that gives no n (default 100)

Fixtures: ``parity_engine`` (the loaded engine backend), ``parity_torch``,
``parity_oracle`` (session-wide), and ``parity_check``::

    def test_accumulation(parity_check):
        parity_check("accumulation", n=50, seed=1)

which runs the cases and fails the test listing each failing case: its
detail, the command that replays it, and its graph with leaf values.  Outside
pytest fixtures, ``parity.assert_parity(family, ...)`` does the same and
raises AssertionError.  At the end of the session the terminal summary counts
the verdicts of every case checked, per family.
"""
import pytest

from .compare import ERROR, FAIL, Tolerances

DEFAULT_CASES = 100
BAD_VERDICTS = (FAIL, ERROR)
SHOWN_FAILURES = 10
_ROWS = pytest.StashKey[list]()


def pytest_addoption(parser):
    group = parser.getgroup("parity", "gradparity: engine against PyTorch")
    group.addoption("--parity-engine", default="engine", metavar="SPEC",
                    help="engine under test: 'engine', 'micrograd', 'pkg.module:Class' or 'file.py:Class'")
    group.addoption("--parity-cases", type=int, default=DEFAULT_CASES, metavar="N",
                    help=f"cases per parity_check call that gives no n (default {DEFAULT_CASES})")


def pytest_configure(config):
    config.stash[_ROWS] = []


@pytest.fixture(scope="session")
def parity_engine(pytestconfig):
    from .backends.engine import load_engine

    return load_engine(pytestconfig.getoption("parity_engine"))


@pytest.fixture(scope="session")
def parity_torch():
    pytest.importorskip("torch")
    from .backends.torch import TorchBackend

    return TorchBackend()


@pytest.fixture(scope="session")
def parity_oracle():
    from .backends.oracle import OracleBackend

    return OracleBackend()


@pytest.fixture
def parity_check(pytestconfig, parity_engine, parity_torch, parity_oracle):
    """parity_check(family, n=None, seed=0, config=None) -> rows; fails the
    test if any case's verdict is fail or error."""
    def check(family, n=None, seed=0, config=None, tolerances=None):
        n = pytestconfig.getoption("parity_cases") if n is None else n
        try:
            rows = assert_parity(family, n, seed, parity_engine, config, torch_backend=parity_torch,
                                 oracle=parity_oracle, tolerances=tolerances)
        except ParityFailure as failure:
            pytestconfig.stash[_ROWS].extend(failure.rows)
            pytest.fail(str(failure), pytrace=False)
        pytestconfig.stash[_ROWS].extend(rows)
        return rows
    return check


class ParityFailure(AssertionError):
    """Some cases fail or error; ``rows`` has every case's row."""

    def __init__(self, message, rows):
        super().__init__(message)
        self.rows = rows


def assert_parity(family, n=DEFAULT_CASES, seed=0, engine="engine", config=None, *, torch_backend=None,
                  oracle=None, tolerances=None):
    """Run the first n cases of ``family`` for ``seed`` on ``engine`` (a spec
    or a loaded backend) against torch, judged with the oracle; return the
    rows, or raise ParityFailure (an AssertionError) describing every fail
    and error."""
    from .backends.oracle import OracleBackend
    from .backends.torch import TorchBackend
    from .cases import build_cases
    from .runner import run_cases

    if isinstance(engine, str):
        from .backends.engine import load_engine
        engine = load_engine(engine)
    cases = build_cases(family, seed, n, config)
    backends = (engine, torch_backend or TorchBackend(), oracle or OracleBackend(), tolerances or Tolerances())
    rows = list(run_cases(cases, *backends))
    bad = [(case, row) for case, row in zip(cases, rows) if row["verdict"] in BAD_VERDICTS]
    if bad:
        from .diagnosis import diagnose
        from .plan import RunSpec

        diagnosis = diagnose([row for _, row in bad], backends, RunSpec(engine=engine.name))
        raise ParityFailure(failure_message(family, engine.name, len(cases), bad, diagnosis), rows)
    return rows


def failure_message(family, engine_name, n_cases, bad, diagnosis=None):
    """The findings first (diagnosis.py), then the first bad cases."""
    lines = [f"parity: {len(bad)} of {n_cases} {family} cases fail or error on engine {engine_name!r}"]
    if diagnosis is not None:
        lines += [diagnosis.text()]
    for case, row in bad[:SHOWN_FAILURES]:
        title = f"{case.case_id} ({case.name})" if case.name else case.case_id
        lines += ["", f"--- {title}: {row['verdict']}", row["detail"], f"replay: {row['replay']}",
                  case.graph.render(case.leaves)]
    if len(bad) > SHOWN_FAILURES:
        lines += ["", f"... and {len(bad) - SHOWN_FAILURES} more"]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter, config):
    rows = config.stash.get(_ROWS, [])
    if not rows:
        return
    from .runner import summarize

    terminalreporter.section("parity")
    for family, counts in summarize(rows).items():
        shown = ", ".join(f"{verdict} {count}" for verdict, count in counts.items() if count)
        terminalreporter.write_line(f"{family}: {sum(counts.values())} cases: {shown}")
