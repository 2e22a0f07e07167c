"""`zoo.evaluate`: score a model on held-out data and write a report.

`evaluate(model, data)` runs the model over `(x, y)` batches and returns an
`EvaluationReport` with the metrics of the model's task (scikit-learn's where
it has them), per-batch latency and throughput. The report prints as a rich
table, renders as Markdown and saves as JSON, Markdown and PNG plots.

Heavy libraries (keras, keras_hub, scikit-learn, scipy, matplotlib, rich) are
imported inside the functions that use them, so that `import zoo` stays
instant and imports no backend.

Example:
>>> import numpy as np
>>> import zoo
>>> model = zoo.load("dense-tiny", num_features=4)
>>> x = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
>>> report = evaluate(model, (x, np.arange(10) % 2), batch_size=4, verbose=False)
>>> report.task, report.num_samples, report.timing["num_batches"]
('classification', 10, 3)
>>> 0.0 <= report.metrics["accuracy"] <= 1.0
True
"""

import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from zoo.errors import InvalidConfigError, InvalidDataError

# zoo.architectures.base.PAD_ID; importing that module would import keras.
PAD_ID = 0

# model.task -> the kind of evaluation it gets. The kinds map to themselves so
# that `task=` accepts either spelling.
TASK_KINDS = {
    "classification": "classification",
    "image-classification": "classification",
    "text-classification": "classification",
    "sequence-classification": "classification",
    "regression": "regression",
    "forecasting": "regression",
    "language-modelling": "language-modelling",
    "seq2seq": "seq2seq",
}
ECE_BINS = 15
PNG_DPI = 100


def evaluate(model, data, task=None, batch_size=32, label_names=None, verbose="auto", jit_compile=None):
    """Score `model` on `data` and time its predictions.

    Args:
        model: a zoo model (any functional `keras.Model` with a `task` works).
        data: an `(x, y)` tuple of numpy arrays (x may be a dict of arrays, e.g.
            `{"encoder_token_ids": ...}` for seq2seq), or an iterable of `(x, y)`
            batches: a `tf.data.Dataset`, a torch `DataLoader`, a
            `keras.utils.PyDataset`, a list or a generator.
        task: None to derive it from `model.task`, or one of `TASK_KINDS`
            ("classification", "regression", "language-modelling", "seq2seq", ...).
        batch_size: batch size when `data` is an `(x, y)` tuple.
        label_names: class names for classification; defaults to the preset's
            `label_names` metadata, else "0", "1", ...
        verbose: show a progress bar; "auto" shows one when stdout is a terminal.
        jit_compile: None keeps the model's own setting (`model.jit_compile`,
            chosen by `zoo.load` / `zoo.finetune`); "auto", True or False
            compile (or not) the predictions and `generate()` of this call
            only, as for `zoo.load`.

    Returns:
        An `EvaluationReport`. Latency is measured around `predict_on_batch`
        (around `generate` for seq2seq, whose prediction is decoding). A
        smaller last batch is padded to the first batch's size, so that JAX
        and TensorFlow do not compile a second program for it.

    Raises:
        zoo.InvalidConfigError: for an unknown task, data without targets,
            shapes the model does not take, or an empty data set.

    Example:
    >>> import numpy as np, zoo
    >>> model = zoo.load("dense-tiny", task="regression", num_features=3)
    >>> x, y = np.ones((6, 3), "float32"), np.zeros(6, "float32")
    >>> report = evaluate(model, (x, y), verbose=False)
    >>> sorted(report.metrics)
    ['mae', 'r2', 'rmse']
    """
    from zoo import backend

    kind = task_kind(model, task)
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if jit_compile is not None:
        backend.check_jit_compile(jit_compile)
    scorer = SCORERS[kind](model, label_names)
    timer = BatchTimer()
    batches = with_progress(iterate_batches(data, batch_size), count_batches(data, batch_size), verbose)
    full_size = None
    with jit_compile_set(model, jit_compile):
        for x, y in batches:
            scorer.check(x, y)
            full_size = full_size or len(y)
            with timer.measure(len(y)):
                outputs = scorer.predict(pad_rows(x, full_size), y)[: len(y)]
            check_outputs(outputs)
            scorer.update(y, outputs)
    if not timer.latencies_ms:
        raise InvalidConfigError("data is empty: evaluate() needs at least one (x, y) sample.")
    timing, timing_notes = timer.summary()
    results = scorer.result()
    results["notes"] += timing_notes
    return EvaluationReport(
        task=kind,
        model_name=model.name,
        backend=backend.name(),
        num_samples=sum(timer.batch_sizes),
        timing=timing,
        **results,
    )


