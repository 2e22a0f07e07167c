"""`LSTM` and `Bidirectional`: Keras' LSTM layer and wrapper with fused sequence loops."""

import contextlib

import keras
from keras.src.backend.common import global_state

from zoo import kernels
from zoo.kernels import lstm as lstm_kernels


@keras.saving.register_keras_serializable(package="zoo")
class LSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` that runs its sequence loop in `zoo.kernels.lstm`.

    Same arguments, weights (and variable paths), masking, dropout and
    results as Keras' layer; only faster: on torch the sequence runs in
    torch's fused LSTM op (Keras steps through it from Python on a CPU).
    Configurations without a fast path (jax and tensorflow, recurrent dropout,
    a mask that is not right padding, ...) run Keras' own loop, as does an
    instance whose `use_fused_kernel` is set to False and every instance
    inside `zoo.kernels.portable()`.

    Example:
    >>> import numpy as np
    >>> layer = LSTM(4, return_sequences=True)
    >>> tuple(layer(np.ones((2, 5, 3), "float32")).shape)
    (2, 5, 4)
    """

    use_fused_kernel = True
    """Set False on an instance to run Keras' portable loop (for comparisons)."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if self.use_fused_kernel and kernels.enabled():
            result = lstm_kernels.lstm(
                self.cell,
                self._with_input_dropout(sequences, training),
                initial_state,
                mask,
                return_sequences=self.return_sequences,
                go_backwards=self.go_backwards,
                zero_output_for_mask=self.zero_output_for_mask,
            )
            if result is not None:
                return result
        return super().inner_loop(sequences, initial_state, mask=mask, training=training)

    def _with_input_dropout(self, sequences, training):
        # The cell's dropout mask is drawn once per call and shared by all steps.
        if not (training and self.cell.dropout):
            return sequences
        step_mask = keras.ops.expand_dims(self.cell.get_dropout_mask(sequences[:, 0, :]), axis=1)
        return sequences * keras.ops.broadcast_to(step_mask, keras.ops.shape(sequences))


@keras.saving.register_keras_serializable(package="zoo")
class Bidirectional(keras.layers.Bidirectional):
    """`keras.layers.Bidirectional` that runs two zoo `LSTM`s in one fused call.

    Same arguments, weights (and variable paths) and results as Keras'
    wrapper. On torch, when both directions are zoo `LSTM`s merged by
    concatenation without initial states, both run in one call of torch's
    LSTM op (`zoo.kernels.lstm.bidirectional_lstm`), as `nn.LSTM(...,
    bidirectional=True)` runs them; everything else goes to Keras' wrapper,
    which calls the two layers one after the other.

    Example:
    >>> import numpy as np
    >>> layer = Bidirectional(LSTM(4, return_sequences=True))
    >>> tuple(layer(np.ones((2, 5, 3), "float32")).shape)
    (2, 5, 8)
    """

    def __init__(self, layer, *args, **kwargs):
        with _outside_object_sharing():
            super().__init__(layer, *args, **kwargs)

    def call(self, sequences, initial_state=None, mask=None, training=None):
        if initial_state is None and self._fused_call_applies(training):
            outputs = lstm_kernels.bidirectional_lstm(
                self.forward_layer.cell, self.backward_layer.cell, sequences, mask, self.return_sequences
            )
            if outputs is not None:
                return keras.ops.cast(outputs, self.compute_dtype)
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def _fused_call_applies(self, training):
        forward, backward = self.forward_layer, self.backward_layer
        return (
            kernels.enabled()
            # Each direction draws its own input dropout mask while training.
            and not (training and (forward.cell.dropout or backward.cell.dropout))
            and self.merge_mode == "concat"
            and not (self.return_state or self.stateful)
            and all(isinstance(layer, LSTM) and layer.use_fused_kernel for layer in (forward, backward))
            and not forward.go_backwards
            and backward.go_backwards
            and forward.cell.units == backward.cell.units
        )


# Keras' names for the maps of its object-sharing scope (keras.src.saving.serialization_lib).
_SHARING_MAPS = ("shared_objects/id_to_obj_map", "shared_objects/id_to_config_map")


@contextlib.contextmanager
def _outside_object_sharing():
    """Suspend the object-sharing scope that Keras opens while it loads a
    model. Keras' Bidirectional recreates both directions by serializing the
    layer it wraps; inside that scope objects are keyed by `id()`, and an id
    that a freed object held earlier in the load can hand back the wrong layer
    (seen in a test run: a backward layer without go_backwards). The wrapper
    shares nothing with the rest of the model, so outside the scope is right.
    Private Keras state: no public API reaches it."""
    saved = [global_state.get_global_attribute(name) for name in _SHARING_MAPS]
    for name in _SHARING_MAPS:
        global_state.set_global_attribute(name, None)
    try:
        yield
    finally:
        for name, value in zip(_SHARING_MAPS, saved):
            global_state.set_global_attribute(name, value)
