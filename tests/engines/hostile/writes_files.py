"""Hostile: at import, overwrites reports/baseline.csv and leaves a file in
the working directory (relative paths, as a careless engine would)."""
import os

os.makedirs("reports", exist_ok=True)
with open(os.path.join("reports", "baseline.csv"), "w") as f:
    f.write("overwritten by the engine under test\n")
with open("engine_was_here.txt", "w") as f:
    f.write("hello\n")

from hostile_base import Value  # noqa: E402,F401
