"""zoo.finetune, new heads and label names, on every backend."""

import logging

import keras
import numpy as np
import pytest
from conftest import to_numpy

import zoo
from zoo.train.finetuning import make_schedule


def separable_data(count=96, features=30, seed=0):
    """Two classes split by the sign of the first feature."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, features)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def weights_by_layer(model):
    return {layer.name: [np.array(to_numpy(w)) for w in layer.weights] for layer in model.layers if layer.weights}


def assert_layers_equal(before, after, names):
    for name in names:
        for old, new in zip(before[name], after[name], strict=True):
            np.testing.assert_array_equal(new, old, err_msg=name)


def assert_layers_changed(before, after, names):
    for name in names:
        assert any(not np.array_equal(o, n) for o, n in zip(before[name], after[name])), name


@pytest.fixture
def trained_folder(tmp_path):
    """A 2-class dense preset folder with trained (non-initial) weights."""
    model = zoo.load("dense-tiny", label_names=["negative", "positive"])
    zoo.finetune(model, separable_data(), epochs=1, verbose=0)
    return zoo.save_preset(model, tmp_path / "trained")


# --- new heads and label names ---------------------------------------------


def test_new_head_keeps_every_other_weight_bit_identical(trained_folder, caplog):
    original = zoo.load(trained_folder)
    with caplog.at_level(logging.WARNING, logger="zoo"):
        model = zoo.load(trained_folder, num_classes=5)
    assert model.output_shape == (None, 5)
    before, after = weights_by_layer(original), weights_by_layer(model)
    assert set(before) == set(after)
    assert_layers_equal(before, after, [name for name in before if name != "head"])
    assert [w.shape for w in after["head"]] == [(32, 5), (5,)]
    message = caplog.text
    assert "head" in message and "(32, 2)" in message and "(32, 5)" in message
    assert "hidden_0" not in message


def test_label_names_may_be_any_iterable():
    """zoo.load reads `label_names` once: a generator is not used up by its check."""
    model = zoo.load("dense-tiny", label_names=(name for name in ["cat", "dog", "eel"]))
    assert model.label_names == ["cat", "dog", "eel"] and model.output_shape == (None, 3)


def test_label_names_travel_with_the_preset(trained_folder, tmp_path):
    model = zoo.load(trained_folder)
    assert model.label_names == ["negative", "positive"]
    x, y = separable_data(count=8, seed=1)
    predicted = model.predict_labels(x)
    expected = np.argmax(to_numpy(model(x)), axis=-1)
    assert predicted == [["negative", "positive"][i] for i in expected]

    resaved = zoo.load(zoo.save_preset(model, tmp_path / "again"))
    assert resaved.label_names == ["negative", "positive"]
    assert zoo.load(trained_folder, num_classes=3).label_names is None  # old names, old head
    renamed = zoo.load(trained_folder, label_names=["a", "b", "c"])
    assert renamed.output_shape == (None, 3) and renamed.label_names == ["a", "b", "c"]


def test_label_names_must_fit_num_classes():
    with pytest.raises(zoo.InvalidConfigError, match="num_classes=3 but 2 label_names"):
        zoo.load("dense-tiny", num_classes=3, label_names=["a", "b"])
    with pytest.raises(zoo.InvalidConfigError, match="distinct"):
        zoo.load("dense-tiny", label_names=["a", "a"])


# --- what finetune accepts ----------------------------------------------------


def data_of_kind(kind, x, y, batch_size=16):
    """The same data as numpy, tf.data, a torch DataLoader or a PyDataset (a
    kind whose framework is not installed skips the test)."""
    if kind == "numpy":
        return x, y
    if kind == "tf.data":
        tf = pytest.importorskip("tensorflow")
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    if kind == "torch":
        torch = pytest.importorskip("torch")
        dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y).long())
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return int(np.ceil(len(x) / batch_size))

        def __getitem__(self, index):
            rows = slice(index * batch_size, (index + 1) * batch_size)
            return x[rows], y[rows]

    return Batches()


@pytest.mark.parametrize("kind", ["numpy", "tf.data", "torch", "pydataset"])
def test_finetune_learns_from_every_kind_of_data(kind):
    x, y = separable_data(count=128)
    model = zoo.load("dense-tiny")
    train = data_of_kind(kind, x, y)
    validation = data_of_kind(kind, x[:64], y[:64])
    history = zoo.finetune(model, train, validation, epochs=4, learning_rate=1e-2, batch_size=16, verbose=0)
    assert isinstance(history, keras.callbacks.History)
    assert history.epoch == [0, 1, 2, 3]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert max(history.history["val_accuracy"]) > 0.8


def test_finetune_rejects_bad_input_clearly():
    model = zoo.load("dense-tiny")
    x, y = separable_data(count=10)
    with pytest.raises(zoo.InvalidConfigError, match="different numbers of samples"):
        zoo.finetune(model, (x, y[:5]), verbose=0)
    with pytest.raises(zoo.InvalidConfigError, match="schedule='step'"):
        zoo.finetune(model, (x, y), schedule="step", verbose=0)
    with pytest.raises(zoo.InvalidConfigError, match="freeze=99"):
        zoo.finetune(model, (x, y), freeze=99, verbose=0)
    with pytest.raises(zoo.InvalidConfigError, match="early_stopping needs validation"):
        zoo.finetune(model, (x, y), early_stopping=2, verbose=0)
    with pytest.raises(zoo.InvalidConfigError, match="no length.*steps_per_epoch"):
        zoo.finetune(model, ((x[i:i + 5], y[i:i + 5]) for i in (0, 5)), verbose=0)
    with pytest.raises(zoo.InvalidConfigError, match="unfreeze_at"):
        zoo.finetune(model, (x, y), unfreeze_at=1, epochs=3, verbose=0)
    decoder = zoo.load("transformer-decoder-tiny")
    with pytest.raises(zoo.InvalidConfigError, match="tied to the token embedding"):
        zoo.finetune(decoder, decoder.example_batch(), freeze="backbone", verbose=0)


# --- freezing ---------------------------------------------------------------


def test_frozen_backbone_is_unchanged_and_the_head_trains():
    model = zoo.load("transformer-encoder-tiny", num_classes=3)
    x, y = model.example_batch(batch_size=16)
    y = np.arange(16) % 3
    before = weights_by_layer(model)
    zoo.finetune(model, (x, y), epochs=1, batch_size=8, freeze="backbone", verbose=0)
    after = weights_by_layer(model)
    assert_layers_equal(before, after, [name for name in before if name != "head"])
    assert_layers_changed(before, after, ["head"])
    assert all(layer.trainable for layer in model.layers), "freezing lasts for the fine-tune only"


class WeightsAtEpochEnd(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.snapshots, self.val_losses = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.snapshots.append(weights_by_layer(self.model))
        self.val_losses.append((logs or {}).get("val_loss"))


def test_gradual_unfreezing_trains_the_first_layers_only_after_unfreeze_at():
    model = zoo.load("dense-small")
    x, y = separable_data()
    before = weights_by_layer(model)
    spy = WeightsAtEpochEnd()
    history = zoo.finetune(model, (x, y), epochs=2, freeze=1, unfreeze_at=1, callbacks=[spy], verbose=0)
    assert history.epoch == [0, 1]
    first, second = spy.snapshots
    assert_layers_equal(before, first, ["normalization", "hidden_0"])
    assert_layers_changed(before, first, ["hidden_1", "head"])
    assert_layers_changed(first, second, ["hidden_0"])


# --- schedules -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["cosine", "linear", "constant"])
def test_schedules_warm_up_then_decay(name):
    schedule = make_schedule(name, 2.0, total_steps=100, warmup_steps=10)
    values = [float(to_numpy(schedule(step))) for step in range(101)]
    np.testing.assert_allclose(values[:11], np.linspace(0, 2.0, 11), rtol=1e-6)
    decay_fraction = np.linspace(0, 1, 91)
    expected = {
        "cosine": 1.0 + np.cos(np.pi * decay_fraction),
        "linear": 2.0 * (1 - decay_fraction),
        "constant": np.full(91, 2.0),
    }[name]
    np.testing.assert_allclose(values[10:], expected, atol=1e-5)


def test_finetune_runs_its_schedule_to_the_end():
    model = zoo.load("dense-tiny")
    x, y = separable_data(count=64)
    zoo.finetune(model, (x, y), epochs=2, batch_size=16, learning_rate=0.1, warmup_steps=2, verbose=0)
    assert int(to_numpy(model.optimizer.iterations)) == 8
    assert float(to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.0, abs=1e-7)


# --- best weights, early stopping, class weights, mixed precision ---------------


def test_best_epoch_weights_are_restored_and_the_epoch_is_said(capsys):
    model = zoo.load("dense-tiny")
    x, y = separable_data(count=64)
    noisy = (x[:32], 1 - y[:32])  # validation labels flipped: val loss rises as training succeeds
    spy = WeightsAtEpochEnd()
    history = zoo.finetune(model, (x, y), noisy, epochs=4, learning_rate=3e-2, monitor="val_loss",
                           schedule="constant", callbacks=[spy], verbose=2)
    best = int(np.argmin(spy.val_losses))
    assert best < 3, "the flipped labels make a later epoch worse"
    assert_layers_equal(spy.snapshots[best], weights_by_layer(model), spy.snapshots[best])
    assert history.restored_epoch == best + 1
    assert f"restored the weights of epoch {best + 1} of 4, the best by val_loss" in capsys.readouterr().out


def test_early_stopping_stops_when_the_monitor_stalls():
    model = zoo.load("dense-tiny")
    x, y = separable_data(count=32)
    history = zoo.finetune(model, (x, y), (x, y), epochs=10, learning_rate=0.0, schedule="constant",
                           early_stopping=1, monitor="val_loss", verbose=0)
    assert history.epoch == [0, 1]  # nothing can improve at learning rate 0


def test_class_weight_pulls_predictions_towards_the_weighted_class():
    x, y = separable_data(count=128)
    predictions = {}
    for name, class_weight in (("plain", None), ("weighted", {0: 1.0, 1: 0.02})):
        keras.utils.set_random_seed(7)
        model = zoo.load("dense-tiny")
        zoo.finetune(model, (x, y), epochs=3, learning_rate=1e-2, class_weight=class_weight, verbose=0)
        predictions[name] = np.argmax(to_numpy(model(x)), axis=-1)
    assert (predictions["weighted"] == 0).sum() > (predictions["plain"] == 0).sum()


def test_mixed_precision_trains_and_leaves_float32_inference():
    model = zoo.load("transformer-encoder-tiny")
    x, y = model.example_batch(batch_size=8)
    history = zoo.finetune(model, (x, y), epochs=1, mixed_precision=True, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert to_numpy(model(x)).dtype == np.float32
    assert all(layer.compute_dtype == "float32" for layer in model.layers)


# --- failures leave the model as it was -------------------------------------------


@pytest.mark.parametrize("where", ["feature", "target"])
def test_a_nan_batch_leaves_the_model_unchanged(where):
    """A batch that arrays checks cannot see (here a PyDataset) turns the
    weights NaN. A NaN feature is the hard case: TensorFlow's CPU relu maps
    NaN to 0, so the loss stays finite while the first layer's weights do not."""
    model = zoo.load("dense-tiny", num_features=4, task="regression")
    x, _ = separable_data(count=64, features=4)
    y = x[:, :1].copy()
    (x if where == "feature" else y)[40, 0] = np.nan
    before = weights_by_layer(model)
    with pytest.raises(zoo.TrainingDivergedError, match=r"(loss became nan|became NaN).*as they were"):
        zoo.finetune(model, data_of_kind("pydataset", x, y), epochs=2, verbose=0)
    assert_layers_equal(before, weights_by_layer(model), before)


