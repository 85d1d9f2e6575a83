"""The engine backend: loading every kind of spec, probing which ops an engine
supports, and turning whatever an engine does (numpy scalars, odd attribute
names, exceptions, complex numbers, endless backward passes) into a Result.

No torch here: expected gradients are derived by hand.
"""
from pathlib import Path
import re
import shutil
import signal
import sys

import pytest

import engine
from parity.backends.engine import EngineSpecError, load_engine
from parity.case import Case
from parity.graph import Graph, Node
from parity.ops import OP_NAMES, OPS, Op

ENGINES = Path(__file__).parent / "engines"

# What micrograd 0.1.0 can do, as probed: +, * and ** (number exponent) are
# methods; -, /, neg and the reflected forms are built from them
# (x / y = x * y**-1, c / x = c * x**-1, -x = x * -1); relu is a method.
# Missing: exp, log, tanh, sigmoid, sqrt, abs (no such methods), Value ** Value
# (__pow__ asserts a number exponent) and c ** x (no __rpow__).
MICROGRAD_OPS = {"add", "sub", "mul", "div", "pow_const", "add_const", "radd", "sub_const", "rsub",
                 "mul_const", "rmul", "div_const", "rdiv", "neg", "relu"}


def make_case(n_leaves, nodes, leaves, outputs=None, passes=1, zero_grad_between=False):
    nodes = tuple(Node(*node) for node in nodes)
    outputs = outputs or (n_leaves + len(nodes) - 1,)
    return Case("test-0-0", "expr", 0, 0, Graph(n_leaves, nodes, tuple(outputs)), list(leaves),
                passes=passes, zero_grad_between=zero_grad_between)


def chain(op, depth, const=None):
    """v0 -> op -> op -> ...: depth nodes, each on the previous value."""
    return make_case(1, [(op, (i,), const) for i in range(depth)], [0.5])


def doubling(depth):
    """v1 = v0 + v0, v2 = v1 + v1, ...: every node used twice by the next."""
    return make_case(1, [("add", (i, i)) for i in range(depth)], [1.0])


@pytest.fixture
def micrograd_backend():
    pytest.importorskip("micrograd")
    return load_engine("micrograd")


# -- loading ---------------------------------------------------------------------
def test_our_engine_supports_every_builtin_op():
    backend = load_engine("engine")
    assert backend.value_class is engine.Value
    assert (backend.name, backend.version) == ("engine", engine.__version__)
    assert backend.is_ours
    assert backend.supported_ops >= set(OP_NAMES)


def test_micrograd_loads_the_pypi_package_and_supports_what_it_has(micrograd_backend):
    import micrograd.engine

    assert micrograd_backend.isolation == "process"  # not ours: in a sandboxed worker
    assert load_engine("micrograd", isolation="none").value_class is micrograd.engine.Value
    assert micrograd_backend.version == "0.1.0"
    assert not micrograd_backend.is_ours
    assert micrograd_backend.supported_ops == MICROGRAD_OPS


def test_module_spec_loads_the_named_class():
    assert load_engine("engine.value:Value").is_ours  # in its worker, too
    backend = load_engine("engine.value:Value", isolation="none")
    assert backend.value_class is engine.Value
    assert backend.name == "engine.value:Value"
    assert backend.version == engine.__version__


def test_a_loose_micrograd_py_is_loaded_as_itself_not_as_the_package(tmp_path, monkeypatch):
    pytest.importorskip("micrograd")
    shutil.copy(ENGINES / "micrograd.py", tmp_path / "micrograd.py")
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)

    loose = load_engine("micrograd.py:Value", isolation="none")

    assert loose.value_class.__module__.startswith("_gradparity_engine_")
    assert Path(sys.modules[loose.value_class.__module__].__file__) == tmp_path / "micrograd.py"
    assert "tanh" in loose.supported_ops and "rsub" not in loose.supported_ops  # the file's, not PyPI's
    assert sys.path == path_before
    package = load_engine("micrograd", isolation="none")
    assert package.value_class is not loose.value_class
    assert Path(sys.modules[package.value_class.__module__].__file__) == installed_micrograd_engine()


