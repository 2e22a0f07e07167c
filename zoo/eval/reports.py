"""The evaluation report: printed as a rich table, rendered as Markdown,
saved as JSON, Markdown and PNG plots (confusion matrix, reliability,
training curves).
"""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from zoo.errors import InvalidConfigError

PNG_DPI = 100


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
