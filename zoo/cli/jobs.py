"""The work behind `zoo finetune` and `zoo eval` (imports Keras; commands.py stays light)."""

import sys
import tempfile
from pathlib import Path

import keras

import zoo
from zoo.architectures import get_family
from zoo.architectures.config import config_to_dict
from zoo.data import data_files, model_data
from zoo.errors import DataFileError, InvalidConfigError
from zoo.hub import folder_format, loader
from zoo.runtime import quiet_imports


def finetune_job(args, console):
    # Said before training, not after it.
    folder_format.check_writable_folder(args.out, args.overwrite, hint="choose another --out or pass --overwrite")
    quiet_imports.import_tensorflow_quietly()  # set_random_seed seeds TensorFlow too
    keras.utils.set_random_seed(args.seed)
    preset = loader.locate(args.name, args.pretrained)
    pretrained = preset.pretrained
    with console.status(f"reading {args.data}"):
        data = model_data.read_for_model(
            args.data, get_family(preset.family), preset.config, target=args.target, tokenizer=preset.tokenizer(),
            fit_inputs=not pretrained, max_length=args.max_length, task=args.task, model_name=args.name,
        )
    if data.label_names is not None and len(data.label_names) < 2:
        raise DataFileError(
            f"{args.data} holds a single class ({data.label_names[0]!r}): a classifier needs examples "
            "of at least two classes to learn anything."
        )
    train_rows, validation_rows = data_files.train_validation_split(
        len(data), args.validation_split, seed=args.seed, labels=data.y if data.label_names else None,
        label_names=data.label_names,
    )
    train, validation = data.subset(train_rows), data.subset(validation_rows)
    console.print(
        f"{args.name}: {len(train)} training and {len(validation)} validation samples from {args.data}"
        + (f", {len(data.label_names)} classes" if data.label_names else "")
        + (f", config changed to fit the data: {data.overrides}" if data.overrides else ""),
        highlight=False,
    )

    model = loader.build_located(preset, label_names=data.label_names, **data.overrides)
    check_training_options(args, model)
    model.tokenizer = data.tokenizer or model.tokenizer
    if not pretrained:
        model.adapt_to_data(train.x)
    history = zoo.finetune(
        model, (train.x, train.y), (validation.x, validation.y),
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        freeze=args.freeze, lora_rank=args.lora_rank,
        early_stopping=args.early_stopping, verbose=1 if sys.stdout.isatty() else 2,
    )
    if args.lora_rank:
        model = zoo.merge_lora(model)
    report = zoo.evaluate(model, (validation.x, validation.y), batch_size=args.batch_size)
    if history.restored_epoch is not None:
        report.notes.append(
            f"The weights are those of epoch {history.restored_epoch} of {len(history.epoch)}, "
            "the best on the validation split (restored at the end of training)."
        )
    report.print(console)
    with tempfile.TemporaryDirectory() as report_dir:
        report_files = report.save(report_dir, history=history)
        out = zoo.save_preset(
            model, args.out, overwrite=args.overwrite,
            assets={f"report/{Path(f).name}": f for f in report_files},
            dataset=str(args.data), finetuned_from=args.name,
            metrics={"validation": report.metrics},
            training={"epochs": args.epochs, "batch_size": args.batch_size,
                      "learning_rate": args.learning_rate, "freeze": args.freeze, "pretrained": pretrained,
                      "lora_rank": args.lora_rank, "seed": args.seed,
                      "validation_split": args.validation_split, "backend": keras.backend.backend()},
        )
    console.print(f"saved the fine-tuned preset to {out} (load it with zoo.load({str(out)!r}))", highlight=False)
    return 0