@contextlib.contextmanager
def jit_compile_set(model, jit_compile):
    """`model` compiling (or not) per `jit_compile` inside the block, as
    before after it; None changes nothing. The step functions Keras had built
    are put back too, so that the model's own setting is not compiled again."""
    from zoo import backend

    if jit_compile is None:
        yield
        return
    functions = ("predict_function", "test_function", "train_function")
    saved = model.jit_compile, [getattr(model, name, None) for name in functions]
    backend.set_jit_compile(model, backend.resolve_jit_compile(jit_compile, model))
    try:
        yield
    finally:
        model.jit_compile = saved[0]
        for name, function in zip(functions, saved[1]):
            setattr(model, name, function)


def task_kind(model, task=None):
    """The evaluation kind for `task`, or for `model.task` when task is None.

    Example:
    >>> task_kind(None, task="forecasting")
    'regression'
    """
    name = task if task is not None else getattr(model, "task", None)
    if name not in TASK_KINDS:
        source = "task" if task is not None else "model.task"
        raise InvalidConfigError(
            f"Cannot evaluate {source}={name!r}: use task= one of {', '.join(TASK_KINDS)}."
        )
    return TASK_KINDS[name]


# ---------------------------------------------------------------- data


def iterate_batches(data, batch_size):
    """Numpy `(x, y)` batches from any supported kind of data."""
    if isinstance(data, (np.ndarray, dict)):
        raise InvalidConfigError(
            "data has no targets: pass an (x, y) tuple or an iterable of (x, y) batches."
        )
    if isinstance(data, tuple):
        x, y = split_pair(data, "data")
        yield from slice_batches(x, y, batch_size)
        return
    if hasattr(data, "as_numpy_iterator"):  # a tf.data.Dataset
        data = data.as_numpy_iterator()
    if not hasattr(data, "__iter__"):
        raise InvalidConfigError(
            f"data must be an (x, y) tuple or an iterable of (x, y) batches, got {type(data).__name__}."
        )
    for batch in data:
        yield split_pair(batch, "each batch")


