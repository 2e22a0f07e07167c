"""Turn a data file into the inputs and targets of a given preset's model.

`zoo finetune` and `zoo eval` use this: `data_files` reads what is on disk
(tables, image folders, text), this module shapes it for the family at hand
(whose class says, with `data_layout(config)`, which file it reads): feature
count, image size, tokenization and sequence layout. It also says
which config overrides a fresh (not pretrained) preset needs to fit the data.
"""

import dataclasses

import numpy as np

from zoo.data.arrays import next_token_targets
from zoo.data import data_files
from zoo.data.special_tokens import PAD_ID
from zoo.errors import DataFileError

# A family's data layout -> the kind of file (data_files.detect_kind) it reads, and how to say it.
LAYOUT_KINDS = {
    "table": "table",
    "images": "images",
    "text-classifier": "text_csv",
    "language-model": "text",
    "text-pairs": "text_pairs",
}
LAYOUT_HINTS = {
    "table": "a .csv table of numeric feature columns with a --target column",
    "images": "a folder of images in one sub-folder per class",
    "text-classifier": "a .csv with a 'text' column and a --target label column",
    "language-model": "a .txt file (one sample per paragraph)",
    "text-pairs": "a .csv with 'source' and 'target' text columns",
}


@dataclasses.dataclass
class ModelData:
    """What a model trains or is evaluated on."""

    x: object
    """numpy array, or a dict of them for the seq2seq family"""
    y: np.ndarray
    label_names: list | None = None
    overrides: dict = dataclasses.field(default_factory=dict)
    """config changes a fresh preset needs to take this data (e.g. num_features)"""
    tokenizer: object = None
    """the tokenizer the token ids were made with"""

    def __len__(self):
        return len(self.y)

    def subset(self, rows):
        x = {k: v[rows] for k, v in self.x.items()} if isinstance(self.x, dict) else self.x[rows]
        return dataclasses.replace(self, x=x, y=self.y[rows])


def read_for_model(path, family, config, *, target=None, label_names=None, tokenizer=None,
                   fit_inputs=False, max_length=128, vocab_size=None, task=None, model_name="the model"):
    """Read `path` into a `ModelData` for a model of `family` with `config`.

    Args:
        family: the family's model class (`zoo.architectures.get_family(name)`):
            its `data_layout(config)` says what the file must hold.
        target: the label / target column of a CSV.
        label_names: the model's classes, to map the file's labels onto them
            (evaluation); None takes the file's own classes (fine-tuning).
        tokenizer: the model's tokenizer for text; None trains one on the texts.
        fit_inputs: a fresh preset, whose input size may follow the data
            (num_features, vocab_size); otherwise a mismatch is an error.
        max_length: longest token sequence to keep (capped by the model's own).
        task: "classification" or "regression" for a dense preset; None keeps
            the preset's own (a fresh preset may change it).

    Example:
    >>> import pathlib, tempfile, zoo
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "t.csv").write_text("a,b,label\\n1,2,x\\n3,4,y\\n")
    >>> card = zoo.info("dense-tiny")
    >>> family = zoo.architectures.get_family(card.family)
    >>> data = read_for_model(folder / "t.csv", family, card.config, target="label", fit_inputs=True)
    >>> data.x.shape, data.label_names, data.overrides
    ((2, 2), ['x', 'y'], {'num_features': 2})
    """
    kind = data_files.detect_kind(path)
    layout, name = family.data_layout(config), family.family
    if layout == "table":
        return _table(path, kind, name, config, target, label_names, fit_inputs, task, model_name)
    if task is not None:
        raise DataFileError(f"--task applies to dense presets; a {name} preset's task is fixed by the preset.")
    if layout == "images":
        _expect(kind, layout, path, name)
        images = data_files.read_image_folder(path, config["input_shape"])
        if label_names is None:
            return ModelData(images.x, images.y, images.label_names)
        return ModelData(images.x, _onto_classes(path, images, label_names), list(label_names))
    if layout == "feature-sequences":
        raise DataFileError(f"This {name} preset reads feature sequences; the zoo command reads only text for it.")
    if layout not in LAYOUT_KINDS:
        raise DataFileError(f"The zoo command cannot read data for the {name!r} family; use the Python API.")
    data = _text(path, kind, layout, name, config, target, label_names, tokenizer, max_length, vocab_size)
    if fit_inputs and data.tokenizer.vocabulary_size() != config["vocab_size"]:
        # A fresh model needs no embedding rows for ids its tokenizer never makes.
        data.overrides["vocab_size"] = data.tokenizer.vocabulary_size()
    return data


