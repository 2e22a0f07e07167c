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
        ({"num_classes": "ten"}, r"must be a whole number, got 'ten' \(text\)"),
        ({"num_classes": True}, r"must be a whole number, got True \(true/false\)"),
        ({"stage_filters": [16, "x"]}, "must be a list of whole numbers"),
        ({"residual": 1}, "must be true or false"),
        ({"dropout": None}, r"must be a number, got None \(null\)"),
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


@pytest.mark.parametrize(
    "name, override, expected",
    [
        ("dense-tiny", {"num_classes": 0}, "'num_classes' .* must be a number >= 1, got 0"),
        ("dense-tiny", {"dropout": 1.0}, r"'dropout' .* must be a number in \[0, 1\), got 1.0"),
        ("dense-tiny", {"dropout": -0.1}, r"'dropout' .* in \[0, 1\)"),
        ("dense-tiny", {"dropout": float("nan")}, "'dropout' .* must be a finite number"),
        ("dense-tiny", {"dropout": float("inf")}, "'dropout' .* must be a finite number"),
        ("dense-tiny", {"hidden_units": [32, 0]}, "'hidden_units' .* each >= 1"),
        ("cnn-tiny", {"kernel_size": 0}, "'kernel_size' .* >= 1"),
        ("cnn-tiny", {"norm_momentum": 1.5}, "'norm_momentum'"),
        ("lstm-tiny", {"vocab_size": 1}, "vocab_size must be 0 .* or >= 2"),
        ("transformer-encoder-tiny", {"num_layers": 0}, "'num_layers' .* >= 1"),
        ("transformer-decoder-tiny", {"max_length": -3}, "'max_length' .* >= 1"),
    ],
)
def test_out_of_range_values_are_invalid_config_errors(name, override, expected):
    with pytest.raises(zoo.InvalidConfigError, match=expected):
        zoo.load(name, **override)


VARIANTS = [
    ("dense-tiny", {}), ("dense-tiny", {"task": "regression", "num_targets": 3}),
    ("cnn-tiny", {}), ("cnn-tiny", {"residual": False, "blocks_per_stage": 2}),
    ("cnn-tiny", {"blocks_per_stage": 3, "kernel_size": 5}),
    ("lstm-tiny", {}), ("lstm-tiny", {"task": "language_model", "bidirectional": False, "units": [8, 16]}),
    ("lstm-tiny", {"vocab_size": 0, "num_features": 3, "task": "forecast", "bidirectional": False}),
    ("transformer-encoder-tiny", {"normalize_first": False}),
    ("transformer-decoder-tiny", {}), ("transformer-tiny", {"num_decoder_layers": 3}),
]


@pytest.mark.parametrize("name, overrides", VARIANTS)
def test_the_weight_count_from_the_config_is_the_built_models(name, overrides):
    model = zoo.load(name, **overrides)
    assert model.zoo_config.weight_count() == model.count_params()


def test_every_cards_params_follow_from_its_config():
    from zoo.architectures import config_of

    for name in zoo.list_presets():
        card = zoo.info(name)
        assert config_of(card.family, card.config).weight_count() == card.params, name


@pytest.mark.parametrize(
    "name, override",
    [
        ("dense-tiny", {"hidden_units": [10**9]}),
        ("dense-tiny", {"num_features": 10**8}),
        ("cnn-tiny", {"input_shape": [100_000, 100_000, 3]}),
        ("cnn-tiny", {"blocks_per_stage": 10**12}),  # counted without a loop over the blocks
        ("transformer-tiny", {"encoder_max_length": 10**6}),
        ("lstm-tiny", {"vocab_size": 10**10}),
    ],
)
def test_configs_too_large_for_the_machine_are_refused_before_building(name, override, monkeypatch):
    monkeypatch.setenv("ZOO_MAX_MODEL_BYTES", str(8 << 30))
    with pytest.raises(zoo.InvalidConfigError, match="more than ZOO_MAX_MODEL_BYTES allows") as caught:
        zoo.load(name, **override)
    assert "8 GiB" in str(caught.value)


def test_the_model_size_limit_is_a_setting(monkeypatch):
    monkeypatch.setenv("ZOO_MAX_MODEL_BYTES", "1000")
    with pytest.raises(zoo.InvalidConfigError, match=r"1,119 float32 weights \(4.37 KiB\), more than ZOO_MAX_MODEL_BYTES allows \(1000 bytes"):
        zoo.load("dense-tiny")
    monkeypatch.setenv("ZOO_MAX_MODEL_BYTES", "lots")
    with pytest.raises(zoo.ZooError, match="ZOO_MAX_MODEL_BYTES='lots' is not valid"):
        zoo.load("dense-tiny")
