"""The tokenizer of a converted Hugging Face checkpoint (gpt2, bert, roberta,
distilbert), built on the `tokenizers` library.

`tokenizers` is the library that transformers' fast tokenizers are made of: a
tokenizer read here runs the same normalizer, pre-tokenizer, model and
post-processor as `transformers.AutoTokenizer` does for the same files, so the
ids are exactly the ones the checkpoint was trained with, without importing
transformers or torch.

A checkpoint folder keeps its tokenizer either as `tokenizer.json` (the
`tokenizers` library's own serialization, used as it is) or as the older
"slow" files, from which the tokenizer is rebuilt the way transformers 5
rebuilds it: `vocab.json` + `merges.txt` (gpt2, roberta: byte-level BPE) or
`vocab.txt` (bert, distilbert: WordPiece with BERT's normalization). The
special tokens come from `tokenizer_config.json` / `special_tokens_map.json`,
else from the model type's usual ones.

One difference: for gpt2, bert, roberta and distilbert, transformers 5 keeps
only the vocabulary (and GPT-2's post-processor) of a `tokenizer.json` and
rebuilds the rest from tokenizer_config.json and its class's defaults. For a
checkpoint's files, which agree with each other, that is the same tokenizer;
a `tokenizer.json` that contradicts its config (or has none: e.g. a cased
BERT file without `"do_lower_case": false`) is read here as the file says.

Example (a WordPiece vocabulary of ten tokens):
>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "!", "keras"]
>>> _ = (folder / "vocab.txt").write_text("\\n".join(words) + "\\n")
>>> tokenizer = read_checkpoint_tokenizer(folder, "bert")
>>> tokenizer.tokenize("Hello worlds!")
[2, 5, 6, 7, 8, 3]
>>> tokenizer.detokenize([[2, 5, 6, 7, 8, 3]])
['hello worlds!']
"""

import json
from pathlib import Path

from zoo.errors import InvalidConfigError, InvalidPresetError, MissingDependencyError

try:  # optional: only checkpoints converted from Hugging Face need it
    import tokenizers
except ImportError:  # pragma: no cover - depends on the environment
    tokenizers = None

MODEL_TYPES = ("gpt2", "bert", "roberta", "distilbert")
TOKENIZER_FILE = "checkpoint_tokenizer.json"
SPECIALS_FILE = "checkpoint_tokenizer_specials.json"
SPECIAL_ID_NAMES = ("pad_id", "start_id", "end_id", "unknown_id", "mask_id")

# The files a Hugging Face checkpoint keeps its tokenizer in.
FAST_FILE = "tokenizer.json"
VOCABULARY_FILES = (FAST_FILE, "vocab.json", "vocab.txt")  # the first one there holds the vocabulary
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"