def split_pair(pair, what):
    """`(x, y)` as numpy, after checking that both are there and agree in length."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or pair[1] is None:
        found = f"{len(pair)} element(s)" if isinstance(pair, (tuple, list)) else type(pair).__name__
        raise InvalidConfigError(
            f"{what} must be an (x, y) pair with targets y, got {found}. "
            "evaluate() needs the true targets to score predictions."
        )
    x, y = to_numpy(pair[0]), to_numpy(pair[1])
    if y.ndim and len(y) == 0:
        raise InvalidConfigError(f"{what} has no samples: evaluate() needs at least one (x, y) sample.")
    arrays = x if isinstance(x, dict) else {"x": x}
    rows = {key: value.shape[0] if value.ndim else None for key, value in arrays.items()}
    if y.ndim == 0 or any(count != len(y) for count in rows.values()):
        raise InvalidConfigError(
            f"x and y must have one row per sample: y has shape {y.shape}, x has rows {rows}."
        )
    return x, y


def to_numpy(value):
    """A numpy array (or a dict of them) from numpy, tf, torch or jax values."""
    if isinstance(value, dict):
        return {key: to_numpy(item) for key, item in value.items()}
    if hasattr(value, "detach"):  # a torch tensor, possibly on a GPU or needing grad
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def slice_batches(x, y, batch_size):
    for start in range(0, len(y), batch_size):
        window = slice(start, start + batch_size)
        batch_x = {key: value[window] for key, value in x.items()} if isinstance(x, dict) else x[window]
        yield batch_x, y[window]


def count_batches(data, batch_size):
    """The number of batches when it is known up front (for the progress bar), else None."""
    if isinstance(data, tuple) and len(data) == 2 and data[1] is not None:
        return math.ceil(len(data[1]) / batch_size)
    try:
        return len(data)
    except (TypeError, NotImplementedError):  # generators, tf.data of unknown cardinality, ...
        return None


def with_progress(batches, total, verbose):
    if verbose == "auto":
        verbose = sys.stdout.isatty()
    if not verbose:
        return batches
    from rich.progress import track

    return track(batches, total=total, description="Evaluating")


def check_inputs(model, x):
    """Raise InvalidConfigError unless `x` has the inputs and shapes `model` takes."""
    expected = {tensor.name: tuple(tensor.shape) for tensor in model.inputs}
    if isinstance(x, dict):
        given = x
    elif len(expected) == 1:
        given = {next(iter(expected)): x}
    else:
        given = {}
    if set(given) != set(expected):
        keys = sorted(x) if isinstance(x, dict) else "one array"
        raise InvalidConfigError(f"x must hold the model inputs {sorted(expected)}, got {keys}.")
    for name, shape in expected.items():
        actual = given[name].shape
        if len(actual) != len(shape) or any(e is not None and e != a for e, a in zip(shape[1:], actual[1:])):
            raise InvalidConfigError(
                f"input {name!r} must have shape {shape} (None = any size), got {actual}."
            )


def check_outputs(outputs):
    """NaN or infinite outputs have no score: say so rather than let a metric
    fail on them (or, where a backend's ReLU maps NaN to 0, score a constant)."""
    outputs = np.asarray(outputs)
    if np.issubdtype(outputs.dtype, np.floating) and not np.isfinite(outputs).all():
        raise InvalidDataError(
            "the model's outputs hold NaN or infinite values, so there is nothing to score: its "
            "weights are NaN or infinite, or the inputs are out of range. Check model.get_weights()."
        )


def pad_rows(x, size):
    """`x` (an array or a dict of arrays) with its last row repeated up to `size` rows."""
    if isinstance(x, dict):
        return {key: pad_rows(value, size) for key, value in x.items()}
    x = np.asarray(x)
    if len(x) >= size:
        return x
    return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)])


def integer_array(values, what):
    """`values` as integers; floats are accepted when they hold whole numbers."""
    if np.issubdtype(values.dtype, np.integer):
        return values
    if np.issubdtype(values.dtype, np.floating) and np.all(np.mod(values, 1) == 0):
        return values.astype("int64")
    raise InvalidDataError(f"{what} must be integer ids, got dtype {values.dtype}.")


# ---------------------------------------------------------------- timing


class BatchTimer:
    """Wall time of each batch's prediction call."""

    def __init__(self):
        self.latencies_ms = []
        self.batch_sizes = []

    @contextlib.contextmanager
    def measure(self, num_samples):
        start = time.perf_counter()
        yield
        self.latencies_ms.append((time.perf_counter() - start) * 1000)
        self.batch_sizes.append(num_samples)

    def summary(self):
        """`(timing dict, notes)`; the first batch (compilation) is kept apart."""
        steady = np.array(self.latencies_ms[1:])
        timing = {
            "num_batches": len(self.latencies_ms),
            "first_batch_ms": float(self.latencies_ms[0]),
            "latency_ms_mean": float(steady.mean()) if steady.size else None,
            "latency_ms_p50": float(np.percentile(steady, 50)) if steady.size else None,
            "latency_ms_p95": float(np.percentile(steady, 95)) if steady.size else None,
            "samples_per_second": sum(self.batch_sizes[1:]) / (steady.sum() / 1000) if steady.size else None,
        }
        notes = [] if steady.size else [
            "Only one batch: steady-state latency and throughput need two or more "
            "(first_batch_ms includes compilation)."
        ]
        return timing, notes


# ---------------------------------------------------------------- scorers