def test_a_micrograd_py_shadowing_the_package_is_a_spec_error(tmp_path, monkeypatch):
    pytest.importorskip("micrograd.engine")
    shutil.copy(ENGINES / "micrograd.py", tmp_path / "micrograd.py")
    monkeypatch.delitem(sys.modules, "micrograd")  # restored after the test
    monkeypatch.delitem(sys.modules, "micrograd.engine")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(EngineSpecError, match="a local micrograd.py may shadow the installed package"):
        load_engine("micrograd", isolation="none")


def installed_micrograd_engine():
    import importlib.metadata

    return Path(importlib.metadata.distribution("micrograd").locate_file("micrograd/engine.py")).resolve()


def test_a_file_may_import_its_siblings_while_it_loads(tmp_path):
    (tmp_path / "gradparity_test_sibling.py").write_text("SCALE = 3.0\n")
    (tmp_path / "eng.py").write_text(
        (ENGINES / "value_gradient.py").read_text() + "\nfrom gradparity_test_sibling import SCALE\n")
    path_before = list(sys.path)

    try:
        backend = load_engine(f"{tmp_path / 'eng.py'}:Value", data_attr="value", grad_attr="gradient",
                              isolation="none")
    finally:
        sys.modules.pop("gradparity_test_sibling", None)

    assert sys.modules[backend.value_class.__module__].SCALE == 3.0
    assert sys.path == path_before


@pytest.mark.parametrize("spec, message", [
    ("nonsense", "expected 'engine', 'micrograd'"),
    ("engine.value:", "expected 'engine', 'micrograd'"),
    ("no/such/file.py:Value", "engine file not found: no/such/file.py"),
    ("gradparity_no_such_module:Value", "cannot import module 'gradparity_no_such_module'"),
    (f"{ENGINES / 'micrograd.py'}:Tensor", "has no attribute 'Tensor'"),
    ("engine.value:linear", "is a function, not a class"),
])
@pytest.mark.parametrize("isolation", ["process", "none"])
def test_bad_specs_say_what_is_wrong(spec, message, isolation):
    with pytest.raises(EngineSpecError, match=re.escape(message)):
        load_engine(spec, isolation=isolation)


@pytest.mark.parametrize("isolation", ["process", "none"])
def test_a_file_that_fails_to_import_is_a_spec_error(tmp_path, isolation):
    broken = tmp_path / "broken.py"
    broken.write_text("import gradparity_no_such_module\n")
    with pytest.raises(EngineSpecError, match="cannot import engine file .*broken.py: ModuleNotFoundError"):
        load_engine(f"{broken}:Value", isolation=isolation)
    assert all(getattr(module, "__file__", None) != str(broken) for module in list(sys.modules.values()))


