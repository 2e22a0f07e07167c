"""zoo.data.checkpoint_tokenizers: a Hugging Face checkpoint's tokenizer, read
with the `tokenizers` library, gives the ids transformers gives.

The reference tokenizers are trained here, offline, on the docstrings of
standard-library modules and a multilingual sample, then saved by transformers
as a checkpoint saves them.

The tests that compare with transformers need transformers, which imports
torch: they carry no backend_free mark and run once per backend. The others
need neither and are marked backend_free one by one.
"""

import collections
import json
import os
import pathlib
import shutil
import string
import subprocess
import sys
import textwrap

import pytest

tokenizers = pytest.importorskip("tokenizers")

from zoo.data.checkpoint_tokenizers import CheckpointTokenizer, read_checkpoint_tokenizer
from zoo.errors import InvalidConfigError, InvalidPresetError

MULTILINGUAL = [
    "The quick brown fox jumps over the lazy dog.",
    "Café déjà vu, à la française : élève, Noël, ÀÉÎÕÜ.",
    "Größe Straße über Äpfel",
    "Καλημέρα κόσμε, ελληνικά",
    "Привет, мир! Как дела?",
    "你好，世界。机器学习",
    "こんにちは世界、カタカナ",
    "مرحبا بالعالم",
    "emoji 🙂🚀👍🏽 and ﬁ ligature ½",
    "  extra   spaces\t\tand\nnew lines  ",
    "Paris is the [MASK] of France.",
    "Paris is the <mask> of France.",
    "don't stop , it 's fine . isn't it ? yes !",
]
TEXTS = MULTILINGUAL + [
    "",
    " ",
    "x<mask>y [mask] <MASK> [CLS] [SEP] <s>hi</s> <|endoftext|> <pad>",
    "zero\u200bwidth\u00a0space e\u0301 accent",
    "a" * 150,  # longer than WordPiece's longest word: one unknown token
    "newword Keras <extra> <EXTRA>",
]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
TRANSFORMERS_CLASS = {"gpt2": "GPT2TokenizerFast", "roberta": "RobertaTokenizerFast", "bert": "BertTokenizerFast",
                      "distilbert": "DistilBertTokenizerFast"}


def _corpus():
    docs = [module.__doc__ for module in (collections, json, os, pathlib, shutil, string, subprocess, textwrap)]
    return [doc for doc in docs if doc] + MULTILINGUAL


def _train_byte_level_bpe(folder, special_tokens):
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=700, special_tokens=special_tokens, show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_corpus(), trainer)
    folder.mkdir()
    tokenizer.model.save(str(folder))  # vocab.json and merges.txt


def _train_word_piece(folder):
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    trainer = tokenizers.trainers.WordPieceTrainer(vocab_size=700, special_tokens=BERT_SPECIALS, show_progress=False)
    tokenizer.train_from_iterator(_corpus(), trainer)
    folder.mkdir()
    tokenizer.model.save(str(folder))  # vocab.txt


@pytest.fixture(scope="module")
def raw_files(tmp_path_factory):
    """{model type: a folder with only its slow files}, as trained here."""
    root = tmp_path_factory.mktemp("raw")
    _train_byte_level_bpe(root / "gpt2", [])
    vocab_path = root / "gpt2" / "vocab.json"
    vocab = json.loads(vocab_path.read_text())
    vocab["<|endoftext|>"] = len(vocab)  # last, as in GPT-2's
    vocab_path.write_text(json.dumps(vocab))
    _train_byte_level_bpe(root / "roberta", ROBERTA_SPECIALS)  # ids 0-4, as in RoBERTa's
    _train_word_piece(root / "bert")
    return {"gpt2": root / "gpt2", "roberta": root / "roberta", "bert": root / "bert", "distilbert": root / "bert"}


