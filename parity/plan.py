"""The run's spec and its plan: which cases a run has (RunSpec), which of
them a shard takes (Shard), and how they go out to be judged, in order: as
groups sharing a graph structure, packed into tasks.

The plan depends only on the RunSpec and the shard, never on the number of
workers: two runs of the same arguments have the same cases in the same order.
"""
from dataclasses import asdict, dataclass, field
import shlex
from typing import NamedTuple, Optional

from .backends.reference import REFERENCES, default_reference
from .case import DEFAULT_FAMILIES, DERIVATIVE_FAMILIES, FAMILIES

# Without --cases, each family's fixed cases (named ones, the edge table) and
# this many random ones: a mix that runs in well under a minute on 2 cores.
DEFAULT_RANDOM_CASES = {"expr": 3200, "mlp": 63, "accumulation": 200, "function": 200, "edges": 800,
                        "higher_order": 400, "forward": 400}
# The work in one task sent to a worker, in node evaluations (see cost()):
# a fraction of a second, so the workers stay balanced and Ctrl-C is not
# kept waiting; 4 times more per task ran no faster.
TASK_COST = 5_000


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides which cases a run has and what their rows say."""
    engine: str = "engine"
    families: tuple = DEFAULT_FAMILIES
    cases: Optional[int] = None       # per family; None: DEFAULT_RANDOM_CASES after the fixed ones
    family_cases: Optional[tuple] = None  # ((family, n), ...): each family's own count, before ``cases``
    seed: int = 0
    edge_rate: Optional[float] = None  # None: the generators' defaults
    max_nodes: Optional[int] = None
    ops: Optional[tuple] = None        # the expr family's op mix; None: every built-in op
    # Leaf draws per random expr structure (torch runs a structure's draws as
    # one batch); None: the generator's 16.  Other draws are other cases.
    draws_per_graph: Optional[int] = None
    # How to drive the engine (sandbox/adapter.py); None: detected.
    data_attr: Optional[str] = None
    grad_attr: Optional[str] = None
    timeout: float = 10.0
    backward: Optional[str] = None     # the backward method or module function
    adapter: Optional[str] = None      # an adapter file
    pythonpath: Optional[str] = None   # PYTHONPATH a module engine was found on (the replay commands carry it)
    # What the engine is compared with (backends/reference.py): torch, or the
    # oracle's exact answer; by default torch where it can be imported.
    reference: str = field(default_factory=default_reference)

    def __post_init__(self):
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"unknown families {unknown or '(none given)'}; known: {', '.join(FAMILIES)}")
        if self.cases is not None and self.cases < 1:
            raise ValueError(f"--cases-per-family must be at least 1, not {self.cases}")
        if self.family_cases is not None:
            counted = dict(self.family_cases)
            if set(counted) != set(self.families) or not all(type(n) is int and n >= 0 for n in counted.values()):
                raise ValueError(f"--cases: a count of at least 0 for each family of {', '.join(self.families)}, "
                                 f"not {counted}")
        if self.ops is not None and not self.ops:
            raise ValueError("--ops names no op")
        if self.draws_per_graph is not None and not (type(self.draws_per_graph) is int and self.draws_per_graph >= 1):
            raise ValueError(f"--draws-per-graph must be a whole number of at least 1, not {self.draws_per_graph!r}")
        if self.reference not in REFERENCES:
            raise ValueError(f"unknown reference {self.reference!r}; known: {', '.join(REFERENCES)}")
        # torch's double-backward and forward-AD formulas are these families' spec
        torch_only = [f for f in self.families if f in DERIVATIVE_FAMILIES]
        if self.reference == "oracle" and torch_only:
            raise ValueError(f"the {' and '.join(torch_only)} famil{'ies need' if len(torch_only) > 1 else 'y needs'} "
                             f"torch as the reference: the oracle differences its exact first derivatives, "
                             f"which is not torch's formulas for higher derivatives and tangents where an "
                             f"intermediate one is not finite (install torch, or leave "
                             f"{' and '.join(torch_only)} out)")

    def n_cases(self, family):
        if self.family_cases is not None:
            return dict(self.family_cases)[family]
        if self.cases is not None:
            return self.cases
        from .cases import n_fixed_cases
        return n_fixed_cases(family) + DEFAULT_RANDOM_CASES[family]

    def config(self):
        """The cases' config: the knobs given (build_cases keeps its defaults
        for the others), or None.  Raises ValueError for a bad knob."""
        knobs = {name: value for name, value in (("edge_rate", self.edge_rate), ("max_nodes", self.max_nodes),
                                                 ("ops", self.ops), ("draws_per_graph", self.draws_per_graph))
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
                                       ("--ops", self.ops and ",".join(self.ops), None),
                                       ("--draws-per-graph", self.draws_per_graph, None),
                                       ("--reference", self.reference, "torch")):
            if value != default:
                options += [option, str(value)]
        command = shlex.join(["parity", "replay", case_id, *options])
        return f"PYTHONPATH={shlex.quote(self.pythonpath)} {command}" if self.pythonpath else command

    def to_json(self):
        data = {**asdict(self), "families": list(self.families), "ops": self.ops and list(self.ops),
                "family_cases": self.family_cases and [list(pair) for pair in self.family_cases]}
        if self.family_cases is None:  # the sidecars of runs before it: the same arguments, the same JSON
            del data["family_cases"]
        if self.draws_per_graph is None:  # likewise
            del data["draws_per_graph"]
        if self.reference == "torch":  # likewise: a run judged by torch, as every run before the oracle reference
            del data["reference"]
        return data

    @classmethod
    def from_json(cls, data):
        ops, counts = data.get("ops"), data.get("family_cases")
        return cls(**{**data, "families": tuple(data["families"]), "ops": None if ops is None else tuple(ops),
                      "family_cases": None if counts is None else tuple(map(tuple, counts)),
                      "reference": data.get("reference", "torch")})

    def engine_options(self):
        """load_engine's options for this run's engine."""
        return dict(data_attr=self.data_attr, grad_attr=self.grad_attr, timeout=self.timeout,
                    backward=self.backward, adapter=self.adapter)


def default_mix(family):
    """A family's cases in the default run: its fixed ones and its random ones."""
    from .cases import n_fixed_cases
    return n_fixed_cases(family) + DEFAULT_RANDOM_CASES[family]


