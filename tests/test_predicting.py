"""ZooModel.predict's in-place path for arrays (zoo/runtime/predicting.py) against
Keras' own predict, on every backend: same outputs, callbacks, progress bar
and early stop; Keras' path where the in-place one does not apply."""

import keras
import numpy as np
import pytest
from conftest import TINY_PRESETS

import zoo
from zoo.errors import InvalidConfigError
from zoo.runtime import backend, predicting

ROWS, BATCH = 37, 8  # five batches, the last one ragged


def keras_predict(model, x, **options):
    return keras.Model.predict(model, x, **options)


class Recorder(keras.callbacks.Callback):
    """What predict tells its callbacks, in order; stops after `stop_after` batches."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.events, self.stop_after = [], stop_after

    def on_predict_begin(self, logs=None):
        self.events.append(("begin",))

    def on_predict_batch_begin(self, batch, logs=None):
        self.events.append(("batch_begin", batch))

    def on_predict_batch_end(self, batch, logs=None):
        rows = keras.ops.convert_to_numpy(logs["outputs"]).shape[0]
        self.events.append(("batch_end", batch, rows))
        if self.stop_after is not None and batch + 1 >= self.stop_after:
            self.model.stop_predicting = True

    def on_predict_end(self, logs=None):
        self.events.append(("end",))


@pytest.mark.parametrize("name", TINY_PRESETS)
def test_same_outputs_as_keras_predict(name):
    model = zoo.load(name)
    x, _ = model.example_batch(ROWS, seed=1)
    ours = model.predict(x, batch_size=BATCH, verbose=0)
    # Keras builds its predict step only when its own predict runs.
    assert model.predict_function is None
    expected = keras_predict(model, x, batch_size=BATCH, verbose=0)
    assert ours.shape == expected.shape and ours.dtype == expected.dtype
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)


def test_callbacks_see_what_keras_shows_them():
    model = zoo.load("transformer-decoder-tiny")
    x, _ = model.example_batch(ROWS, seed=1)
    ours, theirs = Recorder(), Recorder()
    model.predict(x, batch_size=BATCH, verbose=0, callbacks=[ours])
    keras_predict(model, x, batch_size=BATCH, verbose=0, callbacks=[theirs])
    assert ours.events == theirs.events
    assert ours.events[-2] == ("batch_end", 4, ROWS - 4 * BATCH)


def test_many_batches_per_call_as_keras_runs_many_steps_per_execution():
    """Dense models run 32 batches per call (ZooModel.default_steps_per_execution);
    callbacks see one begin and end per call, as Keras shows an execution's."""
    model = zoo.load("dense-tiny")
    x, _ = model.example_batch(ROWS, seed=1)
    ours, theirs = Recorder(), Recorder()
    outputs = model.predict(x, batch_size=1, verbose=0, callbacks=[ours])
    calls = [("batch_begin", 0), ("batch_end", 31, 32), ("batch_begin", 32), ("batch_end", 63, ROWS - 32)]
    assert ours.events == [("begin",), *calls, ("end",)]
    if model.steps_per_execution == 32:  # Keras' torch trainer runs one step per call
        keras_outputs = keras_predict(model, x, batch_size=1, verbose=0, callbacks=[theirs])
        assert ours.events == theirs.events
    else:
        keras_outputs = keras_predict(model, x, batch_size=1, verbose=0)
    np.testing.assert_allclose(outputs, keras_outputs, rtol=1e-6, atol=1e-6)
    model.compile(optimizer="adam", loss=model.default_loss(), steps_per_execution=1)
    one_per_call = Recorder()
    model.predict(x, batch_size=8, verbose=0, callbacks=[one_per_call])
    assert [event[1] for event in one_per_call.events if event[0] == "batch_end"] == [0, 1, 2, 3, 4]


def test_stop_predicting_returns_the_rows_done():
    model = zoo.load("transformer-tiny")
    x, _ = model.example_batch(ROWS, seed=1)
    ours = model.predict(x, batch_size=BATCH, verbose=0, callbacks=[Recorder(stop_after=2)])
    expected = keras_predict(model, x, batch_size=BATCH, verbose=0, callbacks=[Recorder(stop_after=2)])
    assert ours.shape[0] == expected.shape[0] == 2 * BATCH
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)


def test_progress_bar_only_when_verbose(capsys):
    model = zoo.load("lstm-tiny")
    x, _ = model.example_batch(ROWS, seed=1)
    model.predict(x, batch_size=BATCH, verbose=0)
    assert capsys.readouterr().out == ""
    model.predict(x, batch_size=BATCH, verbose=1)
    assert "5/5" in capsys.readouterr().out


