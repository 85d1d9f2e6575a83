"""What crosses the process boundary: cases one way, results the other.

Each message is one JSON document, sent as one length-prefixed frame of a
``multiprocessing.connection.Connection`` (standard library) over a socket
pair; a worker's replies go back a list at a time.  Beside it, a worker
writes the number of the item it is on into an 8-byte file both processes
map (``progress_at``), which the harness reads when the worker dies or
hangs between two messages.  JSON keeps float64 exact both ways (``repr`` digits, ``-0.0``,
``Infinity``, ``NaN``) and, unlike pickle, cannot run code in the judge.
A batch of cases sends each graph once: the cases of one structure share it.
"""
from collections import namedtuple
import json
import struct

# A worker sends the replies it has at least this often (and at the end of a
# request): the harness's patience for a reply is the timeout plus this.
CHUNK_SECONDS = 0.02
# The progress file: the number of the item the worker is on (int64).
PROGRESS_BYTES = 8

# The spec keys that change how a case's backward runs, sent for every
# family (parity/cases.py's BEHAVIOURS): "gradient" (the seed of every
# backward pass) and "rebuild" (how many times the graph is built, on fresh
# leaves).  mlp, higher_order and forward cases send their whole spec.
BACKWARD_SPEC_KEYS = ("gradient", "rebuild")

Node = namedtuple("Node", "op args const")
WireCase = namedtuple("WireCase", "graph leaves passes zero_grad_between family index spec")


class WireGraph:
    __slots__ = ("n_leaves", "nodes", "outputs", "n_nodes")

    def __init__(self, n_leaves, nodes, outputs):
        self.n_leaves, self.nodes, self.outputs = n_leaves, nodes, outputs
        self.n_nodes = len(nodes)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def loads(data):
    return json.loads(data)


def encode_cases(cases):
    """The message for a batch of parity.case.Case."""
    graphs, index_of, rows = [], {}, []
    for case in cases:
        key = id(case.graph)
        if key not in index_of:
            index_of[key] = len(graphs)
            graph = case.graph
            graphs.append([graph.n_leaves, [[n.op, list(n.args), n.const] for n in graph.nodes],
                           list(graph.outputs)])
        spec = case.spec if case.family in ("mlp", "higher_order", "forward") else _backward_keys(case.spec)
        rows.append([index_of[key], [float(x) for x in case.leaves], case.passes, case.zero_grad_between,
                     case.family, case.index, spec])
    return {"graphs": graphs, "cases": rows}


def _backward_keys(spec):
    return {key: spec[key] for key in BACKWARD_SPEC_KEYS if key in spec} if spec else {}


def decode_cases(message):
    """WireCases (a Case's attributes that the engine runner reads)."""
    graphs = [WireGraph(n_leaves, tuple(Node(op, tuple(args), const) for op, args, const in nodes), tuple(outputs))
              for n_leaves, nodes, outputs in message["graphs"]]
    return [WireCase(graphs[g], leaves, passes, zero_grad, family, index, spec)
            for g, leaves, passes, zero_grad, family, index, spec in message["cases"]]


def progress_at(progress, number):
    struct.pack_into("q", progress, 0, number)


def progress_of(progress):
    return struct.unpack_from("q", progress, 0)[0]