class Scorer:
    """Accumulates one task's statistics batch by batch."""

    def __init__(self, model, label_names=None):
        self.model = model
        self.notes = []

    def check(self, x, y):
        check_inputs(self.model, x)
        if hasattr(self.model, "check_inputs"):  # a zoo model: values too (NaN, ids outside the vocabulary)
            self.model.check_inputs(x, "x")

    def predict(self, x, y):
        return np.asarray(self.model.predict_on_batch(x))

    def update(self, y, outputs):
        raise NotImplementedError

    def result(self):
        """Keyword arguments for EvaluationReport (metrics, per_class, ...)."""
        raise NotImplementedError


class ClassificationScorer(Scorer):
    def __init__(self, model, label_names=None):
        super().__init__(model)
        self.num_classes = model.output_shape[-1]
        if len(model.output_shape) != 2 or not self.num_classes or self.num_classes < 2:
            raise InvalidConfigError(
                f"classification needs (batch, num_classes >= 2) logits, but the model "
                f"outputs {model.output_shape}; pass the right task=."
            )
        self.label_names = resolve_label_names(model, label_names, self.num_classes)
        self.labels, self.logits = [], []

    def check(self, x, y):
        super().check(x, y)
        labels = integer_array(y, "classification targets y").reshape(len(y), -1)
        if labels.shape[1] != 1 or labels.min() < 0 or labels.max() >= self.num_classes:
            raise InvalidDataError(
                f"classification targets y must be class ids in 0..{self.num_classes - 1}, "
                f"one per sample; got shape {y.shape} with values {labels.min()}..{labels.max()}."
            )

    def update(self, y, outputs):
        self.labels.append(y.reshape(-1).astype("int64"))
        self.logits.append(outputs.astype("float64"))

    def result(self):
        from scipy.special import softmax
        from sklearn import metrics

        labels = np.concatenate(self.labels)
        probabilities = softmax(np.concatenate(self.logits), axis=1)
        predictions = probabilities.argmax(axis=1)
        classes = list(range(self.num_classes))
        precision, recall, f1, support = metrics.precision_recall_fscore_support(
            labels, predictions, labels=classes, zero_division=0
        )
        # Macro averages over the classes present in y or the predictions, as sklearn does.
        macro = metrics.precision_recall_fscore_support(labels, predictions, average="macro", zero_division=0)
        bins = reliability_bins(probabilities, labels)
        summary = {
            "accuracy": metrics.accuracy_score(labels, predictions),
            "precision_macro": macro[0],
            "recall_macro": macro[1],
            "f1_macro": macro[2],
            "log_loss": metrics.log_loss(labels, probabilities, labels=classes),
            "ece": expected_calibration_error(bins),
        }
        if self.num_classes == 2:
            summary["roc_auc"] = self.binary_roc_auc(labels, probabilities[:, 1])
        per_class = [
            {"label": name, "precision": p, "recall": r, "f1": f, "support": int(s)}
            for name, p, r, f, s in zip(self.label_names, precision, recall, f1, support)
        ]
        return {
            "metrics": clean(summary),
            "per_class": clean(per_class),
            "confusion_matrix": metrics.confusion_matrix(labels, predictions, labels=classes).tolist(),
            "label_names": self.label_names,
            "reliability": clean(bins),
            "notes": self.notes,
        }

    def binary_roc_auc(self, labels, positive_scores):
        from sklearn.metrics import roc_auc_score

        if len(np.unique(labels)) < 2:
            self.notes.append("roc_auc is undefined: y holds only one class.")
            return None
        return roc_auc_score(labels, positive_scores)


def resolve_label_names(model, label_names, num_classes):
    """`label_names`, else the preset's metadata, else "0", "1", ... ."""
    metadata = getattr(model, "preset_metadata", None) or {}
    names = label_names if label_names is not None else metadata.get("label_names")
    if names is None:
        return [str(index) for index in range(num_classes)]
    names = [str(name) for name in names]
    if len(names) != num_classes:
        raise InvalidConfigError(
            f"label_names has {len(names)} names but the model has {num_classes} classes; "
            "pass one name per class."
        )
    return names


