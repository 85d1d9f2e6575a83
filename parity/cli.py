"""`parity`: run the harness, compare reports, merge shards, draw reports,
replay one case.  ``main`` is the console script."""
if __name__ == "__main__":
    # `python -m parity.cli` puts the working directory first on sys.path:
    # before anything else is imported, a learner's engine.py or
    # concurrent.py there must stop standing in for the harness's modules.
    from parity.import_path import harness_first
    harness_first()

import argparse
from contextlib import contextmanager
from dataclasses import replace
import os
from pathlib import Path
import shlex
import signal
import sys
import time

from . import __version__
from .campaign import run
from .ci_outputs import ResultFiles
from .case import DEFAULT_FAMILIES, DERIVATIVE_FAMILIES, FAMILIES
from .isolation import Limits
from .backends.reference import CHOICES as REFERENCE_CHOICES, describe as describe_reference
from .backends.reference import resolve as resolve_reference
from .judges import load_backends
from .plan import RunSpec, Shard, parse_cases
from .sandbox.forward_mode import NO_FORWARD_MODE
from .sandbox.higher_order import NO_HIGHER_ORDER
from .report_files import (CampaignError, check_output, copy_atomic, merge, partial_path, read_sidecar, shard_reports,
                           sidecar_path)
from .report import (BAD_VERDICTS, GROWTH_FACTOR, GROWTH_FLOOR, ReportError, Summary, compare_reports, iter_report,
                     read_report)
from .sidecar import rows_of

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
NOTHING_JUDGED = USAGE  # a run that judged no case: it checked nothing
REPORTS = Path("reports")

EXIT_STATUS = """\
exit status:
  0    no case failed (compare: no regression; grade: the gradebook is written, whatever the grades)
  1    a case's verdict is fail or error (compare: a regression; replay: the case fails);
       with --expect lecture, only a finding of kind wrong
  2    bad usage or unreadable input (missing file, wrong schema, bad engine spec, an
       engine that cannot be driven: no backward, no value class, two candidates),
       a run that judged no case (every case needs an op the engine lacks),
       or a judge that fails its own check
  130  interrupted (Ctrl-C or SIGTERM); the rows finished so far are kept"""


class UsageError(Exception):
    """Arguments that parse but make no sense together (exit status 2)."""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    args.results = ResultFiles.of(args)  # --json, --junit-xml: written whatever the exit status
    with args.results.text_aside():
        status, reason = _dispatch(args)
    try:
        args.results.write(status, reason)
    except CampaignError as exc:
        _error(exc)
        return status or USAGE
    return status


