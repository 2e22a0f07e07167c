"""The `zoo` command: list and describe presets, download them, manage the cache.

    zoo list [PATTERN] [--family F] [--task T] [--pretrained | --no-pretrained]
    zoo info NAME [--json]
    zoo download SOURCE [--quiet]
    zoo convert SOURCE --out FOLDER   (a transformers checkpoint -> a zoo preset folder)
    zoo cache list | verify | clear [NAME] | dir
    zoo demo
    zoo finetune NAME --data FILE_OR_FOLDER [--target COLUMN] --epochs N --out FOLDER
    zoo eval NAME_OR_FOLDER --data FILE_OR_FOLDER [--target COLUMN] [--out FOLDER]
    zoo eval PRETRAINED_NAME [--quantize int8|int4|float8]   (its published metrics, recomputed)
    zoo bench NAME [--backend B] [--mode train|infer|both] [--batch-size N] [--jit auto|on|off] [--json]
    zoo export NAME_OR_FOLDER --format onnx|tf_saved_model|litert|torch_export --out PATH [--backend B]

Listing and describing read only the JSON cards, so they answer instantly and
import no backend.
"""

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

from zoo import registry
from zoo.errors import ZooError
from zoo.runtime import scratch


def human_count(count):
    """12345678 -> '12.3M'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def describe_inputs(inputs):
    """'token_ids (None, None) int32' for each input, one per line."""
    return "\n".join(
        f"{name} ({', '.join('None' if d is None else str(d) for d in spec['shape'])}) {spec['dtype']}"
        for name, spec in sorted(inputs.items())
    )


def list_command(args, console):
    names = registry.list_presets(args.pattern, family=args.family, task=args.task, pretrained=args.pretrained)
    if not names:
        console.print(f"No preset matches {args.pattern!r} with these filters; try `zoo list`.")
        return 1
    table = Table(title=f"{len(names)} presets", title_justify="left")
    for column in ("preset", "family", "task", "params", "inputs", "pretrained"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for name in names:
        card = registry.info(name)
        table.add_row(card.name, card.family, card.task, human_count(card.params),
                      describe_inputs(card.inputs), "yes" if card.pretrained else "no")
    console.print(table)
    return 0


def info_command(args, console):
    card = registry.info(args.name)
    if args.json:
        console.print_json(json.dumps(card.to_dict()))
        return 0
    table = Table(title=card.name, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("description", card.description)
    table.add_row("family", card.family)
    table.add_row("task", card.task)
    table.add_row("params", f"{card.params:,}")
    table.add_row("inputs", describe_inputs(card.inputs))
    table.add_row("pretrained", "yes" if card.pretrained else "no (random initialisation)")
    model_card = registry.builtin_cards_folder() / card.weights["folder"] / "README.md" if card.weights else None
    if model_card is not None and model_card.is_file():
        table.add_row("model card", str(model_card))
    if card.checkpoint is not None:
        table.add_row("checkpoint", f"{card.checkpoint['source']} ({card.checkpoint['architecture']}), "
                                    "converted on first load; see docs/checkpoints.md")
    table.add_row("license", card.license)
    for key, value in card.config.items():
        table.add_row(f"config.{key}", json.dumps(value))
    for key, value in card.metrics.items():
        table.add_row(f"metric.{key}", json.dumps(value))
    console.print(table)
    return 0


def download_command(args, console):
    from zoo.hub import cache, resolving, sources

    source = sources.parse_source(args.source)
    folder = resolving.resolve(source, quiet=True if args.quiet else None, repair=True)
    if not cache.is_cached(source):  # a cache entry was built and loaded before it became one
        cache.check_loads(folder)
    console.print(f"{args.source} -> {folder}", highlight=False)
    return 0


def convert_command(args, console):
    from zoo.hub import resolving

    folder = resolving.convert_source(args.source, args.out, overwrite=args.overwrite)
    console.print(f"{args.source} -> {folder} (a zoo preset: zoo.load({str(folder)!r}))", highlight=False)
    return 0


def cache_command(args, console):
    from zoo.hub import cache

    if args.action == "dir":
        console.print(str(cache.cache_root()), highlight=False)
        return 0
    if args.action == "clear":
        removed = cache.clear_cache(args.name)
        console.print(f"removed {len(removed)} cache entr{'y' if len(removed) == 1 else 'ies'} from {cache.cache_root()}")
        return 0
    entries = cache.cache_entries()
    if not entries:
        console.print(f"the cache is empty ({cache.cache_root()})")
        return 0
    table = Table(title=f"{len(entries)} cached presets in {cache.cache_root()}", title_justify="left")
    for column in ("entry", "source", "size", "fetched", "status" if args.action == "verify" else ""):
        if column:
            table.add_column(column, justify="right" if column == "size" else "left")
    failures = 0
    for entry, record in entries:
        size = sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
        source = record.get("label") or record.get("location")
        row = [entry.name, str(source or f"(unreadable {cache.SOURCE_FILE})"), human_count(size) + "B",
               str(record.get("fetched_at", "?"))]
        if args.action == "verify":
            try:
                cache.verify_entry(entry, source)
                row.append("[green]ok[/]")
            except (ZooError, OSError) as error:
                failures += 1
                row.append(f"[red]CORRUPT[/] {error}")
        table.add_row(*row)
    console.print(table)
    return 1 if failures else 0


def demo_command(args, console):
    if args.preset not in registry.list_presets():  # said before the first part of the demo runs
        if Path(args.preset).exists():
            raise ZooError(f"zoo demo runs a built-in preset; for {args.preset}, use `zoo eval {args.preset} --data ...`.")
        registry.info(args.preset)  # the closest names
    from zoo.cli import demo

    return demo.run(console, args.preset)


def finetune_command(args, console):
    from zoo.cli import jobs

    return jobs.finetune_job(args, console)


def eval_command(args, console):
    from zoo.cli import jobs

    return jobs.eval_job(args, console)


JIT_CHOICES = {"auto": "auto", "on": True, "off": False}


def bench_command(args, console):
    if args.backend and not _can_use_backend(args.backend):
        return _run_on_backend(args)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    from zoo.eval import bench

    modes = ("train", "infer") if args.mode == "both" else (args.mode,)
    if args.profile:
        _check_profile_path(Path(args.profile))
        text = "\n".join(bench.profile(args.name, mode, args.batch_size, args.length, JIT_CHOICES[args.jit])
                         for mode in modes)
        Path(args.profile).write_text(text)
        console.print(f"wrote {args.profile}")
        return 0
    results = [
        bench.benchmark(args.name, mode, args.batch_size, args.length, JIT_CHOICES[args.jit], args.min_seconds)
        for mode in modes
    ]
    if args.json:
        print(json.dumps([result.to_dict() for result in results]))
    else:
        bench.print_results(results, console)
    return 0


def export_command(args, console):
    if args.backend and not _can_use_backend(args.backend):
        return _run_on_backend(args)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    from zoo.deploy.export import export
    from zoo.hub.loader import load

    report = export(load(args.name), args.out, format=args.format, overwrite=args.overwrite,
                    tolerance=args.tolerance)
    console.print(str(report), highlight=False, soft_wrap=True)
    return 0


def _run_on_backend(args):
    """The same command in a fresh process on `args.backend`: Keras fixed this
    process' backend when it was imported."""
    argv = sys.argv[1:] if args.argv is None else args.argv
    environment = {**os.environ, "KERAS_BACKEND": args.backend}
    return subprocess.call([sys.executable, "-m", "zoo", *argv], env=environment)


