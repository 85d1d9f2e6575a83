"""The engine under test as a backend: ours, PyPI micrograd, or any
micrograd-style engine (see sandbox/engine_runner.py for what that means).

The engine runs in a sandboxed worker process (isolation.py) or, when it is
trusted, in this process (``isolation="none"``); either way it sees cases as
plain data and hands back numbers and error strings, which become Results
here.  Nothing the engine does becomes an exception of the harness.

Which ops an engine supports is found by trying each op of the op table once
on small in-domain values, backward included (engine_runner.probe): an op
is unsupported only where the engine has no way to express it (no such
method, an operator undefined for the operand types); one that is there
but raises, or returns what is not a number, is supported and broken: its
cases run and show it (``probe_findings`` says why).  A probe that kills
or hangs the worker, or runs out of memory, is broken too, and the cases
using that op are errors without running: each would cost a timeout or a
restart and show the same.  Ops registered after loading (the
function family's) are probed on first use.
"""
from ..case import Result
from ..higher_order import n_quantities
from ..isolation import Death, EngineBroken, Limits, Sandbox, is_no_answer
from ..ops import ANY, NONZERO, OPS, POSITIVE
from ..sandbox import engine_runner
from ..sandbox.engine_runner import ABSENT, BROKEN, PROBE_STATUSES, EngineSpecError, SPEC_FORMS  # noqa: F401
from ..sandbox.text import clean
from ..sandbox.unsupported import UNSUPPORTED
from ..sandbox.wire import encode_cases

ISOLATION_MODES = ("auto", "process", "none")
# Probe operands per domain, one per operand position: away from every kink
# and pole, distinct so that a swapped operand shows.
_PROBE_OPERANDS = {ANY: (0.75, -1.25), POSITIVE: (1.5, 2.5), NONZERO: (1.25, -0.5)}


def load_engine(spec="engine", data_attr=None, grad_attr=None, timeout=10.0, isolation="auto",
                limits=Limits(), backward=None, adapter=None):
    """An EngineBackend for ``spec``: "engine" (ours), "micrograd" (PyPI
    micrograd 0.1.0), "pkg.module[:Class]" or "path/to/file.py[:Class]"
    (the class found where the spec names none).  ``data_attr``,
    ``grad_attr``, ``backward`` (a method or module function name) and
    ``adapter`` (an adapter file) say what detection should not guess
    (sandbox/adapter.py); ``backend.adapter`` is what was decided.

    ``isolation``: "process" runs it in a sandboxed worker (isolation.py),
    "none" in this process; "auto", ours in this process (it ships with the
    harness) and any other in a worker."""
    if isolation not in ISOLATION_MODES:
        raise EngineSpecError(f"isolation {isolation!r}: expected one of {', '.join(ISOLATION_MODES)}")
    options = dict(data_attr=data_attr, grad_attr=grad_attr, backward=backward, adapter=adapter)
    if isolation == "none" or (isolation == "auto" and spec == "engine"):
        return InProcessEngine(spec, timeout=timeout, **options)
    return SandboxedEngine(spec, timeout=timeout, limits=limits, **options)


