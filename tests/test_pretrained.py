"""The shipped pretrained presets: their published figures hold on this backend,
their outputs match the reference, and their files are what the cards pin."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from zoo import registry
from zoo.data import datasets
from zoo.eval import published
from zoo.hub import folder_format, resolving

PRETRAINED = zoo.list_presets(pretrained=True, checkpoint=False)
PRESETS_DIR = registry.builtin_cards_folder()
ROOT = Path(__file__).resolve().parent.parent
MODEL_CARD_SECTIONS = ("## Intended use", "## Limits", "## Data", "## Training",
                       "## Metrics", "## Cross-backend parity", "## License")


def test_every_family_has_a_pretrained_preset_and_transformer_small_is_one():
    families = {registry.info(name).family for name in PRETRAINED}
    assert families == {"dense", "cnn", "lstm", "transformer-encoder", "transformer-decoder", "transformer"}
    assert "transformer-small" in PRETRAINED


def test_bundled_weights_stay_under_50_megabytes():
    total = sum(path.stat().st_size for name in PRETRAINED
                for path in (PRESETS_DIR / registry.info(name).weights["folder"]).rglob("*") if path.is_file())
    assert total < 50e6


@pytest.mark.parametrize("name", PRETRAINED)
def test_outputs_match_the_reference_on_this_backend(name):
    folder = resolving.resolve_builtin(registry.info(name))  # verifies every file against the card's pin
    assert published.check_parity(zoo.load(name), folder) <= published.PARITY_TOLERANCE


@pytest.mark.parametrize("name", PRETRAINED)
def test_published_metrics_hold_on_this_backend(name):
    model = zoo.load(name)
    assert published.data_changed(model) is None  # the same examples as at training time
    rows = published.reproduce(model)
    assert [row.metric for row in rows] == list(published.HEADLINE_METRICS[model.task])
    for row in rows:
        assert row.within_tolerance, f"{name} {row.metric}: published {row.published}, now {row.measured}"


@pytest.mark.parametrize("name", PRETRAINED)
def test_card_metadata_and_model_card_agree(name):
    card = registry.info(name)
    folder = PRESETS_DIR / card.weights["folder"]
    metadata = folder_format.read_metadata(folder)
    assert card.metrics["test"] == metadata["metrics"]["test"]
    dataset = datasets.load_dataset(metadata["dataset"]["name"])
    assert metadata["dataset"]["fingerprints"]["train"] == dataset.fingerprint("train")
    model_card = (folder / "README.md").read_text()
    for section in MODEL_CARD_SECTIONS:
        assert section in model_card
    assert metadata["dataset"]["fingerprints"]["test"] in model_card


@pytest.mark.parametrize("name", PRETRAINED)
def test_card_describes_the_built_model(name):
    sys.path.insert(0, str(ROOT / "tools"))
    from update_cards import derived_fields

    card = registry.info(name).to_dict()
    fields = derived_fields(zoo.load(name))
    assert {key: card[key] for key in fields} == fields


@pytest.mark.parametrize("name", PRETRAINED)
def test_each_preset_beats_its_trivial_baseline_clearly(name):
    metadata = folder_format.read_metadata(PRESETS_DIR / registry.info(name).weights["folder"])
    for metric, value in metadata["metrics"]["test"].items():
        base = metadata["baseline"]["metrics"][metric]
        better = base - value if metric in published.LOWER_IS_BETTER else value - base
        assert better > 0.2 * abs(base) + 0.05, f"{name} {metric}: {value} vs baseline {base}"


def test_results_table_covers_every_preset_and_backend():
    with open(PRESETS_DIR / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    for name in PRETRAINED:
        parity = {row["backend"]: float(row["value"]) for row in rows
                  if row["preset"] == name and row["metric"] == "parity_max_abs_diff"}
        assert set(parity) == {"tensorflow", "jax", "torch"} and max(parity.values()) <= 1e-4


def test_transformer_small_rewrites_dates_out_of_the_box():
    model = zoo.load("transformer-small")
    assert model.generate(["5. März 2021", "vendredi 14 juillet 1989"]) == ["2021-03-05", "1989-07-14"]


def test_the_classifiers_name_their_classes():
    model = zoo.load("cnn-small.digits")
    test = datasets.load_dataset("digits").splits["test"]
    predicted = model.predict_labels(test.inputs[:20])
    assert np.mean(np.array(predicted) == np.array([str(label) for label in test.targets[:20]])) > 0.8


def test_zoo_eval_prints_published_beside_recomputed(capsys):
    from zoo.cli import commands

    assert commands.main(["eval", "dense-small.breast-cancer"]) == 0
    out = capsys.readouterr().out
    published_accuracy = registry.info("dense-small.breast-cancer").metrics["test"]["accuracy"]
    assert "published" in out and f"{published_accuracy:.4f}" in out and "majority class baseline" in out


def test_zoo_eval_without_data_refuses_a_preset_without_published_figures(capsys):
    from zoo.cli import commands

    assert commands.main(["eval", "dense-tiny"]) == 2
    assert "no published test metrics" in capsys.readouterr().err


def test_train_presets_tool_reproduces_a_preset(tmp_path):
    """The real tool, end to end, on one quick recipe and this backend only."""
    backend = keras.backend.backend()
    command = [sys.executable, str(ROOT / "tools" / "train_presets.py"), "dense-small.breast-cancer",
               "--quick", f"--out={tmp_path}", f"--train-backend={backend}", f"--backends={backend}"]
    subprocess.run(command, check=True, capture_output=True)
    folder = tmp_path / "dense-small.breast-cancer"
    folder_format.verify_folder(folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["training"]["backend"] == backend and metadata["training"]["seed"] == 0
    assert metadata["dataset"]["fingerprints"] == datasets.load_dataset("breast-cancer").fingerprints()
    assert published.check_parity(zoo.load(str(folder)), folder) == 0.0  # same backend, same weights
    with open(tmp_path / "results.csv", newline="") as file:
        assert {row["backend"] for row in csv.DictReader(file)} == {backend}
