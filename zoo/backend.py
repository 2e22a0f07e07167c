"""The one place where model-side code branches on the Keras backend.

Everything else in zoo/ is written against keras.ops; what cannot be said
portably lives here behind a small function.
"""

import contextlib

import keras


def name():
    """The active Keras backend: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def inference_mode():
    """A context in which no gradient graph is recorded.

    Only torch records one eagerly; without this, generation would keep every
    step's autograd graph alive until it returned.
    """
    if name() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()
