"""`zoo demo`: the main job on embedded defaults, in well under a minute.

1. Tabular: load the pretrained `dense-small.breast-cancer`, predict the rows of
   its held-out test split, and evaluate: accuracy and macro F1 beside the
   published figures and the majority-class baseline.
2. Sequence: load a sequence preset (default `transformer-small`, pretrained to
   rewrite dates as ISO 8601) and run it: text in, text out for presets with a
   tokenizer, token ids otherwise.
"""

import keras
import numpy as np
from rich.table import Table

import zoo
from zoo.data import datasets
from zoo.eval import published
from zoo.runtime import quiet_imports

TABULAR_PRESET = "dense-small.breast-cancer"
EXAMPLE_TEXT = {
    "seq2seq": ["5. März 2021", "vendredi 14 juillet 1989", "2 февраля 1999 г.", "Dec 24, 2040"],
    "language-modelling": ["The with statement"],
}


def run(console, sequence_preset="transformer-small"):
    console.rule(f"keras-zoo {zoo.__version__} demo, backend: {keras.backend.backend()}")
    quiet_imports.import_tensorflow_quietly()  # set_random_seed seeds TensorFlow too
    keras.utils.set_random_seed(0)
    tabular_demo(console)
    sequence_demo(console, sequence_preset)
    return 0


def tabular_demo(console, name=TABULAR_PRESET):
    """Predict and evaluate a pretrained classifier on its held-out split;
    returns (model accuracy, majority-class accuracy)."""
    model = zoo.load(name)
    data = datasets.load_dataset(model.preset_metadata["dataset"]["name"])
    x_test, y_test = published.evaluation_data(model, data, "test")
    report = zoo.evaluate(model, (x_test, y_test), verbose=0)
    published_metrics = published.published_metrics(model)
    baseline = model.preset_metadata["baseline"]["metrics"]

    console.print(f"\n[bold]{name}[/]: {zoo.info(name).description}", highlight=False)
    console.print(f"first predictions: {model.predict_labels(x_test[:4])}, true: "
                  f"{[data.label_names[i] for i in y_test[:4]]}", highlight=False)
    table = Table(title=f"{len(y_test)} held-out rows of {data.name}", title_justify="left")
    for column in ("", "accuracy", "macro F1"):
        table.add_column(column)
    table.add_row("now", f"{report.metrics['accuracy']:.3f}", f"{report.metrics['f1_macro']:.3f}")
    table.add_row("published", f"{published_metrics['accuracy']:.3f}", f"{published_metrics['f1_macro']:.3f}")
    table.add_row("majority class", f"{baseline['accuracy']:.3f}", f"{baseline['f1_macro']:.3f}")
    console.print(table)
    return report.metrics["accuracy"], baseline["accuracy"]


def sequence_demo(console, name):
    card = zoo.info(name)
    model = zoo.load(name)
    weights = "pretrained" if card.pretrained else "randomly initialised"
    console.print(f"\n[bold]{name}[/]: {card.description}", highlight=False)
    console.print(f"{model.count_params():,} parameters, {weights}")
    texts = EXAMPLE_TEXT.get(model.task)
    if hasattr(model, "generate") and model.tokenizer is not None and texts:
        outputs = model.generate(texts, max_length=_generation_length(model))
        for text, output in zip(texts, outputs):
            console.print(f"  {text!r} -> {output!r}", highlight=False)
        return
    inputs, _ = model.example_batch(batch_size=2, seed=0)
    outputs = keras.ops.convert_to_numpy(model(inputs, training=False))
    shapes = {k: v.shape for k, v in inputs.items()} if isinstance(inputs, dict) else inputs.shape
    console.print(f"input {shapes} -> output {outputs.shape} ({model.task})")
    if hasattr(model, "generate"):
        prompt = inputs["encoder_token_ids"] if isinstance(inputs, dict) else inputs[:, :4]
        tokens = model.generate(np.asarray(prompt[:1]), max_length=12, stop_token_ids=None)
        console.print(f"generate(greedy, 12 tokens) -> {tokens[0].tolist()}")


def _generation_length(model):
    config = model.zoo_config
    return getattr(config, "decoder_max_length", None) or min(64, config.max_length)