def eval_job(args, console):
    if args.out:
        check_report_folder(args.out)
    model = zoo.load(args.name)
    if args.quantize:
        model = zoo.quantize(model, args.quantize)
    if args.data is None:
        if args.quantize:
            return quantized_published_eval(model, args.name, args.quantize, console)
        return published_eval(model, args.name, console)
    if model.sequence_inputs and model.tokenizer is None:
        raise DataFileError(
            f"{args.name} has no tokenizer, so it cannot read text. Fine-tune it on your text with "
            "`zoo finetune`, which trains a tokenizer and saves it with the preset."
        )
    with console.status(f"reading {args.data}"):
        data = model_data.read_for_model(
            args.data, type(model), config_to_dict(model.zoo_config), target=args.target,
            label_names=model.label_names, tokenizer=model.tokenizer,
            max_length=args.max_length, model_name=args.name,
        )
    report = zoo.evaluate(model, (data.x, data.y), batch_size=args.batch_size,
                          label_names=model.label_names or data.label_names)
    report.print(console)
    if args.out:
        files = report.save(args.out)
        console.print(f"wrote {', '.join(Path(f).name for f in files)} to {args.out}", highlight=False)
    return 0


def check_training_options(args, model):
    """What zoo.finetune would refuse about --freeze and --lora-rank, said in
    the command line's words."""
    from zoo.train import finetuning

    if args.lora_rank and args.freeze != "none":
        raise InvalidConfigError("--lora-rank already trains only the adapters and the head; drop --freeze.")
    if args.freeze == "backbone" and not model.head_layer_names:
        raise InvalidConfigError(
            f"--freeze backbone needs a separate head, and a {model.family} preset has none (its output "
            "is tied to the token embedding). Use --freeze N (layers) or --lora-rank instead."
        )
    layers = len(finetuning.backbone_layers(model))
    if isinstance(args.freeze, int) and args.freeze > layers:
        raise InvalidConfigError(
            f"--freeze {args.freeze}: {args.name} has {layers} layer(s) with weights before its head; "
            f"freeze 0 to {layers} of them."
        )


def check_report_folder(folder):
    """Refuse, before evaluating, an --out that cannot take the report's files."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"--out {folder} is a file; give a folder for report.json, report.md and the plots.")
    folder_format.check_creatable(folder)


def quantized_published_eval(model, name, mode, console):
    """A quantized pretrained preset's headline metrics beside the published (float32) ones."""
    from rich.table import Table

    from zoo.eval import published

    published.published_metrics(model)  # a clear error for presets without published figures
    dataset = model.preset_metadata["dataset"]
    with console.status(f"evaluating {name} ({mode}) on the {dataset['name']} test split"):
        rows = published.reproduce(model)
    table = Table(title=f"{name}, {mode}, on {dataset['name']} (test split), backend {keras.backend.backend()}",
                  title_justify="left")
    for column in ("metric", "published (float32)", mode, "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in rows:
        table.add_row(row.metric, f"{row.published:.4f}", f"{row.measured:.4f}", f"{row.difference:+.4f}")
    console.print(table)
    return 0


def published_eval(model, name, console):
    """Recompute a pretrained preset's published metrics; exit 1 if one drifts past its tolerance."""
    from rich.table import Table

    from zoo.eval import published

    published.published_metrics(model)  # a clear error for presets without published figures
    changed = published.data_changed(model)
    dataset = model.preset_metadata["dataset"]
    with console.status(f"evaluating {name} on the {dataset['name']} test split ({dataset['sizes']['test']} examples)"):
        rows = published.reproduce(model)
    table = Table(title=f"{name} on {dataset['name']} (test split), backend {keras.backend.backend()}",
                  title_justify="left")
    for column in ("metric", "published", "now", "difference", "tolerance", "agrees"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in rows:
        table.add_row(row.metric, f"{row.published:.4f}", f"{row.measured:.4f}", f"{row.difference:+.4f}",
                      f"±{row.tolerance}", "[green]yes[/]" if row.within_tolerance else "[red]NO[/]")
    console.print(table)
    baseline = model.preset_metadata.get("baseline") or {}
    if baseline:
        figures = ", ".join(f"{metric} {value:.4f}" for metric, value in baseline["metrics"].items())
        console.print(f"{baseline['name']} baseline: {figures}", highlight=False)
    if changed:
        console.print(f"[yellow]note:[/] {changed}", highlight=False)
    if all(row.within_tolerance for row in rows):
        return 0
    console.print("[red]the published figures do not hold on this machine and backend[/]")
    return 1
