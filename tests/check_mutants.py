"""After `mutmut run`: fail unless every mutant of engine/ is killed or listed
as equivalent in tests/mutation_equivalent.md.

    python tests/check_mutants.py        # from the project root, after `mutmut run`

Reads mutmut's results (`mutmut results --all true`) and, for every mutant
that is not killed, its diff (`mutmut show NAME`). Exit status 1 when

- a mutant survived (or has no covering test) and is not listed;
- a listed mutant survived but its diff is no longer the listed one (mutmut
  numbers mutants per function: an edit renumbers them, and the name may now
  belong to another mutation);
- a mutant was not checked, or its check was interrupted or suspicious (an
  incomplete run proves nothing).

A timeout or a segfault counts as killed (the mutant made the tests hang or
crash). Listed mutants that were killed or no longer exist are reported as
stale entries, without failing. Not a pytest module (no test_ prefix).
"""
from __future__ import annotations

import argparse
from pathlib import Path
import re
import shutil
import subprocess
import sys

KILLED = {"killed", "timeout", "segfault", "caught by type check"}
SURVIVED = {"survived", "no tests"}
LIST = Path(__file__).resolve().parent / "mutation_equivalent.md"


def _mutmut():
    local = Path(sys.executable).with_name("mutmut")
    return str(local) if local.exists() else (shutil.which("mutmut") or "mutmut")


def results(mutmut):
    """{mutant name: status} from `mutmut results --all true`."""
    out = subprocess.run([mutmut, "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    statuses = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name.startswith("engine."):
            statuses[name] = status
    return statuses


def change_lines(diff_text):
    """The -/+ lines of a unified diff, without indentation (headers skipped)."""
    lines = []
    for line in diff_text.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line[:1] in "-+" and line:
            lines.append(line[0] + line[1:].strip())
    return tuple(lines)


def diff_of(mutmut, name):
    return change_lines(subprocess.run([mutmut, "show", name], capture_output=True, text=True, check=True).stdout)


def listed(path=LIST):
    """{mutant name: its recorded -/+ lines} from the equivalence list."""
    entries = {}
    name = None
    in_diff = False
    block = []
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^###\s+`([^`]+)`\s*$", line)
        if heading:
            name = heading.group(1)
            entries[name] = ()
            continue
        if line.startswith("```diff") and name is not None:
            in_diff, block = True, []
        elif line.startswith("```") and in_diff:
            in_diff = False
            entries[name] = change_lines("\n".join(block))
        elif in_diff:
            block.append(line)
    return entries


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", type=Path, default=LIST, help="the equivalence list (default: %(default)s)")
    args = parser.parse_args(argv)

    mutmut = _mutmut()
    statuses = results(mutmut)
    if not statuses:
        print("check_mutants: no mutmut results here: run `mutmut run` first (from the project root)")
        return 1
    equivalent = listed(args.list)
    by_diff = {}
    for name, lines in equivalent.items():
        by_diff.setdefault(lines, []).append(name)

    counts = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1

    problems = []
    accepted = []
    for name, status in sorted(statuses.items()):
        if status in KILLED:
            continue
        if status not in SURVIVED:
            problems.append(f"{name}: {status} (incomplete run: run `mutmut run` again)")
            continue
        lines = diff_of(mutmut, name)
        if name in equivalent and equivalent[name] == lines:
            accepted.append(name)
            continue
        shown = "\n".join(f"      {line}" for line in lines)
        if name in equivalent:
            problems.append(f"{name}: {status}, listed as equivalent for a different change; now:\n{shown}")
        else:
            same = [other for other in by_diff.get(lines, []) if other != name]
            hint = f" (the same change is listed as {', '.join(same)}: renumbered?)" if same else ""
            problems.append(f"{name}: {status}, not listed{hint}\n{shown}")

    stale = sorted(set(equivalent) - set(accepted))
    total = len(statuses)
    killed = sum(counts.get(s, 0) for s in KILLED)
    print(f"mutants: {total}; killed {killed} (timeouts {counts.get('timeout', 0)}, "
          f"segfaults {counts.get('segfault', 0)}); survived {counts.get('survived', 0)}, "
          f"no tests {counts.get('no tests', 0)}; listed equivalent {len(accepted)}")
    if stale:
        print(f"stale entries in {args.list.name} (killed, renamed or gone; re-check and remove or rename):")
        for name in stale:
            print(f"    {name}: {statuses.get(name, 'no such mutant')}")
    if problems:
        print(f"{len(problems)} mutant(s) neither killed nor listed in {args.list.name}:")
        for problem in problems:
            print(f"  {problem}")
        print("Kill each with a test in tests/test_engine_mutation_kills.py, or, if it cannot change any "
              f"value or gradient, list it with the reason in {args.list.name}.")
        return 1
    print("every surviving mutant is listed as equivalent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
