"""Every fast path in zoo/kernels/ gives the portable Keras computation's
outputs and gradients (float32, atol 1e-5), on every backend.

Sections, one per kernel module: LSTM.
"""

import contextlib

import keras
import numpy as np
import pytest
from conftest import to_numpy

import zoo
from zoo.kernels import lstm as lstm_kernels
from zoo.layers import LSTM, Bidirectional
from zoo.runtime import backend

ATOL = 1e-5


def outputs_and_gradients(layer, inputs, mask):
    """`layer(inputs, mask=mask)` and the gradients of a fixed weighted sum of
    it with respect to the layer's trainable weights and to `inputs`."""
    weights = [to_numpy(variable) for variable in layer.trainable_variables]
    frozen = [variable.value for variable in layer.non_trainable_variables]
    mask = None if mask is None else keras.ops.convert_to_tensor(mask)

    def outputs_of(x, *weights):
        return layer.stateless_call(list(weights), frozen, x, mask=mask)[0]

    outputs = to_numpy(outputs_of(keras.ops.convert_to_tensor(inputs), *weights))
    # Fixed random weights, so that no gradient is trivially symmetric.
    output_weights = np.random.default_rng(7).normal(size=outputs.shape).astype("float32")

    def loss(x, *weights):
        return keras.ops.sum(keras.ops.multiply(outputs_of(x, *weights), output_weights))

    input_gradient, *weight_gradients = [to_numpy(g) for g in gradients_of(loss, [inputs, *weights])]
    return outputs, [*weight_gradients, input_gradient]


def gradients_of(loss, arrays):
    """Gradients of `loss(*arrays)` (a scalar) with respect to every array
    (zeros for one it does not use, as jax gives: an untied embedding's
    reverse call leaves its lookup table out).

    Keras has no portable gradient function, so this helper branches on the backend.
    """
    if backend.name() == "jax":
        import jax

        return jax.grad(lambda args: loss(*args))(list(arrays))
    if backend.name() == "tensorflow":
        import tensorflow as tf

        arrays = [tf.convert_to_tensor(a) for a in arrays]
        with tf.GradientTape() as tape:
            tape.watch(arrays)
            value = loss(*arrays)
        return tape.gradient(value, arrays, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    import torch

    arrays = [keras.ops.convert_to_tensor(np.asarray(a)).requires_grad_() for a in arrays]  # on Keras' device
    return torch.autograd.grad(loss(*arrays), arrays, allow_unused=True, materialize_grads=True)


def assert_same_outputs_and_gradients(expected_layer, actual_layer, inputs, mask):
    expected, expected_grads = outputs_and_gradients(expected_layer, inputs, mask)
    actual, actual_grads = outputs_and_gradients(actual_layer, inputs, mask)
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=0)
    assert len(actual_grads) == len(expected_grads) == len(expected_layer.trainable_variables) + 1
    for name, got, want in zip(
        [v.path for v in expected_layer.trainable_variables] + ["inputs"], actual_grads, expected_grads
    ):
        assert np.abs(want).max() > 0, f"gradient of {name} is zero: the comparison would prove nothing"
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0, err_msg=f"gradient w.r.t. {name}")


# ---------------------------------------------------------------- LSTM

STEPS, FEATURES, UNITS = 7, 5, 6
# Right padding as token batches have it (token id 0 at the end), one full row and a length-1 row.
RIGHT_PADDED = np.arange(STEPS)[None, :] < np.array([7, 3, 1, 5])[:, None]
NOT_RIGHT_PADDED = np.array([[True, False, True, True, False, True, True]] * 3 + [[False] * 3 + [True] * 4])


def lstm_inputs():
    return np.random.default_rng(0).normal(size=(4, STEPS, FEATURES)).astype("float32")


def twin_lstms(bidirectional=False, **kwargs):
    """Keras' LSTM and the zoo's, built with the same (random, non-trivial) weights."""
    portable, fused = keras.layers.LSTM(UNITS, **kwargs), LSTM(UNITS, **kwargs)
    if bidirectional:
        portable, fused = keras.layers.Bidirectional(portable), Bidirectional(fused)
    for layer in (portable, fused):
        layer.build((None, STEPS, FEATURES))
    rng = np.random.default_rng(1)
    fused.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in portable.get_weights()])
    portable.set_weights(fused.get_weights())
    return portable, fused