def _copy_files(source, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        shutil.copy(path, folder / path.name)
    return folder


def _write_json(folder, name, value):
    (folder / name).write_text(json.dumps(value))


def _transformers():
    # The reference is transformers 5 (constraints.txt pins it): 4 differed, e.g. in RoBERTa's <mask>.
    return pytest.importorskip("transformers", minversion="5")


def _auto_tokenizer(folder):
    transformers = _transformers()
    return transformers.AutoTokenizer.from_pretrained(str(folder))


def _expected_special_ids(reference):
    start = reference.cls_token_id if reference.cls_token_id is not None else reference.bos_token_id
    return {
        "pad_id": reference.pad_token_id,
        # GPT-2's <|endoftext|> is its bos token, but the texts do not start with it.
        "start_id": start if start is not None and reference("")["input_ids"][:1] == [start] else None,
        "end_id": reference.sep_token_id if reference.sep_token_id is not None else reference.eos_token_id,
        "unknown_id": reference.unk_token_id,
        "mask_id": reference.mask_token_id,
    }


def assert_same_as_transformers(folder, model_type):
    """The tokenizer read from `folder` encodes, decodes and numbers its special
    tokens as transformers' AutoTokenizer does for the same folder."""
    reference = _auto_tokenizer(folder)
    tokenizer = read_checkpoint_tokenizer(folder, model_type)
    expected_ids = reference(TEXTS)["input_ids"]
    assert tokenizer.tokenize(TEXTS) == expected_ids
    assert tokenizer.tokenize(TEXTS[0]) == expected_ids[0]
    assert tokenizer.detokenize(expected_ids) == [reference.decode(row, skip_special_tokens=True)
                                                  for row in expected_ids]
    assert tokenizer.vocabulary_size() == len(reference)
    assert tokenizer.special_ids() == _expected_special_ids(reference)
    return tokenizer


# transformers options of each case; every case is checked with tokenizer.json and with the slow files only.
CASES = [
    ("gpt2", {}),
    ("gpt2", {"add_prefix_space": True, "clean_up_tokenization_spaces": True}),
    ("gpt2", {"add_bos_token": True, "pad_token": "<|endoftext|>"}),
    ("roberta", {}),
    ("roberta", {"add_prefix_space": True}),
    ("roberta", {"mask_lstrip": True}),
    ("bert", {}),
    ("bert", {"do_lower_case": False}),
    ("bert", {"clean_up_tokenization_spaces": True}),
    ("distilbert", {}),
    ("distilbert", {"do_lower_case": False, "strip_accents": True, "tokenize_chinese_chars": False}),
]


def _save_with_transformers(raw_folder, model_type, options, folder):
    transformers = _transformers()
    options = dict(options)
    if options.pop("mask_lstrip", False):  # as RoBERTa's own <mask> is
        options["mask_token"] = tokenizers.AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False,
                                                      special=True)
    tokenizer_class = getattr(transformers, TRANSFORMERS_CLASS[model_type])
    tokenizer_class.from_pretrained(str(raw_folder), **options).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("files", ["tokenizer.json", "slow files"])
@pytest.mark.parametrize("model_type, options", CASES, ids=[f"{t}-{'-'.join(o) or 'default'}" for t, o in CASES])
def test_same_ids_as_transformers(raw_files, tmp_path, model_type, options, files):
    folder = _save_with_transformers(raw_files[model_type], model_type, options, tmp_path / "checkpoint")
    if files == "slow files":
        (folder / "tokenizer.json").unlink()  # transformers then converts the slow files, as the zoo does
        _copy_files(raw_files[model_type], folder)
    assert_same_as_transformers(folder, model_type)


@pytest.mark.parametrize("model_type", ["gpt2", "roberta", "bert", "distilbert"])
def test_same_ids_as_transformers_with_only_the_vocabulary(raw_files, tmp_path, model_type):
    # As in old checkpoints: the slow files and config.json, no tokenizer config.
    folder = _copy_files(raw_files[model_type], tmp_path / "checkpoint")
    _write_json(folder, "config.json", {"model_type": model_type})
    assert_same_as_transformers(folder, model_type)


def _added_token(content, **fields):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True, **fields}


@pytest.mark.parametrize("with_tokenizer_json", [False, True])
def test_roberta_legacy_files_with_mask_lstrip(raw_files, tmp_path, with_tokenizer_json):
    # transformers 4 files: AddedToken dicts in tokenizer_config.json and special_tokens_map.json.
    folder = _copy_files(raw_files["roberta"], tmp_path / "checkpoint")
    _write_json(folder, "config.json", {"model_type": "roberta"})
    names = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
             "pad_token": "<pad>"}
    as_config = {key: {"__type": "AddedToken", **_added_token(value, normalized=True)} for key, value in names.items()}
    for added in as_config.values():
        del added["special"]
    _write_json(folder, "tokenizer_config.json", {
        **as_config, "mask_token": {"__type": "AddedToken", "content": "<mask>", "lstrip": True, "normalized": True,
                                    "rstrip": False, "single_word": False},
        "add_prefix_space": False, "errors": "replace", "trim_offsets": True, "tokenizer_class": "RobertaTokenizer"})
    _write_json(folder, "special_tokens_map.json", {**names, "mask_token": _added_token("<mask>", lstrip=True)})
    if with_tokenizer_json:
        saved = _save_with_transformers(raw_files["roberta"], "roberta", {"mask_lstrip": True}, tmp_path / "saved")
        shutil.copy(saved / "tokenizer.json", folder / "tokenizer.json")
    tokenizer = assert_same_as_transformers(folder, "roberta")
    # The <mask> takes the space before it: the check above did see lstrip.
    plain = read_checkpoint_tokenizer(raw_files["roberta"], "roberta")
    assert tokenizer.tokenize("the <mask> of") != plain.tokenize("the <mask> of")


def test_roberta_added_tokens_decoder_and_clean_up(raw_files, tmp_path):
    # transformers >= 4.34 files: the added tokens listed with their ids in tokenizer_config.json.
    folder = _copy_files(raw_files["roberta"], tmp_path / "checkpoint")
    _write_json(folder, "config.json", {"model_type": "roberta"})
    listed = {str(i): _added_token(token, lstrip=token == "<mask>") for i, token in enumerate(ROBERTA_SPECIALS)}
    _write_json(folder, "tokenizer_config.json", {
        "added_tokens_decoder": listed, "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
        "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
        "clean_up_tokenization_spaces": True, "tokenizer_class": "RobertaTokenizer"})
    # Not read when the config lists its added tokens (transformers 4 wrote both).
    _write_json(folder, "special_tokens_map.json", {"mask_token": "<pad>", "pad_token": "<mask>"})
    tokenizer = assert_same_as_transformers(folder, "roberta")
    assert (tokenizer.mask_id, tokenizer.pad_id) == (4, 1)
    assert not tokenizer.clean_up_tokenization_spaces  # transformers skips the clean-up for BPE


def test_bert_legacy_added_tokens_file(raw_files, tmp_path):
    # Tokens added after training, in added_tokens.json. transformers takes <EXTRA> (additional in the
    # config) as special, matched on the raw text, and <extra> (additional in special_tokens_map.json) not.
    folder = _copy_files(raw_files["bert"], tmp_path / "checkpoint")
    _write_json(folder, "config.json", {"model_type": "bert"})
    _write_json(folder, "tokenizer_config.json", {"do_lower_case": True, "clean_up_tokenization_spaces": True,
                                                  "additional_special_tokens": ["<EXTRA>"]})
    specials = dict(zip(["pad_token", "unk_token", "cls_token", "sep_token", "mask_token"], BERT_SPECIALS))
    _write_json(folder, "special_tokens_map.json", {**specials, "additional_special_tokens": ["<extra>"]})
    size = len((folder / "vocab.txt").read_text(encoding="utf-8").splitlines())
    _write_json(folder, "added_tokens.json", {"newword": size, "<extra>": size + 1, "Keras": size + 2,
                                              "<EXTRA>": size + 3})
    tokenizer = assert_same_as_transformers(folder, "bert")
    assert tokenizer.vocabulary_size() == size + 4
    assert tokenizer.clean_up_tokenization_spaces


def test_bert_with_its_own_special_token_names(raw_files, tmp_path):
    folder = _copy_files(raw_files["bert"], tmp_path / "checkpoint")
    _write_json(folder, "config.json", {"model_type": "bert"})
    renamed = ["<pad>", "<unk>", "<cls>", "<sep>", "<mask>"]
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (folder / "vocab.txt").write_text("\n".join(renamed + vocab[len(renamed):]) + "\n", encoding="utf-8")
    keys = ["pad_token", "unk_token", "cls_token", "sep_token", "mask_token"]
    _write_json(folder, "special_tokens_map.json", dict(zip(keys, renamed)))
    tokenizer = assert_same_as_transformers(folder, "bert")
    assert tokenizer.unknown_id in tokenizer.tokenize("☃")  # not in the corpus


