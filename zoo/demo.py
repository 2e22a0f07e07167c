"""`zoo demo`: the main job on embedded defaults, in well under a minute.

1. Tabular: load `dense-small`, fit it on scikit-learn's bundled breast-cancer
   data, predict the held-out quarter and score it against the majority class.
2. Sequence: load a sequence preset (default `transformer-small`), run it on
   example token ids and, for generative families, decode a continuation.
"""

import time

import keras
import numpy as np
from rich.table import Table
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

import zoo


def run(console, sequence_preset="transformer-small"):
    console.rule(f"keras-zoo {zoo.__version__} demo, backend: {keras.backend.backend()}")
    keras.utils.set_random_seed(0)
    tabular_demo(console)
    sequence_demo(console, sequence_preset)
    return 0


def tabular_demo(console, epochs=30):
    """Fit, predict and score; returns (model accuracy, majority-class accuracy)."""
    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features.astype("float32"), labels, test_size=0.25, stratify=labels, random_state=0
    )
    model = zoo.load("dense-small")
    model.get_layer("normalization").adapt(x_train)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=model.default_loss())
    with console.status(f"fitting dense-small on breast cancer ({len(x_train)} rows, {epochs} epochs)"):
        start = time.perf_counter()
        model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
        seconds = time.perf_counter() - start
    predictions = np.argmax(model.predict(x_test, verbose=0), axis=-1)
    majority = np.full_like(y_test, np.bincount(y_train).argmax())

    console.print(f"\n[bold]dense-small[/] on breast cancer: {len(y_test)} held-out rows (fit in {seconds:.1f}s)")
    table = Table()
    for column in ("model", "accuracy", "macro F1"):
        table.add_column(column)
    for name, predicted in (("dense-small", predictions), ("majority class", majority)):
        table.add_row(name, f"{accuracy_score(y_test, predicted):.3f}",
                      f"{f1_score(y_test, predicted, average='macro'):.3f}")
    console.print(table)
    return accuracy_score(y_test, predictions), accuracy_score(y_test, majority)


def sequence_demo(console, name):
    card = zoo.info(name)
    model = zoo.load(name)
    inputs, _ = model.example_batch(batch_size=2, seed=0)
    outputs = keras.ops.convert_to_numpy(model(inputs, training=False))
    weights = "pretrained" if card.pretrained else "randomly initialised (no pretrained weights yet)"
    console.print(f"\n[bold]{name}[/]: {card.description}")
    console.print(f"{model.count_params():,} parameters, {weights}")
    shapes = {k: v.shape for k, v in inputs.items()} if isinstance(inputs, dict) else inputs.shape
    console.print(f"input {shapes} -> output {outputs.shape} ({model.task})")
    if hasattr(model, "generate"):
        prompt = inputs["encoder_token_ids"] if isinstance(inputs, dict) else inputs[:, :4]
        tokens = model.generate(prompt[:1], max_length=12, stop_token_ids=None)
        console.print(f"generate(greedy, 12 tokens) -> {tokens[0].tolist()}")
