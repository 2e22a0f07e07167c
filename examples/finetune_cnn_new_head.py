"""Transfer a CNN to a new image task with a new head.

    KERAS_BACKEND=torch python examples/finetune_cnn_new_head.py

1. Train `cnn-tiny` on the digits 0-4 of scikit-learn's bundled 8x8 digits
   and save it as a preset folder: this stands in for a pretrained preset.
2. Load that preset for a new task, the digits 5-9, with new label names:
   the head is replaced (zoo logs it) and every other weight is kept.
3. Fine-tune: first the head alone on the frozen backbone, then everything
   (gradual unfreezing), and compare with the same budget from scratch.
"""

import argparse
import logging
import tempfile

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import zoo

logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")  # show zoo's head-swap note


def digits_split(classes, seed=0):
    """Images of `classes` as (n, 8, 8, 1) floats in [0, 1], split 75/25."""
    digits = load_digits()
    keep = np.isin(digits.target, classes)
    images = (digits.images[keep] / 16.0).astype("float32")[..., None]
    labels = np.searchsorted(classes, digits.target[keep]).astype("int32")
    return train_test_split(images, labels, test_size=0.25, stratify=labels, random_state=seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--pretrain-size", type=int, default=None, help="images of digits 0-4 (default: all)")
    parser.add_argument("--train-size", type=int, default=60, help="labelled images of the new task to learn from")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)

    # 1. The "pretrained" preset: digits 0-4.
    x_old, x_old_test, y_old, y_old_test = digits_split([0, 1, 2, 3, 4])
    x_old, y_old = x_old[: args.pretrain_size], y_old[: args.pretrain_size]
    base = zoo.load("cnn-tiny", input_shape=[8, 8, 1], label_names=["0", "1", "2", "3", "4"])
    zoo.finetune(base, (x_old, y_old), epochs=args.pretrain_epochs, learning_rate=3e-3, verbose=0)
    folder = zoo.save_preset(base, tempfile.mkdtemp() + "/digits-0-4", dataset="sklearn digits 0-4")
    print(f"base preset, digits 0-4: accuracy {zoo.evaluate(base, (x_old_test, y_old_test), verbose=0).metrics['accuracy']:.3f}")

    # 2. and 3. A new task with little data: digits 5-9, a new head.
    x_new, x_test, y_new, y_test = digits_split([5, 6, 7, 8, 9])
    x_new, y_new = x_new[: args.train_size], y_new[: args.train_size]
    names = ["five", "six", "seven", "eight", "nine"]
    results, models = {}, {}
    for start in ("transferred", "from scratch"):
        keras.utils.set_random_seed(1)
        if start == "transferred":
            model = zoo.load(folder, label_names=names)
            options = dict(freeze="backbone", unfreeze_at=args.epochs // 2)
        else:
            model = zoo.load("cnn-tiny", input_shape=[8, 8, 1], label_names=names)
            options = {}
        zoo.finetune(model, (x_new, y_new), epochs=args.epochs, batch_size=16, learning_rate=3e-3,
                     verbose=0, **options)
        results[start], models[start] = zoo.evaluate(model, (x_test, y_test), verbose=0), model
        print(f"{start:>12}, digits 5-9 from {len(x_new)} images: "
              f"accuracy {results[start].metrics['accuracy']:.3f}")
    print("transferred model, first test images:", models["transferred"].predict_labels(x_test[:5]),
          "true:", [names[i] for i in y_test[:5]])
    return {name: report.metrics["accuracy"] for name, report in results.items()}


if __name__ == "__main__":
    main()
