"""Reading users' data files (`zoo finetune --data`, `zoo eval --data`) into numpy arrays.

One scheme, decided by the path alone (see `detect_kind`):

- a folder is an image folder, one sub-folder per class:
  ``folder/class_name/image.png`` (`read_image_folder`);
- a ``.csv`` file is a table of numbers (`read_table`), unless its header has a
  ``text`` column (`read_text_csv`) or both ``source`` and ``target`` columns
  (`read_text_pairs`);
- a ``.txt`` file is plain text, one sample per paragraph or line (`read_text_file`).

Files are read as UTF-8 (a byte-order mark is allowed); CSV files use commas.
Row numbers in messages are the line numbers of the file where the row starts
(the header is row 1), as an editor or a spreadsheet shows them.
Nothing is imputed or guessed: an empty cell, a word among numbers or a short
row is an error naming the file, the row and the column.

This module imports no deep-learning framework.
"""

import csv
import dataclasses
import difflib
import io
import math
import re
import sys
from pathlib import Path

import numpy as np

from zoo.errors import DataFileError, DataFileNotFoundError, InvalidConfigError, MissingDependencyError

__all__ = [
    "DataFileError",
    "DataFileNotFoundError",
    "ImageData",
    "TableData",
    "TextData",
    "check_classes",
    "check_features",
    "detect_kind",
    "read_image_folder",
    "read_table",
    "read_text_csv",
    "read_text_file",
    "read_text_pairs",
    "train_validation_split",
]

TEXT_SUFFIXES = (".txt",)
CSV_SUFFIXES = (".csv",)
IMAGE_LAYOUT = "folder/class_name/image.png (one sub-folder per class, named after it)"
PROGRESS_MIN_IMAGES = 200  # below this, reading is too quick for a bar to help


