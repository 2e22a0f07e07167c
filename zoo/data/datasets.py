"""The data sets the pretrained presets are trained and published on.

Every one ships inside a package or with Python itself, so nothing is
downloaded and anyone can rebuild the exact examples:

| name | what | task |
| --- | --- | --- |
| `breast-cancer` | scikit-learn's Wisconsin breast cancer table, 30 features | binary classification |
| `digits` | scikit-learn's 8x8 handwritten digits, scaled to [0, 1] | 10-class image classification |
| `python-docstrings` | first paragraphs of CPython docstrings, by topic | 6-class text classification |
| `python-docs` | the reference-manual topics of `pydoc_data` | language modelling (raw text) |
| `dates` | dates written out by babel's CLDR locale data, and their ISO 8601 form | seq2seq |

Splits are fixed: a seeded stratified shuffle for the scikit-learn tables, a
seeded hash of each document's name for Python's text (so an edit to one
document in a new Python release moves no other document between splits), and
seeded generation for the dates. `Dataset.fingerprint(split)` is the sha256 of
the exact examples; pretrained presets record it, and `zoo eval` compares it.

Only NumPy, scikit-learn and babel are imported here (no Keras).

Example:
>>> data = load_dataset("breast-cancer")
>>> data.task, {name: len(split) for name, split in data.splits.items()}
('classification', {'train': 341, 'validation': 114, 'test': 114})
>>> len(data.fingerprint("test"))
64
"""

import dataclasses
import datetime
import functools
import hashlib
import inspect
import json
import sys

import numpy as np

from zoo.errors import InvalidConfigError, MissingDependencyError

SEED = 0  # the one seed behind every split below
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Split:
    """Examples of one split: `inputs` (an array, or a list of texts) and
    `targets` (an array of labels, a list of texts, or None for raw text)."""

    inputs: object
    targets: object = None

    def __len__(self):
        return len(self.inputs)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A named data set with fixed splits; see the module docstring."""

    name: str
    task: str
    description: str
    source: str
    split_rule: str
    splits: dict
    label_names: tuple = None

    def fingerprint(self, split):
        """sha256 of the exact examples of `split` (inputs and targets)."""
        digest = hashlib.sha256()
        for part in (self.splits[split].inputs, self.splits[split].targets):
            digest.update(_canonical_bytes(part))
        return digest.hexdigest()

    def fingerprints(self):
        return {split: self.fingerprint(split) for split in self.splits}

    def summary(self):
        """JSON-ready facts for a preset's metadata and model card."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "split_rule": self.split_rule,
            "sizes": {split: len(examples) for split, examples in self.splits.items()},
            "fingerprints": self.fingerprints(),
        }


def dataset_names():
    return sorted(_BUILDERS)


@functools.lru_cache(maxsize=None)
def load_dataset(name):
    """The `Dataset` called `name` (see `dataset_names()`), built once per process.

    Example:
    >>> digits = load_dataset("digits")
    >>> digits.splits["train"].inputs.shape[1:], digits.label_names[:3]
    ((8, 8, 1), ('0', '1', '2'))
    """
    if name not in _BUILDERS:
        raise InvalidConfigError(f"Unknown data set {name!r}; the zoo's data sets are {', '.join(dataset_names())}.")
    return _BUILDERS[name]()


def _canonical_bytes(part):
    if part is None:
        return b"none"
    if isinstance(part, np.ndarray):
        return f"{part.dtype.str}{part.shape}".encode() + np.ascontiguousarray(part).tobytes()
    return json.dumps(list(part), ensure_ascii=False).encode("utf-8")