@pytest.mark.parametrize("mask", [RIGHT_PADDED, None], ids=["right-padded", "unmasked"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_lstm_matches_keras(mask, return_sequences, go_backwards):
    portable, fused = twin_lstms(return_sequences=return_sequences, go_backwards=go_backwards)
    assert_same_outputs_and_gradients(portable, fused, lstm_inputs(), mask)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_lstm_matches_keras(return_sequences):
    # Bidirectional makes masked steps output zeros when returning sequences.
    portable, fused = twin_lstms(bidirectional=True, return_sequences=return_sequences)
    assert_same_outputs_and_gradients(portable, fused, lstm_inputs(), RIGHT_PADDED)
    assert_same_outputs_and_gradients(portable, fused, lstm_inputs(), None)


@pytest.mark.skipif(backend.name() != "torch", reason="jax and tensorflow keep Keras' loop (zoo/kernels/lstm.py)")
@pytest.mark.parametrize("mask", [RIGHT_PADDED, None], ids=["right-padded", "unmasked"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_kernel_runs_both_directions_in_one_call(mask, return_sequences):
    portable, fused = twin_lstms(bidirectional=True, return_sequences=return_sequences)
    result = lstm_kernels.bidirectional_lstm(
        fused.forward_layer.cell, fused.backward_layer.cell, lstm_inputs(), mask, return_sequences
    )
    assert result is not None
    expected = to_numpy(portable(lstm_inputs(), mask=mask))
    np.testing.assert_allclose(to_numpy(result.detach()), expected, atol=ATOL, rtol=0)


def test_lstm_other_activations_give_keras_results():
    """torch's LSTM op hard-codes tanh and sigmoid: other activations take Keras' loop."""
    portable, fused = twin_lstms(bidirectional=True, return_sequences=True, activation="relu")
    assert_same_outputs_and_gradients(portable, fused, lstm_inputs(), RIGHT_PADDED)
    cells = fused.forward_layer.cell, fused.backward_layer.cell
    assert lstm_kernels.bidirectional_lstm(*cells, lstm_inputs(), None, True) is None


def test_bidirectional_lstm_without_a_fused_call_gives_keras_results():
    """A mask that is not right padding, an initial state and input dropout
    while training (each direction draws its own mask) take Keras' wrapper;
    dropout in inference (none applied) keeps the fused call."""
    portable, fused = twin_lstms(bidirectional=True, return_sequences=True)
    assert_same_outputs_and_gradients(portable, fused, lstm_inputs(), NOT_RIGHT_PADDED)
    state = [np.random.default_rng(i).normal(size=(4, UNITS)).astype("float32") for i in range(4)]
    np.testing.assert_allclose(
        to_numpy(fused(lstm_inputs(), initial_state=state)),
        to_numpy(portable(lstm_inputs(), initial_state=state)),
        atol=ATOL,
        rtol=0,
    )
    portable, fused = twin_lstms(bidirectional=True, return_sequences=True, dropout=0.5)
    assert fused._fused_call_applies(training=False) and not fused._fused_call_applies(training=True)
    expected = to_numpy(portable(lstm_inputs(), training=False))
    np.testing.assert_allclose(to_numpy(fused(lstm_inputs(), training=False)), expected, atol=ATOL, rtol=0)
    assert to_numpy(fused(lstm_inputs(), training=True)).shape == (4, STEPS, 2 * UNITS)


def test_lstm_keeps_previous_output_on_masked_steps_like_keras():
    portable, fused = twin_lstms(return_sequences=True, zero_output_for_mask=False)
    assert_same_outputs_and_gradients(portable, fused, lstm_inputs(), RIGHT_PADDED)


def test_lstm_other_masks_give_keras_results():
    # torch's fused op only knows right padding: there, this mask takes Keras' own loop.
    portable, fused = twin_lstms(bidirectional=True, return_sequences=True)
    assert_same_outputs_and_gradients(portable, fused, lstm_inputs(), NOT_RIGHT_PADDED)


@pytest.mark.skipif(backend.name() != "torch", reason="jax and tensorflow keep Keras' loop (zoo/kernels/lstm.py)")
@pytest.mark.parametrize("go_backwards", [False, True])
def test_lstm_kernel_takes_the_fast_path_for_right_padding(go_backwards):
    portable, fused = twin_lstms(return_sequences=True, go_backwards=go_backwards)
    state = [np.zeros((4, UNITS), "float32")] * 2
    result = lstm_kernels.lstm(fused.cell, lstm_inputs(), state, RIGHT_PADDED, True, go_backwards, False)
    assert result is not None
    expected = to_numpy(portable(lstm_inputs(), mask=RIGHT_PADDED))  # in processing order, as the kernel's
    np.testing.assert_allclose(to_numpy(result[1]), expected, atol=ATOL, rtol=0)


def test_lstm_with_dropout_matches_keras_at_inference():
    portable, fused = twin_lstms(return_sequences=True, dropout=0.3, recurrent_dropout=0.2)
    expected = to_numpy(portable(lstm_inputs(), mask=RIGHT_PADDED, training=False))
    actual = to_numpy(fused(lstm_inputs(), mask=RIGHT_PADDED, training=False))
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=0)


def test_lstm_tiny_predicts_the_same_with_the_fast_path():
    fast = zoo.load("lstm-tiny")
    portable = zoo.load("lstm-tiny")
    portable.set_weights(fast.get_weights())
    lstms = [layer for layer in portable._flatten_layers() if isinstance(layer, LSTM)]
    assert lstms
    for layer in lstms:
        layer.use_fused_kernel = False
    x, _ = fast.example_batch(batch_size=6, seed=3, length=12)
    assert (x == 0).any()  # the batch has padding, so masking is exercised
    np.testing.assert_allclose(
        fast.predict(x, verbose=0), portable.predict(x, verbose=0), atol=ATOL, rtol=0
    )


# ---------------------------------------------------------------- CNN

from zoo.architectures.cnn import CNNClassifier  # noqa: E402
from zoo.kernels import conv as conv_kernels  # noqa: E402
from zoo.layers import BatchNormalization  # noqa: E402

# 6x6 images: the stride-2 convolution pads asymmetrically ("same" on an even size).
CNN_CONFIG = dict(input_shape=[6, 6, 3], stage_filters=[4, 6], dropout=0.0, num_classes=3)


def twin_cnns():
    """A small CNN with the fast paths and the same one built portably, same weights
    (random gammas, betas and moving statistics, so that none is trivial)."""
    fast = CNNClassifier(**CNN_CONFIG)
    with conv_kernels.portable():
        portable = CNNClassifier(**CNN_CONFIG)
    rng = np.random.default_rng(2)
    weights = [
        rng.uniform(0.5, 1.5, size=w.shape).astype("float32") if "variance" in w.path
        else rng.normal(scale=0.5, size=w.shape).astype("float32")
        for w in portable.weights
    ]
    fast.set_weights(weights)
    portable.set_weights(weights)
    return fast, portable


def cnn_images(batch_size=4):
    return np.random.default_rng(0).uniform(size=(batch_size, 6, 6, 3)).astype("float32")


def model_outputs_gradients_and_state(model, images, training):
    """`model(images, training=training)`, the gradients of a fixed weighted sum of
    it with respect to the trainable weights and the images, and the
    non-trainable weights (moving statistics) after that call."""
    weights = np.random.default_rng(7).normal(size=(images.shape[0], CNN_CONFIG["num_classes"])).astype("float32")
    trainable = model.trainable_variables
    if backend.name() == "jax":
        import jax

        def loss_fn(values, x):
            non_trainable = [v.value for v in model.non_trainable_variables]
            outputs, state = model.stateless_call(values, non_trainable, x, training=training)
            return keras.ops.sum(outputs * weights), (outputs, state)

        (_, (outputs, state)), (grads, input_grad) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            [v.value for v in trainable], images
        )
        return to_numpy(outputs), [to_numpy(g) for g in [*grads, input_grad]], [to_numpy(s) for s in state]
    if backend.name() == "tensorflow":
        import tensorflow as tf

        x = tf.constant(images)
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = model(x, training=training)
            loss = tf.reduce_sum(outputs * weights)
        grads = tape.gradient(loss, [v.value for v in trainable] + [x])
    else:
        x = keras.ops.convert_to_tensor(images).requires_grad_()  # on Keras' device, as the weights
        outputs = model(x, training=training)
        (outputs * keras.ops.convert_to_tensor(weights)).sum().backward()
        grads = [v.value.grad for v in trainable] + [x.grad]
        outputs = outputs.detach()
    return to_numpy(outputs), [to_numpy(g) for g in grads], [to_numpy(v) for v in model.non_trainable_variables]


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_cnn_fast_path_matches_keras(training):
    fast, portable = twin_cnns()
    before = [to_numpy(v) for v in portable.non_trainable_variables]
    actual, actual_grads, actual_state = model_outputs_gradients_and_state(fast, cnn_images(), training)
    expected, expected_grads, expected_state = model_outputs_gradients_and_state(portable, cnn_images(), training)
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=0)
    names = [v.path for v in portable.trainable_variables] + ["images"]
    assert len(actual_grads) == len(expected_grads) == len(names)
    for name, got, want in zip(names, actual_grads, expected_grads):
        assert np.abs(want).max() > 0, f"gradient of {name} is zero: the comparison would prove nothing"
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0, err_msg=f"gradient w.r.t. {name}")
    changed = [not np.array_equal(old, new) for old, new in zip(before, expected_state)]
    assert any(changed) == training  # a training step moves the statistics, inference does not
    for variable, got, want in zip(portable.non_trainable_variables, actual_state, expected_state):
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0, err_msg=variable.path)


