"""`zoo finetune` and `zoo eval` on real data files, for every kind the command reads."""

import csv
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris

import zoo
from zoo.cli import commands
from zoo.hub import folder_format


def run(args, capsys):
    code = commands.main(args)
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

    zoo.save_preset(zoo.load("dense-tiny"), tmp_path / "taken")  # a preset: --overwrite may replace it
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
    from zoo.data import model_data

    card = zoo.info("dense-tiny")
    family = zoo.architectures.get_family(card.family)
    data = model_data.read_for_model(iris_csv, family, card.config, target="species", fit_inputs=True)
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
    (["finetune", "dense-tiny", "--seed", "99999999999"], "argument --seed: must be a whole number of at least 0 and at most"),
    (["finetune", "dense-tiny", "--max-length", "1"], "argument --max-length: must be a whole number of at least 2"),
    (["eval", ""], "argument name: must not be empty"),
    (["download", ""], "argument source: must not be empty"),
    (["eval", "dense-tiny", "--data", ""], "argument --data: must not be empty"),
])
@pytest.mark.backend_free
def test_bad_arguments_are_refused_in_the_command_lines_words(argv, message, iris_csv, tmp_path, capsys):
    """Backend-free: argparse refuses them before anything is loaded."""
    if argv[0] == "finetune":
        argv = [*argv, "--data", str(iris_csv), "--target", "species", "--out", str(tmp_path / "never")]
    with pytest.raises(SystemExit) as caught:
        commands.main(argv)
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
    folder_format.write_manifest(folder)
    result = subprocess.run([sys.executable, "-m", "zoo", "eval", str(folder), "--data", str(iris_csv),
                             "--target", "species"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "error:" in result.stderr
    assert "config.json" in result.stderr


def finetune_argv(data, out, *extra, target="species", name="dense-tiny"):
    return ["finetune", name, "--data", str(data), "--target", target, "--epochs", "1", "--out", str(out), *extra]


@pytest.mark.parametrize("make_out, extra, message", [
    (lambda tmp: (tmp / "afile").write_text("x") and tmp / "afile", [], "afile is a file"),
    (lambda tmp: (tmp / "afile").write_text("x") and tmp / "afile" / "sub", [], r"Cannot write .*afile.*does not take new files"),
    (lambda tmp: Path("."), ["--overwrite"], "is the current folder or one above it"),
    (lambda tmp: (tmp / "notes").mkdir() or (tmp / "notes" / "notes.txt").write_text("keep") and tmp / "notes",
     ["--overwrite"], "holds files that are not a preset; it is left alone even with overwrite"),
    (lambda tmp: Path("/proc/zoo-out"), [], r"Cannot write /proc/zoo-out"),
])
def test_an_out_folder_that_cannot_be_written_is_refused_before_training(make_out, extra, message, iris_csv,
                                                                        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = make_out(tmp_path)
    code, output = run(finetune_argv(iris_csv, out, *extra), capsys)
    assert code == 2 and re.search(message, output), output
    assert "Epoch" not in output and "Traceback" not in output
    assert not (tmp_path / "notes").exists() or (tmp_path / "notes" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("extra, name, message", [
    (["--freeze", "999"], "dense-tiny", "--freeze 999: dense-tiny has 1 layer(s) with weights before its head; freeze 0 to 1"),
    (["--freeze", "1", "--lora-rank", "2"], "dense-tiny", "--lora-rank already trains only the adapters and the head; drop --freeze"),
])
def test_training_options_are_refused_in_the_command_lines_words(extra, name, message, iris_csv, tmp_path, capsys):
    code, output = run(finetune_argv(iris_csv, tmp_path / "never", *extra, name=name), capsys)
    assert code == 2 and message in output and "Epoch" not in output, output


def test_data_that_cannot_train_a_classifier_is_refused_before_training(tmp_path, capsys):
    one_class = write_csv(tmp_path / "one.csv", ["a", "b", "label"], [[i, i * 2, "x"] for i in range(20)])
    code, output = run(finetune_argv(one_class, tmp_path / "never", target="label"), capsys)
    assert code == 2 and "holds a single class ('x')" in output and "Epoch" not in output
    huge = write_csv(tmp_path / "huge.csv", ["a", "label"], [[1e39 if i == 3 else i, i % 2] for i in range(20)])
    code, output = run(finetune_argv(huge, tmp_path / "never", target="label"), capsys)
    assert code == 2 and "row 5, column 'a': '1e+39' is beyond what float32 holds" in output
    tiny = write_csv(tmp_path / "tiny.csv", ["a", "label"], [[1, "x"], [2, "y"], [3, "x"], [4, "y"]])
    code, output = run([*finetune_argv(tiny, tmp_path / "never", target="label"), "--validation-split", "0.1"], capsys)
    assert code == 2 and "a stratified split puts each of the 2 classes in both parts" in output
    text = tmp_path / "one-line.txt"
    text.write_text("just one paragraph")
    code, output = run(["finetune", "transformer-decoder-tiny", "--data", str(text), "--out", str(tmp_path / "never")],
                       capsys)
    assert code == 2 and "1 sample(s) cannot be split into training and validation" in output


def test_a_regression_target_that_is_text_is_named_as_the_target(iris_csv, tmp_path, capsys):
    code, output = run([*finetune_argv(iris_csv, tmp_path / "never"), "--task", "regression"], capsys)
    assert code == 2 and "Every regression target column must hold numbers" in output


def test_image_folders_are_mapped_onto_the_models_classes(digits_folder, tmp_path, capsys):
    code, output = run(["eval", "cnn-small.digits", "--data", str(digits_folder)], capsys)
    assert code == 2 and "class folder(s) 'one', 'two', 'zero' that are not among the model's classes" in output
    for index, name in enumerate(("zero", "one", "two")):
        (digits_folder / name).rename(digits_folder / str(index))
    code, output = run(["eval", "cnn-small.digits", "--data", str(digits_folder)], capsys)
    assert code == 0, output
    assert float(re.search(r"accuracy\s+│\s+([\d.]+)", output).group(1)) > 0.8


def broken_preset(tmp_path, change):
    folder = zoo.save_preset(zoo.load("dense-tiny", num_features=4), tmp_path / "broken")
    change(folder)
    folder_format.write_manifest(folder)
    return folder


@pytest.mark.parametrize("change, message", [
    (lambda f: (f / "metadata.json").write_text("[1, 2]"), "metadata.json must hold a JSON object"),
    (lambda f: (f / "metadata.json").write_text(json.dumps({"label_names": ["a", "b", "c"]})),
     "metadata.json: label_names must be 2 distinct strings"),
    (lambda f: zoo.load("dense-tiny", num_features=4, hidden_units=[32]).save_weights(f / "model.weights.h5")
     if False else _nan_weights(f), "model.weights.h5 holds NaN or infinite weights"),
])
def test_a_broken_preset_folder_is_one_message_on_every_command(change, message, iris_csv, tmp_path, capsys):
    folder = broken_preset(tmp_path, change)
    for argv in (["eval", str(folder), "--data", str(iris_csv), "--target", "species"],
                 ["download", str(folder)],
                 finetune_argv(iris_csv, tmp_path / "never", name=str(folder))):
        code, output = run(argv, capsys)
        assert code == 2 and message in output and "Traceback" not in output, (argv, output)


def _nan_weights(folder):
    model = zoo.load(str(folder))
    model.get_layer("head").kernel.assign(np.full(model.get_layer("head").kernel.shape, np.nan, "float32"))
    model.save_weights(folder / "model.weights.h5")


def test_environment_mistakes_are_one_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "nonsense")
    code, output = run(["info", "dense-tiny"], capsys)
    assert code == 2 and "KERAS_BACKEND='nonsense' is not a Keras backend" in output
    monkeypatch.delenv("KERAS_BACKEND")
    (tmp_path / "home-file").write_text("x")
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home-file"))
    code, output = run(["cache", "list"], capsys)
    assert code == 2 and "is a file; point ZOO_HOME to a folder" in output
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZOO_MAX_MODEL_BYTES", "-5")
    code, output = run(["bench", "dense-tiny", "--mode", "infer"], capsys)
    assert code == 2 and "ZOO_MAX_MODEL_BYTES='-5' is not valid" in output and "e+" not in output


def test_bench_refuses_what_cannot_run_before_running(tmp_path, capsys):
    code, output = run(["bench", "dense-tiny", "--mode", "infer", "--profile", str(tmp_path)], capsys)
    assert code == 2 and "is a folder; give the name of a file" in output
    code, output = run(["bench", "dense-tiny", "--mode", "infer", "--batch-size", "100000000000"], capsys)
    assert code == 2 and "more than ZOO_MAX_MODEL_BYTES allows" in output
    code, output = run(["bench", "lstm-tiny", "--mode", "infer", "--length", "100000000"], capsys)
    assert code == 2 and "x 100,000,000 positions" in output


def test_demo_refuses_an_unknown_preset_before_running(capsys):
    code, output = run(["demo", "--preset", "transfomer-small"], capsys)
    assert code == 2 and "Did you mean: transformer-small" in output and "breast" not in output
