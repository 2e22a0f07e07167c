"""Fine-tune a transformer-encoder preset to tell which part of Python a docstring documents.

    KERAS_BACKEND=jax python examples/finetune_text_classifier.py --epochs 12

The data is Python's own documentation, so nothing is downloaded: the first
paragraph of each docstring in `math`, `os`, `socket` and of the `str`
methods, labelled with where it came from. A WordPiece tokenizer is trained on
the training texts and saved with the fine-tuned preset, so the saved model
reads text.
"""

import argparse
import inspect
import math
import os
import socket
import tempfile

import keras
import numpy as np
from sklearn.model_selection import train_test_split

import zoo
from zoo.data import tokenizers

SOURCES = {"math": math, "os": os, "socket": socket, "str": str}
PER_CLASS = 50  # os alone has 150+ docstrings; keep the classes balanced


def docstring_dataset():
    """(texts, labels): deduplicated first paragraphs of public docstrings."""
    texts, labels, seen = [], [], set()
    for label, (name, source) in enumerate(SOURCES.items()):
        count = 0
        for member_name, member in sorted(inspect.getmembers(source)):
            doc = inspect.getdoc(member) if callable(member) and not member_name.startswith("_") else None
            paragraph = " ".join(doc.split("\n\n")[0].split()) if doc else ""
            if len(paragraph) < 20 or paragraph in seen or count == PER_CLASS:
                continue
            seen.add(paragraph)
            texts.append(paragraph)
            labels.append(label)
            count += 1
    return texts, np.array(labels, "int32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lora-rank", type=int, help="train LoRA adapters instead of every weight")
    parser.add_argument("--max-length", type=int, default=48)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)

    texts, labels = docstring_dataset()
    train_texts, test_texts, y_train, y_test = train_test_split(
        texts, labels, test_size=0.3, stratify=labels, random_state=0
    )
    tokenizer = tokenizers.train_tokenizer(train_texts, vocab_size=2000)
    x_train = tokenizers.encode(tokenizer, train_texts, args.max_length)
    x_test = tokenizers.encode(tokenizer, test_texts, args.max_length)

    # A fresh preset can size its embedding to the tokenizer; a pretrained one
    # would come with its own tokenizer (model.tokenizer) instead.
    model = zoo.load("transformer-encoder-tiny", vocab_size=tokenizer.vocabulary_size(),
                     label_names=list(SOURCES), dropout=0.0)
    model.tokenizer = tokenizer
    zoo.finetune(model, (x_train, y_train), (x_test, y_test), epochs=args.epochs, batch_size=16,
                 learning_rate=1e-3, warmup_steps=10, lora_rank=args.lora_rank, verbose=2)
    if args.lora_rank:
        model = zoo.merge_lora(model)

    report = zoo.evaluate(model, (x_test, y_test), verbose=0)
    print(report.to_markdown())
    folder = zoo.save_preset(model, tempfile.mkdtemp() + "/docstring-classifier", dataset="CPython docstrings")
    reloaded = zoo.load(folder)  # brings its tokenizer and label names along
    questions = ["Return the square root of x.", "Remove a directory from the file system."]
    answers = reloaded.predict_labels(tokenizers.encode(reloaded.tokenizer, questions, args.max_length))
    for question, answer in zip(questions, answers):
        print(f"{question!r} -> {answer}")
    return report


if __name__ == "__main__":
    main()