@pytest.mark.parametrize("axis", [1, -1])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_fused_batch_norm_matches_keras(axis, training):
    # axis=-1 has no fused torch kernel: it must take Keras' path and still agree.
    images = np.random.default_rng(3).normal(loc=2.0, size=(4, 3, 5, 5)).astype("float32")
    keras_layer = keras.layers.BatchNormalization(axis=axis, momentum=0.9)
    fused_layer = BatchNormalization(axis=axis, momentum=0.9)
    for layer in (keras_layer, fused_layer):
        layer.build(images.shape)
    rng = np.random.default_rng(4)
    fused_layer.set_weights([rng.uniform(0.5, 1.5, size=w.shape).astype("float32") for w in keras_layer.weights])
    keras_layer.set_weights(fused_layer.get_weights())
    expected = to_numpy(keras_layer(images, training=training))
    actual = to_numpy(fused_layer(images, training=training))
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=0)
    for want, got in zip(keras_layer.non_trainable_weights, fused_layer.non_trainable_weights):
        np.testing.assert_allclose(to_numpy(got), to_numpy(want), atol=ATOL, rtol=0, err_msg=want.path)


def test_fused_batch_norm_kernel_gives_biased_batch_statistics():
    images = np.random.default_rng(5).normal(size=(4, 3, 5, 5)).astype("float32")
    channels = np.ones(3, "float32")
    result = conv_kernels.fused_batch_norm(
        images, channels, 0 * channels, 0 * channels, channels, axis=1, epsilon=1e-3, training=True
    )
    if result is None:
        pytest.skip(f"no fused batch norm kernel on {backend.name()}")
    _, mean, variance = result
    np.testing.assert_allclose(to_numpy(mean), images.mean(axis=(0, 2, 3)), atol=ATOL, rtol=0)
    np.testing.assert_allclose(to_numpy(variance), images.var(axis=(0, 2, 3)), atol=ATOL, rtol=0)