# The named special tokens transformers knows, in its order.
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_BERT_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                "mask_token": "[MASK]"}
# Each type's defaults: those of its transformers class, used when the files name none.
DEFAULT_SPECIAL_TOKENS = {
    "gpt2": {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
    "roberta": {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
                "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"},
    "bert": _BERT_TOKENS,
    "distilbert": _BERT_TOKENS,
}


def _require_tokenizers():
    if tokenizers is None:
        raise MissingDependencyError(
            "Reading a Hugging Face checkpoint's tokenizer needs the `tokenizers` package, which is not "
            "installed. Install it with `pip install tokenizers`."
        )


class CheckpointTokenizer:
    """A `tokenizers.Tokenizer` with the ids of its special tokens.

    Attributes (an int, or None where the tokenizer has no such token):
    `pad_id`, `start_id` (the id every encoded text starts with: [CLS] or <s>;
    None for GPT-2), `end_id` ([SEP], </s>; GPT-2's <|endoftext|>, which it
    does not append), `unknown_id`, `mask_id`. `clean_up_tokenization_spaces`:
    whether `detokenize` removes the space before punctuation, as
    transformers' `decode` does when the checkpoint's config asks for it.

    Example:
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> words = ["<pad>", "<unk>", "hello", "world"]
    >>> backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    >>> backend.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> tokenizer = CheckpointTokenizer(backend, pad_id=0, unknown_id=1)
    >>> tokenizer.tokenize(["hello world", "hello there"])
    [[2, 3], [2, 1]]
    >>> tokenizer.special_ids()
    {'pad_id': 0, 'start_id': None, 'end_id': None, 'unknown_id': 1, 'mask_id': None}
    >>> tokenizer.vocabulary_size(), tokenizer.token_to_id("world"), tokenizer.id_to_token(2)
    (4, 3, 'hello')
    """

    def __init__(self, tokenizer, *, pad_id=None, start_id=None, end_id=None, unknown_id=None, mask_id=None,
                 clean_up_tokenization_spaces=False):
        _require_tokenizers()
        if not isinstance(tokenizer, tokenizers.Tokenizer):
            raise InvalidConfigError(f"CheckpointTokenizer wraps a tokenizers.Tokenizer, not {type(tokenizer).__name__}.")
        if tokenizer.padding is not None or tokenizer.truncation is not None:
            # Whole texts, as transformers' tokenizer(text) gives them: work on a
            # copy so that the caller's tokenizer keeps its settings.
            tokenizer = tokenizers.Tokenizer.from_str(tokenizer.to_str())
            tokenizer.no_padding()
            tokenizer.no_truncation()
        self.tokenizer = tokenizer
        self.pad_id = pad_id
        self.start_id = start_id
        self.end_id = end_id
        self.unknown_id = unknown_id
        self.mask_id = mask_id
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)

    def tokenize(self, texts):
        """The ids of a text (a list of ints), or of each text of a list (a list
        of lists), with the model's special tokens, untruncated and unpadded."""
        if isinstance(texts, str):
            return self.tokenizer.encode(texts).ids
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise InvalidConfigError(f"tokenize takes a str or a list of str, and got a {type(text).__name__} "
                                         "in the list.")
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]

    def detokenize(self, rows):
        """The text of each row of ids, without the special tokens."""
        rows = [[int(token_id) for token_id in _as_row(row)] for row in rows]
        texts = self.tokenizer.decode_batch(rows, skip_special_tokens=True)
        if self.clean_up_tokenization_spaces:
            texts = [_clean_up_tokenization(text) for text in texts]
        return texts

    def vocabulary_size(self):
        """The number of ids, the added tokens included."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token):
        """The id of a token, or None if it is not in the vocabulary."""
        return self.tokenizer.token_to_id(token)

    def id_to_token(self, token_id):
        """The token of an id, or None if no token has it."""
        return self.tokenizer.id_to_token(int(token_id))

    def special_ids(self):
        """{"pad_id": ..., "start_id": ..., "end_id": ..., "unknown_id": ..., "mask_id": ...}"""
        return {name: getattr(self, name) for name in SPECIAL_ID_NAMES}

    def save(self, folder):
        """Write the tokenizer into `folder`; returns the names of the two files written.

        Example:
        >>> import tempfile
        >>> from tokenizers import Tokenizer, models
        >>> tokenizer = CheckpointTokenizer(Tokenizer(models.WordLevel({"<unk>": 0, "hi": 1}, unk_token="<unk>")),
        ...                                 unknown_id=0)
        >>> folder = tempfile.mkdtemp()
        >>> tokenizer.save(folder)
        ('checkpoint_tokenizer.json', 'checkpoint_tokenizer_specials.json')
        >>> CheckpointTokenizer.load(folder).tokenize("hi")
        [1]
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TOKENIZER_FILE).write_text(self.tokenizer.to_str(), encoding="utf-8")
        specials = {**self.special_ids(), "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces}
        (folder / SPECIALS_FILE).write_text(json.dumps(specials, indent=2) + "\n", encoding="utf-8")
        return TOKENIZER_FILE, SPECIALS_FILE

    @classmethod
    def load(cls, folder):
        """The tokenizer that `save` wrote into `folder`."""
        _require_tokenizers()
        folder = Path(folder)
        tokenizer = _read_tokenizers_json(folder / TOKENIZER_FILE, "save it again with CheckpointTokenizer.save")
        specials = _read_json(folder / SPECIALS_FILE, required=True)
        for name in SPECIAL_ID_NAMES:
            value = specials.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidPresetError(f"{folder / SPECIALS_FILE}: {name} must be an int or null, not {value!r}. "
                                         "Save the tokenizer again with CheckpointTokenizer.save.")
        return cls(tokenizer, **{name: specials.get(name) for name in SPECIAL_ID_NAMES},
                   clean_up_tokenization_spaces=specials.get("clean_up_tokenization_spaces", False))

    def __repr__(self):
        ids = ", ".join(f"{name}={value}" for name, value in self.special_ids().items())
        return f"CheckpointTokenizer(vocabulary_size={self.vocabulary_size()}, {ids})"


def _as_row(row):
    if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
        raise InvalidConfigError(f"detokenize takes a list of rows of ids, and got {row!r} as a row. "
                                 "Wrap a single row in a list: detokenize([ids]).")
    return row


def _clean_up_tokenization(text):
    # transformers' clean_up_tokenization: no space before punctuation and English contractions.
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(before, after)
    return text


def read_checkpoint_tokenizer(folder, model_type):
    """The tokenizer of the Hugging Face checkpoint in `folder`, or None if the
    folder has no tokenizer files. `model_type`: "gpt2", "bert", "roberta" or
    "distilbert" (the `model_type` of the checkpoint's config.json).

    Reads `tokenizer.json` if there is one, else the slow files (`vocab.json`
    and `merges.txt`, or `vocab.txt`); the ids are those transformers'
    `AutoTokenizer` gives for the same folder.

    Example (a byte-level BPE vocabulary, as GPT-2's):
    >>> import json, pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> vocab = {"h": 0, "i": 1, "Ġ": 2, "hi": 3, "Ġhi": 4, "<|endoftext|>": 5}
    >>> _ = (folder / "vocab.json").write_text(json.dumps(vocab))
    >>> _ = (folder / "merges.txt").write_text("#version: 0.2\\nh i\\nĠ hi\\n")
    >>> tokenizer = read_checkpoint_tokenizer(folder, "gpt2")
    >>> tokenizer.tokenize("hi hi")
    [3, 4]
    >>> tokenizer.detokenize([[3, 4, 5]])
    ['hi hi']
    >>> tokenizer.special_ids()
    {'pad_id': None, 'start_id': None, 'end_id': 5, 'unknown_id': 5, 'mask_id': None}
    >>> read_checkpoint_tokenizer(tempfile.mkdtemp(), "gpt2") is None
    True
    """
    if model_type not in MODEL_TYPES:
        raise InvalidPresetError(f"No checkpoint tokenizer for model type {model_type!r}. "
                                 f"Supported model types: {', '.join(MODEL_TYPES)}.")
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidPresetError(f"{folder} is not a folder: give the folder of the Hugging Face checkpoint.")
    if not _has_tokenizer_files(folder):
        return None
    _require_tokenizers()
    config = _read_json(folder / CONFIG_FILE)
    special_tokens = _special_tokens(folder, model_type, config)
    fast = (folder / FAST_FILE).is_file()
    if fast:
        tokenizer = _read_tokenizers_json(folder / FAST_FILE, "download the checkpoint's tokenizer files again")
    elif model_type in ("gpt2", "roberta"):
        tokenizer = _byte_level_bpe(folder, model_type, config)
    else:
        tokenizer = _word_piece(folder, model_type, config, _content(special_tokens["unk_token"]))
    _add_tokens(tokenizer, folder, config, special_tokens)
    ids = {key: _token_id(tokenizer, token) for key, token in special_tokens.items() if key in SPECIAL_TOKEN_KEYS}
    if not fast:
        tokenizer.post_processor = _post_processor(model_type, special_tokens, ids, config)
    # Same rule as transformers' decode: the clean-up is skipped for BPE models.
    clean_up = bool(config.get("clean_up_tokenization_spaces", False)) and type(tokenizer.model).__name__ != "BPE"
    return CheckpointTokenizer(
        tokenizer,
        pad_id=ids.get("pad_token"),
        start_id=_start_id(tokenizer, ids.get("cls_token", ids.get("bos_token"))),
        end_id=ids.get("sep_token", ids.get("eos_token")),
        unknown_id=ids.get("unk_token"),
        mask_id=ids.get("mask_token"),
        clean_up_tokenization_spaces=clean_up,
    )


def _has_tokenizer_files(folder):
    return any((folder / name).is_file() for name in (*VOCABULARY_FILES, "merges.txt"))


def _read_json(path, required=False):
    """A JSON object from a file; {} for an optional file that is not there."""
    if not path.is_file():
        if required:
            raise InvalidPresetError(f"{path} is missing. Save the tokenizer again.")
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidPresetError(f"{path} is not valid JSON ({error}). Fix the file or download it again.") from None
    if not isinstance(value, dict):
        raise InvalidPresetError(f"{path} should hold a JSON object, not a {type(value).__name__}. "
                                 "Fix the file or download it again.")
    return value


def _read_tokenizers_json(path, remedy):
    """A `tokenizers.Tokenizer` from its own JSON serialization."""
    _read_json(path, required=True)  # a clear message for a missing or non-JSON file
    try:
        return tokenizers.Tokenizer.from_file(str(path))
    except Exception as error:  # the library raises a plain Exception
        raise InvalidPresetError(f"{path} is JSON but not a tokenizer of the `tokenizers` library ({error}); "
                                 f"{remedy}.") from None


def _special_tokens(folder, model_type, config):
    """The named special tokens (and "extra": the additional ones), each a str,
    a dict of AddedToken fields, or None; with transformers' precedence: the
    type's defaults, then tokenizer_config.json, then special_tokens_map.json
    (which transformers reads only when the config lists no added tokens)."""
    tokens = dict(DEFAULT_SPECIAL_TOKENS[model_type])
    sources = [config]
    if "added_tokens_decoder" not in config:
        sources.append(_read_json(folder / SPECIAL_TOKENS_MAP_FILE))
    for source in sources:
        tokens.update({key: source[key] for key in SPECIAL_TOKEN_KEYS if key in source})
        if _extra_tokens(source):
            tokens["extra"] = _extra_tokens(source)
    tokens = {key: value for key, value in tokens.items() if value is not None}
    for key, value in tokens.items():
        for token in value if key == "extra" else [value]:
            if not isinstance(token, str) and not (isinstance(token, dict) and isinstance(token.get("content"), str)):
                raise InvalidPresetError(f"{folder}: the special token {key} is {token!r}; it should be a string "
                                         f"(or an AddedToken object). Fix {CONFIG_FILE} or {SPECIAL_TOKENS_MAP_FILE}.")
    return tokens


def _extra_tokens(source):
    """The special tokens besides the named ones: a list, or (transformers 5) a dict of them."""
    for key in ("extra_special_tokens", "additional_special_tokens"):
        value = source.get(key)
        if value:
            return list(value.values()) if isinstance(value, dict) else list(value)
    return []


def _content(token):
    return token["content"] if isinstance(token, dict) else token


def _byte_level_bpe(folder, model_type, config):
    """GPT-2's and RoBERTa's tokenizer from vocab.json + merges.txt, as
    transformers' GPT2Tokenizer / RobertaTokenizer build it."""
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    if not vocab_path.is_file() or not merges_path.is_file():
        found = [name for name in ("vocab.json", "merges.txt", "vocab.txt") if (folder / name).is_file()]
        raise InvalidPresetError(
            f"{folder}: a {model_type} tokenizer needs {FAST_FILE}, or both vocab.json and merges.txt; found only "
            f"{', '.join(found)}. Download the missing file from the checkpoint's repository "
            "(or check the model type).")
    vocab = _read_json(vocab_path)
    if not all(isinstance(token_id, int) for token_id in vocab.values()):
        raise InvalidPresetError(f"{vocab_path} should map each token to an int id. Download it again.")
    try:
        _, merges = tokenizers.models.BPE.read_file(str(vocab_path), str(merges_path))
    except Exception as error:
        raise InvalidPresetError(f"{merges_path} is malformed ({error}): each line should be two tokens separated "
                                 "by one space. Download it again.") from None
    try:
        # No unknown token: every byte has a token of its own.
        model = tokenizers.models.BPE(vocab, merges, dropout=None, continuing_subword_prefix="",
                                      end_of_word_suffix="", fuse_unk=False)
    except Exception as error:
        raise InvalidPresetError(f"{merges_path} does not fit {vocab_path} ({error}). "
                                 "Download both files again from the same checkpoint.") from None
    tokenizer = tokenizers.Tokenizer(model)
    add_prefix_space = bool(config.get("add_prefix_space", False))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    return tokenizer


def _word_piece(folder, model_type, config, unknown_token):
    """BERT's and DistilBERT's tokenizer from vocab.txt, as transformers'
    BertTokenizer builds it."""
    vocab_path = folder / "vocab.txt"
    if not vocab_path.is_file():
        found = [name for name in ("vocab.json", "merges.txt") if (folder / name).is_file()]
        raise InvalidPresetError(
            f"{folder}: a {model_type} tokenizer needs {FAST_FILE} or vocab.txt; found only {', '.join(found)} "
            "(the files of a BPE tokenizer). Check the model type, or download vocab.txt.")
    try:
        vocab = tokenizers.models.WordPiece.read_file(str(vocab_path))  # one token a line, as transformers reads it
    except Exception as error:
        raise InvalidPresetError(f"{vocab_path} cannot be read ({error}): it should be UTF-8 text, one token a "
                                 "line. Download it again.") from None
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordPiece(vocab, unk_token=unknown_token))
    tokenizer.normalizer = tokenizers.normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=config.get("tokenize_chinese_chars", True),
        strip_accents=config.get("strip_accents"),  # None: strip them when lower-casing
        lowercase=config.get("do_lower_case", True),
    )
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = tokenizers.decoders.WordPiece(prefix="##")
    return tokenizer


