"""Documentation that must stay true: README table, README code, docstrings, examples."""

import doctest
import importlib
import re
import runpy
from pathlib import Path

import pytest

from tools import readme_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

DOCUMENTED_MODULES = [
    "zoo",
    "zoo.registry",
    "zoo.loader",
    "zoo.presets",
    "zoo.hub",
    "zoo.settings",
    "zoo.architectures",
    "zoo.architectures.base",
    "zoo.architectures.dense",
    "zoo.architectures.cnn",
    "zoo.architectures.lstm",
    "zoo.architectures.transformer_encoder",
    "zoo.architectures.transformer_decoder",
    "zoo.architectures.transformer",
    "zoo.layers.padding_mask",
    "zoo.training",
    "zoo.lora",
    "zoo.data_files",
    "zoo.tokenizers",
    "zoo.architectures.generation",
    "zoo.evaluation",
    "zoo.model_data",
    "zoo.datasets",
    "zoo.published",
    "zoo.backend",
    "zoo.distribute",
    "zoo.bench",
    "zoo.predicting",
    "zoo.kernels",
    "zoo.kernels.attention",
    "zoo.kernels.conv",
    "zoo.kernels.lstm",
    "zoo.layers.fast_attention",
    "zoo.layers.fused_batch_norm",
    "zoo.layers.lstm",
]


def test_readme_preset_table_matches_the_cards():
    assert readme_table.with_table(README) == README, "run: python tools/readme_table.py"


@pytest.mark.parametrize("module_name", DOCUMENTED_MODULES)
def test_docstring_examples_run(module_name):
    import zoo

    module = importlib.import_module(module_name)
    result = doctest.testmod(module, verbose=False, optionflags=doctest.ELLIPSIS)
    for name in ("dense-tiny.wide",):  # registered by a docstring example
        if name in zoo.list_presets():
            zoo.unregister_preset(name)
    assert result.failed == 0


def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples save files
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 3
    namespace = {}
    import zoo

    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)
    finally:
        if "dense-tiny.wide" in zoo.list_presets():
            zoo.unregister_preset("dense-tiny.wide")
    assert namespace["tokens"].shape == (1, 12)
    assert namespace["classifier"].output_shape == (None, 5)
    assert namespace["report"].metrics["accuracy"] > 0.6  # three classes: chance is 1/3
    assert zoo.load(tmp_path / "iris-dense").label_names == ["setosa", "versicolor", "virginica"]
    assert (tmp_path / "iris-report" / "training_curves.png").is_file()
    assert not any("lora" in v.path for v in namespace["merged"].variables)
    assert namespace["ids"].shape == (1, 8)


def test_digits_example_learns():
    example = runpy.run_path(str(ROOT / "examples" / "train_digits_cnn.py"))
    accuracy = example["main"](["--epochs", "3"])
    assert accuracy > 0.5  # ten classes: chance is 0.1


def test_publish_and_load_example_round_trips():
    example = runpy.run_path(str(ROOT / "examples" / "publish_and_load_preset.py"))
    assert example["main"]() is True


def test_cnn_new_head_example_transfers():
    example = runpy.run_path(str(ROOT / "examples" / "finetune_cnn_new_head.py"))
    accuracy = example["main"](["--pretrain-epochs", "4", "--pretrain-size", "300", "--epochs", "8"])
    assert accuracy["transferred"] > 0.4  # five classes: chance is 0.2


def test_text_classifier_example_learns():
    example = runpy.run_path(str(ROOT / "examples" / "finetune_text_classifier.py"))
    report = example["main"](["--epochs", "6", "--max-length", "32"])
    assert report.metrics["accuracy"] > 0.5  # four balanced classes: chance is 0.25


def test_quickstart_example_rewrites_dates():
    example = runpy.run_path(str(ROOT / "examples" / "quickstart.py"))
    assert example["main"](["5. März 2021", "vendredi 14 juillet 1989"]) == ["2021-03-05", "1989-07-14"]


def test_generate_text_example_continues_the_prompt():
    example = runpy.run_path(str(ROOT / "examples" / "generate_text.py"))
    text = example["main"](["The with statement", "--max-length", "48"])
    assert text.startswith("The with statement") and len(text.encode()) > len("The with statement")