def test_cnn_tiny_predicts_the_same_with_the_fast_path():
    fast = zoo.load("cnn-tiny")
    with conv_kernels.portable():
        portable = zoo.load("cnn-tiny")
    assert [w.path for w in fast.weights] == [w.path for w in portable.weights]
    portable.set_weights(fast.get_weights())
    x, _ = fast.example_batch(batch_size=4, seed=3)
    np.testing.assert_allclose(fast.predict(x, verbose=0), portable.predict(x, verbose=0), atol=ATOL, rtol=0)


# ---------------------------------------------------------------- Attention

import keras_hub  # noqa: E402

from zoo.kernels import attention  # noqa: E402
from zoo.layers.fast_attention import FastCachedMultiHeadAttention  # noqa: E402


def _attention_layers(rng, query, value):
    """A fast and a Keras attention layer (dropout 0.1) with the same random weights."""
    fast = FastCachedMultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1)
    portable = keras_hub.layers.CachedMultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1)
    for layer in (fast, portable):
        layer(query, value)
    weights = [rng.normal(scale=0.3, size=w.shape).astype("float32") for w in portable.get_weights()]
    fast.set_weights(weights)
    portable.set_weights(weights)
    return fast, portable


def _attention_case(kind, rng):
    """(query, value, mask) for padded self-attention, causal self-attention or cross-attention."""
    query = rng.normal(size=(3, 5, 8)).astype("float32")
    lengths = np.array([5, 3, 1])
    if kind == "cross":
        value = rng.normal(size=(3, 7, 8)).astype("float32")
        key_lengths = np.array([7, 2, 0])  # the last row has no key at all: Keras outputs zeros
        mask = (np.arange(7)[None, None, :] < key_lengths[:, None, None]).astype("int32")
        return query, value, np.broadcast_to(mask, (3, 5, 7))
    padding = np.arange(5)[None, None, :] < lengths[:, None, None]
    if kind == "causal":
        causal = np.tril(np.ones((5, 5), bool))[None]
        return query, query, padding & causal
    return query, query, np.broadcast_to(padding, (3, 5, 5))