def reliability_bins(probabilities, labels, num_bins=ECE_BINS):
    """Accuracy and mean confidence of the top prediction in equal-width confidence bins.

    scikit-learn has no multi-class calibration curve with counts, so the
    binning is written here. Bins are right-closed, (lower, upper].
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    bin_index = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0, num_bins - 1)
    bins = []
    for index in range(num_bins):
        members = bin_index == index
        count = int(members.sum())
        bins.append({
            "lower": index / num_bins,
            "upper": (index + 1) / num_bins,
            "count": count,
            "accuracy": correct[members].mean() if count else None,
            "confidence": confidence[members].mean() if count else None,
        })
    return bins


def expected_calibration_error(bins):
    """Count-weighted mean gap between accuracy and confidence over the bins (no sklearn ECE)."""
    total = sum(bin_["count"] for bin_ in bins)
    return sum(
        bin_["count"] / total * abs(bin_["accuracy"] - bin_["confidence"])
        for bin_ in bins
        if bin_["count"]
    )


class RegressionScorer(Scorer):
    """MAE, RMSE and R2 over every output value (per-step outputs flattened)."""

    def __init__(self, model, label_names=None):
        super().__init__(model)
        self.targets, self.predictions = [], []

    def update(self, y, outputs):
        if y.size != outputs.size:
            raise InvalidConfigError(
                f"regression targets y must have one value per model output: y has shape "
                f"{y.shape}, the model predicted {outputs.shape}."
            )
        self.targets.append(y.reshape(-1).astype("float64"))
        self.predictions.append(outputs.reshape(-1).astype("float64"))

    def result(self):
        from sklearn import metrics

        targets, predictions = np.concatenate(self.targets), np.concatenate(self.predictions)
        r2 = None
        if len(targets) >= 2:
            r2 = metrics.r2_score(targets, predictions)
        else:
            self.notes.append("r2 is undefined for a single value.")
        summary = {
            "mae": metrics.mean_absolute_error(targets, predictions),
            "rmse": metrics.root_mean_squared_error(targets, predictions),
            "r2": r2,
        }
        return {"metrics": clean(summary), "notes": self.notes}


class LanguageModelScorer(Scorer):
    """Next-token cross-entropy over non-padding targets, in nats, bits and bits per byte."""

    def __init__(self, model, label_names=None):
        super().__init__(model)
        self.tokenizer = getattr(model, "tokenizer", None)
        self.total_nats = 0.0
        self.num_tokens = 0
        self.num_correct = 0
        self.num_bytes = 0

    def check(self, x, y):
        super().check(x, y)
        integer_array(y, "language-model targets y")

    def update(self, y, outputs):
        from scipy.special import log_softmax

        if outputs.ndim != 3 or y.shape != outputs.shape[:2]:
            raise InvalidConfigError(
                f"language-model targets y must be next-token ids of shape (batch, length) "
                f"= {outputs.shape[:2]}, got {y.shape}."
            )
        if y.max() >= outputs.shape[-1] or y.min() < 0:
            raise InvalidDataError(f"target ids must be in 0..{outputs.shape[-1] - 1} (0 = padding).")
        scored = y != PAD_ID
        targets = y[scored].astype("int64")
        log_probs = log_softmax(outputs[scored].astype("float64"), axis=-1)
        self.total_nats -= log_probs[np.arange(len(targets)), targets].sum()
        self.num_tokens += len(targets)
        self.num_correct += int((log_probs.argmax(axis=-1) == targets).sum())
        if self.tokenizer is not None:
            self.num_bytes += count_bytes(self.tokenizer, y)

    def result(self):
        if not self.num_tokens:
            raise InvalidConfigError("every language-model target is padding (0): there is nothing to score.")
        loss = self.total_nats / self.num_tokens
        bits = self.total_nats / math.log(2)
        bits_per_byte = None
        if self.tokenizer is None:
            self.notes.append("bits_per_byte needs a model.tokenizer to count bytes; the model has none.")
        elif self.num_bytes:
            bits_per_byte = bits / self.num_bytes
        summary = {
            "loss": loss,
            "perplexity": math.exp(loss),
            "bits_per_token": bits / self.num_tokens,
            "bits_per_byte": bits_per_byte,
            "token_accuracy": self.num_correct / self.num_tokens,
            "num_tokens": self.num_tokens,
        }
        return {"metrics": clean(summary), "notes": self.notes}


class Seq2SeqScorer(Scorer):
    """Greedy decoding compared with the targets: exact match and character error rate."""

    def __init__(self, model, label_names=None):
        super().__init__(model)
        config = getattr(model, "zoo_config", None)
        if not hasattr(model, "generate") or not hasattr(config, "end_token_id"):
            raise InvalidConfigError(
                "seq2seq evaluation needs a model with generate() and zoo_config.end_token_id "
                "(the `transformer` family)."
            )
        self.end_token_id = config.end_token_id
        self.max_length = config.decoder_max_length
        self.tokenizer = getattr(model, "tokenizer", None)
        self.references, self.hypotheses = [], []

    def check(self, x, y):
        source = x.get("encoder_token_ids") if isinstance(x, dict) else x
        if source is None or source.ndim != 2 or y.ndim != 2:
            raise InvalidConfigError(
                "seq2seq data must be x = {'encoder_token_ids': (batch, length)} (or that array) "
                f"and y = decoder target ids (batch, length); got y of shape {y.shape}."
            )
        integer_array(y, "seq2seq targets y")

    def predict(self, x, y):
        # Seq2seq models predict by decoding, so generate() is what gets timed.
        source = x["encoder_token_ids"] if isinstance(x, dict) else x
        max_length = min(y.shape[1] + 1, self.max_length)  # +1: generate() starts with the start token
        return self.model.generate(source, max_length=max_length, sampler="greedy")

    def update(self, y, outputs):
        hypotheses = [until_end(row, self.end_token_id) for row in outputs[:, 1:]]
        references = [until_end(row, self.end_token_id) for row in y]
        if self.tokenizer is not None:
            hypotheses = [list(text) for text in detokenize(self.tokenizer, hypotheses)]
            references = [list(text) for text in detokenize(self.tokenizer, references)]
        self.hypotheses += hypotheses
        self.references += references

    def result(self):
        unit = "characters of the detokenized text" if self.tokenizer is not None else "token ids"
        self.notes.append(f"exact_match and cer compare {unit}, up to the end token.")
        reference_length = sum(len(reference) for reference in self.references)
        cer = None
        if reference_length:
            cer = total_edit_distance(self.references, self.hypotheses) / reference_length
        else:
            self.notes.append("cer is undefined: every reference is empty.")
        matches = [reference == hypothesis for reference, hypothesis in zip(self.references, self.hypotheses)]
        summary = {"exact_match": float(np.mean(matches)), "cer": cer}
        return {"metrics": clean(summary), "notes": self.notes}


def count_bytes(tokenizer, targets):
    """UTF-8 bytes of the text that target-id rows stand for."""
    from zoo import tokenizers

    if isinstance(tokenizer, tokenizers.ByteTokenizer):
        # One id per byte. Decoding would miscount a window cut inside a character.
        return int((targets >= tokenizers.BYTE_OFFSET).sum())
    rows = [row[row != PAD_ID].tolist() for row in targets]
    return sum(len(text.encode("utf-8")) for text in detokenize(tokenizer, rows))


def until_end(row, end_token_id):
    """The token ids of `row` before its first end token, padding dropped."""
    row = [int(token) for token in row]
    if end_token_id in row:
        row = row[: row.index(end_token_id)]
    return [token for token in row if token != PAD_ID]


def detokenize(tokenizer, rows):
    """The text of each list of token ids ("" for an empty one), through
    zoo.tokenizers.decode: special ids are dropped and ids beyond the
    tokenizer's vocabulary (a model may have more) read as unknown."""
    from zoo import tokenizers

    if not rows:
        return []
    matrix = np.zeros((len(rows), max(1, max(len(row) for row in rows))), "int32")  # 0 pads: decode stops there
    for index, row in enumerate(rows):
        matrix[index, : len(row)] = row
    return [text if row else "" for text, row in zip(tokenizers.decode(tokenizer, matrix), rows)]


