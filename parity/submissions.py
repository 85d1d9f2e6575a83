"""A class's submissions, as `parity grade` is given them: file paths
(``class/*/micrograd.py``, globs expanded here too), ``file.py:Class``, or
folders holding one engine file.  Each gets an id that names it in the
gradebook: the part of its path that differs from the others' (``alice``
for ``class/alice/micrograd.py`` beside ``class/bob/micrograd.py``).

A folder's engine file is found by reading, never running, its Python
files: the one defining a class with arithmetic operators or a
``backward`` method; among several, one named ``micrograd.py`` or
``engine.py``.  The class itself is found by the worker that loads the
file (sandbox/adapter.py), as in any run.
"""
import ast
from dataclasses import dataclass
import glob
import os
from pathlib import Path
import re

PREFERRED = ("micrograd.py", "engine.py")
_VALUE_LIKE = {"__add__", "__mul__", "backward"}


class SubmissionError(ValueError):
    """Arguments that name no submission, or name one twice."""


@dataclass(frozen=True)
class Submission:
    id: str
    engine: str   # the engine spec: path/to/file.py or path/to/file.py:Class
    path: str     # the file
    problem: str = ""  # why it cannot be graded (a folder with no engine file): graded 0 with this


def find_submissions(given):
    """The submissions named by ``given`` (command-line words), in order."""
    found = []
    for word in given:
        # file.py:Class: a class named; a Windows drive (C:...) is not one
        match = re.fullmatch(r"(.+\.py):([A-Za-z_]\w*)", word)
        pattern, class_name = (match.group(1), match.group(2)) if match else (word, None)
        paths = [pattern]
        if glob.has_magic(pattern):  # a glob's matches: folders and Python files (not a README beside them)
            paths = sorted(p for p in glob.glob(pattern) if os.path.isdir(p) or p.endswith(".py"))
        if not paths:
            raise SubmissionError(f"{word}: matches no Python file or folder")
        found += [_submission(Path(path), class_name) for path in paths]
    files = [s.path for s in found]
    repeated = sorted({f for f in files if files.count(f) > 1})
    if repeated:
        raise SubmissionError(f"{repeated[0]} is named twice: give each submission once")
    ids = _ids([Path(s.path) for s in found], [Path(s.path).is_dir() for s in found])
    return [Submission(id_, s.engine, s.path, s.problem) for id_, s in zip(ids, found)]


def _submission(path, class_name):
    if path.is_dir():
        file, problem = _engine_file(path)
        return Submission("", str(file) if file else str(path), str(file or path), problem)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file or folder")
    return Submission("", f"{path}:{class_name}" if class_name else str(path), str(path))


def _engine_file(folder):
    """(the engine file of a folder, "") or (None, why there is none)."""
    candidates = [p for p in sorted(folder.rglob("*.py"))
                  if not p.name.startswith("test_") and "__pycache__" not in p.parts and _defines_value(p)]
    if len(candidates) == 1:
        return candidates[0], ""
    preferred = [p for p in candidates if p.name in PREFERRED]
    if len(preferred) == 1:
        return preferred[0], ""
    if not candidates:
        return None, f"no Python file in {folder} defines a value class (with __add__, __mul__ or backward)"
    return None, (f"several files in {folder} define value classes ({', '.join(p.name for p in candidates)}): "
                  f"name the file, e.g. {candidates[0]}")


def _defines_value(path):
    """Whether a file defines a value-like class (read as text: a file that
    does not parse may still be the submission; its import says why)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
            if methods & _VALUE_LIKE:
                return True
    return False


def _ids(paths, is_folder):
    """Short distinct ids: each path less the folders all share, and less
    its file name where its folder names it (``alice`` for
    class/alice/micrograd.py beside class/bob/micrograd.py)."""
    parts = [p.resolve().with_suffix("").parts for p in paths]
    front = max(0, len(parts[0]) - 2) if len(parts) == 1 else 0  # one: its folder and file
    while len(parts) > 1 and all(len(p) > front + 1 for p in parts) and len({p[front] for p in parts}) == 1:
        front += 1
    rests = [p[front:] for p in parts]
    folders = [rest if folder or len(rest) == 1 else rest[:-1] for rest, folder in zip(rests, is_folder)]
    if len(set(folders)) == len(folders):
        rests = folders
    ids = [_safe("-".join(rest)) for rest in rests]
    seen = {}
    for i, id_ in enumerate(ids):  # different paths that clean to one id
        seen[id_] = seen.get(id_, 0) + 1
        if seen[id_] > 1:
            ids[i] = f"{id_}-{seen[id_]}"
    return ids


def _safe(text):
    """An id usable as a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "submission"
