"""Text tokenizers that ship with presets, built on keras_hub's tokenizers.

A preset keeps its tokenizer in `assets/tokenizer/`: `tokenizer.json` (its type
and options) and, for WordPiece, `vocabulary.txt` (one token a line, the line
number is the id). Ids follow the zoo's conventions: 0 = padding, 1 = start,
2 = end, 3 = unknown, then the tokens.

Two types:
- "word_piece": keras_hub can both learn and apply it and its whole state is a
  plain-text vocabulary; decoding gives the text back lower-cased (by default)
  with single spaces around punctuation.
- "byte": the UTF-8 bytes of the text, as ids 4-259 (`ByteTokenizer`). Nothing to
  learn, any language, and decoding gives back exactly the text encoded, so
  bits per byte are exact. The pretrained language models and the dates
  transformer use it.

Example:
>>> tokenizer = train_tokenizer(["Keras runs on JAX.", "Keras runs on torch."], vocab_size=60)
>>> ids = encode(tokenizer, "Keras runs on JAX", length=20, add_start=True, add_end=True)
>>> decode(tokenizer, ids)
['keras runs on jax']
"""

import json
import logging
from pathlib import Path

import keras
import numpy as np

from zoo.data.arrays import token_id_matrix
from zoo.data.checkpoint_tokenizers import SPECIALS_FILE, TOKENIZER_FILE, CheckpointTokenizer
from zoo.data.special_tokens import END_ID, PAD_ID, RESERVED_TOKENS, START_ID, UNKNOWN_ID
from zoo.errors import InvalidConfigError, InvalidPresetError, MissingDependencyError
from zoo.runtime.quiet_imports import keras_hub

logger = logging.getLogger("zoo")
CONFIG_FILE = "tokenizer.json"
VOCABULARY_FILE = "vocabulary.txt"
WORD_PIECE_OPTIONS = ("lowercase", "strip_accents", "split_on_cjk", "suffix_indicator")