def _added_token(value, special):
    """A tokenizers.AddedToken from a str (a special token) or a dict of its
    fields; `special` marks it special whatever the dict says (transformers
    does so for the named special tokens)."""
    if isinstance(value, str):
        return tokenizers.AddedToken(value, special=True)
    fields = {key: value[key] for key in ("content", "single_word", "lstrip", "rstrip", "normalized", "special")
              if key in value}
    token = tokenizers.AddedToken(**fields)
    if special:
        token.special = True  # leaves `normalized` as the dict gives it, if it does
    return token


def _add_tokens(tokenizer, folder, config, special_tokens):
    """Register the added tokens as transformers does: those the files list
    (at their ids), then each special token not added yet. A special token must
    already have an id: one appended to the vocabulary would be past the
    model's embeddings."""
    named = [value for key, value in special_tokens.items() if key != "extra"]
    named_contents = {_content(value) for value in named}
    for token_id, fields in sorted(_listed_added_tokens(folder, config, named_contents).items()):
        token = _added_token(fields, special=fields["content"] in named_contents)
        tokenizer.add_tokens([token])
        if tokenizer.token_to_id(token.content) != token_id:
            raise InvalidPresetError(
                f"{folder}: the added token {token.content!r} has id {token_id} in the checkpoint's files, but the "
                f"vocabulary gives it {tokenizer.token_to_id(token.content)}. Download the tokenizer files again.")
    named += special_tokens.get("extra", [])
    missing = {_content(value) for value in named if tokenizer.token_to_id(_content(value)) is None}
    if missing:
        vocab_file = next(name for name in VOCABULARY_FILES if (folder / name).is_file())
        raise InvalidPresetError(
            f"{folder}: the special tokens {', '.join(map(repr, sorted(missing)))} are not in the vocabulary "
            f"({vocab_file}). Name the checkpoint's own special tokens in {CONFIG_FILE} (e.g. \"unk_token\"), "
            "or use the tokenizer files the checkpoint was trained with.")
    already_added = {token.content for token in tokenizer.get_added_tokens_decoder().values()}
    for value in named:
        if _content(value) not in already_added:
            tokenizer.add_tokens([_added_token(value, special=True)])
            already_added.add(_content(value))