def test_a_huge_learning_rate_diverges_and_leaves_the_model_unchanged():
    """The loss path of the guard on arrays (which can no longer carry a NaN
    into training): it must keep raising, weights bit-identical."""
    model = zoo.load("dense-tiny", num_features=4, task="regression")
    x, _ = separable_data(count=64, features=4)
    before = weights_by_layer(model)
    with pytest.raises(zoo.TrainingDivergedError, match="lower learning_rate \\(was 1e\\+30\\)"):
        zoo.finetune(model, (x * 1e3, x[:, :1] * 1e30), epochs=3, learning_rate=1e30, verbose=0)
    assert_layers_equal(before, weights_by_layer(model), before)


def with_value(array, row, column, value):
    array = np.array(array)
    array[row, column] = value
    return array


BAD_ARRAYS = [
    # (preset, overrides, (x, y) maker, message)
    ("dense-tiny", {}, lambda x, y: (with_value(x, 3, 2, np.nan), y), r"train x holds 1 NaN .* rows 3"),
    ("dense-tiny", {}, lambda x, y: (with_value(x, 5, 0, np.inf), y), r"train x holds 1 NaN or infinite"),
    ("dense-tiny", {}, lambda x, y: (x, y + 1), r"train y: class ids must be in 0..1, found 2"),
    ("dense-tiny", {}, lambda x, y: (x, y - 1), r"train y: class ids must be in 0..1, found -1"),
    ("dense-tiny", {}, lambda x, y: (x, np.eye(2)[y]), r"train y look one-hot \(shape \(32, 2\)\).*argmax"),
    ("dense-tiny", {}, lambda x, y: (x, y + 0.5), r"train y must be integer class ids"),
    ("dense-tiny", {"task": "regression"}, lambda x, y: (x, with_value(x[:, :1], 0, 0, np.nan)), r"train y holds 1 NaN"),
    ("transformer-encoder-tiny", {}, lambda x, y: (with_value(x, 0, 0, 4096), y),
     r"train x: token ids must be in 0..4095 \(the vocabulary\), found 4096"),
    ("transformer-decoder-tiny", {}, lambda x, y: (x, with_value(y, 1, 1, 5000)),
     r"train y: target token ids must be in 0..4095, found 5000"),
]