def total_edit_distance(references, hypotheses):
    """Summed Levenshtein distance over (reference, hypothesis) pairs, with keras_hub."""
    from zoo.quiet_imports import keras_hub

    # keras_hub cannot infer a dtype for an empty sequence; the distance to an
    # empty sequence is simply the other one's length.
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r and h]
    total = sum(len(r) + len(h) for r, h in zip(references, hypotheses) if not (r and h))
    if pairs:
        metric = keras_hub.metrics.EditDistance(normalize=False)  # mean distance per pair
        metric.update_state([r for r, _ in pairs], [h for _, h in pairs])
        total += round(float(metric.result()) * len(pairs))
    return total


SCORERS = {
    "classification": ClassificationScorer,
    "regression": RegressionScorer,
    "language-modelling": LanguageModelScorer,
    "seq2seq": Seq2SeqScorer,
}


def clean(value):
    """Plain JSON-ready Python values: numpy numbers become floats/ints, NaN becomes None."""
    if isinstance(value, dict):
        return {key: clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# ---------------------------------------------------------------- report


@dataclasses.dataclass
class EvaluationReport:
    """What `evaluate()` measured, ready to print, serialise and plot.

    `task` is the evaluation kind ("classification", "regression",
    "language-modelling" or "seq2seq"); `metrics` a flat dict of floats (None
    where undefined, with the reason in `notes`); `timing` the per-batch
    latency (ms) and throughput, with the first batch, which includes
    compilation, apart. Classification also fills `per_class`,
    `confusion_matrix`, `label_names` and `reliability`.

    Example:
    >>> report = EvaluationReport(task="regression", metrics={"mae": 0.5},
    ...     model_name="demo", backend="jax", num_samples=4, timing={"num_batches": 1})
    >>> print(report.to_markdown().splitlines()[0])
    # Evaluation of demo
    >>> EvaluationReport.from_dict(report.to_dict()) == report
    True
    """

    task: str
    metrics: dict
    model_name: str
    backend: str
    num_samples: int
    timing: dict
    per_class: list | None = None
    confusion_matrix: list | None = None
    label_names: list | None = None
    reliability: list | None = None
    """Classification: one dict per confidence bin (lower, upper, count, accuracy, confidence)."""
    notes: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        """A JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """The report that `to_dict()` (or a saved report.json) describes."""
        return cls(**data)

    def sections(self):
        """`(title, headers, rows)` tables, shared by Markdown and rich output."""
        tables = [("Metrics", ["metric", "value"], [[name, fmt(value)] for name, value in self.metrics.items()])]
        if self.per_class:
            columns = ["label", "precision", "recall", "f1", "support"]
            tables.append(("Per class", columns, [[fmt(row[key]) for key in columns] for row in self.per_class]))
        if self.confusion_matrix:
            rows = [[name, *map(str, counts)] for name, counts in zip(self.label_names, self.confusion_matrix)]
            tables.append(("Confusion matrix (rows: true, columns: predicted)",
                           ["true \\ predicted", *self.label_names], rows))
        timing = [[name, fmt(value, digits=2)] for name, value in self.timing.items()]
        tables.append(("Timing", ["measure", "value"], timing))
        return tables

    def headline(self):
        return f"{self.task} · backend {self.backend} · {self.num_samples} samples"

    def to_markdown(self):
        """The report as Markdown: metrics, per-class table, confusion matrix, timing, notes."""
        lines = [f"# Evaluation of {self.model_name}", "", self.headline(), ""]
        for title, headers, rows in self.sections():
            lines += [f"## {title}", "", *markdown_table(headers, rows), ""]
        if self.notes:
            lines += ["## Notes", "", *[f"- {note}" for note in self.notes], ""]
        return "\n".join(lines)

    def __str__(self):
        return self.to_markdown()

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        parts = [Text(f"Evaluation of {self.model_name}: {self.headline()}", style="bold")]
        for title, headers, rows in self.sections():
            table = Table(*headers, title=title, title_justify="left")
            for row in rows:
                table.add_row(*row)
            parts.append(table)
        parts += [Text(f"note: {note}", style="dim") for note in self.notes]
        return Group(*parts)

    def print(self, console=None):
        """Print the report's tables to a rich `console` (default: a new one on stdout)."""
        from rich.console import Console

        (console or Console()).print(self)

    def save(self, folder, history=None):
        """Write report.json, report.md and PNG plots into `folder`.

        Plots: confusion_matrix.png and reliability.png for classification;
        training_curves.png when `history` (a keras History or its `.history`
        dict) is given. Returns the list of paths written.
        """
        curves = history_dict(history) if history is not None else None
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "report.json", folder / "report.md"]
        written[0].write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False))
        written[1].write_text(self.to_markdown())
        if self.confusion_matrix is not None:
            written.append(plot_confusion_matrix(self, folder / "confusion_matrix.png"))
        if self.reliability is not None:
            written.append(plot_reliability(self, folder / "reliability.png"))
        if curves:
            written.append(plot_training_curves(curves, folder / "training_curves.png"))
        return written