def test_missing_micrograd_names_the_install_command(monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(EngineSpecError, match=r"micrograd is not installed: pip install -e '\.\[bench\]'"):
        load_engine("micrograd", isolation="none")


def test_spec_errors_are_value_errors():
    assert issubclass(EngineSpecError, ValueError)


@pytest.mark.parametrize("isolation", ["process", "none"])
def test_wrong_attribute_names_are_spec_errors(isolation):
    # Named wrongly, the attributes are refused naming the flag (without
    # them, value and gradient are detected: tests/test_adapters.py).
    with pytest.raises(EngineSpecError, match="no attribute 'data'; name the right one with --data-attr"):
        load_engine(f"{ENGINES / 'value_gradient.py'}:Value", data_attr="data", isolation=isolation)
    with pytest.raises(EngineSpecError, match="no attribute 'grad'; name the right one with --grad-attr"):
        load_engine(f"{ENGINES / 'value_gradient.py'}:Value", data_attr="value", grad_attr="grad",
                    isolation=isolation)


# -- running -------------------------------------------------------------------------
def test_our_engine_accumulates_over_passes_unless_zeroed():
    # loss = a * a + a: d/da = 2a + 1 = 7 at a = 3
    nodes = [("mul", (0, 0)), ("add", (1, 0))]
    backend = load_engine("engine")
    once = backend.run(make_case(1, nodes, [3.0]))
    assert once.ok and once.values == [12.0, 12.0] and once.grads == [7.0]
    assert backend.run(make_case(1, nodes, [3.0], passes=3)).grads == [21.0]
    assert backend.run(make_case(1, nodes, [3.0], passes=3, zero_grad_between=True)).grads == [7.0]
    assert once.seconds > 0


def test_values_are_each_output_then_the_loss():
    # v1 = v0 * 2, v2 = -v0: loss = v2 + v1
    case = make_case(1, [("mul_const", (0,), 2.0), ("neg", (0,))], [1.5], outputs=(2, 1))
    result = load_engine("engine").run(case)
    assert result.values == [-1.5, 3.0, 1.5]
    assert result.grads == [1.0]


def test_attribute_name_options_are_used():
    backend = load_engine(f"{ENGINES / 'value_gradient.py'}:Value", data_attr="value", grad_attr="gradient")
    result = backend.run(make_case(2, [("mul", (0, 1)), ("add_const", (2,), 1.0)], [2.0, -3.0]))
    assert result.ok
    assert result.values == [-5.0, -5.0]
    assert result.grads == [-3.0, 2.0]


def test_numpy_scalars_and_ints_become_floats():
    backend = load_engine(f"{ENGINES / 'numpy_values.py'}:Value")
    # v1 = relu(v0) is the int 0 in this engine; v2 = v1 + v0
    result = backend.run(make_case(1, [("relu", (0,)), ("add", (1, 0))], [-2.0], outputs=(1, 2)))
    assert result.ok
    assert result.values == [0.0, -2.0, -2.0] and result.grads == [1.0]
    assert all(type(x) is float for x in result.values + result.grads)


def test_missing_reflected_operators_make_ops_unsupported():
    backend = load_engine(f"{ENGINES / 'micrograd.py'}:Value")
    assert {"rsub", "rdiv", "rpow", "log", "sqrt"}.isdisjoint(backend.supported_ops)
    assert {"sub_const", "div_const", "tanh", "exp"} <= backend.supported_ops
    case = make_case(1, [("rsub", (0,), 1.0), ("tanh", (1,)), ("rdiv", (2,), 2.0)], [0.5])
    result = backend.run(case)
    assert result.unsupported == "rdiv,rsub"
    assert not result.ok and result.error is None


def test_a_missing_add_makes_multi_output_graphs_unsupported(tmp_path):
    (tmp_path / "mul_only.py").write_text(
        "class Value:\n"
        "    def __init__(self, data, prev=()):\n"
        "        self.data, self.grad, self.prev = data, 0.0, prev\n"
        "    def __mul__(self, other):\n"
        "        return Value(self.data * other.data, (self, other))\n"
        "    def backward(self):\n"
        "        pass\n")
    backend = load_engine(f"{tmp_path / 'mul_only.py'}:Value")
    assert backend.supported_ops == {"mul"}
    assert backend.run(make_case(1, [("mul", (0, 0))], [2.0])).ok
    assert backend.run(make_case(1, [("mul", (0, 0))], [2.0], outputs=(1, 0))).unsupported == "add"


def test_engine_exceptions_become_errors(micrograd_backend):
    # micrograd's x ** -1 is Python's: 0.0 ** -1 raises
    result = micrograd_backend.run(make_case(1, [("div", (0, 0))], [0.0]))
    assert result.error == "ZeroDivisionError: 0.0 cannot be raised to a negative power"
    assert result.values == [] and result.grads == []


def test_complex_numbers_become_errors(micrograd_backend):
    # Python's (-2.0) ** 0.5 is complex; torch's is nan
    result = micrograd_backend.run(make_case(1, [("pow_const", (0,), 0.5)], [-2.0]))
    assert result.error.startswith("complex result: value of v1 is ")


def test_micrograd_recursion_limit_is_an_error(micrograd_backend):
    result = micrograd_backend.run(chain("mul_const", 2000, 1.0))
    assert result.error.startswith("RecursionError: maximum recursion depth exceeded")
    assert micrograd_backend.run(chain("mul_const", 200, 1.0)).grads == [1.0]


def test_an_exponential_backward_times_out_and_restores_the_alarm():
    handler_before = signal.getsignal(signal.SIGALRM)
    backend = load_engine(f"{ENGINES / 'exponential_backward.py'}:Value", timeout=0.5)
    assert backend.run(doubling(10)).grads == [1024.0]  # correct, when small

    result = backend.run(doubling(60))

    assert result.error == "timeout after 0.5 s"
    assert 0.5 <= result.seconds < 2.0
    assert signal.getsignal(signal.SIGALRM) is handler_before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_an_outer_alarm_keeps_its_handler_and_remaining_time():
    def outer(signum, frame):
        raise AssertionError("the outer alarm must not fire during the test")

    previous = signal.signal(signal.SIGALRM, outer)
    signal.setitimer(signal.ITIMER_REAL, 100.0)
    try:
        assert load_engine("engine", timeout=5.0).run(doubling(5)).ok
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert signal.getsignal(signal.SIGALRM) is outer
        assert 90.0 < remaining <= 100.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_ops_registered_after_loading_are_probed_on_first_use(monkeypatch, micrograd_backend):
    class Cube(engine.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.data ** 3

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_values
            return grad * 3 * x.data ** 2

    ours = load_engine("engine")
    # A row registered at run time carries its engine call, which only an
    # engine in this process can take; a sandboxed worker knows the rows
    # of sandbox/engine_ops.py only, and finds it unsupported.
    monkeypatch.setitem(OPS, "fn_test_cube", Op(
        "fn_test_cube", 1, lambda t: t ** 3, lambda x: x ** 3, lambda x, out: (3 * x * x,), engine=Cube.apply))
    case = make_case(1, [("fn_test_cube", (0,))], [2.0])

    assert ours.run(case).grads == [12.0]
    assert "fn_test_cube" in ours.supported_ops
    # engine.Function on a micrograd Value returns one of our Values: not micrograd's
    assert micrograd_backend.run(case).unsupported == "fn_test_cube"



def test_our_engine_runs_mlp_cases_through_engine_nn_bit_for_bit_like_their_graph(monkeypatch):
    import dataclasses

    import engine.nn
    from parity.cases import build_cases

    fused = []
    monkeypatch.setattr(engine.nn, "_linear", lambda *args: fused.append(1) or engine.value._linear(*args))
    backend = load_engine("engine")
    for case in build_cases("mlp", 0, 4):
        native = backend.run(case)
        as_graph = backend.run(dataclasses.replace(case, family="expr"))
        assert native.ok and (native.values, native.grads) == (as_graph.values, as_graph.grads)
        assert len(native.values) == 2 and len(native.grads) == len(case.leaves)
    assert fused  # the native runs went through engine.nn's fused linear


def test_run_batch_compiles_a_shared_graph_and_gives_run_s_results_bit_for_bit():
    # COMPILE_AT or more consecutive cases on one graph go through a generated
    # forward function: the same Results as run(), -0.0, nan and errors included.
    from parity.sandbox.engine_runner import COMPILE_AT
    from parity.cases import build_cases
    from parity.generate import ExprConfig

    backend = load_engine("engine")
    config = ExprConfig(max_nodes=60, ops=OP_NAMES, edge_rate=0.3, draws_per_graph=COMPILE_AT)
    cases = build_cases("expr", 5, 4 * COMPILE_AT, config)
    batch = backend.run_batch(cases)
    assert backend.runner._forward_for[1] is not None  # the last structure was compiled
    for case, result in zip(cases, batch):
        alone = backend.run(case)
        assert (repr(alone.values), repr(alone.grads), alone.error) == (
            repr(result.values), repr(result.grads), result.error), case.case_id