@keras.saving.register_keras_serializable(package="zoo")
class ByteTokenizer(keras_hub.tokenizers.ByteTokenizer):
    """keras_hub's byte tokenizer with every id moved up by 4, past the zoo's
    reserved ids (keras_hub uses 0-255, and 0 would read as padding).

    Example:
    >>> tokenizer = ByteTokenizer()
    >>> tokenizer.tokenize(["Hé"])
    [[76, 199, 173]]
    >>> tokenizer.detokenize([[76, 199, 173]])
    ['Hé']
    >>> tokenizer.vocabulary_size()
    260
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("lowercase", False)  # keras_hub lower-cases by default; text must round-trip
        super().__init__(**kwargs)

    def tokenize(self, inputs):
        if isinstance(inputs, str):  # one text, one row of ids (as keras_hub's tokenizers answer)
            return self.tokenize([inputs])[0]
        rows = super().tokenize(inputs)
        rows = rows.to_list() if hasattr(rows, "to_list") else rows  # tf.RaggedTensor on TensorFlow
        return [[int(byte) + BYTE_OFFSET for byte in row] for row in rows]

    def detokenize(self, inputs):
        rows = [[int(token) - BYTE_OFFSET for token in row if int(token) >= BYTE_OFFSET] for row in inputs]
        texts = super().detokenize(rows)
        return [text.decode("utf-8") if isinstance(text, bytes) else str(text) for text in _as_list(texts)]

    def vocabulary_size(self):
        return 256 + BYTE_OFFSET


BYTE_OFFSET = len(RESERVED_TOKENS)
# Tokenizer types a preset may name, and the options its JSON may set.
TOKENIZER_TYPES = {"word_piece": keras_hub.tokenizers.WordPieceTokenizer, "byte": ByteTokenizer,
                   "checkpoint": CheckpointTokenizer}
TOKENIZER_OPTIONS = {"word_piece": WORD_PIECE_OPTIONS, "byte": (), "checkpoint": ()}


def train_tokenizer(texts, vocab_size, lowercase=True):
    """Learn a WordPiece tokenizer of at most `vocab_size` tokens from `texts`.

    `texts` is an iterable of strings; the four reserved tokens come first, so
    the result fits any model whose `vocab_size` is at least `vocab_size`.

    Example:
    >>> tokenizer = train_tokenizer(["the cat sat on the mat"], vocab_size=30)
    >>> tokenizer.vocabulary_size() <= 30
    True
    >>> tokenizer.get_vocabulary()[:4]
    ['[PAD]', '[START]', '[END]', '[UNK]']
    """
    texts = _as_text_list(texts, "texts", allow_single=False)
    if not isinstance(vocab_size, int) or vocab_size <= len(RESERVED_TOKENS):
        raise InvalidConfigError(
            f"vocab_size must be an integer above {len(RESERVED_TOKENS)} (the reserved "
            f"tokens {', '.join(RESERVED_TOKENS)}), got {vocab_size!r}."
        )
    try:
        import tensorflow as tf  # the keras_hub vocabulary learner reads a tf.data pipeline
    except ImportError as error:
        raise MissingDependencyError(
            "train_tokenizer() needs TensorFlow (keras_hub learns WordPiece vocabularies "
            "with tf.data); install it with `pip install tensorflow`."
        ) from error
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts),
        vocab_size,
        lowercase=lowercase,
        reserved_tokens=list(RESERVED_TOKENS),
    )
    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary, lowercase=lowercase, oov_token=RESERVED_TOKENS[UNKNOWN_ID]
    )


def save_tokenizer(tokenizer, folder):
    """Write `tokenizer` to `folder` (a preset's `assets/tokenizer/`); returns the folder.

    Example:
    >>> import tempfile
    >>> tokenizer = train_tokenizer(["one two three"], vocab_size=30)
    >>> folder = save_tokenizer(tokenizer, tempfile.mkdtemp())
    >>> sorted(path.name for path in folder.iterdir())
    ['tokenizer.json', 'vocabulary.txt']
    """
    folder = Path(folder)
    if isinstance(tokenizer, CheckpointTokenizer):  # a converted checkpoint's own, with its own special ids
        tokenizer.save(folder)
        config = {"type": "checkpoint", "vocabulary_size": tokenizer.vocabulary_size(), "options": {}}
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return folder
    if isinstance(tokenizer, ByteTokenizer):
        folder.mkdir(parents=True, exist_ok=True)
        config = {"type": "byte", "vocabulary_size": tokenizer.vocabulary_size(), "options": {}}
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return folder
    if not isinstance(tokenizer, keras_hub.tokenizers.WordPieceTokenizer):
        raise InvalidConfigError(
            f"save_tokenizer() writes keras_hub WordPieceTokenizers and zoo ByteTokenizers, got "
            f"{type(tokenizer).__name__}; make one with zoo.data.tokenizers.train_tokenizer()."
        )
    vocabulary = tokenizer.get_vocabulary()
    _check_reserved_tokens(vocabulary, InvalidConfigError, "this tokenizer")
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "type": "word_piece",
        "vocabulary_size": len(vocabulary),
        "options": {key: getattr(tokenizer, key) for key in WORD_PIECE_OPTIONS},
    }
    # newline="" keeps "\n" as the only line break, the one load_tokenizer splits on.
    with open(folder / VOCABULARY_FILE, "w", encoding="utf-8", newline="") as file:
        file.write("".join(f"{token}\n" for token in vocabulary))
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder


def load_tokenizer(folder, listed=None):
    """The tokenizer saved in `folder`, or None when there is none.

    `listed` (names relative to `folder`) are the only files it may read: a
    preset's manifest says which those are. None allows any.

    Example:
    >>> import tempfile
    >>> tokenizer = train_tokenizer(["one two three"], vocab_size=30)
    >>> folder = save_tokenizer(tokenizer, tempfile.mkdtemp())
    >>> load_tokenizer(folder).get_vocabulary() == tokenizer.get_vocabulary()
    True
    >>> load_tokenizer(tempfile.mkdtemp()) is None
    True
    """
    def readable(name):
        return (Path(folder) / name).is_file() and (listed is None or name in listed)

    config_path = Path(folder) / CONFIG_FILE
    if not readable(CONFIG_FILE):
        return None
    config = _read_config(config_path)
    if config["type"] == "byte":
        return ByteTokenizer()
    if config["type"] == "checkpoint":
        missing = [name for name in (TOKENIZER_FILE, SPECIALS_FILE) if not readable(name)]
        if missing:
            raise InvalidPresetError(
                f"{config_path} describes a converted checkpoint's tokenizer but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing or not in the manifest; convert the checkpoint again."
            )
        return CheckpointTokenizer.load(folder)
    vocabulary_path = Path(folder) / VOCABULARY_FILE
    if not readable(VOCABULARY_FILE):
        raise InvalidPresetError(
            f"{config_path} describes a tokenizer but {vocabulary_path} is missing"
            f"{'' if listed is None else ' or not in the manifest'}; "
            "save the tokenizer again with zoo.data.tokenizers.save_tokenizer()."
        )
    with open(vocabulary_path, encoding="utf-8", newline="") as file:
        # split("\n"), not splitlines(): a word piece may hold other Unicode line breaks.
        vocabulary = file.read().split("\n")[:-1]
    expected_size = config.get("vocabulary_size", len(vocabulary))
    if expected_size != len(vocabulary):
        raise InvalidPresetError(
            f"{vocabulary_path} has {len(vocabulary)} tokens but {config_path} says "
            f"{expected_size}; the files do not belong together, save the tokenizer again."
        )
    _check_reserved_tokens(vocabulary, InvalidPresetError, str(vocabulary_path))
    tokenizer_class = TOKENIZER_TYPES[config["type"]]
    return tokenizer_class(
        vocabulary=vocabulary, oov_token=RESERVED_TOKENS[UNKNOWN_ID], **config["options"]
    )


def encode(tokenizer, texts, length, add_start=False, add_end=False):
    """Token ids of `texts` (one string or a list) as int32 numpy `(batch, length)`.

    Rows are right-padded with 0 and truncated to `length`; `add_start` and
    `add_end` put the start (1) and end (2) ids around each text, and
    truncation keeps them.

    Example:
    >>> tokenizer = train_tokenizer(["a b c d e"], vocab_size=30)
    >>> ids = encode(tokenizer, ["a b", "c d e"], length=5, add_start=True, add_end=True)
    >>> ids.shape, ids.dtype.name
    ((2, 5), 'int32')
    >>> ids[:, 0].tolist(), ids[0, 3:].tolist()
    ([1, 1], [2, 0])
    """
    texts = _as_text_list(texts, "texts", allow_single=True)
    if isinstance(tokenizer, CheckpointTokenizer):
        return _encode_as_checkpoint(tokenizer, texts, length)
    reserved = int(add_start) + int(add_end)
    if not isinstance(length, (int, np.integer)) or length < max(1, reserved):
        raise InvalidConfigError(
            f"length must be an integer of at least {max(1, reserved)} (room for the "
            f"start/end ids asked for), got {length!r}."
        )
    packer = keras_hub.layers.StartEndPacker(
        sequence_length=int(length),
        start_value=START_ID if add_start else None,
        end_value=END_ID if add_end else None,
        pad_value=PAD_ID,
    )
    tokens = tokenizer.tokenize(texts)
    _warn_if_cut(tokens, int(length) - reserved, reserved)
    packed = packer(tokens)
    return np.asarray(keras.ops.convert_to_numpy(packed), dtype="int32")


def _encode_as_checkpoint(tokenizer, texts, length):
    """A converted checkpoint's tokenizer adds its own special tokens (BERT's
    [CLS] ... [SEP], none for GPT-2), as transformers does; a text longer
    than `length` is cut, keeping its end token. Rows are padded with the
    tokenizer's padding id (0 for one without, such as GPT-2's: give those
    models a padding_mask, see `padding_mask`)."""
    if not isinstance(length, (int, np.integer)) or length < 1:
        raise InvalidConfigError(f"length must be a positive integer, got {length!r}.")
    rows = tokenizer.tokenize(texts)
    _warn_if_cut(rows, int(length), 0)
    pad_id = PAD_ID if tokenizer.pad_id is None else tokenizer.pad_id
    ids = np.full((len(rows), int(length)), pad_id, dtype="int32")
    for index, row in enumerate(rows):
        if len(row) > length:
            row = row[: length - 1] + row[-1:] if row[-1] == tokenizer.end_id else row[:length]
        ids[index, : len(row)] = row
    return ids


def padding_mask(tokenizer, texts, length):
    """True where `encode(tokenizer, texts, length)` holds a token of the
    text, False where it is padding: what a model whose vocabulary has no
    padding id (GPT-2) needs beside the ids."""
    texts = _as_text_list(texts, "texts", allow_single=True)
    rows = tokenizer.tokenize(texts)
    lengths = np.minimum([len(row) for row in rows], length)
    return np.arange(length)[None, :] < lengths[:, None]


def _warn_if_cut(tokens, room, reserved):
    """Say (on the "zoo" logger) how many texts are longer than `room` tokens:
    their ends are cut off, and a model never sees them."""
    rows = tokens.to_list() if hasattr(tokens, "to_list") else tokens  # tf.RaggedTensor on TensorFlow
    lengths = [len(row) for row in rows]
    cut = sum(length > room for length in lengths)
    if cut:
        logger.warning(
            "%d of %d text(s) are longer than the %d tokens that fit (the model's context%s) and "
            "were cut to fit; the longest has %d tokens.",
            cut, len(lengths), room, f", less {reserved} for the start/end ids" if reserved else "", max(lengths),
        )


def decode(tokenizer, ids):
    """Texts of token-id rows `(batch, length)` (or one 1-D row), as a list of strings.

    Each row ends at its first padding or end id; start ids are dropped and
    ids the tokenizer does not know read as "[UNK]".

    Example:
    >>> tokenizer = train_tokenizer(["a b c"], vocab_size=30)
    >>> ids = encode(tokenizer, "a b c", length=8, add_start=True, add_end=True)
    >>> decode(tokenizer, ids)
    ['a b c']
    """
    rows = _as_id_rows(ids)
    if isinstance(tokenizer, CheckpointTokenizer):  # it drops its own special tokens, padding included
        return tokenizer.detokenize(rows)
    vocabulary_size = tokenizer.vocabulary_size()
    return list(tokenizer.detokenize([_text_tokens(row, vocabulary_size) for row in rows]))


def _text_tokens(row, vocabulary_size):
    """The ids of `row` that stand for text: up to padding/end, without start ids."""
    ends = [position for position, token in enumerate(row) if token in (PAD_ID, END_ID)]
    row = row[: ends[0]] if ends else row
    # A model whose vocab_size exceeds the tokenizer's can still emit those extra ids.
    return [
        token if 0 <= token < vocabulary_size else UNKNOWN_ID
        for token in row
        if token != START_ID
    ]


def _as_list(values):
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _as_id_rows(ids):
    return token_id_matrix(ids, "decode() input").tolist()


def _as_text_list(texts, what, allow_single):
    if isinstance(texts, str):
        if allow_single:
            return [texts]
        raise InvalidConfigError(
            f"{what} must be an iterable of strings, not one string; wrap it in a list."
        )
    try:
        texts = list(texts)
    except TypeError:
        raise InvalidConfigError(
            f"{what} must be a string or an iterable of strings, got {type(texts).__name__}."
        ) from None
    not_text = [type(text).__name__ for text in texts if not isinstance(text, str)]
    if not texts or not_text:
        raise InvalidConfigError(
            f"{what} must hold at least one string and only strings; got "
            f"{len(texts)} items{', including ' + ', '.join(sorted(set(not_text))) if not_text else ''}."
        )
    return texts


def _check_reserved_tokens(vocabulary, error_class, where):
    reserved = tuple(vocabulary[: len(RESERVED_TOKENS)])
    if reserved != RESERVED_TOKENS:
        raise error_class(
            f"{where} must start with the reserved tokens {list(RESERVED_TOKENS)} "
            f"(ids 0-3, the zoo's padding/start/end/unknown ids), but starts with "
            f"{list(reserved)}; train it with zoo.data.tokenizers.train_tokenizer()."
        )


def _read_config(config_path):
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidPresetError(f"{config_path} is not valid JSON: {error}.") from None
    if not isinstance(config, dict) or str(config.get("type")) not in TOKENIZER_TYPES:
        found = config.get("type") if isinstance(config, dict) else config
        raise InvalidPresetError(
            f"{config_path} names tokenizer type {found!r}, which this keras-zoo does not "
            f"know (known: {', '.join(TOKENIZER_TYPES)}); upgrade keras-zoo or save the "
            "tokenizer again with zoo.data.tokenizers.save_tokenizer()."
        )
    options = config.get("options", {})
    allowed = TOKENIZER_OPTIONS[config["type"]]
    if not isinstance(options, dict) or set(options) - set(allowed):
        raise InvalidPresetError(
            f"{config_path} has tokenizer options {options!r}; {config['type']} takes an "
            f"object with some of: {', '.join(allowed) or '(none)'}."
        )
    return {**config, "options": options}
