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
import os
from pathlib import Path
import signal
import sys
import threading
import time
import traceback

import engine

from . import adapter as adapters
from . import forward_mode, higher_order
from .unsupported import UNSUPPORTED, Unsupported
from .adapter import EngineSpecError  # noqa: F401  (defined there: the adapter raises it too)
from .engine_ops import ENGINE_OPS
from .text import describe

INSTALL_MICROGRAD = "pip install -e '.[bench]'"
SPEC_FORMS = ("'engine', 'micrograd', 'pkg.module', 'pkg.module:Class', 'path/to/file.py' or "
              "'path/to/file.py:Class'")
# A probe's findings: the op is there and works, the engine has no way to
# express it, or it is there and raises or returns what is not a number.
PRESENT, ABSENT, BROKEN = "present", "absent", "broken"
PROBE_STATUSES = (PRESENT, ABSENT, BROKEN)
_MLP_SPEC_KEYS = {"nin", "nouts", "activation", "inputs", "targets"}
# run_batch compiles a graph shared by at least this many consecutive cases,
# unless it is bigger than this (compile time and memory grow with it).
COMPILE_AT = 32
COMPILE_MAX_NODES = 5000


class _Timeout(BaseException):
    # BaseException, so that an engine's own ``except Exception`` cannot swallow it.
    pass


class _EngineFault(Exception):
    """What the engine returned is not a number: its message is the error."""


class _ComplexResult(_EngineFault):
    pass


def load(spec, data_attr=None, grad_attr=None, timeout=10.0, engine_ops=ENGINE_OPS, backward=None, adapter=None,
         cwd=None):
    """An EngineRunner for ``spec`` (see SPEC_FORMS), driven as detected
    (adapter.py) or as the options say (``data_attr``, ``grad_attr``,
    ``backward``, ``adapter``: an adapter file); EngineSpecError if it names
    nothing loadable or nothing that can be driven.  ``cwd``: where a module
    spec is looked for first (default: the working directory)."""
    module, class_name, version, where = resolve_module(spec, cwd)
    if module is None:  # ours, spelled as the op table spells it
        if not (data_attr or grad_attr or backward or adapter):
            return EngineRunner(engine.Value, version, timeout=timeout, engine_ops=engine_ops)
        module, class_name, where = sys.modules["engine"], "Value", "engine"
    found = adapters.detect(module, where, class_name, data_attr, grad_attr, backward, adapter, engine_ops)
    return EngineRunner(found.value_class, version, timeout=timeout, engine_ops=found.ops, adapter=found)