def _check_profile_path(path):
    """Said before the benchmark runs, not after."""
    from zoo.hub import folder_format

    if path.is_dir():
        raise IsADirectoryError(f"--profile {path} is a folder; give the name of a file to write.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--profile {path}: the folder {path.parent} does not exist.")
    folder_format.check_creatable(path)


def _can_use_backend(backend):
    if "keras" not in sys.modules:
        return True
    return sys.modules["keras"].backend.backend() == backend


def whole_number(minimum, maximum=None):
    """An argparse type: an integer of at least `minimum` (and at most
    `maximum`), refused in the command line's words."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum:,}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {minimum}{upper}, got {text!r}")
        return value
    return parse


def some_text(text):
    """An argparse type: anything but an empty string (which a path would read as the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def number_in(low, high=None, *, low_open=False, high_open=False):
    """An argparse type: a finite number in the range given (`None`: unbounded)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        too_low = value <= low if low_open else value < low
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or too_low or too_high:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            allowed = f"> {low:g}" if high is None and low_open else (
                f">= {low:g}" if high is None else f"in {left}{low:g}, {high:g}{right}")
            raise argparse.ArgumentTypeError(f"must be a number {allowed}, got {text!r}")
        return value
    return parse


def freeze_choice(text):
    """An argparse type: none, backbone or a number of layers."""
    if text in ("none", "backbone"):
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"must be none, backbone or a number of layers, got {text!r}")


def yes_or_no(text):
    """An argparse type: true / false (also yes / no, 1 / 0)."""
    answers = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if text.lower() not in answers:
        raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")
    return answers[text.lower()]


DATA_HELP = (
    "a .csv table (dense), a folder of images in class sub-folders (cnn), a .csv with a 'text' "
    "column (text classifiers), a .txt file (language models) or a .csv with 'source' and "
    "'target' columns (transformer)"
)


def add_data_arguments(parser, required=True):
    parser.add_argument("--data", type=some_text, required=required, help=DATA_HELP + (
        "" if required else "; without --data, a pretrained preset is scored on its held-out test "
        "split and compared with its published metrics"))
    parser.add_argument("--target", help="the label (or regression target) column of a CSV")
    parser.add_argument("--batch-size", type=whole_number(1), default=32)
    parser.add_argument("--max-length", type=whole_number(2), default=128,
                        help="longest token sequence kept, start and end ids included (text)")


def build_parser():
    parser = argparse.ArgumentParser(prog="zoo", description="Keras 3 model presets for TensorFlow, JAX and PyTorch.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list presets")
    listing.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'transformer*'")
    listing.add_argument("--family", help="only this family")
    listing.add_argument("--task", help="only this task")
    pretrained = listing.add_mutually_exclusive_group()
    pretrained.add_argument("--pretrained", dest="pretrained", action="store_true", default=None,
                            help="only presets with pretrained weights")
    pretrained.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                            help="only presets without pretrained weights")
    listing.set_defaults(run=list_command)

    info = commands.add_parser("info", help="show a preset's card")
    info.add_argument("name", type=some_text)
    info.add_argument("--json", action="store_true", help="print the card as JSON")
    info.set_defaults(run=info_command)

    download = commands.add_parser("download", help="download and verify a preset into the cache")
    download.add_argument("source", type=some_text, help="preset name, folder, archive, http(s)://, hf:// or kaggle:// source")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(run=download_command)

    convert = commands.add_parser("convert", help="convert a transformers checkpoint into a zoo preset folder")
    convert.add_argument("source", type=some_text,
                         help="checkpoint folder, hf://org/name[@rev], or a checkpoint preset name such as gpt2")
    convert.add_argument("--out", required=True, type=Path, help="the preset folder to write")
    convert.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    convert.set_defaults(run=convert_command)

    cache = commands.add_parser("cache", help="inspect, verify or clear the download cache")
    cache.add_argument("action", choices=("list", "verify", "clear", "dir"))
    cache.add_argument("name", nargs="?", help="with clear: only entries whose name or source contains this")
    cache.set_defaults(run=cache_command)

    demo = commands.add_parser("demo", help="load a preset, predict and evaluate on bundled data")
    demo.add_argument("--preset", type=some_text, default="transformer-small", help="the sequence model to run (default: %(default)s)")
    demo.set_defaults(run=demo_command)

    finetune = commands.add_parser("finetune", help="fine-tune a preset on a data file and save it as a preset")
    finetune.add_argument("name", type=some_text, help="preset name or source to start from")
    add_data_arguments(finetune)
    finetune.add_argument("--out", type=some_text, required=True, help="the preset folder to write")
    finetune.add_argument("--task", choices=("classification", "regression"),
                          help="for dense presets: what --target holds (default: the preset's task)")
    finetune.add_argument("--pretrained", type=yes_or_no, default=True, metavar="true|false",
                          help="start from the preset's weights (default), or train its architecture afresh, "
                               "sized to the data")
    finetune.add_argument("--epochs", type=whole_number(1), default=3)
    finetune.add_argument("--learning-rate", type=number_in(0, low_open=True), default=1e-3)
    finetune.add_argument("--freeze", type=freeze_choice, default="none", help="none, backbone or a number of layers")
    finetune.add_argument("--lora-rank", type=whole_number(1), help="train LoRA adapters of this rank (merged on save)")
    finetune.add_argument("--early-stopping", type=whole_number(1), help="patience in epochs")
    finetune.add_argument("--validation-split", type=number_in(0, 1, low_open=True, high_open=True), default=0.2,
                          help="the share of the data held out to validate and evaluate (default %(default)s)")
    finetune.add_argument("--seed", type=whole_number(0, 2**32 - 1), default=0)
    finetune.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    finetune.set_defaults(run=finetune_command)

    evaluate = commands.add_parser(
        "eval", help="evaluate a preset on a data file, or check a pretrained preset's published metrics")
    evaluate.add_argument("name", type=some_text, help="preset name or source")
    add_data_arguments(evaluate, required=False)
    evaluate.add_argument("--out", type=some_text, help="also save report.json, report.md and plots here")
    evaluate.add_argument("--quantize", choices=("int8", "int4", "float8"),
                          help="evaluate the preset quantized (zoo.quantize); a pretrained preset's published "
                               "float32 figures are shown beside")
    evaluate.set_defaults(run=eval_command)

    bench = commands.add_parser("bench", help="measure a preset's training and inference speed")
    bench.add_argument("name", type=some_text, help="preset name or source")
    bench.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                       help="measure on this backend (default: KERAS_BACKEND)")
    bench.add_argument("--mode", choices=("train", "infer", "both"), default="both")
    bench.add_argument("--batch-size", type=whole_number(1), default=32)
    bench.add_argument("--length", type=whole_number(1), help="tokens per row for sequence models (default 64)")
    bench.add_argument("--jit", choices=tuple(JIT_CHOICES), default="auto",
                       help="compile the steps (XLA / jax.jit / torch.compile); auto: the measured best")
    bench.add_argument("--min-seconds", type=number_in(0, low_open=True), default=3.0, help="length of the timed run")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument("--profile", type=some_text, metavar="FILE", help="write where the time goes (cProfile; torch.profiler or XLA operations) to FILE")
    bench.set_defaults(run=bench_command)

    export = commands.add_parser(
        "export", help="export a preset to onnx, tf_saved_model, litert or torch_export, checked in its runtime")
    export.add_argument("name", type=some_text, help="preset name or source (a folder, hf://, https://...)")
    export.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    export.add_argument("--out", required=True, type=Path,
                        help="the file to write (.onnx, .tflite, .pt2) or, for tf_saved_model, the folder")
    export.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                        help="export from this backend (default: KERAS_BACKEND)")
    export.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    export.add_argument("--tolerance", type=number_in(0, low_open=True), default=1e-5,
                        help="largest difference from Keras' outputs accepted (max abs; default 1e-5)")
    export.set_defaults(run=export_command)
    return parser


KERAS_BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")
KERAS_COMMANDS = ("download", "convert", "demo", "finetune", "eval", "bench", "export")  # the ones that start Keras
EXPORT_FORMATS = ("onnx", "tf_saved_model", "litert", "torch_export")  # zoo.deploy.routes.FORMATS, without Keras


def main(argv=None):
    """Run the `zoo` command. A user's mistake or a broken file is one line
    on stderr and exit status 2; an interruption exits 130 (Ctrl-C) or 143
    (SIGTERM), with what it was writing removed. Anything else is a bug of the
    zoo's and keeps its traceback, for the report."""
    args = build_parser().parse_args(argv)
    args.argv = argv  # `zoo bench --backend` runs itself again in a fresh process
    # Piped output would otherwise be squeezed to 80 columns.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(width=160 if wide else None)
    try:
        with terminate_cleanly():
            check_environment()
            if args.command in KERAS_COMMANDS:
                from zoo.runtime import quiet_imports

                quiet_imports.quiet_startup()
            return args.run(args, console)
    except (ZooError, OSError) as error:  # OSError: a path that cannot be read or written, a full disk
        Console(stderr=True).print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted", highlight=False)
        return 130


@contextlib.contextmanager
def terminate_cleanly():
    """SIGTERM (a container stopping, `kill`, a scheduler's time limit) would
    end the process on the spot, leaving half-written downloads, presets and
    exports behind: remove them (zoo.runtime.scratch), then exit 143. Signal
    handlers belong to the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _remove_work_and_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _remove_work_and_exit(signum, frame):
    scratch.remove_all()
    print("terminated", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(128 + signum)  # not SystemExit: an exception raised inside a native module can abort the process


def check_environment():
    """KERAS_BACKEND must name a backend before Keras reads it (its own error is a traceback)."""
    backend = os.environ.get("KERAS_BACKEND")
    if backend is not None and backend not in KERAS_BACKENDS:
        raise ZooError(
            f"KERAS_BACKEND={backend!r} is not a Keras backend: set it to tensorflow, jax or torch "
            "(or unset it for TensorFlow)."
        )


if __name__ == "__main__":
    sys.exit(main())
