"""transformers checkpoints (GPT-2, BERT, RoBERTa, DistilBERT) converted into
zoo families, checked against transformers' own torch models built from
configs with random weights, on the active backend. Needs transformers and
torch (the reference), so these run per backend; the conversion itself reads
safetensors only."""

import json
import shutil

import numpy as np
import pytest
from checkpoint_builders import inputs_with_padding, save_checkpoint

import zoo
from zoo.errors import ChecksumError, InvalidConfigError, InvalidPresetError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

CASES = [("gpt2", "lm"), ("gpt2", "bare"), ("bert", "lm"), ("bert", "classifier"), ("roberta", "lm"),
         ("roberta", "classifier"), ("distilbert", "lm"), ("distilbert", "classifier")]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{(model type, head): (folder, torch model, tokenizer)}, built once per module."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {case: save_checkpoint(*case, root / "-".join(case), with_tokenizer=case[1] != "bare")
            for case in CASES + [("bert", "bare")]}


def reference_outputs(model, ids, mask):
    with torch.no_grad():
        output = model(input_ids=torch.tensor(ids, dtype=torch.long),
                       attention_mask=torch.tensor(mask.astype("int64")))
    if hasattr(output, "logits"):
        return output.logits.numpy()
    with torch.no_grad():
        return (output.last_hidden_state @ model.wte.weight.T).numpy()  # a bare GPT-2: its tied LM head


@pytest.mark.parametrize("case", CASES, ids=["-".join(case) for case in CASES])
def test_outputs_match_transformers(checkpoints, case):
    """On inputs holding id 0 (a real token in GPT-2's vocabulary) and padding."""
    folder, reference, _ = checkpoints[case]
    model = zoo.load(str(folder))
    ids, mask = inputs_with_padding(reference.config.vocab_size, model.zoo_config.pad_token_id)
    expected = reference_outputs(reference, ids, mask)
    actual = np.asarray(model.predict({"token_ids": ids, "padding_mask": mask}, verbose=0))
    assert actual.shape == expected.shape
    difference = np.abs(actual - expected)
    assert (difference[mask] if expected.ndim == 3 else difference).max() < TOLERANCE


def test_gpt2_outputs_do_not_treat_id_0_as_padding(checkpoints):
    folder, reference, _ = checkpoints[("gpt2", "lm")]
    model = zoo.load(str(folder))
    ids = np.array([[5, 0, 7, 0, 9]], "int32")
    expected = reference_outputs(reference, ids, np.ones(ids.shape, bool))
    np.testing.assert_allclose(model.predict(ids, verbose=0), expected, atol=TOLERANCE)


def test_gpt2_greedy_generate_matches_transformers(checkpoints):
    folder, reference, _ = checkpoints[("gpt2", "lm")]
    model = zoo.load(str(folder))
    prompt = np.array([[11, 0, 42, 7], [3, 3, 0, 250]], "int32")
    with torch.no_grad():
        expected = reference.generate(torch.tensor(prompt, dtype=torch.long), do_sample=False, max_new_tokens=10,
                                      attention_mask=torch.ones(prompt.shape, dtype=torch.long),
                                      eos_token_id=None, pad_token_id=0).numpy()
    np.testing.assert_array_equal(model.generate(prompt, max_length=14), expected)


def test_gpt2_generates_text_through_its_own_tokenizer(checkpoints):
    folder, reference, tokenizer = checkpoints[("gpt2", "lm")]
    model = zoo.load(str(folder))
    prompt = "The zoo opens"
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = reference.generate(ids, do_sample=False, max_new_tokens=6, eos_token_id=None, pad_token_id=0,
                                      attention_mask=torch.ones_like(ids))
    text = model.generate(prompt, max_length=ids.shape[1] + 6)
    assert text == tokenizer.decode(expected[0], skip_special_tokens=True)
    assert model.generate([prompt, "Le zoo"], max_length=ids.shape[1] + 6)[0] == text


