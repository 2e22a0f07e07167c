"""Scorers: one per kind of task, each fed batch by batch and summed up into
the metrics of an evaluation report (scikit-learn's where it has them).
"""

import math

import numpy as np

from zoo.data import batching
from zoo.data.special_tokens import PAD_ID
from zoo.errors import InvalidConfigError, InvalidDataError
from zoo.eval.reports import clean

ECE_BINS = 15


class Scorer:
    """Accumulates one task's statistics batch by batch."""

    def __init__(self, model, label_names=None):
        self.model = model
        self.notes = []

    def check(self, x, y):
        batching.check_inputs(self.model, x)
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
        labels = batching.integer_array(y, "classification targets y").reshape(len(y), -1)
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
        batching.integer_array(y, "language-model targets y")

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
        batching.integer_array(y, "seq2seq targets y")

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
    from zoo.data import tokenizers

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
    zoo.data.tokenizers.decode: special ids are dropped and ids beyond the
    tokenizer's vocabulary (a model may have more) read as unknown."""
    from zoo.data import tokenizers

    if not rows:
        return []
    matrix = np.zeros((len(rows), max(1, max(len(row) for row in rows))), "int32")  # 0 pads: decode stops there
    for index, row in enumerate(rows):
        matrix[index, : len(row)] = row
    return [text if row else "" for text, row in zip(tokenizers.decode(tokenizer, matrix), rows)]


def total_edit_distance(references, hypotheses):
    """Summed Levenshtein distance over (reference, hypothesis) pairs, with keras_hub."""
    from zoo.runtime.quiet_imports import keras_hub

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
