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
import sys
import time

import numpy as np

from zoo.data import batching
from zoo.errors import InvalidConfigError, InvalidDataError
from zoo.eval.reports import EvaluationReport
from zoo.eval.scorers import SCORERS

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
    from zoo.runtime import backend, options

    kind = task_kind(model, task)
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if jit_compile is not None:
        options.check_jit_compile(jit_compile)
    scorer = SCORERS[kind](model, label_names)
    timer = BatchTimer()
    batches = with_progress(batching.iterate_batches(data, batch_size), batching.count_batches(data, batch_size), verbose)
    full_size = None
    with jit_compile_set(model, jit_compile):
        for x, y in batches:
            scorer.check(x, y)
            full_size = full_size or len(y)
            with timer.measure(len(y)):
                outputs = scorer.predict(batching.pad_rows(x, full_size), y)[: len(y)]
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
    from zoo.runtime import backend

    if jit_compile is None:
        yield
        return
    functions = ("predict_function", "test_function", "train_function")
    saved = model.jit_compile, backend.jit_request(model), [getattr(model, name, None) for name in functions]
    backend.set_jit_compile(model, jit_compile)
    try:
        yield
    finally:
        model.jit_compile = saved[0]
        backend.remember_jit_request(model, saved[1])
        for name, function in zip(functions, saved[2]):
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


def with_progress(batches, total, verbose):
    if verbose == "auto":
        verbose = sys.stdout.isatty()
    if not verbose:
        return batches
    from rich.progress import track

    return track(batches, total=total, description="Evaluating")


def check_outputs(outputs):
    """NaN or infinite outputs have no score: say so rather than let a metric
    fail on them (or, where a backend's ReLU maps NaN to 0, score a constant)."""
    outputs = np.asarray(outputs)
    if np.issubdtype(outputs.dtype, np.floating) and not np.isfinite(outputs).all():
        raise InvalidDataError(
            "the model's outputs hold NaN or infinite values, so there is nothing to score: its "
            "weights are NaN or infinite, or the inputs are out of range. Check model.get_weights()."
        )


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
