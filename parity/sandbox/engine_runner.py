"""Run cases on the engine under test: the only harness code that calls it.

A micrograd-style engine is a class whose instances wrap a number
(``Value(2.0)``), combine with Python operators and methods (``a * b``,
``a.tanh()``), and have a ``backward()`` that fills a gradient attribute.
That is all this runner assumes: attribute names are options, data may be
numpy scalars or ints, and whatever the engine raises or returns wrong
becomes an error string, never an exception out of here.

It runs in the sandboxed worker (worker.py) or, for a trusted engine, in the
harness's process.  A case comes as anything with a Case's attributes
(parity.case.Case, or the worker's decoding of one: graph, leaves, passes,
zero_grad_between, family, index, spec); a result goes back as plain data,
``(values, grads, error, seconds)``.
"""
from contextlib import contextmanager
import hashlib
import importlib
import importlib.metadata
import importlib.util
import numbers
from pathlib import Path
import signal
import sys
import threading
import time

import engine

from .engine_ops import ENGINE_OPS
from .text import describe

INSTALL_MICROGRAD = "pip install -e '.[bench]'"
SPEC_FORMS = "'engine', 'micrograd', 'pkg.module:Class' or 'path/to/file.py:Class'"
_MLP_SPEC_KEYS = {"nin", "nouts", "activation", "inputs", "targets"}
# run_batch compiles a graph shared by at least this many consecutive cases,
# unless it is bigger than this (compile time and memory grow with it).
COMPILE_AT = 32
COMPILE_MAX_NODES = 5000


class EngineSpecError(ValueError):
    """The engine spec names nothing loadable (the CLI exits with status 2)."""


class _Timeout(BaseException):
    # BaseException, so that an engine's own ``except Exception`` cannot swallow it.
    pass


class _ComplexResult(Exception):
    pass


def load(spec, data_attr="data", grad_attr="grad", timeout=10.0, engine_ops=ENGINE_OPS):
    """An EngineRunner for ``spec`` (see SPEC_FORMS); EngineSpecError if it
    names nothing loadable or its values lack the attributes."""
    value_class, version = resolve(spec)
    return EngineRunner(value_class, version, data_attr, grad_attr, timeout, engine_ops)


