"""The transformer families' variants for real checkpoints (no padding id,
optional padding_mask / token_type_ids inputs, a masked-LM head), on the
active backend, without any checkpoint: models built from configs."""

import numpy as np
import pytest

import zoo
from zoo.architectures import build
from zoo.errors import InvalidDataError

SMALL = dict(vocab_size=60, hidden_dim=16, num_heads=2, intermediate_dim=32, num_layers=2, max_length=24)


@pytest.fixture(scope="module")
def padless_decoder():
    return build("transformer-decoder", {**SMALL, "pad_token_id": None, "padding_mask_input": True,
                                         "activation": "gelu_approximate", "dropout": 0.0})


@pytest.fixture(scope="module")
def bert_like():
    return build("transformer-encoder", {**SMALL, "type_vocab_size": 2, "embedding_norm": True,
                                         "normalize_first": False, "layer_norm_epsilon": 1e-12,
                                         "padding_mask_input": True, "head": "masked-lm", "dropout": 0.0})


def test_without_a_padding_id_id_0_is_a_token(padless_decoder):
    ids = np.array([[5, 0, 7, 0]], "int32")
    full = padless_decoder.predict(ids, verbose=0)
    masked = padless_decoder.predict({"token_ids": ids, "padding_mask": np.ones(ids.shape, bool)}, verbose=0)
    np.testing.assert_allclose(full, masked, atol=1e-6)
    # Each position sees the earlier ones, 0s included: changing a 0 changes later outputs.
    other = padless_decoder.predict(np.array([[5, 9, 7, 0]], "int32"), verbose=0)
    assert np.abs(other[0, 2] - full[0, 2]).max() > 1e-4


def test_a_stop_token_0_stops_only_once_generated(padless_decoder):
    """Without a padding id, the places still to generate must not read as a
    stop already reached (0 is a token like any other)."""
    prompt = np.array([[5, 0, 7], [0, 0, 9]], "int32")
    free = padless_decoder.generate(prompt, max_length=10)
    stopped = padless_decoder.generate(prompt, max_length=10, stop_token_ids=[0])
    for row_free, row_stopped in zip(free, stopped):
        generated = list(row_free[3:])
        end = generated.index(0) + 1 if 0 in generated else len(generated)
        np.testing.assert_array_equal(row_stopped[: 3 + end], row_free[: 3 + end])


def test_optional_inputs_may_be_left_out(bert_like):
    ids = np.array([[3, 8, 9, 0, 0]], "int32")
    alone = bert_like.predict(ids, verbose=0)
    completed = bert_like.predict({"token_ids": ids, "padding_mask": ids != 0,
                                   "token_type_ids": np.zeros_like(ids)}, verbose=0)
    np.testing.assert_allclose(alone, completed, atol=1e-6)
    assert alone.shape == (1, 5, 60)


def test_an_unknown_input_name_is_refused(bert_like):
    ids = np.array([[3, 8, 9]], "int32")
    with pytest.raises(InvalidDataError, match="attention_mask is the zoo's padding_mask"):
        bert_like.predict({"token_ids": ids, "attention_mask": np.ones_like(ids)}, verbose=0)
    with pytest.raises(InvalidDataError, match=r"\['extra'\]"):  # any model with several inputs
        zoo.load("transformer-tiny").predict({"encoder_token_ids": ids, "decoder_token_ids": ids, "extra": ids},
                                             verbose=0)


def test_range_errors_name_the_input(bert_like):
    ids = np.array([[3, 8, 9]], "int32")
    with pytest.raises(InvalidDataError, match=r"predict\(\) input\['token_type_ids'\]: token type ids must be in 0\.\.1"):
        bert_like.predict({"token_ids": ids, "token_type_ids": ids}, verbose=0)
    seq2seq = zoo.load("transformer-tiny")
    with pytest.raises(InvalidDataError, match=r"^predict\(\) input\['encoder_token_ids'\]"):
        seq2seq.predict({"encoder_token_ids": ids + 4096, "decoder_token_ids": ids}, verbose=0)


def test_variants_round_trip_through_a_preset_folder(bert_like, tmp_path):
    folder = zoo.save_preset(bert_like, tmp_path / "variant")
    again = zoo.load(str(folder))
    for saved, loaded in zip(bert_like.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(saved, loaded)
    ids = np.array([[3, 8, 9, 0]], "int32")
    # Not bit-equal under XLA: a model that predicted other shapes before runs
    # a shape-generic program, fused differently from the fresh model's.
    np.testing.assert_allclose(bert_like.predict(ids, verbose=0), again.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)
