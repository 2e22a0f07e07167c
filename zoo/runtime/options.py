"""Checks of the runtime options users pass, importing no Keras: a bad option
is refused before anything is downloaded, built or started."""

from zoo.errors import InvalidConfigError


def check_jit_compile(jit_compile):
    """Raise `InvalidConfigError` unless `jit_compile` is "auto", True or False.

    Example:
    >>> check_jit_compile("yes")
    Traceback (most recent call last):
    ...
    zoo.errors.InvalidConfigError: jit_compile='yes': use 'auto' ...
    """
    if jit_compile is True or jit_compile is False:
        return
    if not (isinstance(jit_compile, str) and jit_compile == "auto"):
        raise InvalidConfigError(
            f"jit_compile={jit_compile!r}: use 'auto' (the fastest measured choice for this "
            "backend and device), True (XLA / jax.jit / torch.compile) or False (no compilation)."
        )
