"""Training trajectories: K steps of gradient descent through any backend.

A case with ``spec["steps"] = K > 0`` (the mlp family's training cases) is
judged on where training goes, not on one pass: the driver runs the case,
records the loss and the gradients, moves every leaf by ``p -= lr * grad``
in float64, and repeats K times.  The update happens here, the same for
every backend, so backends differ only in their forward and backward.

Result.values = [loss_0 .. loss_{K-1}] + the leaves after the K updates;
Result.grads = the gradients of the last step.

The oracle judges a trajectory with its own (TrajectoryOracle): the exact
forward and backward of every step, rounded to float64 per step, with the
same float64 updates.  Its spread, how far float64 rounding alone may move
each quantity, is built from the per-step spreads: a step's loss gets that
step's loss spread; a final leaf, the sum over steps of lr * its gradient's
spread; the final gradients, the last step's.  This is first order (it
ignores how an earlier step's rounding moves later steps beyond the leaves'
accumulated spread), which the comparison's allowance factor covers in
practice: engine and torch differ by ulps of gradient summation order.
"""
import dataclasses

from .case import Result


def is_trajectory(case):
    return case.spec.get("steps", 0) > 0


def run_trajectory(backend, case, steps=None):
    """Run ``case`` as spec["steps"] steps of gradient descent with rate
    spec["lr"].  ``steps``, a list, gets each step's case (the graph at
    that step's leaves) as it is run."""
    lr = case.spec["lr"]
    leaves = list(case.leaves)
    losses, seconds, result = [], 0.0, None
    for step in range(case.spec["steps"]):
        step_case = dataclasses.replace(case, leaves=leaves)
        if steps is not None:
            steps.append(step_case)
        result = backend.run(step_case)
        seconds += result.seconds
        if not result.ok:
            error = result.error and f"step {step}: {result.error}"
            return Result(error=error, unsupported=result.unsupported, seconds=seconds)
        losses.append(result.values[-1])
        leaves = [p - lr * g for p, g in zip(leaves, result.grads)]
    return Result(values=losses + leaves, grads=result.grads, seconds=seconds)


class TrajectoryOracle:
    """An oracle for compare.judge on trajectory cases (see the module doc)."""

    def __init__(self, oracle):
        self.oracle = oracle

    def run(self, case):
        return run_trajectory(self.oracle, case)

    def spread(self, case, trials=8, seed=0):
        recorder = _SpreadRecorder(self.oracle.run, lambda step: self.oracle.spread(step, trials=trials, seed=seed))
        run_trajectory(recorder, case)
        return _trajectory_spread(case, recorder.spreads)


def rounding_spread(torch_backend, case, steps=None):
    """TorchBackend.rounding_spread for a trajectory case: the per-step
    estimates, put together as TrajectoryOracle.spread puts the oracle's
    (compare.judge's screen on training cases).  ``steps``: the case's
    steps as torch's run_trajectory gave them, if it ran already (else
    they are run here).  The steps share one graph: their estimates are
    one batch, a tenth of the cost of one call per step."""
    if steps is None or len(steps) != case.spec["steps"]:
        steps = []
        run_trajectory(torch_backend, case, steps)
    n_values = len(case.graph.outputs) + 1
    values, grads = _trajectory_spread(case, [(estimate[:n_values], estimate[n_values:])
                                              for estimate in torch_backend.rounding_spread(steps)])
    return values + grads


def _trajectory_spread(case, step_spreads):
    """(value spreads, grad spreads) of a trajectory's Result from its
    steps' (value spreads, grad spreads): see the module doc."""
    lr = case.spec["lr"]
    loss_spread = [value_spread[-1] for value_spread, _ in step_spreads]
    leaf_spread = [lr * sum(grads) for grads in zip(*(grad_spread for _, grad_spread in step_spreads))]
    return loss_spread + leaf_spread, step_spreads[-1][1]


class _SpreadRecorder:
    """A backend that runs each step with ``run`` and records its ``spread``."""

    def __init__(self, run, spread):
        self._run, self._spread = run, spread
        self.spreads = []

    def run(self, case):
        self.spreads.append(self._spread(case))
        return self._run(case)