def _stratified_splits(inputs, labels, fractions=(0.6, 0.2, 0.2)):
    """Seeded stratified train/validation/test split of a table."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    train, rest = train_test_split(rows, train_size=fractions[0], stratify=labels, random_state=SEED)
    validation, test = train_test_split(
        rest, train_size=fractions[1] / (1 - fractions[0]), stratify=labels[rest], random_state=SEED
    )
    return {name: Split(inputs[np.sort(part)], labels[np.sort(part)])
            for name, part in zip(SPLITS, (train, validation, test))}


STRATIFIED_RULE = ("60/20/20 train/validation/test, stratified by class, "
                   f"sklearn.model_selection.train_test_split(random_state={SEED}) twice")


def breast_cancer():
    from sklearn import __version__ as sklearn_version
    from sklearn.datasets import load_breast_cancer

    table = load_breast_cancer()
    return Dataset(
        name="breast-cancer",
        task="classification",
        description="Wisconsin diagnostic breast cancer: 569 tumours, 30 features of cell "
                    "nuclei, malignant or benign.",
        source=f"sklearn.datasets.load_breast_cancer (scikit-learn {sklearn_version}; UCI, CC BY 4.0)",
        split_rule=STRATIFIED_RULE,
        splits=_stratified_splits(table.data.astype("float32"), table.target.astype("int32")),
        label_names=tuple(str(name) for name in table.target_names),
    )


def digits():
    from sklearn import __version__ as sklearn_version
    from sklearn.datasets import load_digits

    table = load_digits()
    images = (table.images / 16.0).astype("float32")[..., None]  # pixel counts 0-16 -> [0, 1]
    return Dataset(
        name="digits",
        task="image-classification",
        description="1797 handwritten digits as 8x8 grey images (values 0-1), ten classes.",
        source=f"sklearn.datasets.load_digits (scikit-learn {sklearn_version}; UCI optdigits, CC BY 4.0)",
        split_rule=STRATIFIED_RULE,
        splits=_stratified_splits(images, table.target.astype("int32")),
        label_names=tuple(str(digit) for digit in range(10)),
    )


def hashed_split(key, validation=0.1, test=0.1):
    """'train', 'validation' or 'test' for a document named `key`, from a
    seeded hash: stable whatever other documents exist."""
    digest = hashlib.sha256(f"{SEED}:{key}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < test:
        return "test"
    return "validation" if position < test + validation else "train"


HASH_RULE = (f"by document name: sha256('{SEED}:' + name) read as a fraction in [0, 1) "
             "below 0.1 -> test, below 0.2 -> validation, else train; a text seen under an "
             "earlier name (sorted) is dropped")


def python_docs():
    import pydoc_data.topics

    texts = {split: [] for split in SPLITS}
    seen = set()
    for topic, text in sorted(pydoc_data.topics.topics.items()):
        if text not in seen:  # some topics share one text; it goes where its first name sends it
            seen.add(text)
            texts[hashed_split(topic)].append(text)
    return Dataset(
        name="python-docs",
        task="language-modelling",
        description="The reference-manual topics Python ships for help() (pydoc_data.topics), "
                    "as raw UTF-8 text, one document per distinct topic text.",
        source=f"pydoc_data.topics of Python {_python_version()} (PSF license)",
        split_rule=HASH_RULE,
        splits={split: Split(documents) for split, documents in texts.items()},
    )


# topic -> modules and built-in types whose public docstrings document it.
DOCSTRING_TOPICS = {
    "text": ("str", "bytes", "string", "re", "textwrap", "unicodedata", "difflib"),
    "numbers": ("math", "cmath", "statistics", "random", "decimal", "fractions", "int", "float"),
    "files and processes": ("os", "os.path", "shutil", "glob", "tempfile", "subprocess", "signal"),
    "networking": ("socket", "ssl", "select", "urllib.parse", "http.client", "ipaddress"),
    "containers and iteration": ("list", "dict", "set", "collections", "itertools",
                                 "functools", "heapq", "bisect", "operator"),
    "dates and times": ("time", "datetime", "calendar", "zoneinfo"),
}


def python_docstrings():
    import builtins
    import importlib

    texts, labels, keys = [], [], []
    seen = set()
    for label, (topic, sources) in enumerate(DOCSTRING_TOPICS.items()):
        for source_name in sources:
            source = getattr(builtins, source_name, None)
            source = source if inspect.isclass(source) else importlib.import_module(source_name)
            for member_name, member in sorted(inspect.getmembers(source)):
                paragraph = _first_paragraph(member) if not member_name.startswith("_") else ""
                if len(paragraph) < 20 or paragraph in seen:
                    continue
                seen.add(paragraph)
                texts.append(paragraph)
                labels.append(label)
                keys.append(f"{source_name}.{member_name}")
    placement = [hashed_split(key, validation=0.15, test=0.15) for key in keys]
    labels = np.array(labels, "int32")
    splits = {}
    for split in SPLITS:
        rows = [row for row, where in enumerate(placement) if where == split]
        splits[split] = Split([texts[row] for row in rows], labels[rows])
    return Dataset(
        name="python-docstrings",
        task="text-classification",
        description="First paragraphs of the public docstrings of 41 CPython modules and built-in "
                    "types, labelled with one of 6 topics (which module group they come from).",
        source=f"docstrings of Python {_python_version()}'s standard library (PSF license)",
        split_rule=HASH_RULE.replace("0.1 -> test, below 0.2", "0.15 -> test, below 0.3")
        + "; the name is module.member",
        splits=splits,
        label_names=tuple(DOCSTRING_TOPICS),
    )


def _first_paragraph(member):
    if not callable(member):
        return ""
    doc = inspect.getdoc(member) or ""
    return " ".join(doc.split("\n\n")[0].split())


DATE_LOCALES = (
    "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL", "sv_SE", "da_DK",
    "nb_NO", "fi_FI", "pl_PL", "cs_CZ", "hu_HU", "ro_RO", "tr_TR", "ru_RU", "uk_UA", "el_GR",
    "ja_JP", "zh_CN", "ko_KR", "id_ID", "vi_VN",
)
DATE_FORMATS = ("short", "medium", "long", "full")
DATE_RANGE = (datetime.date(1900, 1, 1), datetime.date(2099, 12, 31))
DATE_SIZES = {"train": 24000, "validation": 1000, "test": 2000}


def dates():
    try:
        import babel
        import babel.dates
    except ImportError as error:
        raise MissingDependencyError(
            "The 'dates' data set is written by babel's locale data; install it with `pip install babel`."
        ) from error
    rng = np.random.default_rng(SEED)
    first, last = (day.toordinal() for day in DATE_RANGE)
    splits, seen = {}, set()
    for split, size in DATE_SIZES.items():
        sources, targets = [], []
        while len(sources) < size:
            day = datetime.date.fromordinal(int(rng.integers(first, last + 1)))
            locale = DATE_LOCALES[rng.integers(len(DATE_LOCALES))]
            style = DATE_FORMATS[rng.integers(len(DATE_FORMATS))]
            text = babel.dates.format_date(day, format=style, locale=locale)
            # A two-digit year ("3/5/21") does not say its century; such texts are drawn again.
            if str(day.year) not in text or text in seen:
                continue
            seen.add(text)  # no text is in two splits
            sources.append(text)
            targets.append(day.isoformat())
        splits[split] = Split(sources, targets)
    return Dataset(
        name="dates",
        task="seq2seq",
        description=f"Dates from {DATE_RANGE[0].year} to {DATE_RANGE[1].year} written in "
                    f"{len(DATE_LOCALES)} locales and the CLDR short/medium/long/full styles "
                    "(e.g. '5. März 2021', 'пятница, 5 марта 2021 г.'), to be rewritten as ISO 8601 "
                    "('2021-03-05').",
        source=f"babel {babel.__version__} locale data (Unicode CLDR, Unicode license)",
        split_rule=(f"numpy.random.default_rng({SEED}) draws a day, a locale and a style per example, "
                    f"filling train ({DATE_SIZES['train']}), then validation, then test; a text with a "
                    "two-digit year or already drawn is drawn again"),
        splits=splits,
    )


def _python_version():
    return ".".join(map(str, sys.version_info[:3]))


_BUILDERS = {
    "breast-cancer": breast_cancer,
    "digits": digits,
    "python-docs": python_docs,
    "python-docstrings": python_docstrings,
    "dates": dates,
}
