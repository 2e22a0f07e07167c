"""Config overrides: what load() accepts, and the errors for what it does not."""

import pytest

import zoo


def test_overrides_change_the_architecture():
    model = zoo.load("transformer-encoder-tiny", num_classes=5, num_layers=1)
    assert model.output_shape == (None, 5)
    assert model.zoo_config.num_layers == 1
    assert len([l for l in model.layers if "block" in l.name]) == 1


def test_unknown_override_names_the_allowed_keys():
    with pytest.raises(zoo.InvalidConfigError) as caught:
        zoo.load("cnn-tiny", num_layers=3)
    message = str(caught.value)
    assert "'num_layers'" in message and "'cnn'" in message
    assert "stage_filters" in message and "num_classes" in message
    assert isinstance(caught.value, ValueError)


def test_num_classes_on_a_family_without_classes_is_refused():
    with pytest.raises(zoo.InvalidConfigError, match="Unknown config key\\(s\\) 'num_classes'.*Allowed keys"):
        zoo.load("transformer-decoder-tiny", num_classes=3)


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"num_classes": "ten"}, "must be int, got 'ten'"),
        ({"num_classes": True}, "must be int, got True"),
        ({"stage_filters": [16, "x"]}, "must be a list of int"),
        ({"residual": 1}, "must be bool"),
        ({"dropout": None}, "must be float"),
    ],
)
def test_ill_typed_overrides_name_the_key_and_type(override, expected):
    with pytest.raises(zoo.InvalidConfigError, match=expected):
        zoo.load("cnn-tiny", **override)


def test_choices_and_consistency_are_checked():
    with pytest.raises(zoo.InvalidConfigError, match="'activation'.*one of 'relu', 'gelu'"):
        zoo.load("transformer-tiny", activation="swish")
    with pytest.raises(zoo.InvalidConfigError, match="divisible by num_heads"):
        zoo.load("transformer-tiny", num_heads=3)
    with pytest.raises(zoo.InvalidConfigError, match="set bidirectional=False"):
        zoo.load("lstm-tiny", task="language_model")


def test_json_lists_and_integer_floats_are_accepted():
    model = zoo.load("dense-tiny", hidden_units=[8, 4], dropout=0)
    assert model.zoo_config.hidden_units == (8, 4)
    assert model.zoo_config.dropout == 0.0 and isinstance(model.zoo_config.dropout, float)