class EngineBackend:
    """What both kinds share: probing, unsupported cases, Results."""
    isolation = None  # "process" or "none"

    adapter = None  # what the adapter decided (JSON; sandbox/adapter.py), None for ours

    def __init__(self, name, version, is_ours):
        self.name = name
        self.version = version
        self.is_ours = is_ours
        self._probed = {}
        self.probe_findings = {}  # {op: (ABSENT or BROKEN, why)}: the ops not plainly there
        # {op: why}: the ops whose probe hung, killed the worker or ran out
        # of memory: their cases are errors without running (each would
        # cost a timeout or a restart, and say nothing new).
        self.no_answer = {}
        self._missing_for = (None, "", None)   # (graph, its missing ops, why it is not run): the last graph run
        self._probe([name for name in OPS])  # every op known now

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, version={self.version!r})"

    @property
    def supported_ops(self):
        return frozenset(name for name in OPS if self.supports(name))

    def supports(self, op_name):
        if op_name not in self._probed:
            self._probe([op_name])
        return self._probed[op_name]

    def missing_ops(self, graph):
        """The ops ``graph`` needs that this engine lacks, sorted."""
        missing = {name for name in graph.ops() if not self.supports(name)}
        if len(graph.outputs) > 1 and not self.supports("add"):
            missing.add("add")  # the loss is the sum of the outputs
        return sorted(missing)

    def run(self, case):
        return self.run_batch([case])[0]

    def run_batch(self, cases):
        """One Result per case, in order."""
        return self.submit(cases)()

    def submit(self, cases):
        """Start the engine on some cases; the returned function waits for
        their Results (run_batch's).  A sandboxed engine works meanwhile, so
        that the judge can run torch on the same cases at the same time."""
        results, runnable = [], []
        for case in cases:
            graph = case.graph
            if graph is not self._missing_for[0]:  # the cases of a structure share a graph
                self._missing_for = (graph, ",".join(self.missing_ops(graph)), self._not_run(graph))
            _, missing, not_run = self._missing_for
            results.append(Result(unsupported=missing) if missing else Result(error=not_run) if not_run else None)
            if results[-1] is None:
                runnable.append(case)
        pending = self._start(runnable) if runnable else (lambda: [])

        def wait():
            ran = iter(pending())
            return [result if result is not None else next(ran) for result in results]
        return wait

    def _not_run(self, graph):
        """Why the cases of ``graph`` are errors without running, or None."""
        op = next((name for name in graph.ops() if name in self.no_answer), None)
        return op and f"{self.no_answer[op]} (when {op} was probed alone; its cases are not run)"

    def _start(self, cases):
        """A function giving the Results of these (supported) cases."""
        return lambda: self._results(cases)

    def close(self):
        """Let go of the engine (its worker process, if any)."""

    # trace(case): [values, grads, error] of every value of the case's graph,
    # leaves then nodes, a gradient None where the engine keeps none
    # (`parity replay`'s node table), in each kind of backend.

    def _probe(self, names):
        probes = []
        for name in names:
            op = OPS[name]
            operands = [_PROBE_OPERANDS.get(d, _PROBE_OPERANDS[ANY])[i % 2] for i, d in enumerate(op.domains)]
            probes.append([name, operands, op.constants[0] if op.has_const else None])
        for name, (status, detail) in zip(names, self._probe_replies(probes)):
            self._probed[name] = status != ABSENT
            if status in (ABSENT, BROKEN):
                self.probe_findings[name] = (status, detail)
            if status == BROKEN and is_no_answer(detail):
                self.no_answer[name] = detail

    def probe_summary(self, names=None):
        """The probes' findings in a line or two: which ops are absent, which
        are there and broken (and why)."""
        names = [n for n in (names if names is not None else OPS) if n in self.probe_findings]
        absent = [n for n in names if self.probe_findings[n][0] == ABSENT]
        broken = [n for n in names if self.probe_findings[n][0] == BROKEN]
        lines = []
        if absent:
            lines.append(f"absent ({len(absent)}): {', '.join(absent[:16])}" + (", ..." if len(absent) > 16 else ""))
        if broken:
            lines.append(f"there but broken ({len(broken)}): " + "; ".join(
                f"{n}: {self.probe_findings[n][1]}" for n in broken[:6]) + ("; ..." if len(broken) > 6 else ""))
        return lines


class InProcessEngine(EngineBackend):
    """The engine in this process: for a trusted engine (ours), where a
    worker's round trips are not worth paying.  It can do anything to the
    judge; the judge's self-check (selfcheck.py) sees only what bends torch
    and the oracle's numbers."""
    isolation = "none"

    def __init__(self, spec, data_attr=None, grad_attr=None, timeout=10.0, backward=None, adapter=None):
        self.runner = engine_runner.load(spec, data_attr, grad_attr, timeout, _EngineCalls(), backward=backward,
                                         adapter=adapter)
        self.value_class = self.runner.value_class
        self.adapter = None if spec == "engine" and self.runner.is_ours else self.runner.report
        super().__init__(spec, self.runner.version, self.runner.is_ours)

    def _probe_replies(self, probes):
        return [tuple(self.runner.probe(*probe)) for probe in probes]

    def trace(self, case):
        return self.runner.trace(case)

    def _results(self, cases):
        return [_result(result) for result in self.runner.run_batch(cases)]


