"""Fused backend kernels behind the zoo's layers (one module per layer kind).

Keras layers are written once against keras.ops; some of them run several
times slower than the same architecture written natively for a backend
(tools/bench_all.py measures it). A module here gives such a layer a fast
path per backend, with the portable Keras computation as the fallback, and
is, like zoo/runtime/backend.py, a place where code may branch on the backend.
tests/test_kernels.py checks that every fast path gives the outputs and
gradients of the portable one; `portable()` turns every fast path off so that
they can compare the two.
"""

import contextlib

_enabled = True


def enabled():
    """Whether layers take their fast paths (they do unless inside `portable()`).

    Read when a model is built and when its step functions are traced, so set
    it before either.

    Example:
    >>> enabled()
    True
    """
    return _enabled


@contextlib.contextmanager
def portable():
    """Within this context, layers and models use Keras' portable computation.

    Example:
    >>> with portable():
    ...     enabled()
    False
    """
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous
