"""Fine-tune `dense-small` on scikit-learn's breast cancer data, evaluate it and save a report.

    KERAS_BACKEND=jax python examples/evaluate_and_report.py --epochs 20 --out breast-cancer-report

The report folder gets report.json, report.md and PNG plots: the confusion
matrix, the reliability diagram and the training curves. Nothing in this
script depends on the backend.
"""

import argparse

import keras
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import zoo


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default="evaluation-report", help="folder for the report and plots")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data.astype("float32"), data.target, test_size=0.25, stratify=data.target, random_state=0
    )

    x_train, x_validation, y_train, y_validation = train_test_split(
        x_train, y_train, test_size=0.2, stratify=y_train, random_state=0
    )

    model = zoo.load("dense-small", label_names=data.target_names)
    model.get_layer("normalization").adapt(x_train)  # the features span very different scales
    history = zoo.finetune(model, (x_train, y_train), (x_validation, y_validation), epochs=args.epochs,
                           batch_size=args.batch_size, learning_rate=1e-3, verbose=0)

    report = zoo.evaluate(model, (x_test, y_test), batch_size=args.batch_size)  # label names come with the model
    report.save(args.out, history=history)
    print(report.to_markdown())
    print(f"Report and plots written to {args.out}/")
    return report


if __name__ == "__main__":
    main()