class EngineRunner:
    def __init__(self, value_class, version, data_attr="data", grad_attr="grad", timeout=10.0,
                 engine_ops=ENGINE_OPS, adapter=None):
        self.adapter = adapter or adapters.default(value_class, engine_ops, data_attr, grad_attr)
        self.value_class = value_class
        self.version = version
        self.data_attr = self.adapter.data_attr
        self.grad_attr = self.adapter.grad_attr
        self.make = self.adapter.make
        self.read_data, self.read_grad = self.adapter.read_data, self.adapter.read_grad
        self.backward = self.adapter.backward or _no_backward
        self.timeout = timeout
        self.engine_ops = engine_ops  # {op name: engine call}
        self.is_ours = issubclass(value_class, engine.Value)  # engine.nn and engine.Function work on ours only
        self._forward_for = (None, None)  # (graph, its compiled forward): the last one compiled
        self._differentiate = None  # higher_order cases' one step, found when the first one runs
        if adapter is None:
            self._check_attributes()

    @property
    def report(self):
        """What the adapter decided (JSON), for the run's sidecar."""
        return self.adapter.report

    # -- probing ---------------------------------------------------------------
    def probe(self, op_name, operands, const=None):
        """[status, detail]: is the op there (one application on
        ``operands``, backward included)?  ABSENT only where the engine has no
        way to express it: the method is missing, an operator is not
        defined for these operand types (TypeError or NotImplemented from
        Python's operator dispatch, a refusal in the operator's own code),
        NotImplementedError.  An op that is there but raises on these
        in-domain operands, returns what is not one of the engine's values,
        or a value whose number or gradient is not a number (a Value
        nested in .data), is BROKEN: present, and its cases show it."""
        try:
            with _time_limit(self.timeout):
                try:
                    apply = self.engine_ops[op_name]
                except KeyError:  # a row registered in the judge's process only (a test's Function)
                    return [ABSENT, f"no engine call for {op_name} in this process"]
                values = [self.make(x) for x in operands]
                if getattr(apply, "absent", False):
                    return [ABSENT, f"the adapter file says the engine has no {op_name}"]
                try:
                    out = apply(*values, const) if const is not None else apply(*values)
                except Exception as exc:
                    return [_refusal(exc, apply), describe(exc)]
                if out is NotImplemented:
                    return [ABSENT, "the engine returns NotImplemented"]
                if not isinstance(out, self.value_class):
                    return [BROKEN, f"returns {_kind(out)}, not a {self.value_class.__name__}"]
                if self.adapter.tangent_attr:  # a dual number: its value is all there is to read
                    _as_float(self.read_data(out), "the value of its result")
                    return [PRESENT, ""]
                try:
                    self.backward(out)
                except Exception as exc:
                    return [BROKEN, f"backward() after it raised {describe(exc)}"]
                for what, v in (("its result", out), *((f"operand {i}", v) for i, v in enumerate(values))):
                    _as_float(self.read_data(v), f"the value of {what}")
                    self._grad(v, f"the gradient of {what}")
        except _Timeout:
            return [BROKEN, f"timeout after {self.timeout:g} s"]
        except _EngineFault as exc:
            return [BROKEN, str(exc)]
        except Exception as exc:
            return [BROKEN, describe(exc)]
        return [PRESENT, ""]

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
        run = (self._run_native_mlp if self._runs_native_mlp(case) else self._run_higher_order
               if case.family == "higher_order" else self._run_forward_mode if case.family == "forward"
               else lambda case: self._run_graph(case, forward))
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
        except _EngineFault as e:  # a complex result, a Value nested in .data: said plainly
            return None, str(e)
        except Unsupported as e:
            return None, UNSUPPORTED + str(e)
        except KeyboardInterrupt:  # Ctrl-C: the run stops (a worker ignores SIGINT; see worker.py)
            raise
        except BaseException as e:  # SystemExit and the like: the engine's exceptions like any other
            error = describe(e)
            if isinstance(e, MemoryError):
                error += " (out of memory: the worker's memory limit, --memory-limit)"
            return None, error

    def _trace(self, case):
        leaves = [self.make(x) for x in case.leaves]
        values, loss = self._evaluate(case.graph, leaves)
        self._backward_and_read(case, loss, leaves, [], [])
        data = [_as_float(self.read_data(v), f"value of v{i}") for i, v in enumerate(values)]
        return data, [_as_float_or_none(self.read_grad(v)) for v in values]

    def _run_graph(self, case, forward=None):
        spec = case.spec
        if spec and spec.get("rebuild", 1) > 1:
            return self._run_rebuilt(case, forward)
        return self._run_graph_once(case, forward)

    def _run_graph_once(self, case, forward=None):
        graph = case.graph
        leaves = [self.make(x) for x in case.leaves]
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
        if len(graph.outputs) > 1:
            add = ops["add"]  # the engine's add (an adapter file may spell it otherwise)
            for o in graph.outputs[1:]:
                loss = add(loss, values[o])
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
        grad_attr, read_data, read_grad = self.grad_attr, self.read_data, self.read_grad
        backward = self._backward_for(case)
        values = []
        for i, v in enumerate(outputs):
            x = read_data(v)
            # type() first: an exact float (our engine's) needs no conversion.
            values.append(x if type(x) is float else _as_float(x, f"value of {labels[i]}"))
        for p in range(case.passes):
            if p and case.zero_grad_between:
                for leaf in leaves:
                    setattr(leaf, grad_attr, 0.0)
            backward(loss)
        grads = []
        for i, leaf in enumerate(leaves):
            g = read_grad(leaf)
            grads.append(g if type(g) is float else self._grad(leaf, f"grad of leaf v{i}"))
        return values, grads

    # -- behaviour checks (parity/cases.py's BEHAVIOURS) ---------------------------
    def _backward_for(self, case):
        """backward(root) as the case asks: the adapter's, or with the
        case's seed (spec "gradient"); Unsupported where the engine's
        backward takes none."""
        spec = case.spec
        if not spec or "gradient" not in spec:
            return self.backward
        seeded = self.adapter.seeded_backward
        if seeded is None and self.adapter.backward is None:  # a dual number: no backward at all
            return self.backward
        if seeded is None:  # `unsupported`: "backward(gradient=g) (Value.backward(self) takes no gradient argument)"
            raise Unsupported(f"the engine has no backward(gradient=g) ({self.adapter.no_seed})")
        gradient = float(spec["gradient"])
        return lambda root: seeded(root, gradient)

    def _run_rebuilt(self, case, forward):
        """(values, grads) of the last of spec["rebuild"] runs, each building
        the graph on fresh leaves and running its backward passes; an error
        naming the first quantity where two runs differ (nan equals nan)."""
        runs = [self._run_graph_once(case, forward) for _ in range(case.spec["rebuild"])]
        first_values, first_grads = runs[0]
        names = _OutputLabels(case.graph.outputs)
        for k, (values, grads) in enumerate(runs[1:], 2):
            for what, a, b in (("values", first_values, values), ("grads", first_grads, grads)):
                for i, (x, y) in enumerate(zip(a, b)):
                    if not (x == y or (x != x and y != y)):
                        name = (f"grad of leaf v{i}" if what == "grads" else "loss" if names[i] == "loss"
                                else f"value of output {names[i]}")
                        raise _EngineFault(
                            f"{len(runs)} identical graphs (each built on fresh leaves) give different results: "
                            f"{name}: run 1 {x!r}, run {k} {y!r} (the engine keeps state across graphs?)")
        return runs[-1]

    def _run_higher_order(self, case):
        """(values, grads): the outputs and the loss; the leaves' gradients,
        then the case's higher derivatives (parity/higher_order.py), each
        found by differentiating the engine's gradients again."""
        if self._differentiate is None:
            grad = higher_order.grad_function(self.value_class, sys.modules)
            if grad is not None:
                self._differentiate = higher_order.by_grad_function(grad)
            elif higher_order.takes_create_graph(self.value_class):
                self._differentiate = higher_order.by_value_gradients(self.grad_attr, self.value_class)
            else:
                raise Unsupported(higher_order.NO_HIGHER_ORDER)
        leaves = [self.make(x) for x in case.leaves]
        values, loss = self._evaluate(case.graph, leaves)
        outputs = [values[o] for o in case.graph.outputs] + [loss]
        ops = higher_order.BackendOps(self.engine_ops, self.value_class)
        first, extra = higher_order.derivatives(case.spec, leaves, loss, self._differentiate, ops)
        labels = [f"v{o}" for o in case.graph.outputs] + ["loss"]
        data = [_as_float(self.read_data(v), f"value of {label}") for v, label in zip(outputs, labels)]
        return data, [self._number(g, f"derivative {i}") for i, g in enumerate(first + extra)]

    def _run_forward_mode(self, case):
        """(values, tangents) of the outputs and the loss, by the engine's jvp."""
        def evaluate(leaves):
            values, loss = self._evaluate(case.graph, list(leaves))
            return [values[o] for o in case.graph.outputs] + [loss]

        jvp = (forward_mode.attribute_jvp(self.make, self.adapter.tangent_attr, self.read_data)
               if self.adapter.tangent_attr else forward_mode.jvp_function(self.value_class, sys.modules))
        primals, tangents = forward_mode.run_forward(case, jvp, evaluate, self.engine_ops)
        labels = [f"v{o}" for o in case.graph.outputs] + ["the loss"]
        return ([_as_float(x, f"value of {label}") for x, label in zip(primals, labels)],
                [_as_float(t, f"tangent of {label}") for t, label in zip(tangents, labels)])

    def _number(self, x, what):
        """A derivative's number: 0 for None (no dependence), a Value's data, a plain number."""
        if x is None:
            return 0.0
        return _as_float(self.read_data(x) if isinstance(x, self.value_class) else x, what)

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
        grad = self.read_grad(value)
        # torch-like engines leave an unreached leaf's grad None: zero.
        return 0.0 if grad is None else _as_float(grad, what)

    # -- loading checks ----------------------------------------------------------
    def _check_attributes(self):
        # On a fresh value (an EngineRunner made without detection).
        cls = self.value_class.__name__
        try:
            value = self.make(1.0)
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
    if rest:
        namespace["add"] = engine_ops["add"]
    lines.extend(f"    loss = add(loss, v{o})" for o in rest)  # one statement each: no deep expression
    lines.append(f"    return [{', '.join(f'v{o}' for o in graph.outputs)}], loss")
    exec(compile("\n".join(lines), f"<parity: graph of {graph.n_nodes} ops>", "exec"), namespace)
    return namespace["forward"]