def test_gpt2_added_tokens_past_the_vocabulary_and_start_end(raw_files, tmp_path):
    folder = _copy_files(raw_files["gpt2"], tmp_path / "checkpoint")
    _write_json(folder, "config.json", {"model_type": "gpt2"})
    size = len(json.loads((folder / "vocab.json").read_text()))
    listed = {str(size - 1): _added_token("<|endoftext|>"),
              str(size): _added_token("<pad>", special=False),  # transformers makes it special: it is the pad token
              str(size + 1): _added_token("newword", normalized=True, special=False)}
    _write_json(folder, "tokenizer_config.json", {"added_tokens_decoder": listed, "pad_token": "<pad>",
                                                  "add_bos_token": True, "add_eos_token": True})
    tokenizer = assert_same_as_transformers(folder, "gpt2")
    assert tokenizer.special_ids() == {"pad_id": size, "start_id": size - 1, "end_id": size - 1,
                                       "unknown_id": size - 1, "mask_id": None}


# Without transformers: the round trip, the inputs taken, the errors.

@pytest.mark.backend_free
@pytest.mark.parametrize("model_type", ["gpt2", "roberta", "bert"])
def test_save_and_load_give_the_same_tokenizer(raw_files, tmp_path, model_type):
    folder = _copy_files(raw_files[model_type], tmp_path / "checkpoint")
    _write_json(folder, "tokenizer_config.json", {"clean_up_tokenization_spaces": True})
    tokenizer = read_checkpoint_tokenizer(folder, model_type)
    assert tokenizer.save(tmp_path / "saved") == ("checkpoint_tokenizer.json", "checkpoint_tokenizer_specials.json")
    loaded = CheckpointTokenizer.load(tmp_path / "saved")
    ids = tokenizer.tokenize(TEXTS)
    assert loaded.tokenize(TEXTS) == ids
    assert loaded.detokenize(ids) == tokenizer.detokenize(ids)
    assert loaded.special_ids() == tokenizer.special_ids()
    assert loaded.vocabulary_size() == tokenizer.vocabulary_size()
    assert loaded.clean_up_tokenization_spaces == (model_type == "bert")  # never for BPE, as in transformers
    assert sorted(path.name for path in (tmp_path / "saved").iterdir()) == [
        "checkpoint_tokenizer.json", "checkpoint_tokenizer_specials.json"]


@pytest.mark.backend_free
def test_tokenizer_json_is_read_as_it_is(raw_files, tmp_path):
    # A cased tokenizer.json and no tokenizer_config.json: cased, as the file says (transformers 5
    # would lower-case it, BertTokenizer's default; see the module docstring).
    backend = read_checkpoint_tokenizer(raw_files["bert"], "bert").tokenizer
    backend.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    (tmp_path / "tokenizer.json").write_text(backend.to_str())
    tokenizer = read_checkpoint_tokenizer(tmp_path, "bert")
    assert tokenizer.tokenize(TEXTS) == [encoding.ids for encoding in backend.encode_batch(TEXTS)]
    assert tokenizer.tokenize("Paris") != tokenizer.tokenize("paris")


@pytest.mark.backend_free
def test_inputs_and_lookups(raw_files):
    tokenizer = read_checkpoint_tokenizer(raw_files["bert"], "bert")
    ids = tokenizer.tokenize("paris")
    assert ids[0] == tokenizer.start_id and ids[-1] == tokenizer.end_id
    assert tokenizer.tokenize(("paris", "")) == [ids, [tokenizer.start_id, tokenizer.end_id]]
    assert tokenizer.tokenize([]) == []
    assert tokenizer.id_to_token(tokenizer.token_to_id("[MASK]")) == "[MASK]" and tokenizer.mask_id == 4
    assert tokenizer.token_to_id("no-such-token") is None
    assert tokenizer.detokenize([ids, [tokenizer.pad_id] * 3]) == ["paris", ""]
    with pytest.raises(InvalidConfigError, match="list of str"):
        tokenizer.tokenize(["paris", 3])
    with pytest.raises(InvalidConfigError, match="list of rows"):
        tokenizer.detokenize(ids)


@pytest.mark.backend_free
def test_wrapping_a_padded_tokenizer_gives_whole_texts_and_leaves_it_as_it_was():
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<unk>": 0, "<pad>": 1, "a": 2}, unk_token="<unk>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    backend.enable_padding(pad_id=1, pad_token="<pad>", length=4)
    tokenizer = CheckpointTokenizer(backend, pad_id=1, unknown_id=0)
    assert tokenizer.tokenize("a a b") == [2, 2, 0]
    assert backend.encode("a").ids == [2, 1, 1, 1]


@pytest.mark.backend_free
def test_no_tokenizer_files_gives_none(tmp_path):
    _write_json(tmp_path, "config.json", {"model_type": "bert"})
    assert read_checkpoint_tokenizer(tmp_path, "bert") is None


@pytest.mark.backend_free
def test_unknown_model_type(raw_files):
    with pytest.raises(InvalidPresetError, match="'llama'.*gpt2, bert, roberta, distilbert"):
        read_checkpoint_tokenizer(raw_files["bert"], "llama")


def _broken(raw_files, tmp_path, model_type, changes):
    folder = _copy_files(raw_files[model_type], tmp_path / "checkpoint")
    for name, content in changes.items():
        if content is None:
            (folder / name).unlink()
        else:
            (folder / name).write_text(content, encoding="utf-8")
    return folder


BROKEN = [
    # (model type, {file: its new content, or None to delete it}, what the message must name)
    ("gpt2", {"merges.txt": None}, "merges.txt"),
    ("roberta", {"vocab.json": None}, "vocab.json"),
    ("gpt2", {"merges.txt": "#version: 0.2\nĠ Ġ\none two three\n"}, "merges.txt"),
    ("gpt2", {"merges.txt": "#version: 0.2\nnot-a-token in-vocab\n"}, "merges.txt"),
    ("roberta", {"vocab.json": "{not json"}, "vocab.json"),
    ("roberta", {"vocab.json": '["a", "list"]'}, "vocab.json"),
    ("roberta", {"vocab.json": '{"a": "zero"}'}, "vocab.json"),
    ("gpt2", {"tokenizer.json": "{not json"}, "tokenizer.json"),
    ("bert", {"tokenizer.json": '{"model": "not a tokenizer"}'}, "tokenizer.json"),
    ("bert", {"tokenizer_config.json": "{not json"}, "tokenizer_config.json"),
    ("bert", {"special_tokens_map.json": '{"unk_token": 7}'}, "special_tokens_map.json"),
    ("bert", {"added_tokens.json": '{"newword": 3}'}, "newword"),  # an id that is not the next one
    # Special tokens missing from the vocabulary: the message names them and the file.
    ("bert", {"vocab.txt": "[PAD]\n[UNK]\n[CLS]\n[SEP]\nparis\n"}, "'[MASK]'"),
    ("bert", {"vocab.txt": "[PAD]\n[UNK]\n[CLS]\n[SEP]\nparis\n"}, "vocab.txt"),
    ("gpt2", {"vocab.json": '{"a": 0}', "merges.txt": "#version: 0.2\n"}, "'<|endoftext|>'"),
]


@pytest.mark.backend_free
@pytest.mark.parametrize("model_type, changes, named", BROKEN)
def test_broken_files_are_named_in_the_error(raw_files, tmp_path, model_type, changes, named):
    folder = _broken(raw_files, tmp_path, model_type, changes)
    with pytest.raises(InvalidPresetError) as error:
        read_checkpoint_tokenizer(folder, model_type)
    assert named in str(error.value)


@pytest.mark.backend_free
def test_the_wrong_kind_of_files_for_the_model_type(raw_files):
    with pytest.raises(InvalidPresetError, match="vocab.txt"):
        read_checkpoint_tokenizer(raw_files["gpt2"], "bert")
    with pytest.raises(InvalidPresetError, match="merges.txt"):
        read_checkpoint_tokenizer(raw_files["bert"], "roberta")


@pytest.mark.backend_free
@pytest.mark.parametrize("name, content", [
    ("checkpoint_tokenizer.json", None),
    ("checkpoint_tokenizer.json", "{not json"),
    ("checkpoint_tokenizer.json", '{"model": 3}'),
    ("checkpoint_tokenizer_specials.json", None),
    ("checkpoint_tokenizer_specials.json", "[1, 2]"),
    ("checkpoint_tokenizer_specials.json", '{"pad_id": "zero"}'),
])
def test_load_names_the_broken_file(raw_files, tmp_path, name, content):
    read_checkpoint_tokenizer(raw_files["bert"], "bert").save(tmp_path)
    if content is None:
        (tmp_path / name).unlink()
    else:
        (tmp_path / name).write_text(content)
    with pytest.raises(InvalidPresetError, match=name):
        CheckpointTokenizer.load(tmp_path)


@pytest.mark.backend_free
def test_the_module_imports_no_framework():
    code = ("import sys, zoo.data.checkpoint_tokenizers; "
            "print(sorted(set(sys.modules) & {'keras', 'tensorflow', 'jax', 'torch', 'transformers'}))")
    root = pathlib.Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
