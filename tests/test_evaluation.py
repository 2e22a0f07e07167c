"""zoo.eval.evaluation: metrics checked against scikit-learn/numpy, data kinds, reports, plots."""

import json
import math
import runpy
from pathlib import Path

import keras
import keras_hub
import numpy as np
import pytest
from rich.console import Console
from scipy.special import log_softmax, softmax
from sklearn import metrics

import zoo
from zoo.architectures.dense import DenseModel
from zoo.architectures.lstm import LSTMModel
from zoo.architectures.transformer import TransformerSeq2Seq
from zoo.data import tokenizers
from zoo.eval.evaluation import evaluate, task_kind
from zoo.eval.reports import EvaluationReport

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def blobs(num_classes=3, per_class=20, seed=0, spread=0.3):
    """Well-separated clusters, one per class, at 6 * the unit vectors."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), per_class)
    x = 6.0 * np.eye(num_classes)[y] + spread * rng.normal(size=(len(y), num_classes))
    return x.astype("float32"), y.astype("int32")


def predicted_probabilities(model, x):
    return softmax(model.predict(x, verbose=0).astype("float64"), axis=1)


@pytest.fixture(scope="module")
def classifier():
    """An untrained 3-class MLP: its mistakes make every metric non-trivial."""
    keras.utils.set_random_seed(7)
    return DenseModel(num_features=3, hidden_units=[8], num_classes=3, dropout=0.0)


def test_a_perfect_classifier_scores_one():
    # Crafted weights: logits = 10 * relu(x), so the largest feature wins, which is
    # exactly how blobs() places each class.
    model = DenseModel(num_features=3, hidden_units=[3], num_classes=3, dropout=0.0)
    model.get_layer("hidden_0").set_weights([np.eye(3), np.zeros(3)])
    model.get_layer("head").set_weights([10 * np.eye(3), np.zeros(3)])
    x, y = blobs()
    report = evaluate(model, (x, y), batch_size=16, verbose=False)
    assert report.metrics["accuracy"] == report.metrics["f1_macro"] == 1.0
    assert report.confusion_matrix == np.diag(np.bincount(y)).tolist()
    assert [row["recall"] for row in report.per_class] == [1.0, 1.0, 1.0]
    assert report.metrics["ece"] < 1e-3  # confident and right: calibrated


def test_classification_metrics_match_sklearn(classifier):
    x, y = blobs(spread=3.0, seed=1)
    probabilities = predicted_probabilities(classifier, x)
    predictions = probabilities.argmax(axis=1)
    assert 0 < metrics.accuracy_score(y, predictions) < 1  # a case with mistakes to count

    report = evaluate(classifier, (x, y), batch_size=16, verbose=False)
    expected = {
        "accuracy": metrics.accuracy_score(y, predictions),
        "precision_macro": metrics.precision_score(y, predictions, average="macro", zero_division=0),
        "recall_macro": metrics.recall_score(y, predictions, average="macro", zero_division=0),
        "f1_macro": metrics.f1_score(y, predictions, average="macro", zero_division=0),
        "log_loss": metrics.log_loss(y, probabilities, labels=[0, 1, 2]),
    }
    for name, value in expected.items():
        assert report.metrics[name] == pytest.approx(value, abs=1e-6), name
    assert "roc_auc" not in report.metrics  # only binary tasks get it
    assert report.confusion_matrix == metrics.confusion_matrix(y, predictions, labels=[0, 1, 2]).tolist()
    per_class_f1 = metrics.f1_score(y, predictions, average=None, labels=[0, 1, 2], zero_division=0)
    np.testing.assert_allclose([row["f1"] for row in report.per_class], per_class_f1, atol=1e-6)
    assert [row["support"] for row in report.per_class] == np.bincount(y, minlength=3).tolist()
    assert report.label_names == ["0", "1", "2"]


def histogram_ece(probabilities, labels, num_bins=15):
    """An independent ECE: numpy's histogram bins, then the weighted gap."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype("float64")
    edges = np.linspace(0, 1, num_bins + 1)
    counts, _ = np.histogram(confidence, edges)
    correct_sums, _ = np.histogram(confidence, edges, weights=correct)
    confidence_sums, _ = np.histogram(confidence, edges, weights=confidence)
    return np.abs(correct_sums - confidence_sums).sum() / counts.sum()


def test_expected_calibration_error_matches_an_independent_binning(classifier):
    x, y = blobs(spread=3.0, seed=2)
    report = evaluate(classifier, (x, y), verbose=False)
    expected = histogram_ece(predicted_probabilities(classifier, x), y)
    assert report.metrics["ece"] == pytest.approx(expected, abs=1e-6)
    assert len(report.reliability) == 15
    assert sum(bin_["count"] for bin_ in report.reliability) == len(y)


