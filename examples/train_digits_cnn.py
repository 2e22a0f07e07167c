"""Train the `cnn-tiny` preset on scikit-learn's bundled 8x8 digits and score it.

    KERAS_BACKEND=jax python examples/train_digits_cnn.py --epochs 15

The preset's input shape is a config key, so the same architecture serves
8x8 grey images; nothing in this script depends on the backend.
"""

import argparse

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

import zoo


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]  # (n, 8, 8, 1) in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, stratify=digits.target, random_state=0
    )

    model = zoo.load("cnn-tiny", input_shape=[8, 8, 1], num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=model.default_loss(), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=2)

    predictions = np.argmax(model.predict(x_test, verbose=0), axis=-1)
    print(f"backend: {keras.backend.backend()}")
    print(f"test accuracy: {accuracy_score(y_test, predictions):.3f}")
    print(f"test macro F1: {f1_score(y_test, predictions, average='macro'):.3f}")
    return accuracy_score(y_test, predictions)


if __name__ == "__main__":
    main()
