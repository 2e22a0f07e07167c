"""Small random transformers checkpoints of each supported type, for tests
and tools: built from configs with transformers (torch), every weight
perturbed so that no layer norm or bias stays at its initial value, and saved
with `save_pretrained` (safetensors), with a tokenizer trained here on text
that ships with Python. Nothing is downloaded."""

import collections
import json

import numpy as np

SIZES = dict(layers=2, hidden=32, heads=4, intermediate=64, positions=40)
TEXTS = [collections.__doc__, json.__doc__, "The zoo opens at nine. Le zoo ouvre à neuf heures!",
         "Der Zoo öffnet um neun. 动物园九点开门。", "Ζωολογικός κήπος, зоопарк, حديقة الحيوان 🦒"]


def reference_model(model_type, head, vocab_size, num_labels=3, seed=0):
    """A transformers torch model of `model_type` ("gpt2", "bert", "roberta",
    "distilbert") with `head` ("lm", "bare", "classifier"), random weights."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = _config(transformers, model_type, vocab_size, num_labels)
    model = getattr(transformers, _class_name(model_type, head))(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    return model


def _config(transformers, model_type, vocab_size, num_labels):
    size = SIZES
    if model_type == "gpt2":
        return transformers.GPT2Config(n_layer=size["layers"], n_embd=size["hidden"], n_head=size["heads"],
                                       n_positions=size["positions"], vocab_size=vocab_size,
                                       bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1,
                                       num_labels=num_labels)
    if model_type == "distilbert":
        return transformers.DistilBertConfig(n_layers=size["layers"], dim=size["hidden"], n_heads=size["heads"],
                                             hidden_dim=size["intermediate"], max_position_embeddings=size["positions"],
                                             vocab_size=vocab_size, num_labels=num_labels)
    config_class = transformers.BertConfig if model_type == "bert" else transformers.RobertaConfig
    extra = 2 if model_type == "roberta" else 0  # RoBERTa's positions start after its padding id
    return config_class(num_hidden_layers=size["layers"], hidden_size=size["hidden"],
                        num_attention_heads=size["heads"], intermediate_size=size["intermediate"],
                        max_position_embeddings=size["positions"] + extra, vocab_size=vocab_size,
                        num_labels=num_labels)


def _class_name(model_type, head):
    prefix = {"gpt2": "GPT2", "bert": "Bert", "roberta": "Roberta", "distilbert": "DistilBert"}[model_type]
    if head == "bare":
        return f"{prefix}Model"
    if head == "classifier":
        return f"{prefix}ForSequenceClassification"
    return f"{prefix}LMHeadModel" if model_type == "gpt2" else f"{prefix}ForMaskedLM"


def reference_tokenizer(model_type, folder):
    """A transformers fast tokenizer of `model_type`, trained on TEXTS and saved into `folder`."""
    import tokenizers
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    if model_type in ("bert", "distilbert"):
        backend = tokenizers.Tokenizer(tokenizers.models.WordPiece(unk_token="[UNK]"))
        backend.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
        backend.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
        trainer = tokenizers.trainers.WordPieceTrainer(
            vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False)
        backend.train_from_iterator(TEXTS, trainer)
        backend.model.save(str(folder))
        cls = transformers.BertTokenizerFast if model_type == "bert" else transformers.DistilBertTokenizerFast
    else:
        backend = tokenizers.Tokenizer(tokenizers.models.BPE())
        backend.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] if model_type == "roberta" else []
        trainer = tokenizers.trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                                 initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
        backend.train_from_iterator(TEXTS, trainer)
        backend.model.save(str(folder))
        if model_type == "gpt2":
            vocab = json.loads((folder / "vocab.json").read_text())
            vocab["<|endoftext|>"] = len(vocab)
            (folder / "vocab.json").write_text(json.dumps(vocab))
        cls = transformers.GPT2TokenizerFast if model_type == "gpt2" else transformers.RobertaTokenizerFast
    tokenizer = cls.from_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def save_checkpoint(model_type, head, folder, with_tokenizer=True, num_labels=3):
    """(folder, torch model, tokenizer or None): a checkpoint saved as transformers saves it."""
    tokenizer = reference_tokenizer(model_type, folder) if with_tokenizer else None
    vocab_size = len(tokenizer) if tokenizer is not None else 120
    model = reference_model(model_type, head, vocab_size, num_labels)
    model.save_pretrained(str(folder))
    return folder, model, tokenizer


def inputs_with_padding(vocab_size, pad_id, seed=0):
    """(ids, mask): three rows holding id 0, two of them padded at the end."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(3, 12)).astype("int32")
    ids[:, 1] = 0
    mask = np.ones(ids.shape, bool)
    mask[1, 9:] = False
    mask[2, 5:] = False
    if pad_id is not None:
        ids = np.where(mask, ids, pad_id).astype("int32")
    return ids, mask
