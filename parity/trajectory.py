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


def run_trajectory(backend, case):
    """Run ``case`` as spec["steps"] steps of gradient descent with rate spec["lr"]."""
    lr = case.spec["lr"]
    leaves = list(case.leaves)
    losses, seconds, result = [], 0.0, None
    for step in range(case.spec["steps"]):
        result = backend.run(dataclasses.replace(case, leaves=leaves))
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
        recorder = _SpreadRecorder(self.oracle, trials, seed)
        run_trajectory(recorder, case)
        lr = case.spec["lr"]
        loss_spread = [value_spread[-1] for value_spread, _ in recorder.spreads]
        leaf_spread = [lr * sum(grads) for grads in zip(*(grad_spread for _, grad_spread in recorder.spreads))]
        return loss_spread + leaf_spread, recorder.spreads[-1][1]


class _SpreadRecorder:
    """The oracle as a backend that also records each step's spread."""

    def __init__(self, oracle, trials, seed):
        self.oracle, self.trials, self.seed = oracle, trials, seed
        self.spreads = []

    def run(self, case):
        self.spreads.append(self.oracle.spread(case, trials=self.trials, seed=self.seed))
        return self.oracle.run(case)
