"""Published figures of the pretrained presets, and checking them again.

A pretrained preset's metadata.json records the data set it learned from
(name, split rule, sha256 of each split), the `sequence_length` its text is cut
to, and its published metrics on the held-out test split with the trivial
baseline beside them. This module turns a `zoo.data.datasets` split into the arrays
a model takes, recomputes the headline metrics (`reproduce`), and checks the
preset's reference outputs (`check_parity`).

Example:
>>> rows = reproduce("dense-small.breast-cancer")
>>> [(row.metric, row.within_tolerance) for row in rows]
[('accuracy', True), ('f1_macro', True)]
"""

import dataclasses
from pathlib import Path

import numpy as np

from zoo.data import datasets
from zoo.errors import InvalidConfigError

# The metrics a task is published with, and how far a recomputation may drift
# from the published figure: the same weights on the same data, so only
# float32 rounding across backends and machines moves them.
HEADLINE_METRICS = {
    "classification": ("accuracy", "f1_macro"),
    "image-classification": ("accuracy", "f1_macro"),
    "text-classification": ("accuracy", "f1_macro"),
    "language-modelling": ("bits_per_byte",),
    "seq2seq": ("exact_match", "cer"),
}
TOLERANCES = {"accuracy": 0.005, "f1_macro": 0.005, "bits_per_byte": 0.002, "exact_match": 0.005, "cer": 0.002}
LOWER_IS_BETTER = {"bits_per_byte", "cer"}
PARITY_FILE = "reference_outputs.npz"
PARITY_TOLERANCE = 1e-4  # float32 max abs difference of the reference outputs across backends
PARITY_BATCH = 8
PARITY_LENGTH = 32  # positions of a language model's reference inputs: keeps its .npz small
EVALUATION_BATCH = {"seq2seq": 2000}  # generate() compiles its loop per call: one large batch


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One metric: the published figure, the recomputed one and whether they agree."""

    metric: str
    published: float
    measured: float
    tolerance: float

    @property
    def difference(self):
        return self.measured - self.published

    @property
    def within_tolerance(self):
        return abs(self.difference) <= self.tolerance + 1e-12


def evaluation_data(model, dataset, split="test"):
    """`(x, y)` arrays of `dataset`'s `split` in the form `model` takes.

    Text is encoded with `model.tokenizer`; the length comes from the preset's
    metadata `sequence_length` (or the model's own maximum).
    """
    examples = dataset.splits[split]
    task = model.task
    if task in ("classification", "image-classification"):
        return examples.inputs, examples.targets
    tokenizer = _tokenizer(model)
    from zoo.data import tokenizers

    if task == "text-classification":
        return tokenizers.encode(tokenizer, examples.inputs, _sequence_length(model)), examples.targets
    if task == "language-modelling":
        return language_model_windows(tokenizer, examples.inputs, _sequence_length(model))
    if task == "seq2seq":
        return seq2seq_arrays(model, tokenizer, examples.inputs, examples.targets)
    raise InvalidConfigError(f"No published evaluation for task {task!r}.")


def language_model_windows(tokenizer, documents, length):
    """Each document's token ids cut into windows of `length` inputs and the
    `length` next tokens; windows overlap by one token, so every token but a
    document's first is a target exactly once. The last window is padded."""
    inputs, targets = [], []
    for ids in tokenizer.tokenize(list(documents)):
        for start in range(0, max(1, len(ids) - 1), length):
            window = np.zeros(length + 1, "int32")
            piece = ids[start: start + length + 1]
            window[: len(piece)] = piece
            inputs.append(window[:-1])
            targets.append(window[1:])
    return np.stack(inputs), np.stack(targets)


def seq2seq_arrays(model, tokenizer, sources, targets):
    """Encoder ids of `sources`, decoder inputs (start + target) and decoder
    targets (target + end) of `targets`, at the model's maximum lengths."""
    from zoo.data import tokenizers

    config = model.zoo_config
    encoder = tokenizers.encode(tokenizer, sources, config.encoder_max_length, add_end=True)
    decoder = tokenizers.encode(tokenizer, targets, config.decoder_max_length, add_start=True, add_end=True)
    x = {"encoder_token_ids": encoder, "decoder_token_ids": decoder[:, :-1]}
    return x, decoder[:, 1:]


def headline(report):
    """The published metrics of an `EvaluationReport`, as `{metric: value}`."""
    return {name: report.metrics[name] for name in HEADLINE_METRICS[report.task]}


def baseline(dataset):
    """The trivial predictor a pretrained preset must beat, scored on the test split:
    the majority class, a unigram byte model, or copying the input.

    Example:
    >>> result = baseline(datasets.load_dataset("digits"))
    >>> result["name"], round(result["metrics"]["accuracy"], 2)
    ('majority class', 0.1)
    """
    train, test = dataset.splits["train"], dataset.splits["test"]
    if dataset.task.endswith("classification"):
        return _majority_baseline(dataset, train, test)
    if dataset.task == "language-modelling":
        return _unigram_baseline(train, test)
    if dataset.task == "seq2seq":
        return _copy_input_baseline(test)
    raise InvalidConfigError(f"No baseline for task {dataset.task!r}.")


def _majority_baseline(dataset, train, test):
    from sklearn import metrics

    majority = int(np.bincount(train.targets).argmax())
    predictions = np.full_like(test.targets, majority)
    name = dataset.label_names[majority] if dataset.label_names else str(majority)
    return {
        "name": "majority class",
        "description": f"always predict the most common training class ({name!r}).",
        "metrics": {
            "accuracy": float(metrics.accuracy_score(test.targets, predictions)),
            "f1_macro": float(metrics.f1_score(test.targets, predictions, average="macro", zero_division=0)),
        },
    }


def _unigram_baseline(train, test):
    counts = np.ones(256)  # add-one smoothing: every byte keeps some probability
    for text in train.inputs:
        counts += np.bincount(np.frombuffer(text.encode("utf-8"), np.uint8), minlength=256)
    bits = -np.log2(counts / counts.sum())
    # The targets the models are scored on: every byte of a document but its first.
    scored = [np.frombuffer(text.encode("utf-8"), np.uint8)[1:] for text in test.inputs]
    total = sum(bits[row].sum() for row in scored)
    return {
        "name": "unigram",
        "description": "each byte predicted from the byte frequencies of the training text "
                       "(add-one smoothed), ignoring context.",
        "metrics": {"bits_per_byte": float(total / sum(len(row) for row in scored))},
    }


def _copy_input_baseline(test):
    from zoo.eval.scorers import total_edit_distance

    references = [list(target) for target in test.targets]
    hypotheses = [list(source) for source in test.inputs]
    return {
        "name": "copy-input",
        "description": "output the input text unchanged.",
        "metrics": {
            "exact_match": float(np.mean([r == h for r, h in zip(references, hypotheses)])),
            "cer": float(total_edit_distance(references, hypotheses) / sum(map(len, references))),
        },
    }


def reproduce(name, split="test", verbose=False):
    """Recompute a pretrained preset's published metrics on its held-out split.

    Returns one `Comparison` per headline metric. `zoo eval NAME` prints them;
    `data_changed(name)` says whether the local data differ from the published.
    """
    from zoo.hub.loader import load

    model = name if hasattr(name, "preset_metadata") else load(name)
    published = published_metrics(model, split)
    dataset = datasets.load_dataset(model.preset_metadata["dataset"]["name"])
    measured = score(model, dataset, split, verbose=verbose)
    return [
        Comparison(metric, published[metric], value, TOLERANCES[metric])
        for metric, value in measured.items()
    ]


def score(model, dataset, split="test", limit=None, verbose=False):
    """The headline metrics of `model` on `dataset`'s `split` (its first
    `limit` examples when given), as `{metric: value}`."""
    from zoo.eval.evaluation import evaluate

    x, y = evaluation_data(model, dataset, split)
    if limit is not None:
        x, y = first_rows(x, limit), y[:limit]
    report = evaluate(model, (x, y), batch_size=EVALUATION_BATCH.get(model.task, 64), verbose=verbose)
    return headline(report)


def published_metrics(model, split="test"):
    metadata = getattr(model, "preset_metadata", None) or {}
    metrics = (metadata.get("metrics") or {}).get(split)
    if not isinstance(metadata.get("dataset"), dict) or not metrics:
        raise InvalidConfigError(
            f"{model.name} has no published {split} metrics: only the zoo's pretrained presets "
            "(zoo list --pretrained) do. Evaluate other models on your data: zoo eval NAME --data FILE."
        )
    return metrics


def data_changed(model, split="test"):
    """None when the local split is the published one, else a sentence saying how it differs."""
    recorded = model.preset_metadata["dataset"]
    dataset = datasets.load_dataset(recorded["name"])
    if dataset.fingerprint(split) == recorded["fingerprints"][split]:
        return None
    return (f"the local {recorded['name']!r} {split} split differs from the published one "
            f"({dataset.source}, published from {recorded['source']}): expect small differences.")


def write_reference_outputs(model, folder, dataset):
    """Save a fixed batch of test inputs and the model's outputs for it (the parity reference)."""
    x, _ = evaluation_data(model, dataset, "test")
    x = first_rows(x, PARITY_BATCH)
    if model.task == "language-modelling":
        x = x[:, :PARITY_LENGTH]
    outputs = _outputs(model, x)
    arrays = {f"input_{key}": value for key, value in x.items()} if isinstance(x, dict) else {"input": x}
    np.savez(Path(folder) / PARITY_FILE, output=outputs, **arrays)
    return Path(folder) / PARITY_FILE


def check_parity(model, folder):
    """Max abs difference between `model`'s outputs and the reference saved in `folder`."""
    with np.load(Path(folder) / PARITY_FILE) as saved:
        arrays = dict(saved)
    expected = arrays.pop("output")
    x = arrays["input"] if "input" in arrays else {key[len("input_"):]: value for key, value in arrays.items()}
    return float(np.max(np.abs(_outputs(model, x) - expected)))


def _outputs(model, x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), "float32")


def first_rows(x, count):
    """The first `count` rows of an array or of each array of a dict."""
    if isinstance(x, dict):
        return {key: value[:count] for key, value in x.items()}
    return x[:count]


def _tokenizer(model):
    if getattr(model, "tokenizer", None) is None:
        raise InvalidConfigError(f"{model.name} has no tokenizer, so it cannot read the data set's text.")
    return model.tokenizer


def _sequence_length(model):
    metadata = getattr(model, "preset_metadata", None) or {}
    return int(metadata.get("sequence_length") or model.zoo_config.max_length)