def fmt(value, digits=4):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers, rows):
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731 - a pipe would end the cell
    lines = ["| " + " | ".join(map(escape, headers)) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(map(escape, row)) + " |" for row in rows]


# ---------------------------------------------------------------- plots


def history_dict(history):
    """`{name: [value per epoch]}` from a keras History or its `.history` dict."""
    curves = getattr(history, "history", history)
    if not isinstance(curves, dict) or not all(isinstance(v, (list, tuple)) for v in curves.values()):
        raise InvalidConfigError(
            "history must be a keras History (what model.fit returns) or its .history dict "
            f"of per-epoch lists, got {type(history).__name__}."
        )
    return curves


def new_figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # renders off-screen with Agg; pyplot's global state is never used
    return figure


def save_figure(figure, path):
    figure.savefig(path, dpi=PNG_DPI)
    return path


def plot_confusion_matrix(report, path):
    from sklearn.metrics import ConfusionMatrixDisplay

    size = 2.5 + 0.5 * len(report.label_names)
    figure = new_figure(size, size)
    axes = figure.add_subplot()
    display = ConfusionMatrixDisplay(np.array(report.confusion_matrix), display_labels=report.label_names)
    display.plot(ax=axes, colorbar=False, xticks_rotation=45 if len(report.label_names) > 6 else "horizontal")
    axes.set_title(f"Confusion matrix: {report.model_name}")
    return save_figure(figure, path)