@dataclasses.dataclass(frozen=True)
class TableData:
    """Numeric features and targets read from a CSV table."""

    x: np.ndarray
    """float32, shape (samples, features)."""
    y: np.ndarray
    """int32 class indices (samples,) for classification; float32 (samples, targets) for regression."""
    feature_names: list
    label_names: list | None
    """Class names, index i naming class i; None for regression."""


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Images and their class indices read from a folder of class sub-folders."""

    x: np.ndarray
    """float32 in [0, 1], shape (samples, height, width, channels)."""
    y: np.ndarray
    """int32 class indices, shape (samples,)."""
    label_names: list
    files: list
    """The image file of each sample, in order."""


@dataclasses.dataclass(frozen=True)
class TextData:
    """Texts, and their class indices when the file has a label column."""

    texts: list
    y: np.ndarray | None
    """int32 class indices, shape (samples,); None without a target column."""
    label_names: list | None


# ------------------------------------------------------------------ detection

def detect_kind(path, *, text_column="text", source_column="source", target_column="target"):
    """What a data path holds: "images", "table", "text_csv", "text_pairs" or "text".

    A folder is "images"; a ``.csv`` is "text_pairs" when its header has the
    source and target columns, "text_csv" when it has the text column, and
    "table" otherwise; a ``.txt`` is "text".

    Example:
    >>> import pathlib, tempfile
    >>> workdir = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(workdir.name)
    >>> _ = (folder / "reviews.csv").write_text("text,label\\ngreat,pos\\n")
    >>> detect_kind(folder / "reviews.csv"), detect_kind(folder)
    ('text_csv', 'images')
    """
    path = _existing(path)
    if path.is_dir():
        return "images"
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in CSV_SUFFIXES:
        header, _ = _read_csv(path)
        if source_column in header and target_column in header:
            return "text_pairs"
        return "text_csv" if text_column in header else "table"
    raise DataFileError(
        f"{path} is neither a folder nor a {'/'.join(CSV_SUFFIXES + TEXT_SUFFIXES)} file. "
        f"Give a .csv table, a .txt text file or an image folder laid out as {IMAGE_LAYOUT}."
    )


# ------------------------------------------------------------------ tables

def read_table(path, target, task="classification", *, label_names=None):
    """Read a CSV of numeric feature columns and a target column.

    Every column but `target` is a feature and must hold a finite number in
    every row. For classification the target values are class names:
    `label_names` defaults to their sorted distinct values (numerically when all
    are numbers), or pass a model's own names to map the file onto them. For
    regression `target` may also be a list of columns.

    Example:
    >>> import pathlib, tempfile
    >>> workdir = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(workdir.name)
    >>> _ = (folder / "iris.csv").write_text("petal,sepal,kind\\n1.4,5.1,setosa\\n4.7,7.0,versicolor\\n")
    >>> table = read_table(folder / "iris.csv", target="kind")
    >>> table.x.tolist(), table.y.tolist(), table.label_names
    ([[1.399999976158142, 5.099999904632568], [4.699999809265137, 7.0]], [0, 1], ['setosa', 'versicolor'])
    """
    if task not in ("classification", "regression"):
        raise InvalidConfigError(f"task must be 'classification' or 'regression', got {task!r}.")
    targets = [target] if isinstance(target, str) else list(target)
    if task == "classification" and len(targets) != 1:
        raise InvalidConfigError(f"A classification table has one target column, got {targets}.")
    path = _existing(path)
    header, rows = _read_csv(path)
    target_indices = _column_indices(path, header, targets, role="target")
    feature_indices = [i for i in range(len(header)) if i not in target_indices]
    if not feature_indices:
        raise DataFileError(f"{path} has no feature columns: every column is a target ({', '.join(targets)}).")
    x = _numbers(path, header, rows, feature_indices, role="feature")
    if task == "regression":
        y, names = _numbers(path, header, rows, target_indices, role="regression target"), None
    else:
        y, names = _labels(path, targets[0], _column(rows, target_indices[0]), label_names)
    return TableData(x=x, y=y, feature_names=[header[i] for i in feature_indices], label_names=names)


# ------------------------------------------------------------------ text

def read_text_csv(path, text_column="text", target=None, *, label_names=None):
    """Read texts (and class labels when `target` names a column) from a CSV.

    Columns other than `text_column` and `target` are ignored. Labels follow
    the same rules as `read_table` classification targets.

    Example:
    >>> import pathlib, tempfile
    >>> workdir = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(workdir.name)
    >>> _ = (folder / "reviews.csv").write_text('text,label\\n"Good, really",pos\\nAwful,neg\\n')
    >>> data = read_text_csv(folder / "reviews.csv", target="label")
    >>> data.texts, data.y.tolist(), data.label_names
    (['Good, really', 'Awful'], [1, 0], ['neg', 'pos'])
    """
    path = _existing(path)
    header, rows = _read_csv(path)
    wanted = [text_column] if target is None else [text_column, target]
    indices = _column_indices(path, header, wanted, role="text" if target is None else "text or target")
    texts = _texts(path, text_column, _column(rows, indices[0]))
    if target is None:
        return TextData(texts=texts, y=None, label_names=None)
    y, names = _labels(path, target, _column(rows, indices[1]), label_names)
    return TextData(texts=texts, y=y, label_names=names)


def read_text_pairs(path, source_column="source", target_column="target"):
    """Read (sources, targets), two lists of str, from a CSV for seq2seq models.

    Example:
    >>> import pathlib, tempfile
    >>> workdir = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(workdir.name)
    >>> _ = (folder / "pairs.csv").write_text("source,target\\nhello,bonjour\\ncat,chat\\n")
    >>> read_text_pairs(folder / "pairs.csv")
    (['hello', 'cat'], ['bonjour', 'chat'])
    """
    path = _existing(path)
    header, rows = _read_csv(path)
    source, target = _column_indices(path, header, [source_column, target_column], role="source or target")
    sources = _texts(path, source_column, _column(rows, source))
    targets = _texts(path, target_column, _column(rows, target))
    return sources, targets


def read_text_file(path, unit="paragraph"):
    """Read a UTF-8 text file as a list of samples (str).

    With `unit="paragraph"` (the default) samples are separated by blank lines
    (lines of only spaces count as blank) and keep their inner line breaks;
    with `unit="line"` every non-blank line is a sample. Leading and trailing
    whitespace of each sample is dropped.

    Example:
    >>> import pathlib, tempfile
    >>> workdir = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(workdir.name)
    >>> _ = (folder / "notes.txt").write_text("First line\\nsame paragraph\\n\\n  Second\\n")
    >>> read_text_file(folder / "notes.txt")
    ['First line\\nsame paragraph', 'Second']
    >>> read_text_file(folder / "notes.txt", unit="line")
    ['First line', 'same paragraph', 'Second']
    """
    if unit not in ("paragraph", "line"):
        raise InvalidConfigError(f"unit must be 'paragraph' or 'line', got {unit!r}.")
    path = _existing(path, folder_ok=False)
    lines = _read_utf8(path).splitlines()
    if unit == "line":
        samples = [line.strip() for line in lines if line.strip()]
    else:
        paragraphs = re.split(r"\n\s*\n", "\n".join(lines))  # \s* spans any run of blank lines
        samples = [paragraph.strip() for paragraph in paragraphs if paragraph.strip()]
    if not samples:
        raise DataFileError(f"{path} holds no text: it is empty or only blank lines.")
    return samples


# ------------------------------------------------------------------ images

def read_image_folder(path, image_shape, *, progress=None):
    """Read every image of `path/class_name/` resized to `image_shape`.

    `image_shape` is (height, width, channels) with 1 (grayscale) or 3 (RGB)
    channels; images are converted to match (16-bit grayscale scaled down,
    transparency dropped), resized with bilinear filtering and scaled to
    float32 in [0, 1]. Class folders are sorted like labels in
    `read_table` (numerically when all names are numbers) and may hold nested
    folders; hidden files and files that are not images by their extension
    are skipped. `progress=None` shows a bar on a terminal for many images.

    Example:
    >>> import pathlib, tempfile
    >>> from PIL import Image
    >>> workdir = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(workdir.name)
    >>> for name in ("cat", "dog"):
    ...     (folder / name).mkdir()
    ...     Image.new("RGB", (40, 30), "white").save(folder / name / "a.png")
    >>> images = read_image_folder(folder, (8, 8, 1))
    >>> images.x.shape, images.x.max(), images.y.tolist(), images.label_names
    ((2, 8, 8, 1), np.float32(1.0), [0, 1], ['cat', 'dog'])
    """
    height, width, channels = _checked_image_shape(image_shape)
    path = _existing(path)
    if not path.is_dir():
        raise DataFileError(f"{path} is a file; images are read from a folder laid out as {IMAGE_LAYOUT}.")
    label_names, files, y = _image_files(path)
    x = np.empty((len(files), height, width, channels), dtype="float32")
    for index, file in enumerate(_tracked(files, progress)):
        x[index] = _load_image(file, height, width, channels)
    return ImageData(x=x, y=np.asarray(y, dtype="int32"), label_names=label_names, files=files)


def _checked_image_shape(image_shape):
    shape = tuple(image_shape)
    if (len(shape) != 3 or not all(isinstance(size, int) and size >= 1 for size in shape)
            or shape[2] not in (1, 3)):
        raise InvalidConfigError(
            f"image_shape must be (height, width, channels) with positive sizes and 1 or 3 "
            f"channels, got {image_shape!r}."
        )
    return shape


def _image_files(folder):
    """(label_names, files, class index per file) of an image folder."""
    extensions = _image_extensions()
    classes = {child.name: child for child in folder.iterdir() if child.is_dir() and not _hidden(child.name)}
    if not classes:
        raise DataFileError(f"{folder} has no class sub-folders. Lay images out as {IMAGE_LAYOUT}.")
    label_names = _sorted_labels(classes)
    files, y = [], []
    for index, name in enumerate(label_names):
        found = sorted(
            file for file in classes[name].rglob("*")
            if file.is_file() and file.suffix.lower() in extensions
            and not any(_hidden(part) for part in file.relative_to(folder).parts)
        )
        if not found:
            raise DataFileError(
                f"Class folder {classes[name]} holds no images ({', '.join(sorted(extensions)[:8])}, ...). "
                f"Add images or remove the folder; the layout is {IMAGE_LAYOUT}."
            )
        files += found
        y += [index] * len(found)
    return label_names, files, y


def _image_extensions():
    """Extensions of the formats pillow can open (not those it can only write)."""
    image = _pillow()
    image.init()
    return {suffix for suffix, kind in image.registered_extensions().items() if kind in image.OPEN}


def _load_image(file, height, width, channels):
    image_module = _pillow()
    from PIL import ImageOps

    try:
        with image_module.open(file) as image:
            image = ImageOps.exif_transpose(image)  # camera photos store their rotation apart
            if image.mode.startswith("I;16"):  # pillow would clip 16-bit values to 255, not scale them
                image = image.convert("I").point(lambda value: value / 257)
            image = image.convert("L" if channels == 1 else "RGB")
            image = image.resize((width, height), image_module.Resampling.BILINEAR)
    except (OSError, SyntaxError, ValueError, image_module.DecompressionBombError) as error:
        raise DataFileError(f"Cannot read image {file}: {error}. Replace or delete the file.") from None
    pixels = np.asarray(image, dtype="float32") / 255.0
    return pixels.reshape(height, width, channels)


def _tracked(files, progress):
    if progress is None:
        progress = sys.stderr.isatty() and len(files) >= PROGRESS_MIN_IMAGES
    if not progress:
        return files
    from rich.console import Console
    from rich.progress import track

    return track(files, description="Reading images", console=Console(stderr=True), transient=True)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError("Reading image folders needs pillow: pip install pillow") from None
    return Image


def _hidden(name):
    return name.startswith(".")


# ------------------------------------------------------------------ checks against a model

def check_features(x, expected, *, data_name, model_name, key="num_features", fix=None):
    """Raise a clear error when `x` (samples, features) is not `expected` features wide.

    `fix` says how to train a new model instead (default: in Python's words).

    Example:
    >>> check_features(np.zeros((4, 12)), 30, data_name="data.csv", model_name="dense-small")
    Traceback (most recent call last):
    ...
    zoo.errors.DataFileError: data.csv has 12 feature columns but dense-small expects 30 (num_features). ...
    """
    found = np.shape(x)[1]
    if found != expected:
        raise DataFileError(
            f"{data_name} has {found} feature columns but {model_name} expects {expected} ({key}). "
            f"Give a file with {expected} feature columns, or "
            f"{fix or f'load the preset with {key}={found} to train a new model'}."
        )


def check_classes(label_names, expected, *, data_name, model_name, key="num_classes"):
    """Raise a clear error when the data has more classes than the model has outputs.

    Fewer classes are allowed: a file need not hold an example of every class.

    Example:
    >>> check_classes(["a", "b", "c"], 2, data_name="data.csv", model_name="dense-small")
    Traceback (most recent call last):
    ...
    zoo.errors.DataFileError: data.csv has 3 classes (a, b, c) but dense-small has 2 outputs (num_classes). ...
    """
    if len(label_names) > expected:
        raise DataFileError(
            f"{data_name} has {len(label_names)} classes ({', '.join(map(str, label_names))}) but "
            f"{model_name} has {expected} outputs ({key}). Load the preset with "
            f"{key}={len(label_names)} to train a new head, or keep only {expected} classes."
        )


# ------------------------------------------------------------------ splitting

def train_validation_split(n, validation_fraction, seed=0, labels=None, label_names=None):
    """(train_indices, validation_indices) of `n` samples, each sorted.

    Stratified when `labels` (one class per sample) are given, so both parts
    keep the class proportions; `label_names` name the classes in errors.

    Example:
    >>> train, validation = train_validation_split(10, 0.2, seed=0)
    >>> len(train), len(validation), sorted(train.tolist() + validation.tolist()) == list(range(10))
    (8, 2, True)
    """
    from sklearn.model_selection import train_test_split  # here: slow to import, only splitting needs it

    if not 0 < validation_fraction < 1:
        raise InvalidConfigError(
            f"validation_fraction must be between 0 and 1 (exclusive), got {validation_fraction!r}."
        )
    held_out = math.ceil(n * validation_fraction)  # as scikit-learn counts it
    if n < 2 or held_out >= n:
        raise DataFileError(
            f"{n} sample(s) cannot be split into training and validation with a validation share of "
            f"{validation_fraction:g}: each part needs at least one sample. Use more data or a smaller share."
        )
    if labels is not None:
        _check_stratifiable(labels, n, held_out, validation_fraction, label_names)
    train, validation = train_test_split(
        np.arange(n), test_size=validation_fraction, random_state=seed, stratify=labels
    )
    return np.sort(train), np.sort(validation)


def _check_stratifiable(labels, n, held_out, validation_fraction, label_names):
    labels = np.asarray(labels)
    if len(labels) != n:
        raise InvalidConfigError(f"labels has {len(labels)} entries but n is {n}.")
    classes, counts = np.unique(labels, return_counts=True)
    names = [str(label_names[c]) if label_names is not None else str(c) for c in classes.tolist()]
    rare = [name for name, count in zip(names, counts) if count < 2]
    if rare:
        raise DataFileError(
            f"Class(es) {', '.join(map(repr, rare))} have a single sample; a stratified "
            "validation split needs at least 2 of each class. Add samples or drop that class."
        )
    if not len(classes) <= held_out <= n - len(classes):
        raise DataFileError(
            f"A validation share of {validation_fraction:g} holds {held_out} of {n} samples, but a "
            f"stratified split puts each of the {len(classes)} classes in both parts: hold out between "
            f"{len(classes)} and {n - len(classes)} samples (a share of about {len(classes) / n:.2g} "
            f"to {1 - len(classes) / n:.2g})."
        )


# ------------------------------------------------------------------ CSV and text helpers

def _existing(path, folder_ok=True):
    path = Path(path)
    if not path.exists():
        raise DataFileNotFoundError(f"No such data file or folder: {path}. Check the --data path.")
    if path.is_dir() and not folder_ok:
        raise DataFileError(f"{path} is a folder; expected a text file.")
    return path


def _read_utf8(path):
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # -sig: spreadsheet programs often start files with a BOM
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataFileError(
            f"{path} row {line} is not valid UTF-8 ({error.reason}). Save the file as UTF-8."
        ) from None


def _read_csv(path):
    """(header, [(row number, cells), ...]); blank lines skipped, every row as wide as the header."""
    reader = csv.reader(io.StringIO(_read_utf8(path), newline=""))
    records, start = [], 1  # start: the line a record begins on (a quoted cell may span lines)
    try:
        for cells in reader:
            if cells:
                records.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as error:
        raise DataFileError(f"{path} row {start} is not valid CSV: {error}.") from None
    if not records:
        raise DataFileError(f"{path} is empty; expected a header row, then one row per sample.")
    (_, header), rows = records[0], records[1:]
    header = [name.strip() for name in header]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataFileError(f"{path}: the header names column(s) {', '.join(map(repr, repeated))} more than once.")
    if not rows:
        raise DataFileError(f"{path} has a header but no data rows.")
    for row, cells in rows:
        if len(cells) != len(header):
            raise DataFileError(
                f"{path} row {row} has {len(cells)} cells but the header has {len(header)} columns "
                f"({', '.join(header)}). Every row needs one cell per column."
            )
    return header, rows


def _column_indices(path, header, names, *, role):
    for name in names:
        if name not in header:
            close = difflib.get_close_matches(name, header, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataFileError(
                f"{path} has no {role} column {name!r}.{hint} Its columns are: {', '.join(header)}."
            )
    return [header.index(name) for name in names]


def _column(rows, index):
    """[(row number, cell), ...] of one column."""
    return [(row, cells[index]) for row, cells in rows]


FLOAT32_MAX = float(np.finfo("float32").max)


def _numbers(path, header, rows, indices, role):
    """float32 array (rows, len(indices)) of the cells in those columns."""
    return np.array(
        [[_number(path, row, header[i], cells[i], role) for i in indices] for row, cells in rows],
        dtype="float32",
    ).reshape(len(rows), len(indices))


def _number(path, row, column, cell, role):
    text = cell.strip()
    if not text:
        raise DataFileError(
            f"{path} row {row}, column {column!r} is empty. Fill it in or drop the row: "
            "missing values are not imputed."
        )
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataFileError(
            f"{path} row {row}, column {column!r}: {cell!r} is not a finite number. "
            f"Every {role} column must hold numbers; encode categories as numbers or drop the column."
        )
    if abs(value) > FLOAT32_MAX:
        raise DataFileError(
            f"{path} row {row}, column {column!r}: {cell!r} is beyond what float32 holds "
            f"(about ±3.4e38). Rescale the column."
        )
    return value


def _texts(path, column, cells):
    for row, text in cells:
        if not text.strip():
            raise DataFileError(f"{path} row {row}, column {column!r} is empty. Fill it in or drop the row.")
    return [text for _, text in cells]


def _labels(path, column, cells, label_names):
    """(int32 class indices, label names) of (row, cell) pairs."""
    values = [(row, cell.strip()) for row, cell in cells]
    for row, value in values:
        if not value:
            raise DataFileError(f"{path} row {row}, target column {column!r} is empty. Fill it in or drop the row.")
    names = _sorted_labels({value for _, value in values}) if label_names is None else [str(n) for n in label_names]
    index = {name: i for i, name in enumerate(names)}
    for row, value in values:
        if value not in index:
            raise DataFileError(
                f"{path} row {row}, target column {column!r}: {value!r} is not one of the model's "
                f"classes ({', '.join(names)})."
            )
    return np.array([index[value] for _, value in values], dtype="int32"), names


def _sorted_labels(names):
    """Sorted names; numerically when all are finite numbers, so "10" follows "9"."""
    try:
        numbers = {name: float(name) for name in names}
    except ValueError:
        return sorted(names)
    if all(map(math.isfinite, numbers.values())):
        return sorted(names, key=lambda name: (numbers[name], name))
    return sorted(names)
