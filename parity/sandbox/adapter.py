"""How to drive an engine: its value class, the attributes that hold a
value's number and gradient, its backward entry point, how a leaf is made,
and how each op of the op table is spelled for it.

Engines that learners write differ in all of these: ``Value(x).data`` or
``Scalar(x, requires_grad=True).value``, ``.grad`` or ``.gradient``,
``root.backward()``, ``root.backprop()`` or a module function
``backward(root)``, ``a.tanh()`` or a module function ``tanh(a)``.
``detect`` finds each of them (or takes what the user named: the run's
``--engine FILE:Class``, ``--data-attr``, ``--grad-attr``, ``--backward``
and ``--adapter`` options) and says what it found (``Adapter.report``:
JSON, for the run's sidecar and its first line).  What detection cannot
guess an adapter file says (``--adapter my_adapter.py``):

    # my_adapter.py: the engine's module is bound to ``engine_module``
    CLASS = "Scalar"                            # the value class
    DATA, GRAD = "val", "g"                     # its number and gradient attributes
    def make(x): return engine_module.Scalar(x, requires_grad=True)
    def backward(root): root.backprop()
    OPS = {"tanh": lambda a: engine_module.ops.tanh(a),    # our op names (parity/ops.py)
           "pow_const": lambda a, c: a.pow(c),             # c: the op's number operand
           "sigmoid": None}                                 # None: the engine has no such op

Every name is optional.  ``TANGENT = "der"`` says the class is a dual
number (forward mode, no backward): a leaf is ``make(x)`` with its tangent
attribute set, and only the ``forward`` family can check it.  This module runs in the engine's worker: it
imports nothing of the judge.

A seed for backward (the behaviour checks' ``backward(gradient=g)``,
parity/cases.py) is found from the signature of the backward found (a
method, a module function, an adapter file's ``backward(root, ...)``): its
first parameter after the root named like a seed (SEED_NAMES: ``gradient``,
``grad``, ``grad_output``, ...), else its first parameter after the root if
that has a number for its default (``backward(self, start=1.0)``).  An
engine whose backward has neither (micrograd's ``backward(self)``) runs no
such case: they are `unsupported` (the reply's error is unsupported.py's
UNSUPPORTED mark, "the engine has no backward(gradient=g) (...)"), and
``report["backward_gradient"]`` says why.
"""
import dis
import hashlib
import importlib.util
import inspect
import numbers
import operator
from pathlib import Path

# Where to look, in this order of preference.
DATA_NAMES = ("data", "value", "val", "v", "x", "item", "scalar", "num")
GRAD_NAMES = ("grad", "gradient", "derivative", "g", "grad_value", "d", "dx", "partial", "adjoint")
BACKWARD_NAMES = ("backward", "backprop", "backwards", "backpropagate", "back_prop", "backward_pass")
# A backward's seed parameter, by name (see the module doc).
SEED_NAMES = ("gradient", "grad", "grad_output", "grad_out", "out_grad", "upstream", "seed", "initial_grad",
              "init_grad", "dout")
# A constructor's extra required parameters, by name: the value to pass.
_EXTRA_ARGUMENTS = {"label": "", "name": "", "op": "", "_op": "", "children": (), "_children": (),
                    "_prev": (), "prev": (), "parents": (), "_parents": (), "requires_grad": True}
ADAPTER_FILE_NAMES = {"CLASS", "DATA", "GRAD", "TANGENT", "make", "backward", "OPS"}
FORWARD_ONLY = ("the adapter file's TANGENT makes the engine a dual number, forward mode only: it has no "
                "backward; check it with --families forward")
PROBE_NUMBER = 1.5


class EngineSpecError(ValueError):
    """The engine spec names nothing loadable, or nothing that can be
    driven (the CLI exits with status 2)."""


class Adapter:
    """The decisions: ``make(x)`` a leaf, ``read_data(v)``, ``read_grad(v)``
    (None where the engine keeps none), ``grad_attr`` (zeroed between
    passes), ``backward(root)``, ``seeded_backward(root, g)`` (None where
    the engine's backward takes no seed; ``no_seed`` then says why), ``ops``
    ({op name: call}), ``report``; ``tangent_attr`` for a dual-number class
    (then backward and seeded_backward are None)."""
    tangent_attr = None

    def __init__(self, value_class, make, data_attr, data_is_method, grad_attr, backward, ops, report,
                 seeded=(None, "")):
        self.value_class, self.make, self.data_attr, self.grad_attr = value_class, make, data_attr, grad_attr
        self.read_data = (lambda v: getattr(v, data_attr)()) if data_is_method else operator.attrgetter(data_attr)
        self.read_grad = lambda v: getattr(v, grad_attr, None)
        self.backward, self.ops, self.report = backward, ops, report
        self.seeded_backward, self.no_seed = seeded