def test_binary_roc_auc_and_label_names_from_preset_metadata():
    model = zoo.load("dense-tiny", num_features=3)
    model.preset_metadata = {"label_names": ["benign", "malignant"]}
    x, _ = blobs(num_classes=3, seed=3, spread=2.0)
    y = (x[:, 0] > x[:, 1]).astype("int32")
    report = evaluate(model, (x, y), verbose=False)
    expected = metrics.roc_auc_score(y, predicted_probabilities(model, x)[:, 1])
    assert report.metrics["roc_auc"] == pytest.approx(expected, abs=1e-6)
    assert [row["label"] for row in report.per_class] == ["benign", "malignant"]
    renamed = evaluate(model, (x, y), label_names=["no", "yes"], verbose=False)
    assert renamed.label_names == ["no", "yes"]


def test_regression_metrics_match_numpy():
    rng = np.random.default_rng(4)
    model = DenseModel(num_features=3, hidden_units=[8], task="regression", num_targets=2)
    x = rng.normal(size=(24, 3)).astype("float32")
    y = rng.normal(size=(24, 2)).astype("float32")
    errors = (model.predict(x, verbose=0) - y).astype("float64").ravel()  # every output value counts
    report = evaluate(model, (x, y), batch_size=8, verbose=False)
    assert report.task == "regression"
    assert report.metrics["mae"] == pytest.approx(np.abs(errors).mean(), rel=1e-5)
    assert report.metrics["rmse"] == pytest.approx(np.sqrt((errors**2).mean()), rel=1e-5)
    total = ((y - y.mean()) ** 2).sum()
    assert report.metrics["r2"] == pytest.approx(1 - (errors**2).sum() / total, rel=1e-5)


def test_tasks_map_to_evaluation_kinds():
    forecaster = LSTMModel(vocab_size=0, num_features=2, units=[4], bidirectional=False, task="forecast")
    assert task_kind(forecaster) == "regression"
    assert task_kind(forecaster, task="sequence-classification") == "classification"
    with pytest.raises(zoo.InvalidConfigError, match="task='translation'"):
        task_kind(forecaster, task="translation")