@pytest.mark.parametrize("kind", ["padded", "causal", "cross"])
def test_fast_attention_matches_keras_outputs_and_gradients(kind):
    rng = np.random.default_rng(0)
    query, value, mask = _attention_case(kind, rng)
    fast, portable = _attention_layers(rng, query, value)
    output_weights = rng.normal(size=(3, 5, 8)).astype("float32")
    results = []
    for layer in (fast, portable):
        def loss(query, value, *weights, layer=layer):
            output, _ = layer.stateless_call(list(weights), state, query, value, attention_mask=mask, training=False)
            return keras.ops.sum(keras.ops.multiply(output, output_weights))

        weights = [keras.ops.convert_to_numpy(w) for w in layer.trainable_variables]
        state = [keras.ops.convert_to_numpy(w) for w in layer.non_trainable_variables]  # the dropout seed
        output, _ = layer.stateless_call(weights, state, query, value, attention_mask=mask, training=False)
        gradients = gradients_of(loss, [query, value, *weights])
        results.append([keras.ops.convert_to_numpy(a) for a in (output, *gradients)])
    assert np.abs(results[1][0]).max() > 0.1  # the case computes something
    for fast_array, portable_array in zip(*results):
        np.testing.assert_allclose(fast_array, portable_array, atol=ATOL, rtol=0)


def test_fast_attention_is_the_path_taken():
    layer = FastCachedMultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1)
    x = np.ones((1, 3, 8), "float32")
    layer(x, x)
    # Keras' own path would return the attention scores it computed; the fused one has none.
    _, scores = layer._compute_attention(*(layer._query_dense(x),) * 3, training=False)
    assert scores is None
    with attention.portable():
        _, scores = layer._compute_attention(*(layer._query_dense(x),) * 3, training=False)
    assert scores is not None


@pytest.mark.parametrize("name", ["transformer-encoder-tiny", "transformer-decoder-tiny", "transformer-tiny"])
def test_tiny_transformers_predict_the_same_without_fast_attention(name):
    model = zoo.load(name, pretrained=False)
    inputs, _ = model.example_batch(4, seed=1, length=12)
    fast = model.predict(inputs, verbose=0)
    model.predict_function = None  # traced again, now with Keras' attention
    with attention.portable():
        portable = model.predict(inputs, verbose=0)
    np.testing.assert_allclose(fast, portable, atol=ATOL, rtol=0)


def test_fast_attention_without_dropout_matches_keras_in_training():
    rng = np.random.default_rng(1)
    query, value, mask = _attention_case("cross", rng)
    fast = FastCachedMultiHeadAttention(num_heads=2, key_dim=4, dropout=0.0)
    portable = keras_hub.layers.CachedMultiHeadAttention(num_heads=2, key_dim=4, dropout=0.0)
    for layer in (fast, portable):
        layer(query, value)
    fast.set_weights(portable.get_weights())
    expected = to_numpy(portable(query, value, attention_mask=mask, training=True))
    actual = to_numpy(fast(query, value, attention_mask=mask, training=True))
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=0)


# ---------------------------------------------------------------- Projections

from zoo.kernels import projection  # noqa: E402
from zoo.layers.fast_projection import (  # noqa: E402
    FastDense, FastEinsumDense, FastReversibleEmbedding, use_fast_projections)