def split_cases(total, families):
    """``--cases N``: N cases in all, shared among the families in proportion
    to the default mix (largest remainders first, at least one each), so
    that N = 8,519 is the default run."""
    if total < len(families):
        raise ValueError(f"--cases {total}: at least one case per family ({len(families)} families; "
                         f"--families to run fewer)")
    weights = [default_mix(family) for family in families]
    shares = [total * w / sum(weights) for w in weights]
    counts = [max(1, int(share)) for share in shares]
    by_remainder = sorted(range(len(families)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[:max(0, total - sum(counts))]:
        counts[i] += 1
    for i in reversed(by_remainder):  # the floor of one may overshoot: take back from the largest
        if sum(counts) > total and counts[i] > 1:
            counts[i] -= 1
    return tuple(zip(families, counts))


def parse_cases(text, families):
    """``--cases``: a total ("20000", split_cases) or counts per family
    ("expr=500,mlp=20": those families, unless --families names them)."""
    if "=" not in text:
        try:
            return families, split_cases(int(text), families)
        except ValueError as exc:
            raise ValueError(str(exc) if text.strip().lstrip("-").isdigit() else
                             f"--cases {text!r}: a number (cases in all) or FAMILY=N,... (cases per family)") from None
    counts = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        family, _, n = part.partition("=")
        if not n.strip().isdigit():
            raise ValueError(f"--cases {text!r}: {part!r} is not FAMILY=N")
        counts[family.strip()] = int(n)
    return tuple(counts), tuple(counts.items())


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


def plan(spec, shard=WHOLE, skip=frozenset()):
    """This shard's cases, as groups of consecutive cases sharing a structure
    (torch evaluates each group as one batch), in case order: a generator,
    so that a run holds only the cases it is working on.

    Shards take the groups round-robin: every shard gets a similar mix of
    families and sizes, and a group is never split.  ``skip``: case ids
    done already (a resume), not built at all in a whole run (a shard's
    groups need every case's structure)."""
    from .cases import iter_cases

    skip = skip if shard == WHOLE else frozenset()
    number, group = 0, []
    for family in spec.families:
        for case in iter_cases(family, spec.seed, spec.n_cases(family), spec.config(), skip):
            if group and not (case.structure and group[-1].structure == case.structure):
                if number % shard.n == shard.k - 1:
                    yield group
                number, group = number + 1, []
            group.append(case)
    if group and number % shard.n == shard.k - 1:
        yield group


def planned_ids(spec):
    """Whether a case id is one of a whole run's: by its numbers alone."""
    counts = {f"{family}-{spec.seed}": spec.n_cases(family) for family in spec.families}

    def planned(case_id):
        family_seed, _, index = case_id.rpartition("-")
        return family_seed in counts and index.isdigit() and int(index) < counts[family_seed]
    return planned


def cost(case):
    """A case's work, roughly: nodes evaluated forward and backward."""
    return case.graph.n_nodes * case.passes * max(1, case.spec.get("steps", 0)) * case.spec.get("rebuild", 1)


def pack(groups, budget):
    """Whole groups packed into tasks of at most ``budget`` cost (a group
    costlier than that is a task of its own); a generator, as plan()."""
    for batch in batches(groups, budget):
        yield [case for group in batch for case in group]


def batches(groups, budget, alone=lambda group: False):
    """Lists of consecutive whole groups of at most ``budget`` cost in all:
    a costlier group, and one ``alone`` picks, in a list of its own."""
    batch, spent = [], 0
    for group in groups:
        group_cost = sum(map(cost, group))
        if batch and (alone(group) or alone(batch[0]) or spent + group_cost > budget):
            yield batch
            batch, spent = [], 0
        batch.append(group)
        spent += group_cost
    if batch:
        yield batch