@pytest.mark.parametrize("name, overrides, make, message", BAD_ARRAYS)
def test_bad_arrays_are_refused_before_training(name, overrides, make, message):
    model = zoo.load(name, **overrides)
    x, y = model.example_batch(batch_size=32)
    before = weights_by_layer(model)
    with pytest.raises(zoo.InvalidDataError, match=message):
        zoo.finetune(model, make(x, y), epochs=1, verbose=0)
    assert getattr(model, "optimizer", None) is None  # refused before compiling, let alone training
    assert_layers_equal(before, weights_by_layer(model), before)


def test_nan_validation_data_are_refused_before_training():
    model = zoo.load("dense-tiny")
    x, y = separable_data(count=32)
    with pytest.raises(zoo.InvalidDataError, match="validation x holds 1 NaN"):
        zoo.finetune(model, (x, y), (with_value(x, 1, 1, np.nan), y), epochs=1, verbose=0)
    assert getattr(model, "optimizer", None) is None


def test_an_error_in_a_callback_leaves_the_model_unchanged():
    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("boom")

    model = zoo.load("dense-tiny")
    before = weights_by_layer(model)
    with pytest.raises(RuntimeError, match="boom"):
        zoo.finetune(model, separable_data(), freeze=1, callbacks=[Boom()], verbose=0)
    assert_layers_equal(before, weights_by_layer(model), before)
    assert all(layer.trainable for layer in model.layers)