def printable_token_batch(rng, batch_size=6, length=10):
    """ASCII byte ids (one UTF-8 byte each) with trailing padding, and next-token targets."""
    x = rng.integers(32, 127, size=(batch_size, length)).astype("int32")
    x[1:, length // 2 + rng.integers(0, length // 2):] = 0
    y = np.concatenate([x[:, 1:], np.zeros_like(x[:, :1])], axis=1)
    return x, y


def test_language_model_loss_perplexity_and_bits():
    model = LSTMModel(vocab_size=256, embedding_dim=8, units=[8], bidirectional=False,
                      task="language_model", dropout=0.0)
    x, y = printable_token_batch(np.random.default_rng(5))
    # One batch of the same shape throughout, so that JAX compiles the model only once.
    log_probs = log_softmax(model.predict(x, batch_size=len(x), verbose=0).astype("float64"), axis=-1)
    scored = y != 0
    expected_loss = -log_probs[scored, y[scored]].mean()

    report = evaluate(model, (x, y), batch_size=len(x), verbose=False)
    assert report.metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert report.metrics["perplexity"] == pytest.approx(math.exp(report.metrics["loss"]), rel=1e-9)
    assert report.metrics["bits_per_token"] == pytest.approx(report.metrics["loss"] / math.log(2), rel=1e-9)
    assert report.metrics["num_tokens"] == scored.sum()
    assert report.metrics["bits_per_byte"] is None and any("tokenizer" in note for note in report.notes)

    model.tokenizer = keras_hub.tokenizers.ByteTokenizer()  # every ASCII token is one byte
    with_bytes = evaluate(model, (x, y), batch_size=len(x), verbose=False)
    assert with_bytes.metrics["bits_per_byte"] == pytest.approx(with_bytes.metrics["bits_per_token"], rel=1e-9)


def test_bits_per_byte_counts_byte_ids_even_when_a_window_cuts_a_character():
    model = LSTMModel(vocab_size=260, embedding_dim=8, units=[8], bidirectional=False,
                      task="language_model", dropout=0.0)
    model.tokenizer = tokenizers.ByteTokenizer()
    ids = np.array(model.tokenizer.tokenize(["déjà vu, naïve cafés"])[0], "int32")
    x, y = ids[None, :4], ids[None, 1:5]  # the targets end inside the two bytes of "à"
    report = evaluate(model, (x, y), batch_size=1, verbose=False)
    assert report.metrics["bits_per_byte"] == pytest.approx(report.metrics["bits_per_token"], rel=1e-9)


@pytest.fixture(scope="module")
def seq2seq():
    """A tiny encoder-decoder, its sources and its own greedy output as targets."""
    keras.utils.set_random_seed(8)
    model = TransformerSeq2Seq(vocab_size=40, hidden_dim=16, num_heads=2, intermediate_dim=32,
                               num_encoder_layers=1, num_decoder_layers=1, encoder_max_length=12,
                               decoder_max_length=12, dropout=0.0)
    inputs, _ = model.example_batch(batch_size=4, seed=8)
    targets = model.generate(inputs["encoder_token_ids"], max_length=10)[:, 1:]  # drop the start token
    return model, inputs, targets


def reference_lengths(targets, end_token_id):
    lengths = []
    for row in targets.tolist():
        row = row[: row.index(end_token_id)] if end_token_id in row else row
        lengths.append(sum(token != 0 for token in row))
    return lengths


def test_seq2seq_own_greedy_output_is_an_exact_match(seq2seq):
    model, inputs, targets = seq2seq
    report = evaluate(model, (inputs, targets), verbose=False)
    assert report.task == "seq2seq"
    assert report.metrics == {"exact_match": 1.0, "cer": 0.0}


def test_seq2seq_perturbed_target_gives_the_expected_error_rate(seq2seq):
    model, inputs, targets = seq2seq
    perturbed = targets.copy()
    perturbed[0, 0] = 3 if perturbed[0, 0] != 3 else 4  # one substitution (neither padding nor end)
    lengths = reference_lengths(perturbed, model.zoo_config.end_token_id)
    report = evaluate(model, (inputs, perturbed), verbose=False)
    assert report.metrics["cer"] == pytest.approx(1 / sum(lengths))
    assert report.metrics["exact_match"] == pytest.approx((len(perturbed) - 1) / len(perturbed))

    # With a tokenizer, CER is over characters of the decoded text; the expected
    # value is computed here independently with a plain Levenshtein table.
    model.tokenizer = tokenizers.train_tokenizer(["the quick brown fox jumps over a lazy dog"] * 3, vocab_size=40)
    try:
        as_text = evaluate(model, (inputs, perturbed), verbose=False)
        generated = model.generate(inputs["encoder_token_ids"], max_length=10)[:, 1:]
        references = tokenizers.decode(model.tokenizer, perturbed)
        hypotheses = tokenizers.decode(model.tokenizer, generated)
    finally:
        model.tokenizer = None
    expected = sum(levenshtein(r, h) for r, h in zip(references, hypotheses)) / sum(map(len, references))
    assert as_text.metrics["cer"] == pytest.approx(expected)
    assert as_text.metrics["exact_match"] == np.mean([r == h for r, h in zip(references, hypotheses)])
    assert any("detokenized text" in note for note in as_text.notes)


def levenshtein(a, b):
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


class ArrayBatches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, index):
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[window], self.y[window]


def tf_dataset(x, y, batch_size):
    tf = pytest.importorskip("tensorflow")

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def torch_loader(x, y, batch_size):
    torch = pytest.importorskip("torch")

    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)


@pytest.mark.parametrize("make_data", [tf_dataset, torch_loader, ArrayBatches, lambda x, y, b: [(x, y)]],
                         ids=["tf.data", "torch", "PyDataset", "list"])
def test_every_data_kind_gives_the_numpy_metrics(classifier, make_data):
    x, y = blobs(spread=3.0, seed=9)
    expected = evaluate(classifier, (x, y), batch_size=16, verbose=False)
    report = evaluate(classifier, make_data(x, y, 16), verbose=False)
    assert report.num_samples == expected.num_samples
    assert report.confusion_matrix == expected.confusion_matrix
    for name, value in expected.metrics.items():
        assert report.metrics[name] == pytest.approx(value, abs=1e-6), name


def test_timing_is_reported_per_batch(classifier):
    x, y = blobs(spread=3.0)
    report = evaluate(classifier, (x, y), batch_size=8, verbose=False)
    timing = report.timing
    assert report.num_samples == len(y) and timing["num_batches"] == math.ceil(len(y) / 8)
    assert timing["first_batch_ms"] > 0 and timing["samples_per_second"] > 0
    assert 0 < timing["latency_ms_p50"] <= timing["latency_ms_p95"]
    assert report.backend == keras.backend.backend() and report.model_name == classifier.name


