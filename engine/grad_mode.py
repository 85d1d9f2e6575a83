"""no_grad: operations inside record no graph, as under torch.no_grad()."""


class _GradMode:
    # One process-wide switch, like torch's (which is per thread).
    enabled = True


def is_grad_enabled():
    return _GradMode.enabled


class no_grad:
    """Context manager (and decorator) that disables graph recording."""

    def __enter__(self):
        self._previous = _GradMode.enabled
        _GradMode.enabled = False
        return self

    def __exit__(self, *exc_info):
        _GradMode.enabled = self._previous
        return False

    def __call__(self, func):
        import functools

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with no_grad():
                return func(*args, **kwargs)

        return wrapper
