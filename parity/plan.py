"""The run's spec and its plan: which cases a run has (RunSpec), which of
them a shard takes (Shard), and how they go out to be judged, in order: as
groups sharing a graph structure, packed into tasks.

The plan depends only on the RunSpec and the shard, never on the number of
workers: two runs of the same arguments have the same cases in the same order.
"""
from dataclasses import asdict, dataclass
import shlex
from typing import NamedTuple, Optional

from .case import FAMILIES

# Without --cases, each family's fixed cases (named ones, the edge table) and
# this many random ones: a mix that runs in well under a minute on 2 cores.
DEFAULT_RANDOM_CASES = {"expr": 3200, "mlp": 63, "accumulation": 200, "function": 200, "edges": 800}
# The work in one task sent to a worker, in node evaluations (see cost()):
# a fraction of a second, so the workers stay balanced and Ctrl-C is not
# kept waiting; 4 times more per task ran no faster.
TASK_COST = 5_000


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides which cases a run has and what their rows say."""
    engine: str = "engine"
    families: tuple = FAMILIES
    cases: Optional[int] = None       # per family; None: DEFAULT_RANDOM_CASES after the fixed ones
    seed: int = 0
    edge_rate: Optional[float] = None  # None: the generators' defaults
    max_nodes: Optional[int] = None
    ops: Optional[tuple] = None        # the expr family's op mix; None: every built-in op
    # How to drive the engine (sandbox/adapter.py); None: detected.
    data_attr: Optional[str] = None
    grad_attr: Optional[str] = None
    timeout: float = 10.0
    backward: Optional[str] = None     # the backward method or module function
    adapter: Optional[str] = None      # an adapter file
    pythonpath: Optional[str] = None   # PYTHONPATH a module engine was found on (the replay commands carry it)

    def __post_init__(self):
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"unknown families {unknown or '(none given)'}; known: {', '.join(FAMILIES)}")
        if self.cases is not None and self.cases < 1:
            raise ValueError(f"--cases must be at least 1, not {self.cases}")
        if self.ops is not None and not self.ops:
            raise ValueError("--ops names no op")

    def n_cases(self, family):
        if self.cases is not None:
            return self.cases
        from .cases import n_fixed_cases
        return n_fixed_cases(family) + DEFAULT_RANDOM_CASES[family]

    def config(self):
        """The cases' config: the knobs given (build_cases keeps its defaults
        for the others), or None.  Raises ValueError for a bad knob."""
        knobs = {name: value for name, value in (("edge_rate", self.edge_rate), ("max_nodes", self.max_nodes),
                                                 ("ops", self.ops))
                 if value is not None}
        if not knobs:
            return None
        from .generate import ExprConfig
        ExprConfig(**knobs)  # its checks, now rather than in a worker
        return knobs

    def replay_command(self, case_id):
        """The shell command that replays one case of this run: every option
        that decides how the engine is found and driven, and its cases."""
        options = ["--engine", self.engine]
        for option, value, default in (("--data-attr", self.data_attr, None),
                                       ("--grad-attr", self.grad_attr, None),
                                       ("--backward", self.backward, None),
                                       ("--adapter", self.adapter, None),
                                       ("--timeout", self.timeout, 10.0),
                                       ("--edge-rate", self.edge_rate, None),
                                       ("--max-nodes", self.max_nodes, None),
                                       ("--ops", self.ops and ",".join(self.ops), None)):
            if value != default:
                options += [option, str(value)]
        command = shlex.join(["parity", "replay", case_id, *options])
        return f"PYTHONPATH={shlex.quote(self.pythonpath)} {command}" if self.pythonpath else command

    def to_json(self):
        return {**asdict(self), "families": list(self.families), "ops": self.ops and list(self.ops)}

    @classmethod
    def from_json(cls, data):
        ops = data.get("ops")
        return cls(**{**data, "families": tuple(data["families"]), "ops": None if ops is None else tuple(ops)})

    def engine_options(self):
        """load_engine's options for this run's engine."""
        return dict(data_attr=self.data_attr, grad_attr=self.grad_attr, timeout=self.timeout,
                    backward=self.backward, adapter=self.adapter)


class Shard(NamedTuple):
    k: int  # 1-based
    n: int

    @classmethod
    def parse(cls, text):
        try:
            k, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"shard must be K/N (e.g. 2/4), not {text!r}") from None
        if not 1 <= k <= n:
            raise ValueError(f"shard {text}: need 1 <= K <= N")
        return cls(k, n)

    def __str__(self):
        return f"{self.k}/{self.n}"


WHOLE = Shard(1, 1)


def plan(spec, shard=WHOLE):
    """This shard's cases, as groups of consecutive cases sharing a structure
    (torch evaluates each group as one batch), in case order: a generator,
    so that a run holds only the cases it is working on.

    Shards take the groups round-robin: every shard gets a similar mix of
    families and sizes, and a group is never split."""
    from .cases import iter_cases

    number, group = 0, []
    for family in spec.families:
        for case in iter_cases(family, spec.seed, spec.n_cases(family), spec.config()):
            if group and not (case.structure and group[-1].structure == case.structure):
                if number % shard.n == shard.k - 1:
                    yield group
                number, group = number + 1, []
            group.append(case)
    if group and number % shard.n == shard.k - 1:
        yield group


def cost(case):
    """A case's work, roughly: nodes evaluated forward and backward."""
    return case.graph.n_nodes * case.passes * max(1, case.spec.get("steps", 0))


def pack(groups, budget):
    """Whole groups packed into tasks of at most ``budget`` cost (a group
    costlier than that is a task of its own); a generator, as plan()."""
    task, spent = [], 0
    for group in groups:
        group_cost = sum(map(cost, group))
        if task and spent + group_cost > budget:
            yield task
            task, spent = [], 0
        task.extend(group)
        spent += group_cost
    if task:
        yield task