def _no_backward(root):
    raise _EngineFault(adapters.FORWARD_ONLY)


def _as_float(x, what):
    if isinstance(x, numbers.Complex) and not isinstance(x, numbers.Real):
        raise _ComplexResult(f"complex result: {what} is {x!r}")
    if not isinstance(x, numbers.Real) and hasattr(x, "__dict__") and not hasattr(x, "__float__"):
        raise _EngineFault(f"{what} is {_kind(x)}, not a number (a value nested in the number attribute: "
                           f"an op that wraps its result twice?)")
    try:
        return float(x)
    except (TypeError, ValueError) as exc:
        raise _EngineFault(f"{what} is {_kind(x)}, not a number ({describe(exc)})") from None


_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_plain_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _kind(x):
    name = type(x).__name__
    return "None" if x is None else f"a {name}" if name[:1].lower() not in "aeiou" else f"an {name}"


def _refusal(exc, apply):
    """ABSENT when an op's exception says the engine cannot express it:
    raised by the op's call itself (a missing method, Python's operator
    dispatch finding no way: TypeError, a wrong signature), a
    NotImplementedError, or raised at once by an operator's own code: a
    TypeError or AssertionError (micrograd's ``assert isinstance(other,
    (int, float))``), an AttributeError of a number operand (``other.data``
    of a float: the operator takes Values only).  BROKEN when it comes from
    inside the engine (a NameError from a missing import, anything raised
    on the way)."""
    if isinstance(exc, NotImplementedError):
        return ABSENT
    tb = exc.__traceback__.tb_next  # the first is probe()'s own frame
    frames = traceback.extract_tb(tb)
    codes = []
    while tb is not None:
        codes.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    # The harness's own frames (the op table's calls, the adapter's wrappers,
    # engine_functions' check that a Value is ours) are the op's call.
    engine_frames = [c for c in codes if c is not getattr(apply, "__code__", None)
                     and not os.path.abspath(c.co_filename).startswith(_HERE)]
    if not engine_frames and isinstance(exc, (AttributeError, TypeError)):
        return ABSENT
    operator_op = not adapters.method_names(apply)
    refusal = isinstance(exc, (TypeError, AssertionError)) or (
        isinstance(exc, AttributeError) and _is_plain_number(getattr(exc, "obj", None)))  # other.data of a float
    if operator_op and len(engine_frames) == 1 and refusal and frames and frames[-1].name.startswith("__"):
        return ABSENT
    return BROKEN


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


