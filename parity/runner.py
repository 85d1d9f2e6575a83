"""Run cases through engine and torch, judge them, and yield report rows.

"torch" here is the reference backend (backends/reference.py): torch, or
the oracle's exact answer where the run's reference is the oracle.

Consecutive cases with the same ``structure`` go to torch as one batch;
training cases (spec steps > 0) go through the trajectory driver on every
backend, the oracle included.  One row per case, in order (the schema is
report.COLUMNS).

A sandboxed engine works in a process of its own: it starts on a request's
cases (consecutive groups, up to REQUEST_COST) before torch runs them, and
on the next request's as soon as it has given this one's results, while
this one's groups are judged.  So the judge's own work - the screen's
estimates and the oracle's consultations, a buggy engine's many failing
cases - costs no engine time on a machine with a core for each.  The
engine takes one request at a time: at most one request is ahead.
"""
from collections import Counter
from contextlib import contextmanager
import functools
import gc
import shlex

from .compare import VERDICTS, Tolerances, TorchExtras, judge
from .plan import batches
from .trajectory import TrajectoryOracle, is_trajectory, run_trajectory
from .trajectory import rounding_spread as trajectory_spread

# The engine gets whole groups in requests of up to this much work (in
# plan.cost's node evaluations; a costlier group is a request of its own):
# a request costs a sandboxed worker about 2 ms of CPU beyond its cases
# (waking up, the socket, JSON; a 2-core VM, bench/overhead.py), and its
# replies wake the judge - more than the engine's work on a group of small
# graphs, a third of it on a group of 16 200-op DAGs.  At 20,000, 16-draw
# groups of 200-op DAGs go six at a time, about 40 ms of the engine's work.
REQUEST_COST = 20_000


def run_cases(cases, engine, torch_backend, oracle=None, tolerances=None):
    """Yield one row dict per case, in order."""
    return run_tasks([cases], engine, torch_backend, oracle, tolerances)


def run_tasks(tasks, engine, torch_backend, oracle=None, tolerances=None):
    """run_cases over lists of cases (a run's tasks) one after the other:
    one row dict per case, in order.  A group never spans two tasks (their
    rows are the same however the tasks are shared out); a request may:
    the engine starts on the next request, of this task or the next, while
    a request's groups are judged (the module doc)."""
    tolerances = tolerances or Tolerances()
    rows = _RowMaker(engine)
    requests = _requests(group for cases in tasks for group in _groups(cases))
    request = next(requests, None)
    pending = _start(engine, request)
    try:
        while request is not None:
            started, pending = pending, None
            results = _results(request, engine, torch_backend, started)
            request, judged = next(requests, None), request
            pending = _start(engine, request)
            for group, group_results in zip(judged, results):
                for case, (engine_result, torch_result, verdict) in zip(
                        group, _verdicts(group, group_results, torch_backend, oracle, tolerances)):
                    yield rows.make(case, engine_result, torch_result, verdict)
    except KeyboardInterrupt:
        pending = None  # the run stops now, and its engine is closed: no waiting for its answer
        raise
    finally:
        if pending is not None:
            # Left early (a reader that stopped, an error): the engine's
            # answer is collected, so that its next request finds it idle.
            pending()


def run_case(case, engine, torch_backend, oracle=None, tolerances=None):
    """(engine Result, torch Result, Verdict) for one case, as run_cases
    judges it (the replay path)."""
    request = [[case]]
    (results,) = _results(request, engine, torch_backend, _start(engine, request))
    return _verdicts(request[0], results, torch_backend, oracle, tolerances or Tolerances())[0]


def _requests(groups):
    """Lists of consecutive groups of _groups that go to the engine as one
    request: whole groups up to REQUEST_COST (at least one); a training
    case alone."""
    return batches(groups, REQUEST_COST, alone=lambda group: is_trajectory(group[0]))


def _start(engine, request):
    """The engine started on a request of _requests (submit's function
    that waits for its Results), or None: no request, or a training case,
    whose steps the engine runs one by one."""
    if request is None or is_trajectory(request[0][0]):
        return None
    return submit(engine, [case for group in request for case in group])


def _results(request, engine, torch_backend, started):
    """Per group of a request of _requests: ([(engine Result, torch
    Result)], torch's steps) (the steps of a training case's run, for its
    estimate; None for others); ``started``: _start's for the request."""
    if is_trajectory(request[0][0]):
        case = request[0][0]
        steps = []  # torch's, for the estimate: its per-step spreads need not run them again
        return [([(run_trajectory(engine, case), run_trajectory(torch_backend, case, steps))], steps)]
    torch_results = [run_all(torch_backend, group) for group in request]  # the engine works meanwhile
    engine_results, start = started(), 0
    per_group = []
    for group_results in torch_results:
        per_group.append((list(zip(engine_results[start:start + len(group_results)], group_results)), None))
        start += len(group_results)
    return per_group