def default(value_class, base_ops, data_attr="data", grad_attr="grad"):
    """The adapter of an engine spelled as the op table spells it (ours)."""
    seeded = seeded_backward(getattr(value_class, "backward", None), "backward", f"{value_class.__name__}.backward")
    return Adapter(value_class, value_class, data_attr, False, grad_attr, operator.methodcaller("backward"),
                   base_ops, {"class": value_class.__name__, "class_found": "named", "data": data_attr,
                              "grad": grad_attr, "backward": "method backward()",
                              "backward_gradient": seeded[2], "constructor": f"{value_class.__name__}(x)",
                              "ops": {}}, seeded[:2])


def detect(module, where, class_name=None, data_attr=None, grad_attr=None, backward=None, adapter_file=None,
           base_ops=None):
    """The Adapter of the engine in ``module`` (loaded from ``where``, a
    file or a module name, for messages); EngineSpecError, naming the
    option to give, where something cannot be found or is ambiguous."""
    extra = load_adapter_file(adapter_file, module) if adapter_file else {}
    class_name = class_name or extra.get("CLASS")
    data_attr, grad_attr = data_attr or extra.get("DATA"), grad_attr or extra.get("GRAD")
    if class_name:
        value_class = getattr(module, class_name, None)
        if value_class is None:
            raise EngineSpecError(f"engine spec {where}:{class_name}: {where} has no attribute {class_name!r}")
        if not isinstance(value_class, type):
            raise EngineSpecError(f"engine spec {where}:{class_name}: {where}:{class_name} is a "
                                  f"{type(value_class).__name__}, not a class")
        found = _fit(value_class, module, where, data_attr, grad_attr, backward, extra, strict=True)
        found.report["class_found"] = "named"
    else:
        found = _find_class(module, where, data_attr, grad_attr, backward, extra)
    found.ops, found.report["ops"] = _ops(found.value_class, module, base_ops, extra.get("OPS", {}))
    if adapter_file:
        found.report["adapter_file"] = {"path": str(adapter_file),
                                        "sha256": hashlib.sha256(Path(adapter_file).read_bytes()).hexdigest()}
    return found


def _find_class(module, where, data_attr, grad_attr, backward, extra):
    """The one class of the module that looks like a value class."""
    name = module.__name__
    classes = [c for c in vars(module).values() if isinstance(c, type)]
    own = [c for c in classes if c.__module__ == name] or classes  # classes defined there first
    fits, why_not = [], []
    for cls in own:
        try:
            fits.append(_fit(cls, module, where, data_attr, grad_attr, backward, extra, strict=False))
        except EngineSpecError as exc:
            why_not.append(f"{cls.__name__}: {exc}")
    if len(fits) == 1:
        fits[0].report["class_found"] = "detected (the only candidate)"
        return fits[0]
    if len(fits) > 1:
        names = [f.value_class.__name__ for f in fits]
        raise EngineSpecError(
            f"{where}: {len(fits)} classes could be the engine's values ({', '.join(names)}): choose one with "
            f"--engine {where}:{names[0]} (or :{', :'.join(names[1:])})")
    if len(why_not) == 1:  # one class: what it lacks, and the option that names it
        raise EngineSpecError(why_not[0].partition(": ")[2])
    detail = "; ".join(why_not) if why_not else "it defines no class"
    raise EngineSpecError(
        f"{where}: no class looks like an engine's values (a number attribute, a gradient attribute, a "
        f"backward): {detail}; name the class with --engine {where}:Class (and --data-attr, --grad-attr, "
        f"--backward or --adapter for what it names differently)")