# Every projection a zoo transformer block makes (feed-forward, attention in and out), and a 4-D input.
PROJECTIONS = {
    "dense": lambda: (keras.layers.Dense(6, activation="gelu"), FastDense(6, activation="gelu"), (3, 5, 8)),
    "attention-in": lambda: (keras.layers.EinsumDense("abc,cde->abde", (None, 2, 4), bias_axes="de"),
                             FastEinsumDense("abc,cde->abde", (None, 2, 4), bias_axes="de"), (3, 5, 8)),
    "attention-out": lambda: (keras.layers.EinsumDense("abcd,cde->abe", (None, 8), bias_axes="e"),
                              FastEinsumDense("abcd,cde->abe", (None, 8), bias_axes="e"), (3, 5, 2, 4)),
    "dense-4d": lambda: (keras.layers.Dense(6), FastDense(6), (2, 3, 5, 8)),
    # The tied output projection of a language model (hidden states to logits), and an untied one.
    "tied-embedding": lambda: (keras.layers.ReversibleEmbedding(7, 8), FastReversibleEmbedding(7, 8), (3, 5, 8)),
    "untied-embedding": lambda: (keras.layers.ReversibleEmbedding(7, 8, tie_weights=False),
                                 FastReversibleEmbedding(7, 8, tie_weights=False), (3, 5, 8)),
}


def call_options(layer):
    """The embeddings project in their reverse call."""
    return {"reverse": True} if isinstance(layer, keras.layers.ReversibleEmbedding) else {}


@pytest.mark.parametrize("kind", PROJECTIONS)
def test_fast_projections_match_keras_outputs_and_gradients(kind):
    rng = np.random.default_rng(2)
    portable, fast, shape = PROJECTIONS[kind]()
    x = rng.normal(size=shape).astype("float32")
    options = call_options(portable)
    for layer in (portable, fast):
        layer(x, **options)
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in portable.get_weights()]
    output_weights = rng.normal(size=tuple(portable(x, **options).shape)).astype("float32")
    results = []
    for layer in (fast, portable):
        def loss(x, *weights, layer=layer):
            output, _ = layer.stateless_call(list(weights), [], x, **options)
            return keras.ops.sum(keras.ops.multiply(output, output_weights))

        output, _ = layer.stateless_call(weights, [], x, **options)
        results.append([keras.ops.convert_to_numpy(a) for a in (output, *gradients_of(loss, [x, *weights]))])
    assert np.abs(results[1][0]).max() > 0.1  # the case computes something
    for fast_array, portable_array in zip(*results):
        np.testing.assert_allclose(fast_array, portable_array, atol=ATOL, rtol=0)


@pytest.mark.skipif(backend.name() != "jax", reason="jax only: the 2-D path is jax's (the other backends keep Keras' op)")
def test_on_jax_every_projection_and_its_gradients_are_2d_matmuls():
    """The point of the fast path: jax differentiates the 2-D product into
    2-D dots, which XLA runs without transposed copies (a 3-D one contracts
    the weight gradient over two axes)."""
    import jax

    rng = np.random.default_rng(3)
    for kind, make in PROJECTIONS.items():
        _, layer, shape = make()
        x = rng.normal(size=shape).astype("float32")
        options = call_options(layer)
        layer(x, **options)
        weights = [keras.ops.convert_to_numpy(w) for w in layer.trainable_variables]

        def loss(weights, x, layer=layer, options=options):
            return keras.ops.sum(layer.stateless_call(weights, [], x, **options)[0] ** 2)

        program = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(weights, x)
        dots = [equation for equation in program.jaxpr.eqns if equation.primitive.name == "dot_general"]
        assert len(dots) == 3, kind  # forward, input gradient, weight gradient
        assert all(len(operand.aval.shape) == 2 for dot in dots for operand in dot.invars), kind
        with projection.portable():
            program = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(weights, x)
        assert any(len(operand.aval.shape) > 2 for equation in program.jaxpr.eqns
                   if equation.primitive.name == "dot_general" for operand in equation.invars), kind


# Pure parsing, but in a file that imports Keras, so it runs in the backend tiers.
@pytest.mark.parametrize("equation, axes", [
    ("abc,cde->abde", (2, 1)), ("abcd,cde->abe", (2, 2)), ("abc,cd->abd", (2, 1)), ("abcd,cdef->abef", (2, 2)),
    ("abc,dc->abd", None),        # the kernel's contracted axis is not its first
    ("abc,cd->bad", None),        # the kept axes reordered
    ("abc,bcd->acd", None),       # an axis of both operands kept in the output (a batched product)
    ("...b,bc->...c", None),      # an ellipsis: the rank is not fixed
    ("ab,bc->ac", (1, 1)),
])
def test_only_projection_equations_take_the_2d_path(equation, axes):
    assert projection.projection_axes(equation) == axes


