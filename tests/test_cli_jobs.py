"""`zoo finetune` and `zoo eval` on real data files, for every kind the command reads."""

import csv
import json
import random
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris

import zoo
from zoo import cli, presets


def run(args, capsys):
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def write_csv(path, header, rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def iris_csv(tmp_path):
    data = load_iris()
    rows = [[*map(float, x), data.target_names[y]] for x, y in zip(data.data, data.target)]
    return write_csv(tmp_path / "iris.csv", [*data.feature_names, "species"], rows)


@pytest.fixture
def digits_folder(tmp_path):
    from PIL import Image

    digits = load_digits()
    for index in range(60):
        label = ("zero", "one", "two")[index % 3]
        image = digits.images[digits.target == index % 3][index // 3]
        (tmp_path / "digits" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 16).clip(0, 255).astype("uint8")).save(tmp_path / "digits" / label / f"{index}.png")
    return tmp_path / "digits"


def test_finetune_a_table_then_evaluate_the_saved_preset(iris_csv, tmp_path, capsys):
    out = tmp_path / "iris-dense"
    code, output = run(["finetune", "dense-tiny", "--data", str(iris_csv), "--target", "species",
                        "--epochs", "8", "--learning-rate", "0.02", "--out", str(out)], capsys)
    assert code == 0, output
    assert "120 training and 30 validation samples" in output and "num_features': 4" in output
    model = zoo.load(out)
    assert model.label_names == ["setosa", "versicolor", "virginica"]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["finetuned_from"] == "dense-tiny" and metadata["training"]["epochs"] == 8
    for name in ("report.json", "report.md", "confusion_matrix.png", "training_curves.png"):
        assert (out / "assets" / "report" / name).is_file()
    validation_accuracy = metadata["metrics"]["validation"]["accuracy"]
    assert validation_accuracy > 0.6  # three balanced classes: chance is 1/3

    code, output = run(["eval", str(out), "--data", str(iris_csv), "--target", "species",
                        "--out", str(tmp_path / "report")], capsys)
    assert code == 0, output
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["label_names"] == ["setosa", "versicolor", "virginica"]
    assert report["metrics"]["accuracy"] > 0.6 and "accuracy" in output


def test_finetune_a_regression_table(tmp_path, capsys):
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    rows = [[*map(float, x), float(y)] for x, y in zip(data.data, data.target)]
    table = write_csv(tmp_path / "diabetes.csv", [*data.feature_names, "progression"], rows)
    out = tmp_path / "diabetes-dense"
    code, output = run(["finetune", "dense-tiny", "--data", str(table), "--target", "progression",
                        "--task", "regression", "--epochs", "2", "--out", str(out)], capsys)
    assert code == 0, output
    assert "rmse" in output and "accuracy" not in output
    model = zoo.load(out)
    assert model.task == "regression" and model.output_shape == (None, 1)
    code, output = run(["finetune", str(out), "--data", str(table), "--target", "progression",
                        "--task", "classification", "--out", str(tmp_path / "never")], capsys)
    assert code == 2 and "pretrained regression model" in output


def test_finetune_an_image_folder_with_a_new_head(digits_folder, tmp_path, capsys):
    out = tmp_path / "digits-cnn"
    code, output = run(["finetune", "cnn-tiny", "--data", str(digits_folder), "--epochs", "1",
                        "--out", str(out)], capsys)
    assert code == 0, output
    model = zoo.load(out)
    assert model.output_shape == (None, 3) and model.label_names == ["one", "two", "zero"]


def test_finetune_text_classification_trains_and_ships_a_tokenizer(tmp_path, capsys):
    rng = random.Random(0)
    words = {"fruit": ["apple", "pear", "plum", "fig"], "tool": ["hammer", "saw", "drill", "wrench"]}
    rows = [[" ".join(rng.choices(words[label], k=5)), label] for label in ("fruit", "tool") * 20]
    data = write_csv(tmp_path / "texts.csv", ["text", "label"], rows)
    out = tmp_path / "texts-encoder"
    code, output = run(["finetune", "transformer-encoder-tiny", "--data", str(data), "--target", "label",
                        "--epochs", "2", "--max-length", "16", "--out", str(out)], capsys)
    assert code == 0, output
    model = zoo.load(out)
    assert model.tokenizer is not None and model.label_names == ["fruit", "tool"]
    assert model.zoo_config.vocab_size == model.tokenizer.vocabulary_size()
    code, output = run(["eval", str(out), "--data", str(data), "--target", "label"], capsys)
    assert code == 0 and "accuracy" in output


def test_finetune_a_language_model_and_a_seq2seq_model(tmp_path, capsys):
    from pydoc_data.topics import topics

    text = tmp_path / "topics.txt"
    text.write_text(topics["for"][:3000])
    code, output = run(["finetune", "transformer-decoder-tiny", "--data", str(text), "--epochs", "1",
                        "--max-length", "32", "--out", str(tmp_path / "lm")], capsys)
    assert code == 0, output
    assert "bits_per_byte" in output

    pairs = write_csv(tmp_path / "pairs.csv", ["source", "target"],
                      [[f"{n} plus one", f"{n + 1}"] for n in range(20)])
    code, output = run(["finetune", "transformer-tiny", "--data", str(pairs), "--epochs", "1",
                        "--max-length", "6", "--out", str(tmp_path / "s2s")], capsys)
    assert code == 0, output
    assert "exact_match" in output
    assert isinstance(zoo.load(tmp_path / "s2s").generate("3 plus one", max_length=6), str)


def test_data_mistakes_give_clear_errors(iris_csv, digits_folder, tmp_path, capsys):
    out = str(tmp_path / "never")
    code, output = run(["finetune", "dense-tiny", "--data", str(iris_csv), "--target", "kind",
                        "--out", out], capsys)
    assert code == 2 and "no target column 'kind'" in output and "species" in output

    (digits_folder / "one" / "broken.png").write_bytes(b"not a png")
    code, output = run(["finetune", "cnn-tiny", "--data", str(digits_folder), "--out", out], capsys)
    assert code == 2 and "broken.png" in output

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("keep me")
    code, output = run(["finetune", "dense-tiny", "--data", str(iris_csv), "--target", "species",
                        "--out", str(tmp_path / "taken")], capsys)
    assert code == 2 and "--overwrite" in output and "Epoch" not in output
    assert (tmp_path / "taken" / "file").read_text() == "keep me"

    code, output = run(["eval", "dense-small", "--data", str(iris_csv), "--target", "species"], capsys)
    assert code == 2 and "4 feature columns" in output and "30" in output

    code, output = run(["finetune", "cnn-tiny", "--data", str(iris_csv), "--target", "species",
                        "--out", out], capsys)
    assert code == 2 and "needs a folder of images" in output
    assert not (tmp_path / "never").exists()


def test_eval_refuses_text_for_a_preset_without_tokenizer(tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", ["text", "label"], [["a b", "x"], ["c d", "y"]])
    code, output = run(["eval", "transformer-encoder-tiny", "--data", str(data), "--target", "label"], capsys)
    assert code == 2 and "has no tokenizer" in output


def test_data_file_numbers_reach_the_model_unchanged(iris_csv):
    """The table the command trains on is the CSV itself, row for row."""
    from zoo import model_data

    card = zoo.info("dense-tiny")
    data = model_data.read_for_model(iris_csv, card.family, card.config, target="species", fit_inputs=True)
    np.testing.assert_allclose(data.x, load_iris().data.astype("float32"))
    np.testing.assert_array_equal(data.y, load_iris().target)


@pytest.mark.parametrize("argv, message", [
    (["finetune", "dense-tiny", "--epochs", "0"], "argument --epochs: must be a whole number of at least 1, got '0'"),
    (["finetune", "dense-tiny", "--learning-rate", "nan"], "argument --learning-rate: must be a number > 0, got 'nan'"),
    (["finetune", "dense-tiny", "--validation-split", "1"], r"argument --validation-split: must be a number in \(0, 1\)"),
    (["finetune", "dense-tiny", "--freeze", "abc"], "argument --freeze: must be none, backbone or a number of layers"),
    (["finetune", "dense-tiny", "--lora-rank", "0"], "argument --lora-rank: must be a whole number of at least 1"),
    (["finetune", "dense-tiny", "--pretrained", "maybe"], "argument --pretrained: must be true or false"),
    (["eval", "dense-tiny", "--batch-size", "-4"], "argument --batch-size: must be a whole number of at least 1"),
    (["bench", "dense-tiny", "--min-seconds", "-1"], "argument --min-seconds: must be a number > 0"),
])
def test_bad_arguments_are_refused_in_the_command_lines_words(argv, message, iris_csv, tmp_path, capsys):
    """Backend-free: argparse refuses them before anything is loaded."""
    if argv[0] == "finetune":
        argv = [*argv, "--data", str(iris_csv), "--target", "species", "--out", str(tmp_path / "never")]
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    error = capsys.readouterr().err
    assert caught.value.code == 2
    assert re.search(message, error), error
    assert "Traceback" not in error and not (tmp_path / "never").exists()


def test_pretrained_false_trains_a_pretrained_presets_architecture_afresh(iris_csv, tmp_path, capsys):
    out = tmp_path / "iris-from-breast-cancer"
    argv = ["finetune", "dense-small.breast-cancer", "--data", str(iris_csv), "--target", "species",
            "--epochs", "2", "--out", str(out)]
    code, output = run(argv, capsys)
    assert code == 2 and "4 feature columns" in output and "--pretrained false" in output
    code, output = run([*argv, "--pretrained", "false"], capsys)
    assert code == 0, output
    model = zoo.load(out)
    assert model.zoo_config.num_features == 4 and model.output_shape == (None, 3)
    assert list(model.zoo_config.hidden_units) == zoo.info("dense-small.breast-cancer").config["hidden_units"]
    assert json.loads((out / "metadata.json").read_text())["training"]["pretrained"] is False


BROKEN_CONFIGS = {
    "a billion hidden units": {"hidden_units": [10**9]},
    "no classes": {"num_classes": 0},
    "a NaN dropout": {"dropout": float("nan")},
}


@pytest.mark.parametrize("what", sorted(BROKEN_CONFIGS))
def test_a_hostile_config_on_the_command_line_is_one_message(what, iris_csv, tmp_path):
    """In a real process: 10^9 hidden units once aborted JAX (SIGABRT) or made
    torch ask for 120 GB; now every backend refuses before allocating."""
    folder = zoo.save_preset(zoo.load("dense-tiny", num_features=4), tmp_path / "p")
    data = json.loads((folder / "config.json").read_text())
    data["config"].update(BROKEN_CONFIGS[what])
    (folder / "config.json").write_text(json.dumps(data))
    presets.write_manifest(folder)
    result = subprocess.run([sys.executable, "-m", "zoo", "eval", str(folder), "--data", str(iris_csv),
                             "--target", "species"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "error:" in result.stderr
    assert "config.json" in result.stderr