def _fit(cls, module, where, data_attr, grad_attr, backward, extra, strict):
    """An Adapter for ``cls`` (ops left to the caller), or EngineSpecError
    saying what does not fit and which option names it."""
    cname = cls.__name__
    make, constructor = (extra["make"], "make(x) of the adapter file") if "make" in extra else _constructor(cls)
    try:
        value = make(PROBE_NUMBER)
    except Exception as exc:
        raise EngineSpecError(f"{constructor.replace('x', repr(PROBE_NUMBER), 1)} raised {_describe(exc)}") from exc
    if not isinstance(value, cls) and "make" not in extra:
        raise EngineSpecError(f"{cname}({PROBE_NUMBER}) is not a {cname}")
    data, data_is_method, data_how = _data_attribute(value, data_attr, cname)
    if "TANGENT" in extra:
        return _dual_number(cls, make, data, data_is_method, constructor, data_how, extra["TANGENT"])
    back, back_how = _backward(cls, module, where, backward, extra)
    grad, grad_how = _grad_attribute(value, grad_attr, data, cname, make, back)
    seeded = _seeded(cls, back, extra)
    report = {"class": cname, "data": data, "grad": grad, "backward": back_how, "backward_gradient": seeded[2],
              "constructor": constructor, "found": {"data": data_how, "grad": grad_how}}
    return Adapter(cls, make, data, data_is_method, grad, back, None, report, seeded[:2])


def _dual_number(cls, make, data, data_is_method, constructor, data_how, tangent):
    """The Adapter of a dual-number class: no gradient, no backward."""
    report = {"class": cls.__name__, "data": data, "grad": None, "tangent": tangent, "backward": FORWARD_ONLY,
              "constructor": constructor, "found": {"data": data_how, "grad": "none: forward mode only"}}
    found = Adapter(cls, make, data, data_is_method, None, None, None, report)
    found.tangent_attr = tangent
    return found


