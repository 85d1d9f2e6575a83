"""The judge checks itself before it judges.

The engine under test runs in a process of its own, but the judge's process
may have run other code first (a test suite using the pytest plugin, an
engine loaded with ``isolation="none"``).  Before a run judges anything, it
runs one known case through torch, the oracle and the comparison, from
numbers written here, and refuses to judge if any of them is bent: a patched
``torch.Tensor.tanh``, a changed mpmath precision or a replaced
``compare.judge`` shows.
"""
from .case import Case, Result
from .graph import Graph, Node

# tanh at 0.5 in float64: the value and its derivative, as torch and the
# exact answer rounded once both give them.
X, TANH, DTANH = 0.5, 0.46211715726000974, 0.7864477329659274


class JudgeCorrupted(RuntimeError):
    """The judge's own references do not give known answers."""


def check_judge(torch_backend, oracle, tolerances):
    from . import compare

    case = Case("selfcheck-0-0", "expr", 0, 0, Graph(1, (Node("tanh", (0,)),), (1,)), [X])
    problems = []
    expected = Result(values=[TANH, TANH], grads=[DTANH])
    for name, backend in ((getattr(torch_backend, "name", "torch"), torch_backend), ("the oracle", oracle)):
        got = backend.run(case)
        if (got.values, got.grads) != (expected.values, expected.grads):
            problems.append(f"{name} gives tanh({X}) = {got.values}, gradient {got.grads or got.error}; "
                            f"expected {TANH!r}, {DTANH!r}")
    torch_result = torch_backend.run(case)
    off_by_a_millionth = Result(values=[TANH, TANH], grads=[DTANH * (1 + 1e-6)])
    for engine_result, verdict in ((expected, "pass"), (off_by_a_millionth, "fail")):
        got = compare.judge(case, engine_result, torch_result, oracle, tolerances,
                            reference=getattr(torch_backend, "name", "torch")).verdict
        if got != verdict:
            problems.append(f"compare.judge calls a {'right' if verdict == 'pass' else 'wrong'} "
                            f"tanh gradient {got!r}, not {verdict!r}")
    if problems:
        raise JudgeCorrupted("the judge failed its own check (code run in this process changed torch, "
                             "mpmath or the comparison): " + "; ".join(problems))