# -- resolving a spec to a module ---------------------------------------------------
# (spec, working directory, file stamp) -> resolve_module's answer: an engine
# is imported once per process (its import may print, write files or train
# a network), however many runners are made for it.
_LOADED = {}


def is_file_spec(where):
    return where.endswith(".py") or "/" in where or "\\" in where


def split_spec(spec):
    """(where, class name or None) of an engine spec (see SPEC_FORMS)."""
    if spec in ("engine", "micrograd"):
        return spec, None
    where, sep, class_name = spec.rpartition(":")
    if not sep:
        where, class_name = spec, None
    if not where or (sep and not class_name) or not (
            is_file_spec(where) or all(part.isidentifier() for part in where.split("."))):
        raise EngineSpecError(f"engine spec {spec!r}: expected {SPEC_FORMS}")
    if class_name is None and not is_file_spec(where) and "." not in where:
        # a bare word: a module found without a class is fine, but 'nonsense' is most likely a typo
        found = importlib.util.find_spec(where) if where not in sys.modules else True
        if not found:
            raise EngineSpecError(f"engine spec {spec!r}: expected {SPEC_FORMS}")
    return where, class_name


def resolve_module(spec, cwd=None):
    """(module, class name or None (to detect), version, where): the
    engine's module, imported once per process.  The module is None for
    ours (it is spelled as the op table spells it)."""
    if spec == "engine":
        return None, "Value", engine.__version__, "engine"
    if spec == "micrograd":
        module, version = _load_micrograd()
        return module, "Value", version, "micrograd"
    where, class_name = split_spec(spec)
    cwd = cwd or os.getcwd()
    stamp = None
    if is_file_spec(where):
        try:
            info = os.stat(os.path.join(cwd, where))
            stamp = (info.st_mtime_ns, info.st_size)
        except OSError:
            pass
    key = (where, cwd, stamp)
    if key not in _LOADED:
        module, version = _load_file(where, cwd) if is_file_spec(where) else _import_module(where, cwd)
        _LOADED[key] = module, version
    module, version = _LOADED[key]
    return module, class_name, version, where