def test_new_weights_are_used():
    """Compiled programs take the weights as arguments, never as constants."""
    model = zoo.load("cnn-tiny")
    x, _ = model.example_batch(ROWS, seed=1)
    before = model.predict(x, batch_size=BATCH, verbose=0)
    model.set_weights([weight * 1.5 for weight in model.get_weights()])
    after = model.predict(x, batch_size=BATCH, verbose=0)
    assert np.max(np.abs(after - before)) > 1e-3
    np.testing.assert_allclose(after, keras_predict(model, x, batch_size=BATCH, verbose=0), rtol=1e-6, atol=1e-6)


def test_switching_jit_makes_a_new_program():
    model = zoo.load("transformer-encoder-tiny", jit_compile=False)
    x, _ = model.example_batch(ROWS, seed=1)
    eager = model.predict(x, batch_size=BATCH, verbose=0)
    program = predicting.inference_function(model)
    backend.set_jit_compile(model, True)
    if backend.name() == "torch":
        # torch.compile is Keras' compiled predict step, not this path.
        assert predicting.inference_function(model) is None
        return
    assert predicting.inference_function(model) not in (None, program)
    np.testing.assert_allclose(model.predict(x, batch_size=BATCH, verbose=0), eager, rtol=1e-5, atol=1e-5)


def test_compile_makes_a_new_program():
    """As Keras' compile drops its predict step: a model switched to mixed
    precision and compiled again predicts in 16 bits, as Keras' predict does."""
    model = zoo.load("dense-tiny")
    x, _ = model.example_batch(ROWS, seed=1)
    assert model.predict(x, batch_size=BATCH, verbose=0).dtype == np.float32
    for layer in model._flatten_layers(include_self=True):
        layer.dtype_policy = "mixed_bfloat16"
    model.compile(optimizer="adam", loss=model.default_loss())
    ours = model.predict(x, batch_size=BATCH, verbose=0)
    expected = keras_predict(model, x, batch_size=BATCH, verbose=0)
    assert ours.dtype == expected.dtype != np.float32
    np.testing.assert_allclose(ours.astype("float32"), expected.astype("float32"), rtol=1e-2, atol=1e-2)


class Batches(keras.utils.PyDataset):
    def __init__(self, x):
        super().__init__()
        self.x = x

    def __len__(self):
        return int(np.ceil(len(self.x) / BATCH))

    def __getitem__(self, index):
        return self.x[index * BATCH : (index + 1) * BATCH]


def test_keras_serves_the_rest():
    model = zoo.load("transformer-encoder-tiny")
    x, _ = model.example_batch(ROWS, seed=1)
    whole = model.predict(x, batch_size=BATCH, verbose=0)
    assert predicting.in_place_call(model, x, steps=2) is None
    assert predicting.in_place_call(model, Batches(x), None) is None
    assert predicting.in_place_call(model, [x], None) is None
    assert predicting.in_place_call(model, {"a": x, "b": x[:3]}, None) is None
    assert predicting.in_place_call(model, x[:0], None) is None
    np.testing.assert_allclose(model.predict(x, batch_size=BATCH, steps=2, verbose=0), whole[: 2 * BATCH], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.predict(Batches(x), verbose=0), whole, rtol=1e-6, atol=1e-6)
    for bad in (0, -3, 2.5, "32"):
        with pytest.raises(InvalidConfigError, match="batch_size"):
            model.predict(x, batch_size=bad, verbose=0)


def distribution_scope():
    """One-device data parallelism in this process: Keras' DataParallel on jax,
    a tf.distribute strategy on TensorFlow. Torch's is DDP processes, each of
    which predicts on its own (tests/test_torch_ddp.py)."""
    if backend.name() == "jax":
        return keras.distribution.DataParallel(devices=keras.distribution.list_devices()[:1]).scope()
    if backend.name() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.OneDeviceStrategy("/cpu:0").scope()
    pytest.skip("jax and tensorflow only: torch has no in-process distribution")


def test_distributions_predict_through_keras():
    model = zoo.load("transformer-encoder-tiny")
    x, _ = model.example_batch(ROWS, seed=1)
    alone = model.predict(x, batch_size=BATCH, verbose=0)  # fills the cache of the in-place path
    with distribution_scope():
        assert predicting.in_place_call(model, x, None) is None
        distributed = model.predict(x, batch_size=BATCH, verbose=0)
    assert model.predict_function is not None  # Keras' own predict ran
    np.testing.assert_allclose(distributed, alone, rtol=1e-5, atol=1e-5)