class EngineRunner:
    def __init__(self, value_class, version, data_attr="data", grad_attr="grad", timeout=10.0,
                 engine_ops=ENGINE_OPS):
        self.value_class = value_class
        self.version = version
        self.data_attr = data_attr
        self.grad_attr = grad_attr
        self.timeout = timeout
        self.engine_ops = engine_ops  # {op name: engine call}
        self.is_ours = issubclass(value_class, engine.Value)  # engine.nn and engine.Function work on ours only
        self._forward_for = (None, None)  # (graph, its compiled forward): the last one compiled
        self._check_attributes()

    # -- probing ---------------------------------------------------------------
    def probe(self, op_name, operands, const=None):
        """Does the engine have this op: one application on ``operands``,
        backward included, without an exception, giving one of its values
        with number data and gradients?"""
        try:
            with _time_limit(self.timeout):
                values = [self.value_class(x) for x in operands]
                apply = self.engine_ops[op_name]
                out = apply(*values, const) if const is not None else apply(*values)
                if not isinstance(out, self.value_class):
                    return False
                out.backward()
                for v in [out] + values:
                    _as_float(getattr(v, self.data_attr), "probe")
                    self._grad(v, "probe")
        except (Exception, _Timeout):
            return False
        return True

    # -- running ---------------------------------------------------------------
    def run_batch(self, cases):
        return list(self.iter_results(cases))

    def iter_results(self, cases, before_each=None):
        """One result per case, in order.  A run of at least COMPILE_AT
        consecutive cases on one graph object evaluates it through a
        compiled forward function (see _compile_graph): the same results,
        bit for bit.  ``before_each()`` is called before each case."""
        start = 0
        while start < len(cases):
            graph = cases[start].graph
            end = start + 1
            while end < len(cases) and cases[end].graph is graph:
                end += 1
            forward = None
            if end - start >= COMPILE_AT and graph.n_nodes <= COMPILE_MAX_NODES:
                forward = self._compiled_forward(graph)
            for case in cases[start:end]:
                if before_each is not None:
                    before_each()
                yield self.run(case, forward)
            start = end

    def run(self, case, forward=None):
        start = time.perf_counter()
        run = self._run_native_mlp if self._runs_native_mlp(case) else lambda case: self._run_graph(case, forward)
        result, error = self._guarded(run, case)
        values, grads = result or (None, None)
        return values, grads, error, time.perf_counter() - start

    def trace(self, case):
        """[values, grads, error]: every value of the graph (leaves, then
        nodes) after the case's backward passes, a node's gradient None
        where the engine keeps none (as torch does without retain_grad)."""
        result, error = self._guarded(self._trace, case)
        return [*(result or (None, None)), error]

    def _guarded(self, compute, case):
        """(compute(case), None), or (None, the error) whatever the engine
        does short of killing its process."""
        try:
            with _time_limit(self.timeout):
                return compute(case), None
        except _Timeout:
            return None, f"timeout after {self.timeout:g} s"
        except _ComplexResult as e:
            return None, str(e)
        except KeyboardInterrupt:  # Ctrl-C: the run stops (a worker ignores SIGINT; see worker.py)
            raise
        except BaseException as e:  # SystemExit and the like: the engine's exceptions like any other
            error = describe(e)
            if isinstance(e, MemoryError):
                error += " (out of memory: the worker's memory limit, --memory-limit)"
            return None, error

    def _trace(self, case):
        leaves = [self.value_class(x) for x in case.leaves]
        values, loss = self._evaluate(case.graph, leaves)
        self._backward_and_read(case, loss, leaves, [], [])
        data = [_as_float(getattr(v, self.data_attr), f"value of v{i}") for i, v in enumerate(values)]
        return data, [_as_float_or_none(getattr(v, self.grad_attr, None)) for v in values]

    def _run_graph(self, case, forward=None):
        graph = case.graph
        leaves = [self.value_class(x) for x in case.leaves]
        if forward is not None and len(leaves) == graph.n_leaves:
            outputs, loss = forward(*leaves)
        else:
            values, loss = self._evaluate(graph, leaves)
            outputs = [values[o] for o in graph.outputs]
        outputs.append(loss)
        labels = _OutputLabels(graph.outputs)
        return self._backward_and_read(case, loss, leaves, outputs, labels)

    def _evaluate(self, graph, leaves):
        """(values, loss): every value of the graph run node by node (leaves
        first), the loss the sum of the outputs left to right."""
        values = list(leaves)
        ops = self.engine_ops
        for node in graph.nodes:
            operands = [values[a] for a in node.args]
            apply = ops[node.op]
            values.append(apply(*operands) if node.const is None else apply(*operands, node.const))
        loss = values[graph.outputs[0]]
        for o in graph.outputs[1:]:
            loss = loss + values[o]
        return values, loss

    def _compiled_forward(self, graph):
        """The graph's compiled forward, or None (interpret it) if compiling failed."""
        if graph is not self._forward_for[0]:
            try:
                forward = _compile_graph(graph, self.engine_ops)
            except Exception:  # e.g. a compiler limit: the interpreter has none
                forward = None
            self._forward_for = (graph, forward)
        return self._forward_for[1]

    def _backward_and_read(self, case, loss, leaves, outputs, labels):
        """``labels[i]`` names ``outputs[i]`` in error messages (only read then)."""
        data_attr, grad_attr = self.data_attr, self.grad_attr
        values = []
        for i, v in enumerate(outputs):
            x = getattr(v, data_attr)
            # type() first: an exact float (our engine's) needs no conversion.
            values.append(x if type(x) is float else _as_float(x, f"value of {labels[i]}"))
        for p in range(case.passes):
            if p and case.zero_grad_between:
                for leaf in leaves:
                    setattr(leaf, grad_attr, 0.0)
            loss.backward()
        grads = []
        for i, leaf in enumerate(leaves):
            g = getattr(leaf, grad_attr)
            grads.append(g if type(g) is float else self._grad(leaf, f"grad of leaf v{i}"))
        return values, grads

    def _runs_native_mlp(self, case):
        return case.family == "mlp" and self.is_ours and _MLP_SPEC_KEYS <= case.spec.keys()

    def _run_native_mlp(self, case):
        """Our engine runs mlp cases through engine.nn, so that the fused
        ``linear`` op is what gets checked.  The case's graph spells out the
        same network in primitive ops, in the order engine.nn rounds (that is
        what torch and other engines run); its leaves are the parameters in
        MLP.parameters() order and its one output is the mean squared error."""
        from engine.nn import MLP, SGD, mse_loss

        spec = case.spec
        model = MLP(spec["nin"], spec["nouts"], spec["activation"], spec.get("output_activation"), seed=0)
        params = model.parameters()
        if len(params) != len(case.leaves) or len(case.graph.outputs) != 1:
            raise ValueError(f"mlp case {case.index}: {len(case.leaves)} leaves and "
                             f"{len(case.graph.outputs)} outputs for an MLP of {len(params)} parameters")
        for p, x in zip(params, case.leaves):
            p.data = x
        predictions = [model(x) for x in spec["inputs"]]
        loss = mse_loss(predictions, spec["targets"])
        # As a training loop does: gradients left by an earlier backward,
        # cleared by zero_grad before this one - the module's in even cases,
        # an optimizer's in odd ones - so that a zero_grad that leaves any
        # gradient behind shows in the gradients read.
        loss.backward()
        (model.zero_grad if case.index % 2 == 0 else SGD(params, lr=0.0).zero_grad)()
        return self._backward_and_read(case, loss, params, [loss, loss], [f"v{case.graph.outputs[0]}", "loss"])

    def _grad(self, value, what):
        grad = getattr(value, self.grad_attr)
        # torch-like engines leave an unreached leaf's grad None: zero.
        return 0.0 if grad is None else _as_float(grad, what)

    # -- loading checks ----------------------------------------------------------
    def _check_attributes(self):
        # On a fresh value: an engine that creates its grad attribute only in
        # backward() is not supported.
        cls = self.value_class.__name__
        try:
            value = self.value_class(1.0)
        except Exception as e:
            raise EngineSpecError(f"{cls}(1.0) raised {describe(e)}") from e
        for attr, option in ((self.data_attr, "--data-attr"), (self.grad_attr, "--grad-attr")):
            if not hasattr(value, attr):
                raise EngineSpecError(
                    f"{cls} values have no attribute {attr!r}; "
                    f"name the right one with {option} (attributes: {_public_attributes(value)})")


