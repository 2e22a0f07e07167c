"""Quickstart: load the pretrained transformer-small, run it, show its output.

    KERAS_BACKEND=jax python examples/quickstart.py

`transformer-small` ships trained to rewrite dates written in 25 languages as
ISO 8601. The same three lines work on TensorFlow, JAX and PyTorch.
"""

import argparse

import numpy as np

import zoo
from zoo.data import tokenizers

DATES = ["5. März 2021", "3 de agosto de 1999", "2024年7月1日", "Tuesday, June 4, 2030", "12 listopada 1918"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dates", nargs="*", default=DATES, help="dates to rewrite (default: a few examples)")
    args = parser.parse_args(argv)

    model = zoo.load("transformer-small")  # weights bundled with the package, sha256-verified
    card = zoo.info("transformer-small")
    print(card.description)
    print(f"published on the held-out test split: {card.metrics['test']}\n")

    # Text in, text out: the byte tokenizer ships with the preset.
    rewritten = model.generate(args.dates)
    for text, iso in zip(args.dates, rewritten):
        print(f"{text:>28}  ->  {iso}")

    # Underneath it is a keras.Model: token ids in, next-token logits out.
    source = tokenizers.encode(model.tokenizer, args.dates[:1], length=16, add_end=True)
    target = tokenizers.encode(model.tokenizer, rewritten[:1], length=12, add_start=True)
    logits = model.predict({"encoder_token_ids": source, "decoder_token_ids": target}, verbose=0)
    confidence = np.exp(logits.max(-1)) / np.exp(logits).sum(-1)
    print(f"\nlogits {logits.shape}; per-character confidence of the first answer: "
          f"{np.round(confidence[0, :10], 3).tolist()}")
    return rewritten


if __name__ == "__main__":
    main()
