"""What crosses the process boundary: cases one way, results the other.

Each message is one JSON document, sent as one length-prefixed frame of a
``multiprocessing.connection.Connection`` (standard library) over a socket
pair.  JSON keeps float64 exact both ways (``repr`` digits, ``-0.0``,
``Infinity``, ``NaN``) and, unlike pickle, cannot run code in the judge.
A batch of cases sends each graph once: the cases of one structure share it.
"""
from collections import namedtuple
import json

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
        spec = case.spec if case.family == "mlp" else {}
        rows.append([index_of[key], [float(x) for x in case.leaves], case.passes, case.zero_grad_between,
                     case.family, case.index, spec])
    return {"graphs": graphs, "cases": rows}


def decode_cases(message):
    """WireCases (a Case's attributes that the engine runner reads)."""
    graphs = [WireGraph(n_leaves, tuple(Node(op, tuple(args), const) for op, args, const in nodes), tuple(outputs))
              for n_leaves, nodes, outputs in message["graphs"]]
    return [WireCase(graphs[g], leaves, passes, zero_grad, family, index, spec)
            for g, leaves, passes, zero_grad, family, index, spec in message["cases"]]