def plot_reliability(report, path):
    filled = [bin_ for bin_ in report.reliability if bin_["count"]]
    figure = new_figure(5, 5)
    axes = figure.add_subplot()
    width = 1 / len(report.reliability)
    axes.bar([bin_["lower"] for bin_ in filled], [bin_["accuracy"] for bin_ in filled], width=width,
             align="edge", edgecolor="black", label="accuracy")
    axes.bar([bin_["lower"] for bin_ in filled], [bin_["confidence"] - bin_["accuracy"] for bin_ in filled],
             bottom=[bin_["accuracy"] for bin_ in filled], width=width, align="edge",
             color="tab:red", alpha=0.3, label="gap to confidence")
    axes.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max softmax probability)", ylabel="accuracy",
             title=f"Reliability diagram (ECE = {fmt(report.metrics.get('ece'))})")
    axes.legend(loc="upper left")
    return save_figure(figure, path)


def plot_training_curves(curves, path):
    from matplotlib.ticker import MaxNLocator

    names = [name for name in curves if not name.startswith("val_")] or list(curves)
    figure = new_figure(4 * len(names), 3.5)
    for index, name in enumerate(names, start=1):
        axes = figure.add_subplot(1, len(names), index)
        epochs = range(1, len(curves[name]) + 1)
        axes.plot(epochs, curves[name], marker="o", label="train")
        if f"val_{name}" in curves:
            axes.plot(range(1, len(curves[f"val_{name}"]) + 1), curves[f"val_{name}"], marker="o", label="val")
        axes.set(title=name, xlabel="epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    return save_figure(figure, path)