@pytest.mark.parametrize("model_type", ["bert", "roberta", "distilbert", "gpt2"])
def test_the_tokenizer_gives_transformers_ids(checkpoints, model_type):
    folder, _, tokenizer = checkpoints[(model_type, "lm")]
    model = zoo.load(str(folder))
    texts = ["The zoo opens at nine.", "Der Zoo öffnet um neun. 动物园九点开门。", "Ζωολογικός κήπος 🦒"]
    assert model.tokenizer.tokenize(texts) == tokenizer(texts)["input_ids"]


def test_a_classifier_predicts_labels_from_text(checkpoints):
    folder, reference, tokenizer = checkpoints[("bert", "classifier")]
    model = zoo.load(str(folder))
    texts = ["The zoo opens at nine.", "Le zoo"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**batch).logits.numpy().argmax(axis=-1)
    np.testing.assert_array_equal(model.predict_labels(texts), expected)


def test_a_second_load_converts_nothing(checkpoints, monkeypatch):
    folder, _, _ = checkpoints[("distilbert", "lm")]
    first = zoo.load(str(folder))
    from zoo.hub import checkpoints as converters

    monkeypatch.setattr(converters, "convert", lambda *args, **kwargs: pytest.fail("converted again"))
    second = zoo.load(str(folder))
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_bare_encoder_needs_num_classes(checkpoints):
    folder, reference, _ = checkpoints[("bert", "bare")]
    with pytest.raises(InvalidConfigError, match="num_classes"):
        zoo.load(str(folder))
    model = zoo.load(str(folder), num_classes=4)
    assert model.output_shape == (None, 4)
    expected = reference.pooler.dense.weight.detach().numpy().T
    np.testing.assert_allclose(model.get_layer("pooler").get_weights()[0], expected, atol=1e-6)


def test_a_masked_lm_given_num_classes_becomes_a_classifier(checkpoints):
    folder, _, _ = checkpoints[("roberta", "lm")]
    model = zoo.load(str(folder), num_classes=2)
    assert model.task == "text-classification" and model.output_shape == (None, 2)
    assert model.zoo_config.pooling == "first" and model.zoo_config.pooler_activation == "tanh"


def test_converted_bert_fine_tunes_and_evaluates(checkpoints):
    folder, reference, _ = checkpoints[("bert", "classifier")]
    model = zoo.load(str(folder))
    rng = np.random.default_rng(0)
    ids = rng.integers(5, reference.config.vocab_size, size=(32, 10)).astype("int32")
    labels = (ids[:, 1] % 3).astype("int32")
    before = [w.copy() for w in model.get_weights()]
    zoo.finetune(model, (ids, labels), epochs=1, batch_size=8)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    report = zoo.evaluate(model, (ids, labels))
    assert 0.0 <= report.metrics["accuracy"] <= 1.0


def _copy(folder, target):
    shutil.copytree(folder, target)
    return target


def test_pickled_weights_are_refused(checkpoints, tmp_path):
    folder = _copy(checkpoints[("bert", "lm")][0], tmp_path / "pickled")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(InvalidPresetError, match="never reads.*safetensors"):
        zoo.load(str(folder))


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "t5"}, "model_type 't5'.*bert, distilbert, gpt2, roberta"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type='relative_key'.*absolute"),
    ({"hidden_act": "silu"}, "hidden_act='silu'"),
    ({"num_hidden_layers": 3}, "no tensor"),
    ({"hidden_size": 48, "num_attention_heads": 4}, "does not fit"),
    ({"architectures": ["BertForQuestionAnswering"]}, "BertForQuestionAnswering"),
    ({"problem_type": "regression"}, "problem_type='regression'"),
    ({"problem_type": "multi_label_classification"}, "single-label"),
])
def test_what_the_conversion_cannot_honour_is_refused(checkpoints, tmp_path, changes, message):
    folder = _copy(checkpoints[("bert", "lm")][0], tmp_path / "edited")
    _edit_config(folder, **changes)
    with pytest.raises(InvalidPresetError, match=message):
        zoo.load(str(folder))
    from zoo.hub import cache

    assert not [entry for entry, _ in cache.cache_entries()]  # nothing half-converted was kept