def _table(path, kind, family_name, config, target, label_names, fit_inputs, task, model_name):
    _expect(kind, "table", path, family_name)
    if target is None:
        raise DataFileError(f"{path} is a table: name its label column with --target.")
    overrides = {}
    preset_task = config.get("task", "classification")
    if task not in (None, preset_task):
        if not fit_inputs:
            raise DataFileError(
                f"{model_name} is a pretrained {preset_task} model; it cannot be fine-tuned for {task}. "
                f"Train its architecture afresh for {task} with --pretrained false."
            )
        overrides["task"] = task
    table = data_files.read_table(path, target, task=task or preset_task, label_names=label_names)
    if table.x.shape[1] != config["num_features"]:
        if not fit_inputs:
            data_files.check_features(table.x, config["num_features"], data_name=str(path), model_name=model_name,
                                      fix=f"train its architecture afresh on them: zoo finetune {model_name} "
                                          "--pretrained false ...")
        overrides["num_features"] = table.x.shape[1]
    if (task or preset_task) == "regression" and table.y.shape[1] != config["num_targets"]:
        overrides["num_targets"] = table.y.shape[1]
    return ModelData(table.x, table.y, table.label_names, overrides)


def _text(path, kind, layout, family_name, config, target, label_names, tokenizer, max_length, vocab_size):
    from zoo.data import tokenizers

    _expect(kind, layout, path, family_name)
    if layout == "text-classifier":
        if target is None:
            raise DataFileError(f"{path}: name the label column with --target (the text column is 'text').")
        table = data_files.read_text_csv(path, target=target, label_names=label_names)
        texts, y, names = table.texts, table.y, table.label_names
    elif layout == "language-model":
        texts, names = data_files.read_text_file(path), None
    else:
        texts, targets = data_files.read_text_pairs(path)
        names = None
    if tokenizer is None:
        vocab_size = min(vocab_size or config["vocab_size"], config["vocab_size"])
        tokenizer = tokenizers.train_tokenizer(texts + (targets if layout == "text-pairs" else []), vocab_size)
    if layout == "text-classifier":
        length = min(max_length, config.get("max_length", max_length))
        return ModelData(tokenizers.encode(tokenizer, texts, length), y, names, tokenizer=tokenizer)
    if layout == "language-model":
        length = min(max_length, config.get("max_length", max_length))
        ids = tokenizers.encode(tokenizer, texts, length, add_start=True, add_end=True)
        return ModelData(ids, next_token_targets(ids), tokenizer=tokenizer)
    # Sources end with the end id, as generate() encodes text sources.
    source = tokenizers.encode(tokenizer, texts, min(max_length, config["encoder_max_length"]), add_end=True)
    target_ids = tokenizers.encode(tokenizer, targets, min(max_length, config["decoder_max_length"]), add_end=True)
    decoder_input = np.concatenate(
        [np.full((len(target_ids), 1), config["start_token_id"], "int32"), target_ids[:, :-1]], axis=1
    )
    decoder_input[decoder_input == config["end_token_id"]] = PAD_ID  # the end token is only ever a target
    x = {"encoder_token_ids": source, "decoder_token_ids": decoder_input}
    return ModelData(x, target_ids, tokenizer=tokenizer)


def _onto_classes(path, images, label_names):
    """The class ids of an image folder's images among a model's `label_names`;
    a class folder the model does not know is an error, as a CSV label is."""
    names = [str(name) for name in label_names]
    unknown = [name for name in images.label_names if name not in names]
    if unknown:
        raise DataFileError(
            f"{path} has class folder(s) {', '.join(map(repr, unknown))} that are not among the model's "
            f"classes ({', '.join(names)}). Name each folder after one of them."
        )
    index = np.array([names.index(name) for name in images.label_names], dtype="int32")
    return index[images.y]


def _expect(kind, layout, path, family_name):
    if kind != LAYOUT_KINDS[layout]:
        raise DataFileError(
            f"{path} reads as {kind.replace('_', ' ')} data, but a {family_name} preset needs {LAYOUT_HINTS[layout]}."
        )