def _verdicts(group, results, torch_backend, oracle, tolerances):
    """[(engine Result, torch Result, Verdict)] for a group of _groups and
    its entry of _results."""
    results, steps = results
    if is_trajectory(group[0]):
        referee = TrajectoryOracle(oracle) if oracle else None
        estimate, in_float32 = (lambda: [trajectory_spread(torch_backend, group[0], steps)]), None
    else:
        referee = oracle
        estimate = lambda: torch_backend.rounding_spread(group)  # noqa: E731
        in_float32 = lambda: torch_backend.run_batch(group, dtype="float32")  # noqa: E731
    # What judge may ask torch beyond the float64 results (a stand-in
    # backend offers none), for the whole group, computed the first time a
    # case asks: most groups never do.
    extras = hasattr(torch_backend, "rounding_spread")
    spreads = functools.cache(estimate) if extras else None
    float32 = functools.cache(in_float32) if extras and in_float32 else None
    reference = getattr(torch_backend, "name", "torch")
    with _collector_paused():
        return [(e, t, judge(case, e, t, referee, tolerances, TorchExtras(
                    spreads and (lambda i=i: spreads()[i]), float32 and (lambda i=i: float32()[i])), reference))
                for i, (case, (e, t)) in enumerate(zip(group, results))]


@contextmanager
def _collector_paused():
    """Python's cycle collector off meanwhile.  The oracle allocates an
    object for every number of every perturbed run (the estimate, for every
    tensor of its graph) and frees it at once, in no cycle; the collections
    those allocations set off scan the judge's long-lived objects (torch's,
    some 200,000) now and then: a tenth of the oracle's time."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _groups(cases):
    """Runs of consecutive cases that torch evaluates as one batch: sharing
    a non-empty structure key, or, without one, an equal graph (the
    diagnosis's probes of an op at its edge points); a trajectory case is a
    group of its own."""
    group = []
    for case in cases:
        if group and not _batchable(group[0], case):
            yield group
            group = []
        group.append(case)
    if group:
        yield group


def _batchable(first, case):
    if is_trajectory(first) or is_trajectory(case):
        return False
    if first.structure or case.structure:
        return case.structure == first.structure
    return case.graph == first.graph


def submit(backend, cases):
    """backend.submit(cases) where the backend can start on cases and be
    waited for later; else a function that runs them when called."""
    start = getattr(backend, "submit", None)
    return start(cases) if start else lambda: run_all(backend, cases)


def run_all(backend, cases):
    """backend.run_batch(cases) where the backend batches, else one run a case."""
    run_batch = getattr(backend, "run_batch", None)
    return run_batch(cases) if run_batch else [backend.run(case) for case in cases]


class _RowMaker:
    """Report rows for a stream of cases.  What a row says about the graph
    (depth, ops) is computed once per graph object, not once per case: the
    cases of a structure share one Graph, and a 200-op graph's depth costs
    more than the rest of its row."""

    def __init__(self, engine):
        self.engine_name = engine.name
        self.replay_suffix = f" --engine {shlex.quote(engine.name)}"
        self.graph = None
        self.graph_columns = None

    def make(self, case, engine_result, torch_result, verdict):
        graph = case.graph
        if graph is not self.graph:
            self.graph = graph
            self.graph_columns = (graph.n_nodes, graph.n_leaves, graph.depth(), ";".join(graph.ops()))
        n_nodes, n_leaves, depth, ops = self.graph_columns
        return {
            "case_id": case.case_id, "family": case.family, "seed": case.seed, "index": case.index,
            "name": case.name, "engine": self.engine_name, "n_nodes": n_nodes, "n_leaves": n_leaves,
            "depth": depth, "ops": ops, "verdict": verdict.verdict,
            "max_abs_err_data": verdict.max_abs_err_data, "max_rel_err_data": verdict.max_rel_err_data,
            "max_ulp_data": verdict.max_ulp_data, "max_abs_err_grad": verdict.max_abs_err_grad,
            "max_rel_err_grad": verdict.max_rel_err_grad, "max_ulp_grad": verdict.max_ulp_grad,
            "engine_seconds": engine_result.seconds, "torch_seconds": torch_result.seconds,
            "oracle_consulted": verdict.oracle_consulted, "detail": verdict.detail,
            "replay": f"parity replay {case.case_id}{self.replay_suffix}",
        }


def summarize(rows):
    """{family: {verdict: count}} over rows, every verdict listed (0 if none)."""
    counts = Counter((row["family"], row["verdict"]) for row in rows)
    families = dict.fromkeys(family for family, _ in counts)
    return {family: {verdict: counts[family, verdict] for verdict in VERDICTS} for family in families}