class SandboxedEngine(EngineBackend):
    """The engine in a sandboxed worker process (isolation.py).  Its replies
    are untrusted input: one of the wrong shape is an error of its case (and
    the end of that worker), its text is cleaned."""
    isolation = "process"

    def __init__(self, spec, data_attr=None, grad_attr=None, timeout=10.0, limits=Limits(), backward=None,
                 adapter=None):
        self.sandbox = Sandbox(spec, data_attr, grad_attr, timeout, limits, backward=backward, adapter=adapter)
        info = self.sandbox.info
        self.network = info.get("network")
        self.adapter = _clean_json(info.get("adapter")) if isinstance(info.get("adapter"), dict) else None
        super().__init__(spec, clean(info.get("version")), info.get("is_ours") is True)

    def _probe_replies(self, probes):
        # A probe that kills or hangs the worker: the op is there (broken),
        # and its cases show what it does.
        replies = self.sandbox.replies(probes, lambda part: {"probe": part}, _well_formed_probe)
        return [(BROKEN, reply.cause) if isinstance(reply, Death) else (reply[0], clean(reply[1]))
                for reply in replies]

    def trace(self, case):
        (reply,) = self.sandbox.replies([case], lambda part: {"trace": encode_cases(part)}, _well_formed_trace)
        return [None, None, reply.cause] if isinstance(reply, Death) else [*reply[:2], reply[2] and clean(reply[2])]

    def _start(self, cases):
        request = self.sandbox.send(cases, encode_cases)

        def results():
            replies = self.sandbox.finish(request, _well_formed)
            return [Result(error=reply.cause) if isinstance(reply, Death) else _result(reply) for reply in replies]
        return results

    def close(self):
        self.sandbox.close()


def _well_formed_probe(probe, reply):
    return type(reply) is list and len(reply) == 2 and reply[0] in PROBE_STATUSES and type(reply[1]) is str


def _clean_json(value, depth=0):
    """The worker's adapter report, its text cleaned and its shape bounded."""
    if depth > 4:
        return None
    if isinstance(value, dict):
        return {clean(str(k), 80): _clean_json(v, depth + 1) for k, v in list(value.items())[:200]}
    if isinstance(value, list):
        return [_clean_json(v, depth + 1) for v in value[:200]]
    if isinstance(value, str):
        return clean(value)
    return value if type(value) in (int, float, bool) or value is None else None


def _well_formed(case, reply):
    """Has a worker's reply the shape of this case's result?"""
    if not (type(reply) is list and len(reply) == 4):
        return False
    values, grads, error, seconds = reply
    if type(seconds) not in (float, int):
        return False
    if error is not None:
        return type(error) is str and values is None and grads is None
    return (type(values) is list and type(grads) is list and len(values) == len(case.graph.outputs) + 1
            and len(grads) == n_quantities(case) and all(type(x) is float for x in values)
            and all(type(g) is float for g in grads))


def _well_formed_trace(case, reply):
    if not (type(reply) is list and len(reply) == 3):
        return False
    values, grads, error = reply
    if error is not None:
        return type(error) is str and values is None and grads is None
    n = case.graph.n_values
    return (type(values) is list and type(grads) is list and len(values) == len(grads) == n
            and all(type(x) is float for x in values) and all(g is None or type(g) is float for g in grads))


def _result(reply):
    values, grads, error, seconds = reply
    if error is not None:
        if error.startswith(UNSUPPORTED):  # "...: the engine has no forward mode: ..." -> "forward mode"
            lacks = error[len(UNSUPPORTED):].split(":")[0].removeprefix("the engine has no ")
            return Result(unsupported=clean(lacks), seconds=float(seconds))
        return Result(error=clean(error), seconds=float(seconds))
    return Result(values=values, grads=grads, seconds=float(seconds))


class _EngineCalls:
    """{op name: engine call} over the live op table: ops registered after
    loading (a test's, a user's Function row) run in this process too."""

    def __getitem__(self, name):
        return OPS[name].engine

    def keys(self):
        return OPS.keys()


class BrokenEngine(EngineBackend):
    """An engine that kills, hangs or exits its worker before it can run a
    case: every case it would run is an error with that one cause."""
    isolation = "process"

    def __init__(self, spec, cause):
        self.cause = cause
        super().__init__(spec, "unknown", False)

    def _probe_replies(self, probes):
        return [("present", "")] * len(probes)  # no op is missing: every case is the error

    def _results(self, cases):
        return [Result(error=self.cause) for _ in cases]

    def trace(self, case):
        return [None, None, self.cause]
