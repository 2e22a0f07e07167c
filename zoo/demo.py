"""`zoo demo`: the main job on embedded defaults, in well under a minute.

1. Tabular: load `dense-small`, fine-tune it on scikit-learn's bundled
   breast-cancer data, predict the held-out quarter and evaluate it against the
   majority class.
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
    """Fine-tune, predict and evaluate; returns (model accuracy, majority-class accuracy)."""
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data.astype("float32"), data.target, test_size=0.25, stratify=data.target, random_state=0
    )
    model = zoo.load("dense-small", label_names=data.target_names)
    model.get_layer("normalization").adapt(x_train)
    with console.status(f"fine-tuning dense-small on breast cancer ({len(x_train)} rows, {epochs} epochs)"):
        start = time.perf_counter()
        zoo.finetune(model, (x_train, y_train), epochs=epochs, batch_size=32, learning_rate=1e-3, verbose=0)
        seconds = time.perf_counter() - start
    report = zoo.evaluate(model, (x_test, y_test), verbose=0)
    majority = np.full_like(y_test, np.bincount(y_train).argmax())

    console.print(f"\n[bold]dense-small[/] on breast cancer: {len(y_test)} held-out rows (fine-tuned in {seconds:.1f}s)")
    console.print(f"first predictions: {model.predict_labels(x_test[:4])}, true: "
                  f"{[str(data.target_names[i]) for i in y_test[:4]]}", highlight=False)
    table = Table()
    for column in ("model", "accuracy", "macro F1", "ROC-AUC"):
        table.add_column(column)
    table.add_row("dense-small", f"{report.metrics['accuracy']:.3f}", f"{report.metrics['f1_macro']:.3f}",
                  f"{report.metrics['roc_auc']:.3f}")
    table.add_row("majority class", f"{accuracy_score(y_test, majority):.3f}",
                  f"{f1_score(y_test, majority, average='macro'):.3f}", "0.500")
    console.print(table)
    return report.metrics["accuracy"], accuracy_score(y_test, majority)


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