def bad_inputs():
    x, y = blobs()
    return {
        "no targets": (x, "no targets"),
        "targets None": ((x, None), "targets y"),
        "wrong feature count": ((x[:, :2], y), "shape"),
        "length mismatch": ((x, y[:-1]), "one row per sample"),
        "empty arrays": ((x[:0], y[:0]), "no samples"),
        "empty iterable": ([], "empty"),
        "batch without y": ([x, x], "(x, y) pair"),
        "label out of range": ((x, y + 1), "class ids in 0..2"),
        "one-hot labels": ((x, np.eye(3)[y]), "class ids"),
        "NaN features": ((np.where(np.arange(len(x))[:, None] == 2, np.nan, x).astype("float32"), y),
                         "x holds"),
    }


def test_nan_outputs_are_refused_rather_than_scored(classifier):
    """A model whose weights turned NaN: scikit-learn failed on its outputs
    (jax, torch), or TensorFlow's ReLU made them a constant that scored 1/3."""
    x, y = blobs()
    weights = classifier.get_weights()
    try:
        classifier.set_weights([np.full_like(w, np.nan) for w in weights])
        with pytest.raises(zoo.InvalidDataError, match="outputs hold NaN or infinite values"):
            evaluate(classifier, (x, y), verbose=False)
    finally:
        classifier.set_weights(weights)


@pytest.mark.parametrize("case", list(bad_inputs()))
def test_bad_data_raises_a_clear_error(classifier, case):
    data, message = bad_inputs()[case]
    with pytest.raises(zoo.InvalidConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(classifier, data, verbose=False)


def test_bad_label_names_task_and_history_raise(classifier):
    x, y = blobs()
    with pytest.raises(zoo.InvalidConfigError, match="label_names has 2 names"):
        evaluate(classifier, (x, y), label_names=["a", "b"], verbose=False)
    with pytest.raises(zoo.InvalidConfigError, match="classification needs"):
        evaluate(LSTMModel(vocab_size=30, embedding_dim=4, units=[4], bidirectional=False,
                           task="language_model"), (x, y), task="classification", verbose=False)
    report = evaluate(classifier, (x, y), verbose=False)
    with pytest.raises(zoo.InvalidConfigError, match="history"):
        report.save("unused", history=[0.5, 0.4])


def test_save_writes_json_markdown_and_plots(tmp_path):
    x, y = blobs(spread=2.0)
    model = DenseModel(num_features=3, hidden_units=[8], num_classes=3)
    model.compile(optimizer="adam", loss=model.default_loss(), metrics=["accuracy"])
    history = model.fit(x, y, validation_split=0.25, epochs=2, verbose=0)
    report = evaluate(model, (x, y), label_names=["red", "green", "blue"], verbose=False)

    written = report.save(tmp_path / "report", history=history)
    names = sorted(path.name for path in written)
    assert names == ["confusion_matrix.png", "reliability.png", "report.json", "report.md", "training_curves.png"]
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved == report.to_dict()
    assert EvaluationReport.from_dict(saved) == report
    markdown = (tmp_path / "report" / "report.md").read_text()
    for name, value in report.metrics.items():
        assert f"| {name} | {value:.4f} |" in markdown
    assert "| red |" in markdown and "## Confusion matrix" in markdown and "first_batch_ms" in markdown
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes().startswith(PNG_SIGNATURE) and path.stat().st_size > 5000, path.name


def test_regression_report_saves_without_classification_plots(tmp_path):
    model = DenseModel(num_features=3, hidden_units=[4], task="regression")
    x, _ = blobs()
    report = evaluate(model, (x, x[:, 0]), verbose=False)
    written = report.save(tmp_path, history={"loss": [1.0, 0.5]})
    assert sorted(path.name for path in written) == ["report.json", "report.md", "training_curves.png"]


def test_report_prints_a_rich_table_and_shows_progress(classifier, capsys):
    x, y = blobs()
    report = evaluate(classifier, (x, y), batch_size=20, verbose=True)
    assert "Evaluating" in capsys.readouterr().out
    console = Console(record=True, width=120)
    report.print(console)
    text = console.export_text()
    assert "accuracy" in text and f"{report.metrics['accuracy']:.4f}" in text and "first_batch_ms" in text


def test_example_beats_the_majority_class(tmp_path):
    example = runpy.run_path(str(ROOT / "examples" / "evaluate_and_report.py"))
    report = example["main"](["--epochs", "2", "--out", str(tmp_path / "out")])
    majority = max(row["support"] for row in report.per_class) / report.num_samples
    assert report.metrics["accuracy"] > majority
    assert (tmp_path / "out" / "training_curves.png").exists()
