"""A forward case (parity/forward_mode.py) on the engine under test: its
``jvp(f, primals, tangents)`` (torch.func.jvp's signature), found beside its
class as grad() is (higher_order.py), with f the case's graph run on
whatever jvp passes in (the engine's dual numbers) through the op table's
engine calls.  Plain Python: no torch here.
"""
import inspect

from .higher_order import Unsupported

NO_FORWARD_MODE = ("the engine has no forward mode: no jvp(f, primals, tangents) function beside its class "
                   "(torch.func.jvp's signature)")


def jvp_function(value_class, modules):
    """The engine's jvp function, or None."""
    name = value_class.__module__
    while name:
        candidate = getattr(modules.get(name), "jvp", None)
        if inspect.isfunction(candidate) or inspect.isbuiltin(candidate):
            return candidate
        name = name.rpartition(".")[0]
    return None


def run_forward(case, jvp, evaluate):
    """(primals, tangents) of the graph's outputs and loss, as jvp returns
    them; ``evaluate(leaves)`` runs the graph, giving its outputs and loss."""
    if jvp is None:
        raise Unsupported(NO_FORWARD_MODE)
    return jvp(lambda *leaves: tuple(evaluate(leaves)), tuple(case.leaves), tuple(case.spec["tangents"]))