class _OutputLabels:
    """Names of a graph run's outputs, then "loss", made only when asked for
    (an error message): most cases never ask."""

    def __init__(self, outputs):
        self.outputs = outputs

    def __getitem__(self, i):
        return f"v{self.outputs[i]}" if i < len(self.outputs) else "loss"


def _compile_graph(graph, engine_ops):
    """The graph's evaluation as one generated function:
    ``forward(*leaves) -> (outputs list, loss)``.

    Interpreting a graph (an op look-up, an operand list and two calls per
    node) costs about as much as the engine's own forward pass on a 200-op
    graph; straight-line code calls each node's engine function directly,
    with the same operands in the same order, and sums the loss in the same
    order, so every result is the same, bit for bit.  Compiling costs about
    as much as 17 interpreted evaluations of the graph (hence COMPILE_AT);
    the numbers go in as names, never as source text."""
    namespace = {}
    lines = [f"def forward({', '.join(f'v{i}' for i in range(graph.n_leaves))}):"]
    for i, node in enumerate(graph.nodes):
        namespace[f"op{i}"] = engine_ops[node.op]
        operands = [f"v{a}" for a in node.args]
        if node.const is not None:
            namespace[f"c{i}"] = node.const
            operands.append(f"c{i}")
        lines.append(f"    v{graph.n_leaves + i} = op{i}({', '.join(operands)})")
    first, *rest = graph.outputs
    lines.append(f"    loss = v{first}")
    lines.extend(f"    loss = loss + v{o}" for o in rest)  # one statement each: no deep expression
    lines.append(f"    return [{', '.join(f'v{o}' for o in graph.outputs)}], loss")
    exec(compile("\n".join(lines), f"<parity: graph of {graph.n_nodes} ops>", "exec"), namespace)
    return namespace["forward"]


def _as_float(x, what):
    if isinstance(x, numbers.Complex) and not isinstance(x, numbers.Real):
        raise _ComplexResult(f"complex result: {what} is {x!r}")
    return float(x)


