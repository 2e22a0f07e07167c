"""Train the zoo's pretrained presets from scratch, on CPU, and publish their figures.

    python tools/train_presets.py                      # every preset: train, measure, publish
    python tools/train_presets.py transformer-small    # some presets
    python tools/train_presets.py --publish-only       # measure and publish the folders there are
    python tools/train_presets.py --quick --out DIR dense-small.breast-cancer   # a fast smoke run

For each preset: train on its data set (zoo.data.datasets) on --train-backend with a
fixed seed, save the preset folder in presets/NAME/, evaluate the saved weights
on the held-out test split, and save a batch of reference outputs. Then, in one
process per backend, reload the folder, recompute the published metrics and the
max abs difference to the reference outputs. Last, write presets/results.csv,
each folder's model card (README.md) and manifest, the preset cards
(presets/NAME.json, pinned by the manifest's sha256) and the README tables.
"""

import argparse
import csv
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

SEED = 0
BACKENDS = ("tensorflow", "jax", "torch")
RESULTS_COLUMNS = ("preset", "dataset", "split", "metric", "value", "backend", "versions", "date")
LICENSE = "Apache-2.0"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one pretrained preset is made."""

    base: str  # the architecture preset it starts from, freshly initialised
    dataset: str
    overrides: dict
    epochs: int
    batch_size: int
    learning_rate: float
    warmup_steps: int = 0
    weight_decay: float = 0.01
    sequence_length: int | None = None  # text is cut to this many tokens
    tokenizer: str | None = None  # "byte", or "word_piece:<vocabulary size>"
    train_backend: str | None = None  # None: --train-backend
    description: str = ""
    intended_use: str = ""
    limits: str = ""


RECIPES = {
    "dense-small.breast-cancer": Recipe(
        base="dense-small", dataset="breast-cancer", overrides={}, epochs=60, batch_size=32,
        learning_rate=1e-3,
        description="dense-small trained on scikit-learn's breast cancer table: malignant or benign "
                    "from 30 measurements of cell nuclei.",
        intended_use="A worked example of a tabular classifier to fine-tune or compare backends with; "
                     "takes the raw 30 features (the input layer normalises them).",
        limits="Not a medical device: 569 samples from one hospital in the 1990s. The test split has "
               "114 rows, so one error moves accuracy by 0.009.",
    ),
    "cnn-small.digits": Recipe(
        base="cnn-small", dataset="digits", overrides={"input_shape": [8, 8, 1]}, epochs=40,
        batch_size=32, learning_rate=2e-3, warmup_steps=50,
        description="cnn-small (residual) trained on scikit-learn's 8x8 handwritten digits.",
        intended_use="Digit recognition on 8x8 grey images with values in [0, 1]; a starting point "
                     "for fine-tuning on other small grey images (zoo.load(..., num_classes=K)).",
        limits="8x8 images only, from 43 writers (UCI optdigits); other resolutions need resizing "
               "first. MNIST-style 28x28 digits are a different distribution.",
    ),
    "lstm-small.python-docs": Recipe(
        base="lstm-small", dataset="python-docs",
        overrides={"vocab_size": 260, "task": "language_model", "bidirectional": False,
                   "embedding_dim": 64, "units": [256], "dropout": 0.0},
        epochs=8, batch_size=32, learning_rate=3e-3, warmup_steps=50, sequence_length=128,
        tokenizer="byte", train_backend="jax",  # Keras' LSTM on torch runs step by step on CPU: 15x slower
        description="A byte-level LSTM language model of English technical prose, trained on the "
                    "reference-manual topics Python ships for help().",
        intended_use="Scoring and generating Python-documentation-like text byte by byte; comparing "
                     "recurrent and transformer language models on the same data.",
        limits="Trained on under half a megabyte of text: it knows the style of Python's manual, "
               "not facts. Bytes, so any language reads, but only English was seen.",
    ),
    "transformer-encoder-tiny.python-docstrings": Recipe(
        base="transformer-encoder-tiny", dataset="python-docstrings",
        overrides={"vocab_size": 2048, "max_length": 64, "dropout": 0.1},
        epochs=30, batch_size=32, learning_rate=1e-3, warmup_steps=50, sequence_length=64,
        tokenizer="word_piece:2048",
        description="transformer-encoder-tiny trained to tell which part of the standard library a "
                    "docstring documents (text, numbers, files and processes, networking, containers "
                    "and iteration, dates and times).",
        intended_use="A text classifier with a WordPiece tokenizer to fine-tune on your own labels "
                     "(zoo.load(..., label_names=[...]) keeps the encoder).",
        limits="790 short docstrings in all: it learns the vocabulary of each topic, not deep "
               "understanding. Text is lower-cased and cut to 64 word pieces. The small size keeps "
               "the bundled weights under 50 MB; the small encoder reached the same test accuracy (0.73).",
    ),
    "transformer-decoder-small.python-docs": Recipe(
        base="transformer-decoder-small", dataset="python-docs",
        overrides={"vocab_size": 260, "max_length": 128, "dropout": 0.1},
        epochs=12, batch_size=32, learning_rate=1e-3, warmup_steps=100, sequence_length=128,
        tokenizer="byte",
        description="A byte-level GPT-style language model trained on the reference-manual topics "
                    "Python ships for help().",
        intended_use="Generating and scoring Python-documentation-like text; model.generate(\"The "
                     "with statement\") continues a prompt byte by byte.",
        limits="Trained on under half a megabyte of text for twenty minutes of CPU: fluent-looking "
               "fragments, no reliable facts. Context is 128 bytes.",
    ),
    "transformer-small": Recipe(
        base="transformer-small", dataset="dates",
        overrides={"vocab_size": 260, "encoder_max_length": 64, "decoder_max_length": 16, "dropout": 0.1},
        epochs=5, batch_size=64, learning_rate=5e-4, warmup_steps=200, tokenizer="byte",
        description="Encoder-decoder transformer (4+4 layers, width 256, 4 heads) that rewrites dates "
                    "written in 25 languages and four styles as ISO 8601; byte-level, with cached "
                    "generate().",
        intended_use="model.generate(\"5. März 2021\") -> \"2021-03-05\"; a pretrained seq2seq model "
                     "to fine-tune on other short rewriting tasks.",
        limits="Dates from 1900 to 2099 in the CLDR styles of 25 locales; other spellings, other "
               "calendars or years outside that range are guesses. Inputs up to 63 bytes.",
    ),
}


# ---------------------------------------------------------------- train (one backend process)


def train(name, out, quick=False):
    """Train one preset into `out/name`; returns facts for its card."""
    import keras
    from update_cards import derived_fields

    import zoo
    from zoo.data import datasets
    from zoo.eval import published
    from zoo.hub import folder_format, models

    recipe = RECIPES[name]
    keras.utils.set_random_seed(SEED)
    data = datasets.load_dataset(recipe.dataset)
    model = zoo.load(recipe.base, pretrained=False, label_names=data.label_names, **recipe.overrides)
    model.tokenizer = make_tokenizer(recipe.tokenizer, data)
    model.preset_metadata["sequence_length"] = recipe.sequence_length
    train_xy = published.evaluation_data(model, data, "train")
    validation_xy = published.evaluation_data(model, data, "validation")
    if quick:
        train_xy, validation_xy = first_rows(train_xy, 64), first_rows(validation_xy, 32)
    model.adapt_to_data(train_xy[0])
    epochs = 1 if quick else recipe.epochs
    start = time.perf_counter()
    history = zoo.finetune(
        model, train_xy, validation_xy, epochs=epochs, batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate, warmup_steps=0 if quick else recipe.warmup_steps,
        weight_decay=recipe.weight_decay, verbose=2,
    )
    seconds = time.perf_counter() - start

    folder = models.save_preset(
        model, Path(out) / name, overwrite=True, license=LICENSE,
        dataset=data.summary(), sequence_length=recipe.sequence_length,
        training={**training_facts(recipe, epochs, seconds), "history": history_summary(history)},
    )
    saved = zoo.load(folder)  # publish what was saved, not what is in memory
    metrics = {split: published.score(saved, data, split, limit=32 if quick else None)
               for split in ("validation", "test")}
    baseline = published.baseline(data)
    update_metadata(folder, metrics=metrics, baseline=baseline)
    published.write_reference_outputs(saved, folder, data)
    folder_format.write_manifest(folder)
    return {"name": name, "card": derived_fields(saved), "metrics": metrics, "baseline": baseline}


def make_tokenizer(kind, data):
    from zoo.data import tokenizers

    if kind is None:
        return None
    if kind == "byte":
        return tokenizers.ByteTokenizer()
    vocabulary_size = int(kind.split(":")[1])
    return tokenizers.train_tokenizer(data.splits["train"].inputs, vocab_size=vocabulary_size)


def first_rows(xy, count):
    from zoo.eval import published

    x, y = xy
    return published.first_rows(x, count), y[:count]


def training_facts(recipe, epochs, seconds):
    import keras

    return {
        "seed": SEED, "epochs": epochs, "batch_size": recipe.batch_size,
        "learning_rate": recipe.learning_rate, "schedule": "cosine", "warmup_steps": recipe.warmup_steps,
        "optimizer": "AdamW", "weight_decay": recipe.weight_decay, "base": recipe.base,
        "overrides": recipe.overrides, "tokenizer": recipe.tokenizer,
        "backend": keras.backend.backend(), "device": "cpu", "seconds": round(seconds, 1),
        "versions": versions(), "machine": platform.machine(),
        "command": f"python tools/train_presets.py {recipe_name(recipe)}",
    }


def recipe_name(recipe):
    return next(name for name, candidate in RECIPES.items() if candidate is recipe)


def history_summary(history):
    return {key: [round(float(value), 5) for value in values] for key, values in history.history.items()
            if key in ("loss", "val_loss")}


def update_metadata(folder, **fields):
    from zoo.hub import folder_format

    path = Path(folder) / folder_format.METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata.update(fields)
    path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")


def versions():
    import importlib.metadata

    names = ("keras", "keras-hub", "tensorflow", "jax", "torch", "scikit-learn", "babel")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    found["python"] = platform.python_version()
    return found


# ---------------------------------------------------------------- measure (one process per backend)


def measure(folder):
    """Reload a preset folder on this backend: recomputed metrics and parity."""
    import keras

    import zoo
    from zoo.eval import published

    model = zoo.load(folder)
    return {
        "backend": keras.backend.backend(),
        "metrics": {row.metric: row.measured for row in published.reproduce(model)},
        "parity_max_abs_diff": published.check_parity(model, folder),
        "data_changed": published.data_changed(model),
    }


def run_step(step, name, folder, backend, quick):
    """Run `train` or `measure` in a fresh process on `backend`; its JSON result."""
    with tempfile.TemporaryDirectory() as scratch:
        result_path = Path(scratch) / "result.json"
        command = [sys.executable, __file__, f"--step={step}", f"--result={result_path}",
                   f"--out={Path(folder).parent}", name] + (["--quick"] if quick else [])
        print(f"[{backend}] {step} {name}", flush=True)
        subprocess.run(command, check=True, env={**os.environ, "KERAS_BACKEND": backend})
        return json.loads(result_path.read_text())


# ---------------------------------------------------------------- publish


def publish(name, folder, trained, measured, results_rows):
    """Write the results rows, the model card, the manifest and the preset card."""
    from zoo.hub import folder_format

    metadata = folder_format.read_metadata(folder)
    today = datetime.date.today().isoformat()
    version_text = " ".join(f"{key}={value}" for key, value in sorted(metadata["training"]["versions"].items()))
    dataset = metadata["dataset"]["name"]
    for metric, value in metadata["metrics"]["test"].items():
        results_rows.append([name, dataset, "test", metric, fmt(value), metadata["training"]["backend"] + " (trained)",
                             version_text, today])
    for metric, value in metadata["baseline"]["metrics"].items():
        results_rows.append([name, dataset, "test", f"{metric} [{metadata['baseline']['name']} baseline]",
                             fmt(value), "-", version_text, today])
    for result in measured:
        for metric, value in result["metrics"].items():
            results_rows.append([name, dataset, "test", metric, fmt(value), result["backend"], version_text, today])
        results_rows.append([name, dataset, "fixed batch", "parity_max_abs_diff",
                             f"{result['parity_max_abs_diff']:.2e}", result["backend"], version_text, today])
    (Path(folder) / "README.md").write_text(model_card(name, metadata, measured))
    folder_format.write_manifest(folder)
    write_card(name, folder, trained, metadata)


def write_card(name, folder, trained, metadata):
    from zoo.hub import folder_format

    path = ROOT / "presets" / f"{name}.json"
    base = json.loads((ROOT / "presets" / f"{RECIPES[name].base}.json").read_text())
    card = {
        **base, **(trained["card"] if trained else {}),
        "name": name, "description": RECIPES[name].description, "license": LICENSE,
        "weights": {"folder": Path(folder).name,
                    "manifest_sha256": folder_format.sha256_of(Path(folder) / folder_format.MANIFEST_FILE)},
        "metrics": {"test": metadata["metrics"]["test"], "dataset": metadata["dataset"]["name"],
                    "baseline": metadata["baseline"]},
    }
    if not trained:  # --publish-only keeps what the last training wrote
        card = {**json.loads(path.read_text()), **{k: card[k] for k in ("weights", "metrics")}}
    path.write_text(json.dumps(card, indent=2) + "\n")


def model_card(name, metadata, measured):
    recipe, dataset, training = RECIPES[name], metadata["dataset"], metadata["training"]
    test, baseline = metadata["metrics"]["test"], metadata["baseline"]
    lines = [
        f"# {name}", "", recipe.description, "",
        "```python", "import zoo", "", f'model = zoo.load("{name}")', "```", "",
        "## Intended use", "", recipe.intended_use, "",
        "## Limits", "", recipe.limits, "",
        "## Data", "",
        f"**{dataset['name']}**: {dataset['description']}", "",
        f"- source: {dataset['source']}",
        f"- split: {dataset['split_rule']}",
        f"- sizes: {', '.join(f'{split} {size}' for split, size in dataset['sizes'].items())}",
        *[f"- sha256 of the {split} examples: `{digest}`" for split, digest in dataset["fingerprints"].items()],
        f"- rebuilt by `zoo.load_dataset({dataset['name']!r})`; nothing is downloaded", "",
        "## Training", "",
        f"From a freshly initialised `{training['base']}` with {json.dumps(training['overrides'])}: "
        f"AdamW (weight decay {training['weight_decay']}), peak learning rate {training['learning_rate']}, "
        f"{training['warmup_steps']} warm-up steps then cosine decay, batch {training['batch_size']}, "
        f"{training['epochs']} epochs, seed {training['seed']}; the epoch with the lowest validation loss "
        f"is kept. Tokenizer: {training['tokenizer'] or 'none (numeric input)'}"
        + (f", text cut to {metadata['sequence_length']} tokens" if metadata.get("sequence_length") else "")
        + f". {training['seconds']:.0f} s on {training['device']} ({training['machine']}), "
        f"backend {training['backend']}. Reproduce: `{training['command']}`.", "",
        "## Metrics (held-out test split)", "",
        "| metric | this preset | " + f"{baseline['name']} baseline | better by |",
        "| --- | ---: | ---: | ---: |",
    ]
    for metric, value in test.items():
        base_value = baseline["metrics"].get(metric)
        lines.append(f"| {metric} | {fmt(value)} | {fmt(base_value)} | {fmt(improvement(metric, value, base_value))} |")
    lines += [
        "", f"Baseline: {baseline['description']}", "",
        "`zoo eval " + name + "` recomputes these on the test split and prints them beside the figures "
        "above; tolerances: " + ", ".join(f"{m} ±{t}" for m, t in tolerances(test).items()) + ".", "",
        "## Cross-backend parity", "",
        "The same weights on a fixed batch of test inputs, against the reference outputs saved at "
        "training time (`reference_outputs.npz`, float32, max abs difference; required below 1e-4):", "",
        "| backend | max abs diff | " + " | ".join(test) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in test) + " |",
    ]
    for result in measured:
        values = " | ".join(fmt(result["metrics"][metric]) for metric in test)
        lines.append(f"| {result['backend']} | {result['parity_max_abs_diff']:.1e} | {values} |")
    lines += ["", "## License", "",
              f"Weights: {LICENSE}. Data: see the source above.", ""]
    return "\n".join(lines)


def improvement(metric, value, base_value):
    from zoo.eval import published

    if base_value is None:
        return None
    return base_value - value if metric in published.LOWER_IS_BETTER else value - base_value


def tolerances(metrics):
    from zoo.eval import published

    return {metric: published.TOLERANCES[metric] for metric in metrics}


def fmt(value):
    return "-" if value is None else f"{value:.4f}"


def write_results(rows, path):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(RESULTS_COLUMNS)
        writer.writerows(rows)


# ---------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"presets to make (default all: {', '.join(RECIPES)})")
    parser.add_argument("--out", default=str(ROOT / "presets"), help="where the preset folders go")
    parser.add_argument("--train-backend", default="torch", choices=BACKENDS,
                        help="backend to train on, where a recipe does not name one (default: %(default)s)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS,
                        help="backends to measure metrics and parity on")
    parser.add_argument("--publish-only", action="store_true", help="measure and publish, do not train")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch on 64 rows, evaluated on 32: checks the pipeline, not the model")
    parser.add_argument("--step", choices=("train", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(RECIPES))
    if unknown:
        parser.error(f"no recipe for {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    names = args.names or list(RECIPES)

    if args.step:  # inside a backend process
        folder = Path(args.out) / names[0]
        result = train(names[0], args.out, args.quick) if args.step == "train" else measure(folder)
        Path(args.result).write_text(json.dumps(result))
        return 0

    in_repository = Path(args.out).resolve() == (ROOT / "presets").resolve()
    results_path = ROOT / "presets" / "results.csv" if in_repository else Path(args.out) / "results.csv"
    rows = read_other_rows(results_path, names)
    for name in names:
        folder = Path(args.out) / name
        train_backend = RECIPES[name].train_backend or args.train_backend
        trained = None if args.publish_only else run_step("train", name, folder, train_backend, args.quick)
        measured = [run_step("measure", name, folder, backend, args.quick) for backend in args.backends]
        for result in measured:
            print(f"  {result['backend']}: {result['metrics']} parity {result['parity_max_abs_diff']:.1e}", flush=True)
        if in_repository:
            publish(name, folder, trained, measured, rows)
        else:
            publish_outside(name, folder, measured, rows)
        write_results(sorted(rows, key=lambda row: (row[0], row[3], row[5])), results_path)
    if in_repository:
        subprocess.run([sys.executable, str(ROOT / "tools" / "readme_table.py")], check=True)
    print(f"wrote {results_path}")
    return 0


def publish_outside(name, folder, measured, rows):
    """A run into another --out (a quick check) writes its model card and results there only."""
    from zoo.hub import folder_format

    metadata = folder_format.read_metadata(folder)
    for result in measured:
        for metric, value in result["metrics"].items():
            rows.append([name, metadata["dataset"]["name"], "test", metric, fmt(value), result["backend"], "", ""])
    (Path(folder) / "README.md").write_text(model_card(name, metadata, measured))
    folder_format.write_manifest(folder)


def read_other_rows(path, names):
    """The rows of presets not being remade, kept as they were."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as file:
        return [row for row in list(csv.reader(file))[1:] if row[0] not in names]


if __name__ == "__main__":
    sys.exit(main())
