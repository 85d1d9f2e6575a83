"""Cases and results: the data that flows between generators, backends,
comparison and reports.

A Case is plain data (JSON in and out) and can be rebuilt from
(family, seed, index) alone.  Every backend turns a Case into a Result of
the same shape, so nothing downstream knows which backend produced it.
"""
from dataclasses import dataclass, field
import json

from .graph import Graph, floats_from_json, floats_to_json

FAMILIES = ("expr", "mlp", "accumulation", "function", "edges", "higher_order", "forward")
# A run's families unless --families says otherwise: first order.  Most
# micrograd-style engines have no higher-order gradients nor forward mode,
# and hundreds of `unsupported` cases would hide their first-order verdicts.
DEFAULT_FAMILIES = FAMILIES[:5]
# Families whose Result.grads hold derivatives beyond one reverse pass
# (higher_order.n_quantities): every backend computes them case by case.
DERIVATIVE_FAMILIES = ("higher_order", "forward")


@dataclass
class Case:
    case_id: str                 # "<family>-<seed>-<index>": unique in a run, stable across runs
    family: str
    seed: int
    index: int
    graph: Graph                 # what to compute (every family compiles to a graph)
    leaves: list                 # leaf values (floats; inf, nan and -0.0 allowed)
    passes: int = 1              # backward passes over the same graph (torch: retain_graph=True)
    zero_grad_between: bool = False  # zero the leaves' grads between passes
    structure: str = ""          # cases with the same structure key share a graph (torch batches them)
    spec: dict = field(default_factory=dict)  # family extras (an MLP's sizes, a Function pair's name, ...)
    name: str = ""               # named cases: "a + a", "log at 0", ...

    def to_json(self):
        return {
            "case_id": self.case_id, "family": self.family, "seed": self.seed, "index": self.index,
            "graph": self.graph.to_json(), "leaves": floats_to_json(self.leaves),
            "passes": self.passes, "zero_grad_between": self.zero_grad_between,
            "structure": self.structure, "spec": self.spec, "name": self.name,
        }

    @classmethod
    def from_json(cls, data):
        data = dict(data)
        data["graph"] = Graph.from_json(data["graph"])
        data["leaves"] = floats_from_json(data["leaves"])
        return cls(**data)

    def dumps(self):
        return json.dumps(self.to_json())


@dataclass
class Result:
    """What one backend computed for one case.

    ``values``: each output of the graph, then the loss (their sum).
    ``grads``: d loss / d leaf for every leaf, after all backward passes.
    A backend that could not run sets ``error`` (it raised, timed out, returned
    a complex number ...) or ``unsupported`` (the engine lacks an op the case
    needs; the names of the missing ops).
    """
    values: list = field(default_factory=list)
    grads: list = field(default_factory=list)
    error: str = None
    unsupported: str = None
    seconds: float = 0.0

    @property
    def ok(self):
        return self.error is None and self.unsupported is None
