"""The engine under test's side of the process boundary.

Everything in this package runs where the engine under test runs: in a
sandboxed worker process (worker.py, started by parity/isolation.py), or in
the harness's own process when isolation is off (``--isolation none``, for a
trusted engine).  It imports the engine, our ``engine`` package (the
Function pairs and ``engine.nn`` run on it) and the standard library, and
nothing of the judge: not torch, not mpmath, not the oracle, the
comparison, the op table's other columns or the reports.  What crosses the
boundary is plain data (JSON): cases in, numbers and error strings out.
"""