def _listed_added_tokens(folder, config, special_contents):
    """{id: AddedToken fields (a dict)} from tokenizer_config.json's
    added_tokens_decoder or, in older checkpoints, from added_tokens.json."""
    if "added_tokens_decoder" in config:
        listed = config["added_tokens_decoder"]
        if not isinstance(listed, dict) or not all(isinstance(fields, dict) and isinstance(fields.get("content"), str)
                                                   for fields in listed.values()):
            raise InvalidPresetError(f"{folder / CONFIG_FILE}: added_tokens_decoder should map each id to the fields "
                                     "of a token (content, lstrip, ...). Download the file again.")
        return {_int_id(token_id, folder / CONFIG_FILE): fields for token_id, fields in listed.items()}
    added = _read_json(folder / ADDED_TOKENS_FILE)
    # transformers' rule for these: a special token is matched on the raw text, another one after
    # normalization. Special here: the named ones, and the additional ones of tokenizer_config.json
    # (not those of special_tokens_map.json, which transformers reads after this file).
    special_contents = set(special_contents) | {_content(value) for value in _extra_tokens(config)}
    return {_int_id(token_id, folder / ADDED_TOKENS_FILE): {"content": token, "normalized": token not in special_contents,
                                                            "special": token in special_contents}
            for token, token_id in added.items()}