def _as_float_or_none(x):
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def _public_attributes(value):
    return ", ".join(a for a in dir(value) if not a.startswith("_")) or "none"


@contextmanager
def _time_limit(seconds):
    """Raise _Timeout after ``seconds`` of wall time (SIGALRM: main thread and
    POSIX only; elsewhere no limit).  An outer timer keeps its remaining time.
    The engine can block or swallow it: in a sandboxed worker the harness
    kills the worker from outside as well."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous_handler is None else previous_handler)
        if outer_delay:
            remaining = max(outer_delay - (time.monotonic() - start), 1e-6)
            signal.setitimer(signal.ITIMER_REAL, remaining, outer_interval)


# -- resolving a spec to a class ---------------------------------------------------
def resolve(spec):
    """(value class, version) for an engine spec."""
    if spec == "engine":
        return engine.Value, engine.__version__
    if spec == "micrograd":
        return _load_micrograd()
    where, sep, class_name = spec.rpartition(":")
    if not sep or not where or not class_name:
        raise EngineSpecError(f"engine spec {spec!r}: expected {SPEC_FORMS}")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module, version = _load_file(where)
    else:
        module, version = _import_module(where)
    value_class = getattr(module, class_name, None)
    if value_class is None:
        raise EngineSpecError(f"engine spec {spec!r}: {where} has no attribute {class_name!r}")
    if not isinstance(value_class, type):
        raise EngineSpecError(
            f"engine spec {spec!r}: {where}:{class_name} is a {type(value_class).__name__}, not a class")
    return value_class, version


def _load_micrograd():
    try:
        dist = importlib.metadata.distribution("micrograd")
    except importlib.metadata.PackageNotFoundError:
        raise EngineSpecError(f"micrograd is not installed: {INSTALL_MICROGRAD}") from None
    try:
        module = importlib.import_module("micrograd.engine")
    except Exception as e:
        raise EngineSpecError(
            f"cannot import micrograd.engine ({describe(e)}): a local micrograd.py may shadow "
            f"the installed package; load such a file as 'path/to/micrograd.py:Value'") from e
    installed = Path(dist.locate_file("micrograd/engine.py")).resolve()
    if Path(module.__file__).resolve() != installed:
        raise EngineSpecError(
            f"'micrograd' resolves to {module.__file__}, not the installed package at {installed}; "
            f"load that file as 'path/to/file.py:Value'")
    return module.Value, dist.version


def _import_module(name):
    try:
        module = importlib.import_module(name)
    except Exception as e:
        raise EngineSpecError(f"cannot import module {name!r}: {describe(e)}") from e
    return module, _module_version(module)


def _load_file(path):
    """Execute a file as a module under a name of its own: a loose
    micrograd.py must never be confused with (or replace) the micrograd
    package.  Its directory is on sys.path only while it executes, for
    sibling imports."""
    file = Path(path).resolve()
    if not file.is_file():
        raise EngineSpecError(f"engine file not found: {path}")
    try:
        source = file.read_bytes()
    except OSError as e:
        raise EngineSpecError(f"cannot read engine file {path}: {e.strerror}") from None
    name = "_gradparity_engine_" + hashlib.sha256(str(file).encode()).hexdigest()[:16]
    module_spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # classes look their module up here (pickle, dataclasses)
    directory = str(file.parent)
    sys.path.insert(0, directory)
    try:
        module_spec.loader.exec_module(module)
    except BaseException as e:
        del sys.modules[name]
        if not isinstance(e, Exception):
            raise
        raise EngineSpecError(f"cannot import engine file {path}: {describe(e)}") from e
    finally:
        if directory in sys.path:
            sys.path.remove(directory)
    return module, hashlib.sha256(source).hexdigest()[:12]


def _module_version(module):
    top = module.__name__.partition(".")[0]
    version = getattr(module, "__version__", None) or getattr(sys.modules.get(top), "__version__", None)
    if version:
        return str(version)
    try:
        return importlib.metadata.version(top)
    except importlib.metadata.PackageNotFoundError:
        pass
    file = getattr(module, "__file__", None)
    return hashlib.sha256(Path(file).read_bytes()).hexdigest()[:12] if file else "unknown"