def _dispatch(args):
    """The command's exit status, and why in words where it did not finish."""
    try:
        args.results.check()
        status = args.command(args)
        return status, "interrupted" if status == INTERRUPTED else f"exit status {status}"
    except KeyboardInterrupt:
        print("parity: interrupted", file=sys.stderr)
        return INTERRUPTED, "interrupted"
    except (UsageError, ReportError, CampaignError) as exc:
        return _error(exc)
    except OSError as exc:  # a file the checks could not foresee: a full or read-only disk, a vanished directory
        return _error(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
    except RuntimeError as exc:
        from .selfcheck import JudgeCorrupted
        if not isinstance(exc, JudgeCorrupted):
            raise
        return _error(exc)
    except ValueError as exc:
        from .backends.engine import EngineSpecError
        if not isinstance(exc, EngineSpecError):
            raise
        return _error(exc)


def _error(message):
    """The one line of a bad usage or input on stderr (a message quoting a
    file's text is kept on one line); exit status 2, and that line."""
    line = " ".join(str(message).split())
    print("parity: error: " + line, file=sys.stderr)
    return USAGE, f"error: {line}"


# -- parity run ---------------------------------------------------------------------
def run_command(args):
    args.resume = args.resume or args.resume_anyway
    shard = _shard(args.shard)
    out = _out_path(args.out, shard) if args.out else _default_out(args.resume)
    check_output(out)  # before any work (loading the engine imports it)
    progress = None if args.quiet else "bar" if sys.stderr.isatty() else "lines"  # see progress.py
    spec = _spec_of_report(args) if args.same_as else _spec(args, ops=None if args.ops == "supported" else _ops(args))

    def prepare(holder):
        """Once the output is locked: the engine, imported once (probed here
        for --ops supported, then run and diagnosed), and the spec."""
        engine = holder[0] = _load_engine(spec, args)
        made = spec
        if args.ops == "supported" and not args.same_as:
            made = _usage(lambda: _spec(args, ops=_supported_ops(engine)))
        return made, engine

    def started(spec, engine):
        for line in engine_lines(spec.engine, engine):
            print(line, file=sys.stderr, flush=True)

    try:
        with _sigterm_interrupts():
            outcome = run(spec, out, shard, args.workers, args.resume, progress, args.isolation, _limits(args),
                          args.resume_anyway, prepare=prepare, started=started)
    except KeyboardInterrupt:
        if not partial_path(out).exists():
            raise  # before any row: nothing to resume
        print(f"parity: interrupted; the finished rows are in {partial_path(out)}; continue with:\n"
              f"  {shlex.join(['parity', *_resume_argv(args.argv, out)])}", file=sys.stderr)
        return INTERRUPTED
    if not args.out:
        for source in (out, sidecar_path(out)):
            copy_atomic(source, REPORTS / f"latest{source.suffix}")
    if outcome.engine_broken:
        print(f"parity: the engine ran no case: {outcome.engine_broken}", file=sys.stderr)
    if outcome.diagnosis:
        print(outcome.diagnosis.text())
        print()
    text = outcome.summary.text(outcome.seconds, outcome.ran)
    if not outcome.judged:
        text = text.removesuffix("no case failed").rstrip()  # nothing was checked: say so, not that
    print(f"reference: {describe_reference(outcome.reference)}")
    print(text)
    print(f"report: {out} (run metadata: {sidecar_path(out)})")
    if outcome.engine_log:
        print(f"the engine printed: {outcome.engine_log}")
    status = _status(outcome.summary.failed, outcome.diagnosis, args.expect)
    # A run of the derivative families alone that judged nothing: the engine lacks the feature, not ops.
    lacking = [{"higher_order": NO_HIGHER_ORDER, "forward": NO_FORWARD_MODE}[family] for family in spec.families
               if family in DERIVATIVE_FAMILIES]
    if not outcome.judged and lacking and len(lacking) == len(spec.families):
        print(f"parity: no case was judged: {'; '.join(lacking)} (README: Higher-order gradients and forward mode)",
              file=sys.stderr)
        status = NOTHING_JUDGED
    elif not outcome.judged:
        findings = "; ".join(outcome.probe_lines) or "no op of these cases was probed"
        print(f"parity: no case was judged: every case of the run needs an op the engine lacks (the probes: "
              f"{findings}); choose ops it has with --ops supported, or map our op names to the engine's calls "
              f"with --adapter FILE (README: Engines of other shapes)", file=sys.stderr)
        status = NOTHING_JUDGED
    args.results.run(outcome, out, status, args.expect)
    return status


def _shard(text):
    """--shard: K/N, auto (from a scheduler's environment: schedulers.py,
    and said on stderr, so that a job's log shows which it ran), or the
    whole run."""
    if text == "auto":
        from .schedulers import shard_from_environment
        shard, where = _usage(shard_from_environment, os.environ)
        print(f"parity: shard {shard} from {where}", file=sys.stderr, flush=True)
        return shard
    return _usage(Shard.parse, text) if text else Shard(1, 1)


def _out_path(text, shard):
    """--out with the shard in its name, so that the jobs of a matrix share
    one --out: DIR/ is DIR/shard-{shard}.csv, and {shard} is K-of-N, K
    padded to N's width (a directory lists its shards in order)."""
    if text.endswith(("/", os.sep)):
        text += "shard-{shard}.csv"
    return Path(text.replace("{shard}", f"{shard.k:0{len(str(shard.n))}d}-of-{shard.n}"))


def engine_lines(given, engine):
    """What was found of an engine not spelled as ours: its class,
    attributes, backward, leaves, the ops called otherwise, the probes'
    findings (README: Engines of other shapes)."""
    adapter = engine.adapter
    if not adapter:
        return []
    found = adapter.get("found") or {}
    where = f"class {adapter.get('class')}" + (" (detected: the only candidate)" if "detected" in
                                                  str(adapter.get("class_found")) else "")
    derivative = (f"tangent .{adapter['tangent']} (the adapter file's TANGENT: a dual number, forward mode only)"
                  if adapter.get("tangent") else
                  f"gradient .{adapter.get('grad')} ({found.get('grad', 'named')}); backward: {adapter.get('backward')}")
    lines = [f"engine: {given}: {where}; leaves {adapter.get('constructor')}; number .{adapter.get('data')} "
             f"({found.get('data', 'named')}), {derivative}"]
    if adapter.get("adapter_file"):
        lines[0] += f"; adapter file {adapter['adapter_file'].get('path')}"
    ops = adapter.get("ops") or {}
    if ops:
        by_how = {}
        for op, how in ops.items():
            by_how.setdefault(how, []).append(op)
        lines.append("engine: ops called otherwise: " + "; ".join(
            f"{', '.join(names)} by {how}" for how, names in by_how.items()))
    lines += [f"engine: ops {line}" for line in engine.probe_summary()]
    return lines


def _load_engine(spec, args):
    from .judges import load_engine
    return load_engine(spec, args.isolation, _limits(args))


def _supported_ops(engine):
    """--ops supported: the built-in ops the engine has (found by probing
    it), written out so the run can be repeated; a usage error (exit 2,
    the probes' findings) if it has none."""
    from .backends.engine import BrokenEngine
    from .ops import OP_NAMES

    if isinstance(engine, BrokenEngine):
        raise UsageError(f"--ops supported: cannot probe the engine: {engine.cause}")
    ops = tuple(name for name in OP_NAMES if engine.supports(name))
    if not ops:
        raise UsageError(f"--ops supported: the engine has no op of the op table ("
                         f"{'; '.join(engine.probe_summary(OP_NAMES))}); map our op names to its calls with "
                         f"--adapter FILE (README: Engines of other shapes)")
    return ops


def _status(failed, diagnosis, expect):
    """1 when a case failed, unless the diagnosis finds only what --expect
    allows."""
    if diagnosis is not None:
        return FAILED if diagnosis.fails_under(expect) else OK
    return FAILED if failed else OK


@contextmanager
def _sigterm_interrupts():
    """SIGTERM (kill, a batch scheduler's time limit) stops a run as Ctrl-C
    does: the rows written so far stay, and --resume continues."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _spec(args, ops=None):
    families = tuple(f.strip() for f in args.families.split(",") if f.strip()) if args.families else DEFAULT_FAMILIES

    def make():
        chosen, family_cases = families, None
        if args.cases is not None:
            named, family_cases = parse_cases(args.cases, families)
            chosen = families if args.families else named  # expr=5000,mlp=100 alone: those families
        spec = RunSpec(engine=args.engine, families=chosen, cases=args.cases_per_family,
                       family_cases=family_cases, seed=args.seed,
                       edge_rate=args.edge_rate, max_nodes=args.max_nodes, ops=ops,
                       draws_per_graph=args.draws_per_graph,
                       data_attr=args.data_attr, grad_attr=args.grad_attr, timeout=args.timeout,
                       backward=args.backward, adapter=args.adapter, pythonpath=_pythonpath(args.engine),
                       reference=resolve_reference(args.reference))
        spec.config()  # the generators' own checks of the knobs
        return spec
    return _usage(make)


def _pythonpath(engine):
    """PYTHONPATH, where a module engine may have been found on it (the
    replay commands then carry it)."""
    from .sandbox.engine_runner import is_file_spec
    where = engine.rpartition(":")[0] or engine
    if engine in ("engine", "micrograd") or is_file_spec(where):
        return None
    return os.environ.get("PYTHONPATH") or None


# The options that make up a RunSpec (the rest say where and how to run).
SPEC_OPTIONS = {"engine": "--engine", "data_attr": "--data-attr", "grad_attr": "--grad-attr",
                "backward": "--backward", "adapter": "--adapter",
                "timeout": "--timeout", "families": "--families", "cases": "--cases",
                "cases_per_family": "--cases-per-family", "seed": "--seed",
                "edge_rate": "--edge-rate", "max_nodes": "--max-nodes", "ops": "--ops",
                "draws_per_graph": "--draws-per-graph"}


def _ops(args):
    """--ops given as a list of op names (see _supported_ops for "supported")."""
    if args.ops is None:
        return None
    ops = tuple(name.strip() for name in args.ops.split(",") if name.strip())
    if not ops:
        raise UsageError(f"--ops {args.ops!r} names no op (a comma-separated list, or 'supported')")
    return ops


def _limits(args):
    return Limits(memory=args.memory_limit, cpu=args.cpu_limit, file_size=args.file_size_limit,
                  network=args.allow_network, user=args.sandbox_user)


def _spec_of_report(args):
    """The run arguments of an earlier report (its sidecar), for --same-as."""
    defaults = _parser().parse_args(["run"])
    given = [option for name, option in SPEC_OPTIONS.items() if getattr(args, name) != getattr(defaults, name)]
    if given:
        raise UsageError(f"--same-as takes the run arguments from {args.same_as}; drop {', '.join(given)}")
    # The reference is this machine's (--reference, auto by default), not the
    # earlier run's: the same cases, judged by what is here.
    return replace(_spec_of_sidecar(args.same_as), reference=_usage(resolve_reference, args.reference))


def _usage(function, *arguments):
    """function(*arguments), its ValueError a usage error."""
    try:
        return function(*arguments)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _default_out(resume):
    if not resume:
        return REPORTS / f"parity-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    unfinished = sorted(REPORTS.glob("parity-*.csv.partial"))
    if not unfinished:
        raise UsageError(f"--resume without --out: no unfinished run in {REPORTS}/")
    return Path(str(unfinished[-1])[:-len(".partial")])


def _resume_argv(argv, out):
    return argv + ([] if "--out" in argv else ["--out", str(out)]) + ([] if "--resume" in argv else ["--resume"])


# -- parity grade --------------------------------------------------------------------
def grade_command(args):
    from .grading import GradeOptions, grade_class
    from .rubric import RubricError, load_rubric
    from .submissions import SubmissionError, find_submissions

    try:
        rubric = load_rubric(args.rubric)
        submissions = find_submissions(args.submissions)
        reference = find_submissions([args.reference])[0] if args.reference else None
    except (RubricError, SubmissionError) as exc:
        raise UsageError(str(exc)) from None
    options = GradeOptions(
        rubric=rubric, out=Path(args.out), reference=reference, workers=args.workers, timeout=args.timeout,
        job_timeout=args.submission_timeout, limits=_limits(args), cases=args.cases_per_family, seed=args.seed,
        engine_options=tuple((name, getattr(args, name)) for name in ("data_attr", "grad_attr", "backward", "adapter")
                             if getattr(args, name)),
        resume=args.resume)
    start = time.perf_counter()
    try:
        with _sigterm_interrupts():
            grades = grade_class(submissions, options)
    except KeyboardInterrupt:
        print(f"parity: interrupted; {args.out} holds the submissions graded so far; continue with:\n"
              f"  {shlex.join(['parity', *args.argv] + ([] if args.resume else ['--resume']))}", file=sys.stderr)
        return INTERRUPTED
    scores = [g.score for g in grades]
    print(f"graded {len(grades)} submission(s) into {args.out}/: gradebook.csv, gradebook.html, feedback/, "
          f"results/; scores {min(scores):g} to {max(scores):g} of {rubric.max_score:g}, "
          f"{sum(1 for g in grades if g.error)} not graded in full")
    args.results.grade(OK, grades, rubric, args.out, time.perf_counter() - start)
    return OK


# -- parity diagnose -----------------------------------------------------------------
def diagnose_command(args):
    from .diagnosis import bad_rows, diagnose

    spec = _spec_of_sidecar(args.report)
    if args.reference is not None or spec.reference == "torch":  # the report's torch, if this Python has it
        spec = replace(spec, reference=_usage(resolve_reference, args.reference or "auto"))
    rows = bad_rows(args.report)
    if not rows:
        print(f"{args.report}: no case failed; nothing to diagnose")
        return OK
    backends = load_backends(spec, isolation=args.isolation, limits=_limits(args))
    try:
        diagnosis = diagnose(rows, backends, spec)
    finally:
        backends[0].close()
    print(diagnosis.text())
    return _status(True, diagnosis, args.expect)


def _spec_of_sidecar(report):
    return RunSpec.from_json(read_sidecar(report)["args"])  # read_sidecar checked them


# -- parity compare / merge / report ------------------------------------------------
def compare_command(args):
    baseline, current = read_report(args.baseline), read_report(args.current)
    if not args.allow_incomplete:
        for path, rows in ((args.baseline, baseline), (args.current, current)):
            _check_complete(path, rows)
    comparison = compare_reports(baseline, current, args.factor, args.floor)
    print(f"{args.baseline} ({len(baseline)} cases) -> {args.current} ({len(current)} cases)")
    sidecar = _sidecar_or_none(args.current) or {}
    groups = _regressions_by_finding(comparison, current, sidecar, args)
    if sidecar.get("diagnosis") and groups:
        from .diagnosis import explain_regressions
        for line in explain_regressions(groups):
            print(line)
    print(comparison.format())
    status = FAILED if comparison.regressed else OK
    args.results.compare(status, args.baseline, args.current, comparison, groups, current,
                         sidecar.get("diagnosis") or [])
    return status


def _check_complete(path, rows):
    """A report to compare holds every row of a finished run: not empty, not
    a partial file, its sidecar (if it has one) complete and counting these
    rows.  A regression check on half a run passes for the wrong reason."""
    problem = None
    if not len(rows):
        problem = "has no rows"
    elif str(path).endswith(".partial"):
        problem = "is the partial file of an unfinished run"
    else:
        sidecar = _sidecar_or_none(path)
        if sidecar is not None and not sidecar["complete"]:
            problem = f"is an unfinished run (its sidecar {sidecar_path(path)} says complete: false)"
        elif sidecar is not None and "rows" in sidecar and rows_of(rows["case_id"]) != sidecar["rows"]:
            problem = (f"has {len(rows)} rows, not the {sidecar['rows']['count']} its run wrote (by its sidecar "
                       f"{sidecar_path(path)}): it changed after its run")
    if problem:
        raise UsageError(f"{path} {problem}; --allow-incomplete compares it anyway")


def _regressions_by_finding(comparison, current, sidecar, args):
    """The regressed cases grouped by the current run's findings (its
    ``sidecar``'s diagnosis; without one, a group of their own): the
    diagnosis' RegressionGroups."""
    from .diagnosis import RegressionGroup, group_regressions

    regressed = list(dict.fromkeys(change.case_id for change in comparison.regressed))
    if not regressed or not sidecar.get("diagnosis"):
        return [RegressionGroup(None, False, regressed)] if regressed else []
    rows = current[current["case_id"].isin(regressed)].to_dict("records")
    baseline = (_sidecar_or_none(args.baseline) or {}).get("diagnosis")
    return group_regressions(rows, sidecar["diagnosis"], baseline, RunSpec.from_json(sidecar["args"]))


def merge_command(args):
    paths = shard_reports(args.reports, args.out)
    summary, _ = merge(paths, Path(args.out))
    print(f"merged {len(paths)} shards, {summary.cases} cases: {args.out}")
    return OK


def report_command(args):
    if args.html:
        check_output(args.html)
        from .plots import Digest, write_html

        digest = Digest()  # the page's figures, and the summary
        summary = digest.summary
    else:
        digest = summary = Summary()
    for chunk in iter_report(args.report):  # a report of any length, a chunk at a time
        digest.add(chunk)
    sidecar = _sidecar_or_none(args.report)
    if sidecar is not None:  # a sidecar without a reference is a run torch judged
        print(f"reference: {describe_reference((sidecar.get('reference') or {}).get('name', 'torch'))}")
    print(summary.text())
    if args.html:
        write_html(digest, args.html, title=str(args.report), sidecar=sidecar)
        print(f"html: {args.html}")
    return FAILED if summary.failed else OK


def _sidecar_or_none(report):
    """The report's checked sidecar; None if it has none (a report can be
    made by hand), ReportError if it has a bad one."""
    if not os.path.lexists(sidecar_path(report)):
        return None
    return read_sidecar(report)


# -- parity replay -----------------------------------------------------------------
def replay_command(args):
    from .compare import judge
    from .trajectory import TrajectoryOracle, is_trajectory, run_trajectory

    spec = _spec(args, _ops(args) if args.ops != "supported" else None)
    case = _usage(_case_from_json, args.json) if args.json else _usage(_case_from_id, args.case_id, spec)
    from .backends.engine import BrokenEngine
    from .judges import load_engine

    engine = load_engine(spec, args.isolation, _limits(args))
    if isinstance(engine, BrokenEngine):
        print(f"parity: the engine cannot run: {engine.cause}", file=sys.stderr)
    engine, torch, oracle, tolerances = load_backends(spec, engine)
    # As runner.run_cases does it: a training case runs (and is judged) as a
    # whole trajectory.
    trajectory = is_trajectory(case)
    run_one = (lambda backend: run_trajectory(backend, case)) if trajectory else (lambda backend: backend.run(case))
    referee = TrajectoryOracle(oracle) if trajectory else oracle
    engine_result, torch_result = run_one(engine), run_one(torch)
    verdict = judge(case, engine_result, torch_result, referee, tolerances, reference=torch.name)
    # The oracle's numbers are shown where they settle something (and are
    # the reference's own when it is the oracle).
    oracle_result = referee.run(case) if verdict.verdict != "pass" and torch.name != "oracle" else None
    print(f"case {case.case_id} ({case.family}{', ' + case.name if case.name else ''}); "
          f"engine {engine.name} {engine.version or ''}".rstrip())
    print(case.graph.render(case.leaves))
    if _backward_line(case):
        print(_backward_line(case))
    print()
    print(_replay_table(_replay_labels(case, trajectory), ("engine", torch.name, "oracle"),
                        engine_result, torch_result, oracle_result))
    print()
    if not trajectory and case.graph.nodes and verdict.verdict != "unsupported":
        print(_node_table(case, engine.trace(case), torch.trace(case), torch.name))
        print()
    print(f"verdict: {verdict.verdict}" + (f": {verdict.detail}" if verdict.detail else ""))
    return FAILED if verdict.verdict in BAD_VERDICTS else OK


def _backward_line(case):
    """How the case's backward runs, where it is not one plain backward()."""
    spec = case.spec or {}
    parts = [f"{case.passes} passes" + (", zero_grad between" if case.zero_grad_between else "")] \
        if case.passes > 1 else []
    if "gradient" in spec:
        parts.append(f"each backward(gradient={spec['gradient']!r})")
    if spec.get("rebuild", 1) > 1:
        parts.append(f"the graph built {spec['rebuild']} times on fresh leaves (the last run shown)")
    return "backward: " + "; ".join(parts) if parts else ""


NODE_ROWS = 80  # a larger graph's table shows the nodes that disagree and their consumers


def _node_table(case, engine_trace, torch_values_grads, reference="torch"):
    """Every node's value and gradient, engine and the reference (torch, or
    the oracle's exact values) side by side; the
    first wrong value (forward order) and the first wrong gradient
    (backward order: the backward of its consumers made it) marked."""
    from .compare import close

    engine_values, engine_grads, error = engine_trace
    if error:
        return f"every node: the engine did not run: {error}"
    torch_values, torch_grads = torch_values_grads
    graph = case.graph
    labels = graph.render(case.leaves, limit=graph.n_values + 1).splitlines()[:graph.n_values]

    def differ(e, t):
        return e is not None and t is not None and not close(e, t, 1e-300, 1e-9)

    wrong_value = next((i for i in range(graph.n_values) if differ(engine_values[i], torch_values[i])), None)
    wrong_grad = next((i for i in reversed(range(graph.n_values)) if differ(engine_grads[i], torch_grads[i])), None)
    consumers = [] if wrong_grad is None else [
        graph.n_leaves + k for k, node in enumerate(graph.nodes) if wrong_grad in node.args]
    marks = {wrong_value: "<- first wrong value"}
    if wrong_grad is not None:
        marks[wrong_grad] = (marks.get(wrong_grad, "") + " " if wrong_grad == wrong_value else "") + \
            "<- first wrong gradient"
    shown = range(graph.n_values) if graph.n_values <= NODE_ROWS else sorted(
        {i for i in (wrong_value, wrong_grad, *consumers) if i is not None})
    width = max(len(labels[i]) for i in shown) + 2 if shown else 10
    lines = [f"every node, engine and {reference}{'' if graph.n_values <= NODE_ROWS else ' (the marked ones)'}:",
             " " * width + "".join(f"{h:>24}" for h in ("engine value", f"{reference} value", "engine grad",
                                                         f"{reference} grad"))]
    for i in shown:
        cells = [engine_values[i], torch_values[i], engine_grads[i], torch_grads[i]]
        lines.append(f"{labels[i]:<{width}}" + "".join(f"{'-' if c is None else repr(c):>24}" for c in cells)
                     + (f"  {marks[i]}" if i in marks else ""))
    if wrong_value is not None:
        lines.append(f"first wrong value: {labels[wrong_value]}")
    if wrong_grad is not None:
        made_by = "; ".join(labels[c] for c in consumers) or "the loss (it is an output)"
        lines.append(f"first wrong gradient, in backward order: v{wrong_grad}; the backward of its consumer(s) "
                     f"made it: {made_by}")
    if wrong_value is None and wrong_grad is None:
        lines.append(f"every node agrees with {reference} to 1e-9 (what differs is below that, or in repeated passes)")
    return "\n".join(lines)


def _replay_labels(case, trajectory):
    """What each number of a Result is (see case.Result and trajectory.py)."""
    leaves = range(case.graph.n_leaves)
    if trajectory:
        values = [f"loss step {k}" for k in range(case.spec["steps"])] + [f"v{i} trained" for i in leaves]
    else:
        values = [f"value v{o}" for o in case.graph.outputs] + ["value loss"]
    return values + [f"grad v{i}" for i in leaves]


def _replay_table(labels, names, *results):
    """One line per number, one column per backend (engine, torch, oracle)."""
    columns = [(name, result) for name, result in zip(names, results) if result is not None]
    width = max(map(len, labels)) + 2
    lines = [" " * width + "".join(f"{name:>26}" for name, _ in columns)]
    for row, label in enumerate(labels):
        cells = []
        for _, result in columns:
            numbers = list(result.values) + list(result.grads)
            cells.append(repr(numbers[row]) if result.ok and row < len(numbers) else "-")
        lines.append(f"{label:<{width}}" + "".join(f"{cell:>26}" for cell in cells))
    for name, result in columns:
        if not result.ok:
            lines.append(f"{name} did not run: {result.error or 'unsupported ops: ' + str(result.unsupported)}")
    return "\n".join(lines)


def _case_from_id(case_id, spec):
    from .cases import case_from_id
    try:
        return case_from_id(case_id, spec.config())
    except (KeyError, IndexError) as exc:
        raise ValueError(f"no case {case_id!r}: {exc}") from None


def _case_from_json(text):
    from .case_input import case_from_json
    if text.lstrip().startswith("{"):
        return case_from_json(text)
    try:
        with open(text, "rb") as file:
            source = file.read(MAX_CASE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {text}: {exc.strerror}") from None
    if len(source) > MAX_CASE_BYTES:
        raise ValueError(f"{text}: larger than {MAX_CASE_BYTES >> 20} MiB: not a case")
    try:
        return case_from_json(source)
    except ValueError as exc:  # UnicodeDecodeError included
        raise ValueError(f"{text}: {exc}") from None


MAX_CASE_BYTES = 64 << 20


# -- the parser --------------------------------------------------------------------
def _parser():
    parser = argparse.ArgumentParser(
        prog="parity", description="Check a micrograd-style autograd engine against PyTorch (float64).",
        epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"parity (gradparity) {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name, function, help):
        sub = commands.add_parser(name, help=help, description=help, epilog=EXIT_STATUS,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(command=function)
        return sub

    run_ = command("run", run_command, "run the harness: one CSV row per case, a summary at the end")
    _engine_options(run_)
    _case_options(run_)
    run_.add_argument("--families", metavar="LIST", help=f"comma-separated, of {','.join(FAMILIES)} (default: all but higher_order)")
    counts = run_.add_mutually_exclusive_group()
    counts.add_argument("--cases", metavar="N|FAMILY=N,...", help="cases in all, shared among the families in "
                        "proportion to the default mix (8,519 cases, well under a minute), or each family's own "
                        "count: expr=5000,mlp=100")
    counts.add_argument("--cases-per-family", type=int, metavar="N", help="N cases in each family")
    run_.add_argument("--seed", type=int, default=0, help="the run's seed (default: 0)")
    run_.add_argument("--out", metavar="PATH", help="the CSV to write (default: reports/parity-<timestamp>.csv "
                      "and a copy in reports/latest.csv); the run's metadata goes beside it, .csv -> .json. "
                      "{shard} in PATH becomes the shard, K-of-N (shards/parity-{shard}.csv); a PATH ending in / "
                      "is a directory: DIR/shard-K-of-N.csv")
    run_.add_argument("--workers", type=_positive_int, default=1, metavar="N", help="worker processes")
    run_.add_argument("--shard", metavar="K/N|auto", help="run the K-th of N deterministic slices of the cases; "
                      "auto: K and N from the environment of a Slurm job array (SLURM_ARRAY_TASK_ID, _MIN, "
                      "_COUNT), GitLab's parallel: (CI_NODE_INDEX, CI_NODE_TOTAL) or PARITY_SHARD=K/N (first)")
    run_.add_argument("--same-as", metavar="REPORT.csv", help="the run arguments of an earlier report (from its "
                      "sidecar): the same cases, e.g. `--same-as reports/baseline.csv` for the regression check")
    run_.add_argument("--resume", action="store_true", help="continue an interrupted run into --out "
                      "(default: the latest unfinished one in reports/)")
    run_.add_argument("--resume-anyway", action="store_true", help="--resume, even though the engine's source, "
                      "the harness version or the case generators changed since the partial was written (its rows "
                      "are then credited to the engine as it is now)")
    _reference_option(run_)
    run_.add_argument("--quiet", action="store_true",
                      help="no progress: no plan line, no bar (on a terminal), no line every 10 s (off one)")
    _expect_option(run_)
    _result_options(run_)

    grade = command("grade", grade_command, "grade a class of engines with a rubric: a gradebook (CSV, HTML), "
                    "feedback per student, Gradescope results.json")
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                       help="file.py, file.py:Class, a folder holding one engine file, or a glob of them "
                            "(class/*/micrograd.py)")
    grade.add_argument("--rubric", default="lecture", metavar="RUBRIC.toml",
                       help="a rubric file, or a shipped one: lecture (default), torch_parity")
    grade.add_argument("--reference", metavar="FILE.py[:Class]", help="a reference solution: what it gets wrong "
                       "against torch is excused for every student")
    grade.add_argument("--out", default="grades", metavar="DIR", help="the gradebook's folder (default: grades)")
    grade.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                       help="submissions graded at a time (each in a process of its own)")
    grade.add_argument("--cases-per-family", type=_positive_int, metavar="N",
                       help="cases per family (default: the rubric's [run] cases)")
    grade.add_argument("--seed", type=int, metavar="N", help="the cases' seed (default: the rubric's)")
    grade.add_argument("--submission-timeout", type=float, default=600.0, metavar="SECONDS",
                       help="a submission's grading is stopped after this; the items it finished count "
                            "(default: 600)")
    grade.add_argument("--resume", action="store_true", help="grade only the submissions not graded yet in --out")
    grade.add_argument("--data-attr", metavar="NAME", help="as parity run's, for every submission")
    grade.add_argument("--grad-attr", metavar="NAME", help="as parity run's, for every submission")
    grade.add_argument("--backward", metavar="NAME", help="as parity run's, for every submission")
    grade.add_argument("--adapter", metavar="FILE.py", help="as parity run's, for every submission")
    grade.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                       help="a case's wall-clock limit (default: 5)")
    _isolation_options(grade, choose=False)
    _result_options(grade)

    diagnose = command("diagnose", diagnose_command, "the findings of a report's fail/error cases: "
                       "which op or part of backward is wrong, and its smallest case")
    diagnose.add_argument("report", metavar="REPORT.csv")
    _reference_option(diagnose, default=None)
    _isolation_options(diagnose)
    _expect_option(diagnose)

    compare = command("compare", compare_command, "compare a report with a baseline, case by case")
    compare.add_argument("baseline", metavar="BASELINE.csv")
    compare.add_argument("current", metavar="CURRENT.csv")
    compare.add_argument("--factor", type=float, default=GROWTH_FACTOR,
                         help=f"an error grown more than this factor is a regression (default: {GROWTH_FACTOR:g})")
    compare.add_argument("--floor", type=float, default=GROWTH_FLOOR,
                         help=f"baseline errors below this count as this (default: {GROWTH_FLOOR:g})")
    compare.add_argument("--allow-incomplete", action="store_true",
                         help="compare reports with missing rows too: empty ones, an unfinished run's, one that "
                              "changed after its run (refused by default, exit status 2)")
    _result_options(compare)

    merge_ = command("merge", merge_command, "join the reports of a run's shards (refused unless they are "
                     "every shard of one run, each once)")
    merge_.add_argument("reports", nargs="+", metavar="SHARD.csv|DIR|GLOB",
                        help="shard reports; a directory (its *.csv, and its unfinished runs' reports), or a "
                             "quoted glob ('shards/*.csv', 'artifacts/**/*.csv')")
    merge_.add_argument("--out", required=True, metavar="PATH")

    report = command("report", report_command, "summarise a report; --html draws it")
    report.add_argument("report", metavar="CSV")
    report.add_argument("--html", metavar="OUT", help="write a self-contained HTML page")

    replay = command("replay", replay_command, "re-run one case and show every backend's numbers")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("case_id", nargs="?", metavar="CASE_ID", help="e.g. expr-0-17")
    which.add_argument("--json", metavar="FILE_OR_STRING", help="a case as JSON (Case.to_json)")
    _engine_options(replay)
    _case_options(replay)
    _reference_option(replay)
    replay.set_defaults(families=None, cases=None, cases_per_family=None, seed=0)
    return parser


def _engine_options(parser):
    parser.add_argument("--engine", default="engine", metavar="SPEC",
                        help="engine, micrograd, pkg.module[:Class] or path/to/file.py[:Class]: without :Class, the one "
                             "class that looks like an engine's values (default: engine)")
    parser.add_argument("--data-attr", metavar="NAME", help="the values' number attribute (default: detected: "
                        "data, value, val, v, item, ...)")
    parser.add_argument("--grad-attr", metavar="NAME", help="the values' gradient attribute (default: detected: "
                        "grad, gradient, derivative, g, ...)")
    parser.add_argument("--backward", metavar="NAME", help="the backward entry point: a method of the class, or a "
                        "function of the engine's module taking the root (default: detected: backward, backprop, "
                        "backwards, backpropagate, ...)")
    parser.add_argument("--adapter", metavar="FILE.py", help="an adapter file mapping our op names to the "
                        "engine's calls (and its class, attributes, leaves, backward): README, Engines of "
                        "other shapes")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per case, for the engine: wall clock, enforced from outside its worker (default: 10)")
    _isolation_options(parser)


def _reference_option(parser, default="auto"):
    parser.add_argument("--reference", choices=REFERENCE_CHOICES, default=default,
                        help="what the engine is compared with: torch (float64, the oracle refereeing where they "
                             "disagree), oracle (the exact answer rounded to float64: no torch needed; torch_off "
                             "cannot occur), auto: torch where it is installed, else the oracle (default: "
                             + ("auto" if default else "the report's, auto where that is torch") + ")")


def _expect_option(parser):
    parser.add_argument("--expect", choices=("all", "lecture"), default="all",
                        help="all (default): exit 1 on any fail or error; lecture: exit 1 only for findings of "
                             "kind wrong (edge, multi_pass and limit findings of a lecture-style engine are "
                             "reported, not failed)")


def _result_options(parser):
    results = parser.add_argument_group("results for CI", "written whatever the exit status (README: Results "
                                        "for CI); - for the standard output (the text then goes to stderr)")
    results.add_argument("--json", dest="json_out", metavar="FILE", help="the result as JSON (schema "
                         "gradparity-result/1): summary, findings, exit status and reason")
    results.add_argument("--junit-xml", metavar="FILE", help="the result as JUnit XML, for a CI system's test "
                         "report")


def _isolation_options(parser, choose=True):
    """The sandbox's options; ``choose``: whether the engine may run
    without one (parity grade's students' engines may not)."""
    sandbox = parser.add_argument_group("isolation", "the engine runs in a sandboxed worker process "
                                        "(README: Isolation)")
    if choose:
        sandbox.add_argument("--isolation", choices=("auto", "process", "none"), default="auto",
                             help="process: a sandboxed worker; none: in the harness's process (trusted engines "
                                  "only); auto (default): none for our engine, process for any other")
    sandbox.add_argument("--memory-limit", type=_size, default=Limits.memory, metavar="SIZE",
                         help="address space of a worker, e.g. 4G, 512M, or 0 for none (default: 4G)")
    sandbox.add_argument("--cpu-limit", type=float, metavar="SECONDS",
                         help="CPU time one worker may use in all (default: no limit; per case: --timeout)")
    sandbox.add_argument("--file-size-limit", type=_size, default=Limits.file_size, metavar="SIZE",
                         help="the largest file a worker may write, its output log included (default: 64M)")
    sandbox.add_argument("--allow-network", action="store_true",
                         help="leave the worker on the network (default: a network namespace of its own, "
                              "where the system allows)")
    sandbox.add_argument("--sandbox-user", metavar="USER",
                         help="run the worker as this user (the harness must run as root), e.g. nobody")


def _case_options(parser):
    parser.add_argument("--edge-rate", type=float, metavar="P", help="share of edge points among leaves")
    parser.add_argument("--max-nodes", type=int, metavar="N", help="largest random graph")
    parser.add_argument("--draws-per-graph", type=_positive_int, metavar="N",
                        help="leaf draws per random expr graph (default 16): torch checks a graph's draws as one "
                             "batch, so more draws cost less a case (bench/README.md: overhead.py); other draws "
                             "are other cases")
    parser.add_argument("--ops", metavar="LIST",
                        help="the expr family's ops, comma-separated, or 'supported': those the engine has "
                             "(default: every built-in op; cases needing an op the engine lacks are unsupported)")


def _size(text):
    """4G, 512M, 64k or a number of bytes; 0 for no limit (None)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = text.strip().lower().removesuffix("b")
    try:
        value = int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 512M, 65536)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text!r}")
    return value or None


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