def _constructor(cls):
    """(make, how it reads): ``cls(x)``, with the extra arguments its
    signature requires (``requires_grad=True`` whenever it takes one)."""
    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return cls, f"{cls.__name__}(x)"
    kwargs = {}
    for p in parameters[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name == "requires_grad" or (p.default is p.empty and p.name in _EXTRA_ARGUMENTS):
            kwargs[p.name] = _EXTRA_ARGUMENTS[p.name]
    if not kwargs:
        return cls, f"{cls.__name__}(x)"

    def make(x):
        return cls(x, **kwargs)
    return make, f"{cls.__name__}(x, {', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def _is_number(x):
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _data_attribute(value, named, cname):
    """(name, read by calling it, how it was found)."""
    if named:
        if not hasattr(value, named):
            raise EngineSpecError(f"{cname} values have no attribute {named!r}; name the right one with "
                                  f"--data-attr (attributes: {_public_attributes(value)})")
        return named, _is_method(getattr(value, named)), "named (--data-attr)"
    candidates = list(DATA_NAMES) + [a for a in _instance_attributes(value) if a not in DATA_NAMES]
    for name in candidates:
        try:
            x = getattr(value, name)
            is_method = _is_method(x)
            if is_method and name == "item":
                x = x()
        except Exception:
            continue
        if _is_number(x) and x == PROBE_NUMBER and (not is_method or name == "item"):
            return name, is_method, "detected"
    raise EngineSpecError(f"{cname}({PROBE_NUMBER}) keeps {PROBE_NUMBER} in no attribute (looked for "
                          f"{', '.join(DATA_NAMES)} and its own attributes: {_public_attributes(value)}); "
                          f"name it with --data-attr")


def _grad_attribute(value, named, data, cname, make, backward):
    if named:
        if not hasattr(value, named):
            raise EngineSpecError(f"{cname} values have no attribute {named!r}; name the right one with "
                                  f"--grad-attr (attributes: {_public_attributes(value)})")
        return named, "named (--grad-attr)"
    # A leaf's own backward sets its gradient to 1: the attribute that holds 1.0 then.
    leaf = None
    try:
        leaf = make(PROBE_NUMBER)
        backward(leaf)
    except Exception:
        leaf = None
    if leaf is not None:
        for name in list(GRAD_NAMES) + [a for a in _instance_attributes(leaf) if a not in GRAD_NAMES]:
            if name != data and _is_number(getattr(leaf, name, None)) and getattr(leaf, name) == 1.0:
                return name, "detected (1.0 after a leaf's backward)"
    for name in GRAD_NAMES:  # a fresh value's gradient: a zero (or None, torch-style)
        x = getattr(value, name, "absent")
        if name != data and (x is None or (_is_number(x) and x == 0)):
            return name, "detected (0 on a fresh value)"
    raise EngineSpecError(f"{cname} values have no gradient attribute (looked for {', '.join(GRAD_NAMES)}; "
                          f"attributes: {_public_attributes(value)}); name it with --grad-attr")


def _backward(cls, module, where, named, extra):
    """(backward(root), how it reads)."""
    if "backward" in extra:
        return extra["backward"], "backward(root) of the adapter file"
    cname = cls.__name__
    if named:
        if callable(getattr(cls, named, None)):
            return operator.methodcaller(named), f"method {named}() (--backward)"
        function = getattr(module, named, None)
        if callable(function) and not isinstance(function, type):
            return function, f"function {named}(root) of the module (--backward)"
        raise EngineSpecError(f"--backward {named}: {cname} has no method {named}() and {where} no function "
                              f"{named}(root); {_backward_hint(cls, module)}")
    for name in BACKWARD_NAMES:
        if callable(getattr(cls, name, None)):
            return operator.methodcaller(name), f"method {name}() (detected)"
    for name in BACKWARD_NAMES:
        function = getattr(module, name, None)
        if callable(function) and not isinstance(function, type) and _takes_one(function):
            return function, f"function {name}(root) of the module (detected)"
    raise EngineSpecError(f"no backward() found: {cname} has no method and {where} no function named "
                          f"{'/'.join(BACKWARD_NAMES)}; {_backward_hint(cls, module)}")


def _seeded(cls, back, extra):
    """seeded_backward() of the backward that _backward found."""
    if isinstance(back, operator.methodcaller):  # a method, by name
        name = back.__reduce__()[1][0]
        return seeded_backward(getattr(cls, name, None), name, f"{cls.__name__}.{name}")
    label = "the adapter file's backward" if "backward" in extra else getattr(back, "__name__", "backward")
    return seeded_backward(back, None, label)


def seeded_backward(function, method_name, label):
    """(call(root, g), None, how) if ``function`` - a backward method
    (called on the root by ``method_name``) or a function of the root
    (``method_name`` None) - takes a seed (the module doc), else (None, why,
    why)."""
    parameter = _seed_parameter(function)
    if parameter is None:
        why = f"{label}{_signature(function)} takes no gradient argument"
        return None, why, f"none: {why}"
    keyword = parameter.kind != parameter.POSITIONAL_ONLY
    name = parameter.name
    if method_name is not None:
        def call(root, g):
            method = getattr(root, method_name)
            return method(**{name: g}) if keyword else method(g)
    else:
        def call(root, g):
            return function(root, **{name: g}) if keyword else function(root, g)
    return call, None, f"{label}({name}=g)" if keyword else f"{label}(g)"


def _signature(function):
    """``(self, retain_graph)``: the parameters' names only (an annotation's
    colon would end the reason where engine.py reads an unsupported reply)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return "()"
    return "(" + ", ".join(("*" if p.kind == p.VAR_POSITIONAL else "**" if p.kind == p.VAR_KEYWORD else "") + p.name
                           for p in parameters) + ")"


def _seed_parameter(function):
    """The parameter of ``function`` after its first (self, the root) that
    takes the seed, or None."""
    if not callable(function):
        return None
    try:
        parameters = list(inspect.signature(function).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    named = [p for p in parameters if p.name in SEED_NAMES and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if named:
        first = named[0]
        # positional-only: only as the first parameter after the root
        return first if first.kind != first.POSITIONAL_ONLY or first is parameters[0] else None
    if parameters and parameters[0].kind in (parameters[0].POSITIONAL_ONLY, parameters[0].POSITIONAL_OR_KEYWORD) \
            and _is_number(parameters[0].default):
        return parameters[0]
    return None


def _backward_hint(cls, module):
    methods = [n for n in dir(cls) if not n.startswith("__") and callable(getattr(cls, n, None))
               and ("back" in n.lower() or "grad" in n.lower() or "prop" in n.lower())]
    functions = [n for n, f in vars(module).items() if not n.startswith("_") and callable(f)
                 and not isinstance(f, type) and ("back" in n.lower() or "grad" in n.lower())]
    if methods:
        return f"the class has {methods[0]}(): `--backward {methods[0]}`"
    if functions:
        return f"the module has {functions[0]}(): `--backward {functions[0]}`"
    return "name the method or function with --backward NAME (or backward(root) in an --adapter file)"


def _takes_one(function):
    try:
        inspect.signature(function).bind(object())
    except TypeError:
        return False
    except ValueError:
        return True  # no signature (a builtin): assume so
    return True


def _ops(cls, module, base_ops, overrides):
    """({op name: call}, {op name: how it is called, where not as the op
    table spells it}): an adapter file's calls; for an op the table calls
    as a method the class lacks (``a.tanh()``), the module's function of
    that name (``tanh(a)``)."""
    if base_ops is None:
        raise EngineSpecError("no op table")
    changed, how = {}, {}
    unknown = []
    for name in overrides:
        try:
            base_ops[name]
        except KeyError:
            unknown.append(name)
    if unknown:
        known = sorted(base_ops.keys()) if hasattr(base_ops, "keys") else []
        raise EngineSpecError(f"--adapter: OPS names ops the op table lacks: {', '.join(sorted(unknown))}"
                              + (f"; its names: {', '.join(known)}" if known else ""))
    for name, call in overrides.items():
        changed[name] = call if call is not None else _absent(name)
        how[name] = "adapter file" if call is not None else "absent (adapter file)"
    for name in list(base_ops.keys()) if hasattr(base_ops, "keys") else []:
        if name in changed:
            continue
        methods = method_names(base_ops[name])
        if len(methods) != 1 or hasattr(cls, methods[0]):
            continue
        function = getattr(module, methods[0], None)
        if callable(function) and not isinstance(function, type):
            changed[name] = _function_call(function)
            how[name] = f"function {methods[0]}(a, ...) of the module"
    if not changed:
        return base_ops, how
    if isinstance(base_ops, dict):
        return {**base_ops, **changed}, how
    return _Overlay(base_ops, changed), how


def _function_call(function):
    def call(a, *rest):
        return function(a, *rest)
    return call


def _absent(name):
    def call(*args):
        raise AttributeError(f"the adapter file says the engine has no {name}", name=name, obj=None)
    call.absent = True
    return call


class _Overlay:
    """A live op table (the in-process engine's) with some calls replaced."""

    def __init__(self, base, changed):
        self.base, self.changed = base, changed

    def __getitem__(self, name):
        call = self.changed.get(name)
        return call if call is not None else self.base[name]


def method_names(call):
    """The attribute names an op table call looks up on its operands
    (``lambda a: a.tanh()``: ["tanh"]); [] for operators."""
    try:
        return [i.argval for i in dis.get_instructions(call) if i.opname in ("LOAD_METHOD", "LOAD_ATTR")]
    except TypeError:
        return []


def load_adapter_file(path, engine_module):
    """The names an adapter file defines (see the module docstring)."""
    file = Path(path)
    if not file.is_file():
        raise EngineSpecError(f"--adapter {path}: no such file")
    spec = importlib.util.spec_from_file_location("_gradparity_adapter_" + hashlib.sha256(
        str(file.resolve()).encode()).hexdigest()[:12], file)
    module = importlib.util.module_from_spec(spec)
    module.engine_module = engine_module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise EngineSpecError(f"--adapter {path}: cannot import it: {_describe(exc)}") from exc
    found = {name: getattr(module, name) for name in ADAPTER_FILE_NAMES if hasattr(module, name)}
    for name in ("make", "backward"):
        if name in found and not callable(found[name]):
            raise EngineSpecError(f"--adapter {path}: {name} must be a function")
    for name in ("CLASS", "DATA", "GRAD", "TANGENT"):
        if name in found and not isinstance(found[name], str):
            raise EngineSpecError(f"--adapter {path}: {name} must be a string (a name)")
    ops = found.get("OPS", {})
    if not isinstance(ops, dict):
        raise EngineSpecError(f"--adapter {path}: OPS must be a dict {{op name: call}}")
    bad = [k for k, v in ops.items() if v is not None and not callable(v)]
    if bad:
        raise EngineSpecError(f"--adapter {path}: OPS[{bad[0]!r}] is not callable (a function, or None for absent)")
    return found


def _is_method(x):
    return inspect.ismethod(x) or inspect.isbuiltin(x) or (callable(x) and not _is_number(x)
                                                           and not isinstance(x, type))


def _instance_attributes(value):
    try:
        return [a for a in vars(value) if not a.startswith("_")]
    except TypeError:
        return []


def _public_attributes(value):
    return ", ".join(a for a in dir(value) if not a.startswith("_")) or "none"


def _describe(exc):
    from .text import describe
    return describe(exc)
