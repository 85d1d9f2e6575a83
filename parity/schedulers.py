"""`--shard auto`: a run's shard read from the environment its scheduler
sets, so that a job array or a CI matrix runs `parity run --shard auto`
and needs no shell arithmetic.

Looked for in this order: the variable set on purpose first, then the
innermost scheduler (a Slurm array submitted from a GitLab job inherits
the job's CI_NODE_* variables):

  PARITY_SHARD=K/N                       any scheduler (a GitHub Actions matrix sets it)
  SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT
                                         a Slurm job array: K = ID - MIN + 1, N = COUNT
  CI_NODE_INDEX, CI_NODE_TOTAL           GitLab's parallel: (K = INDEX, 1-based; N = TOTAL)

A variable set to the empty string counts as unset, as in a shell.
"""
from .plan import Shard

LOOKED_FOR = ("PARITY_SHARD (K/N), SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT "
              "(a Slurm job array), CI_NODE_INDEX with CI_NODE_TOTAL (GitLab's parallel:)")


def shard_from_environment(environ):
    """(Shard, where it was found, in words); ValueError when no scheduler's
    variables are set, or they do not make a shard."""
    for reader in (_parity_shard, _slurm_array, _gitlab_parallel):
        found = reader(environ)
        if found is not None:
            return found
    raise ValueError(f"--shard auto: no shard in the environment; looked for {LOOKED_FOR}. Set one, "
                     f"or give --shard K/N")


def _parity_shard(environ):
    text = environ.get("PARITY_SHARD")
    if not text:
        return None
    try:
        return Shard.parse(text), f"PARITY_SHARD={text}"
    except ValueError as exc:
        raise ValueError(f"--shard auto: PARITY_SHARD: {exc}") from None


def _slurm_array(environ):
    if not environ.get("SLURM_ARRAY_TASK_ID"):
        return None
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT")
    task, low, count = _integers(environ, names)
    # --array=1-16:2 or --array=1,3,5 leaves gaps: task IDs would not map
    # onto 1..COUNT, and two tasks could take one shard.
    if environ.get("SLURM_ARRAY_TASK_MAX"):
        high, = _integers(environ, ("SLURM_ARRAY_TASK_MAX",))
        if count != high - low + 1:
            raise ValueError(f"--shard auto: the Slurm job array has gaps or a step (SLURM_ARRAY_TASK_MIN={low}, "
                             f"SLURM_ARRAY_TASK_MAX={high}, SLURM_ARRAY_TASK_COUNT={count}): submit consecutive "
                             f"indices, e.g. --array=1-{count}")
    return _shard(task - low + 1, count, f"the Slurm job array ({_shown(environ, names)})")


def _gitlab_parallel(environ):
    if not environ.get("CI_NODE_INDEX"):
        return None
    names = ("CI_NODE_INDEX", "CI_NODE_TOTAL")
    index, total = _integers(environ, names)
    return _shard(index, total, f"GitLab's parallel: ({_shown(environ, names)})")


def _integers(environ, names):
    values = []
    for name in names:
        text = environ.get(name)
        if not text:
            raise ValueError(f"--shard auto: {names[0]} is set but {name} is not")
        try:
            values.append(int(text))
        except ValueError:
            raise ValueError(f"--shard auto: {name}={text!r} is not a whole number") from None
    return values


def _shown(environ, names):
    return ", ".join(f"{name}={environ[name]}" for name in names)


def _shard(k, n, where):
    if not 1 <= k <= n:
        raise ValueError(f"--shard auto: {where} makes shard {k}/{n}: need 1 <= K <= N")
    return Shard(k, n), where