def test_transformer_blocks_use_the_fast_projections():
    model = zoo.load("transformer-tiny", pretrained=False)
    kinds = {type(layer).__name__ for layer in model._flatten_layers(recursive=True)}
    assert {"FastDense", "FastEinsumDense"} <= kinds and "EinsumDense" not in kinds
    block = model.get_layer("encoder_block_0")
    assert type(block._feedforward_intermediate_dense) is FastDense
    assert type(block._self_attention_layer._query_dense) is FastEinsumDense
    assert use_fast_projections(block) is block


@pytest.mark.parametrize("name, options", [
    ("transformer-decoder-tiny", {}), ("transformer-tiny", {}), ("transformer-encoder-tiny", {"head": "masked-lm"}),
])
def test_language_model_heads_use_the_fast_projections(name, options):
    """The output projection over the vocabulary (the tied token embedding's
    reverse call) is a language model's largest matmul."""
    model = zoo.load(name, pretrained=False, **options)
    embeddings = [layer for layer in model._flatten_layers(recursive=True) if layer.name == "token_embedding"]
    assert embeddings and all(type(layer) is FastReversibleEmbedding for layer in embeddings)
    if options:
        assert type(model.get_layer("mlm_dense")) is FastDense


@pytest.mark.parametrize("name", ["transformer-encoder-tiny", "transformer-decoder-tiny", "transformer-tiny"])
def test_tiny_transformers_train_the_same_without_fast_projections(name):
    """One training step from the same weights, with and without the 2-D
    path: the same loss and the same weights after it (dropout off, so that
    the two steps are the same computation)."""
    model = zoo.load(name, pretrained=False, dropout=0.0)
    inputs, targets = model.example_batch(4, seed=1, length=12)
    start = model.get_weights()
    results = []
    for fast in (True, False):
        model.set_weights(start)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=model.default_loss())
        model.train_function = None  # traced again, in this context
        with contextlib.nullcontext() if fast else projection.portable():
            loss = model.train_on_batch(inputs, targets)
        results.append((loss, model.get_weights()))
    (fast_loss, fast_weights), (portable_loss, portable_weights) = results
    assert fast_loss == pytest.approx(portable_loss, rel=1e-5)
    for fast_weight, portable_weight in zip(fast_weights, portable_weights):
        np.testing.assert_allclose(fast_weight, portable_weight, atol=ATOL, rtol=0)


def test_keras_quantizes_the_fast_projections_as_its_own():
    """Keras refuses to quantize subclasses of Dense unless told not to check:
    both zoo.quantize and Keras' own model.quantize must still quantize every
    projection of a transformer block (a layer left float is silent)."""
    model = zoo.load("transformer-decoder-tiny", pretrained=False)
    projections = [layer for layer in model._flatten_layers(recursive=True)
                   if isinstance(layer, (FastDense, FastEinsumDense))]
    assert projections
    copy = zoo.quantize(model, "int8")
    assert all(layer.quantization_mode == "int8" for layer in copy._flatten_layers(recursive=True)
               if isinstance(layer, (FastDense, FastEinsumDense, FastReversibleEmbedding)))
    assert copy.get_layer("decoder_embedding").token_embedding.quantization_mode == "int8"
    model.quantize("float8")
    assert [layer.name for layer in projections if layer.quantization_mode != "float8"] == []
    created = FastDense(3)  # created fast, not switched: the mixin skips the check
    created.build((None, 4))
    created.quantize("int8")
    assert created.quantization_mode == "int8"


def test_bidirectional_builds_both_directions_inside_a_keras_load():
    """A regression (seen once in a full run): inside the object-sharing
    scope of a Keras model load, Keras' Bidirectional could be handed a
    recorded object with the wrapped layer's id as its backward layer."""
    from keras.src.saving import serialization_lib

    layer = LSTM(4, return_sequences=True)
    unrelated = LSTM(4, return_sequences=True)  # recorded under the id that `layer` now has
    with serialization_lib.ObjectSharingScope():
        serialization_lib.record_object_after_deserialization(unrelated, id(layer))
        wrapper = Bidirectional(layer)
    assert wrapper.backward_layer.go_backwards and not wrapper.forward_layer.go_backwards
    assert wrapper.backward_layer is not unrelated