def resolve(spec, cwd=None):
    """(value class, version) for an engine spec (the class detected where
    the spec names none)."""
    module, class_name, version, where = resolve_module(spec, cwd)
    if module is None:
        return engine.Value, version
    return adapters.detect(module, where, class_name, base_ops=ENGINE_OPS).value_class, version


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
    return module, dist.version


def _import_module(name, cwd):
    """Import a module spec as ``python -m`` would: the working directory
    first (for this import only; last afterwards, for the engine's own
    later imports).  A name that resolves elsewhere while a folder or file
    of that name is in the working directory (or on PYTHONPATH) is refused:
    the engine would not be the one the user means."""
    top = name.partition(".")[0]
    dirs = [cwd] + [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    with _first_on_path(cwd):
        try:
            module = importlib.import_module(name)
        except Exception as e:
            _check_not_shadowed([top], dirs, name)
            raise EngineSpecError(f"cannot import module {name!r}: {describe(e)}") from e
    _check_not_shadowed([top], dirs, name)
    return module, _module_version(module)


def _load_file(path, cwd):
    """Import an engine file.  A file inside a package (its folder has an
    __init__.py) is imported as part of that package, so that its relative
    imports work; a loose file executes as a module under a name of its
    own (a loose micrograd.py must never be confused with, or replace, the
    micrograd package), its folder first on sys.path while it executes
    (for sibling imports).  A name it imports that resolves to an installed
    package (or the harness's) while a folder or file of that name lies
    beside it or in the working directory is refused, naming both."""
    file = Path(cwd, path).resolve()
    if not file.is_file():
        raise EngineSpecError(f"engine file not found: {path}")
    try:
        source = file.read_bytes()
    except OSError as e:
        raise EngineSpecError(f"cannot read engine file {path}: {e.strerror}") from None
    version = hashlib.sha256(source).hexdigest()[:12]
    before = set(sys.modules)
    package = _package_of(file)
    dirs = [cwd, file.parent, file.parent.parent] if package is None else [cwd, package[0]]
    try:
        module = _import_in_package(file, *package) if package else _exec_loose(file)
    except BaseException as e:
        if not isinstance(e, Exception):
            raise
        _check_not_shadowed(_imported_names(before), dirs, path)
        raise EngineSpecError(f"cannot import engine file {path}: {describe(e)}") from e
    _check_not_shadowed(_imported_names(before, module), dirs, path)
    return module, version


def _exec_loose(file):
    name = "_gradparity_engine_" + hashlib.sha256(str(file).encode()).hexdigest()[:16]
    module_spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # classes look their module up here (pickle, dataclasses)
    with _first_on_path(str(file.parent), keep_last=False):
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module


def _package_of(file):
    """(the folder holding the top package, the file's dotted name), or
    None for a file whose folder is no package."""
    parts = [] if file.name == "__init__.py" else [file.stem]
    folder = file.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if not parts or parts[0] == file.stem and len(parts) == 1:
        return None
    if not all(part.isidentifier() for part in parts):
        return None
    return folder, ".".join(parts)


def _import_in_package(file, root, dotted):
    """Import ``dotted`` from ``root``: under its own name, unless that name
    is taken (the harness's ``engine``, a standard module, a package already
    imported from elsewhere): then the top package under a name of its own,
    which relative imports follow."""
    top, _, rest = dotted.partition(".")
    taken = sys.modules.get(top)
    if top in sys.stdlib_module_names or (taken is not None and not _is_at(taken, root / top)):
        alias = "_gradparity_package_" + hashlib.sha256(str(root / top).encode()).hexdigest()[:16]
        if alias not in sys.modules:
            init = root / top / "__init__.py"
            module_spec = importlib.util.spec_from_file_location(alias, init,
                                                                 submodule_search_locations=[str(root / top)])
            package = importlib.util.module_from_spec(module_spec)
            sys.modules[alias] = package
            try:
                with _first_on_path(str(root), keep_last=False):
                    module_spec.loader.exec_module(package)
            except BaseException:
                del sys.modules[alias]
                raise
        dotted = alias + ("." + rest if rest else "")
    with _first_on_path(str(root), keep_last=False):
        return importlib.import_module(dotted)


@contextmanager
def _first_on_path(directory, keep_last=True):
    """``directory`` first on sys.path for the block; then (keep_last) at
    its end, where it shadows nothing, for the engine's later imports."""
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        if sys.path and sys.path[0] == directory:
            del sys.path[0]
        elif directory in sys.path:
            sys.path.remove(directory)
        if keep_last and directory not in sys.path:
            sys.path.append(directory)


def _imported_names(before, module=None):
    """Top-level names the engine's import brought in, or refers to (a
    module already imported, such as the harness's ``engine``)."""
    names = {name.partition(".")[0] for name in set(sys.modules) - before}
    for value in (vars(module).values() if module is not None else ()):
        owner = getattr(value, "__name__", None) if isinstance(value, type(sys)) else getattr(value, "__module__", None)
        if isinstance(owner, str):
            names.add(owner.partition(".")[0])
    return sorted(n for n in names if n and not n.startswith("_gradparity_") and n not in sys.stdlib_module_names
                  and n not in ("builtins", "__main__"))


def _is_at(module, place):
    """Is ``module`` the package folder or the .py file ``place``?"""
    place = Path(place).resolve()
    locations = list(getattr(module, "__path__", None) or [])
    if getattr(module, "__file__", None):
        locations.append(module.__file__)
    for location in locations:
        location = Path(location).resolve()
        if location == place or (location.name == "__init__.py" and location.parent == place):
            return True
    return False


def _check_not_shadowed(names, dirs, given):
    """EngineSpecError if one of these top-level module names resolved to
    something other than a folder or file of that name in ``dirs``."""
    seen = set()
    for name in names:
        module = sys.modules.get(name)
        if module is None or not (getattr(module, "__file__", None) or getattr(module, "__path__", None)):
            continue
        for directory in dirs:
            for local in (Path(directory, name), Path(directory, name + ".py")):
                if not local.exists() or local.resolve() in seen or _is_at(module, local):
                    continue
                if local.is_dir() and not (local / "__init__.py").exists() and not any(
                        p.suffix == ".py" for p in local.iterdir()):
                    continue  # a folder of no Python code (data, a build) is no rival
                seen.add(local.resolve())
                shown = Path(os.path.relpath(local, dirs[0])) if local.resolve().is_relative_to(
                    Path(dirs[0]).resolve()) else local
                raise EngineSpecError(_shadow_message(name, module, shown, given, local))


def _shadow_message(name, module, local, given, real):
    location = getattr(module, "__file__", None) or list(module.__path__)[0]
    location = Path(location).parent if Path(location).name == "__init__.py" else Path(location)
    what = _distribution_of(name, location)
    if real.is_dir():
        fix = (f"add an empty {local}/__init__.py (without one, the installed package wins over the folder), "
               f"or load a file by its path: --engine {local}/FILE.py"
               if not (real / "__init__.py").exists() else f"load a file by its path: --engine {local}/FILE.py")
    else:
        fix = f"load it by its path: --engine {local}"
    return (f"{given}: '{name}' resolves to {what} at {location}, not to {local}{'/' if real.is_dir() else ''} "
            f"here: the engine would not be the one you mean; {fix}")


def _distribution_of(name, location):
    if Path(engine.__file__).resolve().parent == location.resolve():
        return "gradparity's own engine package"
    try:
        for dist_name in importlib.metadata.packages_distributions().get(name, []):
            return f"the installed distribution {dist_name} {importlib.metadata.version(dist_name)}"
    except Exception:
        pass
    return "another module"


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