def _int_id(value, path):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidPresetError(f"{path}: {value!r} is not a token id. Download the file again.") from None


def _token_id(tokenizer, token):
    return tokenizer.token_to_id(_content(token))


def _post_processor(model_type, special_tokens, ids, config):
    """The special tokens around one text (and a pair), as the type's transformers class adds them."""
    processors = tokenizers.processors
    if model_type in ("bert", "distilbert"):
        cls, sep = _content(special_tokens["cls_token"]), _content(special_tokens["sep_token"])
        return processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, ids["cls_token"]), (sep, ids["sep_token"])])
    if model_type == "roberta":
        return processors.RobertaProcessing(
            (_content(special_tokens["sep_token"]), ids["sep_token"]),
            (_content(special_tokens["cls_token"]), ids["cls_token"]),
            trim_offsets=bool(config.get("trim_offsets", True)),
            add_prefix_space=bool(config.get("add_prefix_space", False)))
    # GPT-2 adds nothing, unless its config asks for a start or an end token.
    bos = _content(special_tokens["bos_token"]) if config.get("add_bos_token") and "bos_token" in ids else None
    eos = _content(special_tokens["eos_token"]) if config.get("add_eos_token") and "eos_token" in ids else None
    single = [f"{bos}:0"] * bool(bos) + ["$A:0"] + [f"{eos}:0"] * bool(eos)
    pair = single + [f"{bos}:1"] * bool(bos) + ["$B:1"] + [f"{eos}:1"] * bool(eos)
    special = {token: ids[key] for token, key in ((bos, "bos_token"), (eos, "eos_token")) if token}
    return processors.TemplateProcessing(single=" ".join(single), pair=" ".join(pair),
                                         special_tokens=list(special.items()))


def _start_id(tokenizer, candidate_id):
    """The id every encoded text starts with, if the post-processor adds one."""
    if candidate_id is None:
        return None
    return candidate_id if tokenizer.encode("").ids[:1] == [candidate_id] else None