def test_tensors_the_model_would_not_use_are_refused(checkpoints, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = _copy(checkpoints[("gpt2", "lm")][0], tmp_path / "extra")
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["transformer.h.0.attn.extra_projection.weight"] = np.zeros((2, 2), "float32")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(InvalidPresetError, match="extra_projection"):
        zoo.load(str(folder))


@pytest.fixture
def hub(checkpoints, tmp_path):
    """A local stand-in for the Hugging Face hub serving the GPT-2 checkpoint
    as org/tiny-gpt2, with huggingface_hub pointed at it."""
    from hf_hub_server import HubServer, hub_environment

    shutil.copytree(checkpoints[("gpt2", "lm")][0], tmp_path / "hub" / "org" / "tiny-gpt2")
    with HubServer(tmp_path / "hub") as server, hub_environment(server, tmp_path / "hf-cache"):
        yield server


def test_hf_checkpoint_loads_then_comes_from_the_cache(checkpoints, hub, monkeypatch):
    folder, reference, _ = checkpoints[("gpt2", "lm")]
    model = zoo.load("hf://org/tiny-gpt2")
    ids = np.array([[4, 0, 9, 17]], "int32")
    np.testing.assert_allclose(model.predict(ids, verbose=0),
                               reference_outputs(reference, ids, np.ones(ids.shape, bool)), atol=TOLERANCE)
    hub.requests.clear()
    again = zoo.load("hf://org/tiny-gpt2")
    assert hub.requests == []  # nothing asked of the hub, nothing converted
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    offline = zoo.load("hf://org/tiny-gpt2")
    for a, b in zip(again.get_weights(), offline.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_hf_file_not_matching_its_published_sha256_is_refused(hub, tmp_path):
    from zoo.hub import cache

    hub.published_sha256["org/tiny-gpt2/model.safetensors"] = "0" * 64
    with pytest.raises(ChecksumError, match="model.safetensors.*publishes 0000"):
        zoo.load("hf://org/tiny-gpt2")
    assert cache.cache_entries() == []
    hf_cache = tmp_path / "hf-cache"
    assert not list(hf_cache.rglob("model.safetensors")) and not list(hf_cache.rglob("0" * 64))


def test_hf_repository_with_only_pickled_weights_is_refused(hub, tmp_path):
    from zoo.errors import DownloadError

    repository = tmp_path / "hub" / "org" / "tiny-gpt2"
    (repository / "model.safetensors").rename(repository / "pytorch_model.bin")
    with pytest.raises(DownloadError, match="pytorch_model.bin.*never unpickles"):
        zoo.load("hf://org/tiny-gpt2")


def test_a_checkpoint_card_loads_from_its_hf_source(checkpoints, tmp_path):
    """`zoo.load("gpt2")` goes through the card's hf:// source (served here
    by a local hub holding a small GPT-2 under the real repository name)."""
    from hf_hub_server import HubServer, hub_environment

    repository = zoo.info("gpt2").checkpoint["source"].removeprefix("hf://")
    shutil.copytree(checkpoints[("gpt2", "lm")][0], tmp_path / "hub" / repository)
    with HubServer(tmp_path / "hub") as server, hub_environment(server, tmp_path / "hf-cache"):
        model = zoo.load("gpt2")
        assert model.family == "transformer-decoder" and model.tokenizer is not None
        assert any(path.startswith(f"/{repository}/resolve/") for _, path in server.requests)
        assert isinstance(model.generate("The zoo", max_length=12), str)


def test_zoo_convert_writes_a_preset_folder(checkpoints, tmp_path):
    from zoo.cli.commands import main

    folder, reference, _ = checkpoints[("roberta", "lm")]
    assert main(["convert", str(folder), "--out", str(tmp_path / "converted")]) == 0
    assert (tmp_path / "converted" / "manifest.json").is_file()
    model = zoo.load(str(tmp_path / "converted"))
    ids, mask = inputs_with_padding(reference.config.vocab_size, model.zoo_config.pad_token_id)
    expected = reference_outputs(reference, ids, mask)
    actual = np.asarray(model.predict({"token_ids": ids, "padding_mask": mask}, verbose=0))
    assert np.abs(actual - expected)[mask].max() < TOLERANCE


def test_zoo_convert_refuses_a_zoo_preset(tmp_path, capsys):
    from zoo.cli.commands import main

    assert main(["convert", "dense-tiny", "--out", str(tmp_path / "out")]) != 0
    assert "not a transformers checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
