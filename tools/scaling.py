"""How inference and generation cost grow with sequence length and batch size, per backend, against native PyTorch.

    python tools/scaling.py                        # every sweep, 3 backends + native PyTorch (~30 min on 2 cores)
    python tools/scaling.py --sweeps transformer-decoder-tiny:generate --values 32 64 --backends torch
    python tools/scaling.py --sweeps transformer-decoder-small:length --backends jax
    python tools/scaling.py --show                 # print the recorded benchmarks/scaling-cpu.csv
    python tools/scaling.py --markdown             # the tables of benchmarks/README.md, from that CSV
    python tools/scaling.py --plot                 # benchmarks/scaling-<family>.png, from that CSV

A sweep is one preset and one axis:

- the transformer families (encoder, decoder, encoder-decoder; small presets):
  sequence length 64 to 1024 at batch 8, and batch 1 to 128 at 64 tokens;
- the LSTM (lstm-small): sequence length 32 to 512 at batch 8;
- generation (transformer-decoder-small): greedy `model.generate` of 8
  prompts of 16 tokens to max_length 64 to 1024, cached decoding; the zoo
  backends only, as the native twin has no key/value cache. `tokens_per_s`
  counts generated tokens.

Each sweep runs in a fresh process per backend at jit_compile="auto" (what
users run), and once in native PyTorch (tools/native_torch.py's twin of the
same architecture), with the same inputs: full rows of random token ids (no
padding, so every point does the work its length says; the encoder-decoder
gets `length` source tokens and 3/4 of them as target, as `zoo bench`). The
presets' position tables are widened to the longest length of the sweep and
the weights are random: the cost does not depend on their values.

At each point, one call is one batch, the way a service predicts:
`model.predict(batch)` for the zoo, an eval-mode forward pass and its logits
copied to a numpy array for native PyTorch. Per point the rows record:

- `samples_per_s` and `tokens_per_s` (zoo.eval.bench.time_steps: at least
  `--min-seconds`, the faster of two timed runs) and `vs_native`;
- `first_step_s`: the first call at this shape, which on TensorFlow and JAX
  includes compiling the program for it (XLA compiles once per shape);
- `peak_memory_mb`: the process' peak resident memory once the point is done.
  The points of a sweep run from the smallest, so growth from one point to
  the next is what the larger point needed (the frameworks keep freed
  memory for reuse, so this is an upper bound on a single point's needs).
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import child_process, machine_facts, result_csv  # noqa: E402  (the checkout is on sys.path above)
from zoo.data.arrays import example_target_length  # noqa: E402  (numpy only: no framework)

BACKENDS = ("tensorflow", "jax", "torch")
RUNNERS = ("native-torch", *BACKENDS)
TRANSFORMERS = ("transformer-encoder-small", "transformer-decoder-small", "transformer-small")
# (preset, axis): the values swept.
SWEEPS = {
    **{(preset, "length"): (64, 128, 256, 512, 1024) for preset in TRANSFORMERS},
    **{(preset, "batch"): (1, 8, 32, 128) for preset in TRANSFORMERS},
    ("lstm-small", "length"): (32, 64, 128, 256, 512),
    ("transformer-decoder-small", "generate"): (64, 128, 256, 512, 1024),
}
FIELDS = ("preset", "axis", "backend", "jit_compile", "batch_size", "length", "samples_per_s", "tokens_per_s",
          "vs_native", "first_step_s", "peak_memory_mb", "cpu", "vector_extensions", "threads", "device",
          "versions")
SEQUENCE_FAMILIES = ("lstm", "transformer-encoder", "transformer-decoder", "transformer")
# The other axis' value: batch 8 in a length or generate sweep, 64 tokens in a batch sweep.
FIXED = {"length": 8, "batch": 64, "generate": 8}
PROMPT_LENGTH = 16  # tokens of each prompt in a generate sweep
TIMEOUT_S = 1800


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", nargs="+", metavar="PRESET:AXIS",
                        help="default: every sweep (" + ", ".join(f"{p}:{a}" for p, a in SWEEPS) + ")")
    parser.add_argument("--values", nargs="+", type=int, help="the points of each sweep (default: the sweep's own)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--min-seconds", type=float, default=1.0, help="length of each timed run")
    parser.add_argument("--csv", type=Path, help="where to write the rows (default benchmarks/scaling-<device>.csv)")
    parser.add_argument("--show", action="store_true", help="measure nothing: print the recorded CSV")
    parser.add_argument("--markdown", action="store_true", help="measure nothing: print the tables of benchmarks/README.md")
    parser.add_argument("--plot", action="store_true", help="measure nothing: plot the recorded CSV")
    parser.add_argument("--run", nargs=4, metavar=("RUNNER", "PRESET", "AXIS", "VALUES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        runner, preset, axis, values = args.run
        print(json.dumps(run_sweep(runner, preset, axis, [int(v) for v in values.split(",")], args.min_seconds)))
        return 0
    recorded = args.csv or ROOT / "benchmarks" / "scaling-cpu.csv"
    if args.show or args.markdown or args.plot:
        rows = read_rows(recorded)
        if args.plot:
            for path in plot(rows, recorded.parent):
                print(f"wrote {path}")
        else:
            print(markdown_tables(rows) if args.markdown else text_report(rows))
        return 0
    sweeps = [parse_sweep(text, parser) for text in args.sweeps] if args.sweeps else list(SWEEPS)
    started = time.perf_counter()
    if args.values and min(args.values) < 1:
        parser.error("--values must be positive whole numbers")
    rows = measure(sweeps, args.backends, args.min_seconds, args.values)
    if not rows:
        raise SystemExit("nothing was measured: see the messages above")
    print(text_report(rows))
    print(f"measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    path = args.csv or ROOT / "benchmarks" / f"scaling-{rows[0]['device']}.csv"
    result_csv.write_rows(path, rows, FIELDS)
    print(f"wrote {len(rows)} rows to {path}")
    return 0


def parse_sweep(text, parser):
    """"PRESET:AXIS" as a (preset, axis) pair; a sequence preset outside
    SWEEPS takes --values, at batch 8 (by length) or 64 tokens (by batch)."""
    import zoo

    preset, _, axis = text.partition(":")
    if axis not in FIXED:
        parser.error(f"{text!r}: use PRESET:length, PRESET:batch or PRESET:generate, e.g. " + ", ".join(f"{p}:{a}" for p, a in SWEEPS))
    try:
        card = zoo.info(preset)
    except zoo.ZooError as error:
        parser.error(str(error))
    if card.family not in SEQUENCE_FAMILIES or not card.config.get("vocab_size"):
        parser.error(f"{preset} does not read token ids: sweeps are for the token families "
                     f"({', '.join(SEQUENCE_FAMILIES)})")
    if axis == "generate" and card.family != "transformer-decoder":
        parser.error(f"{preset} is a {card.family} model: generate sweeps are for the transformer-decoder family")
    return preset, axis


def measure(sweeps, backends, min_seconds, values=None):
    """Every sweep on native PyTorch and each backend, each in a fresh process."""
    from rich.progress import Progress

    facts = machine_facts.cpu_facts()
    machine = {"cpu": facts.model, "vector_extensions": facts.extensions, "threads": facts.threads}
    rows = []
    with Progress(transient=True) as progress:
        task = progress.add_task("scaling", total=sum(len(backends) + (axis != "generate") for _, axis in sweeps))
        for preset, axis in sweeps:
            points = values or SWEEPS.get((preset, axis))
            if not points:
                raise SystemExit(f"{preset}:{axis} has no recorded points: give them with --values")
            native = None
            runners = backends if axis == "generate" else ("native-torch", *backends)  # no native generate
            for runner in runners:
                progress.update(task, description=f"{preset} by {axis} on {runner}")
                measured = run_child(runner, preset, axis, points, min_seconds)
                if runner == "native-torch":
                    native = {point_key(row): row for row in measured}
                rows += [{**row, **machine, "vs_native": ratio(row, native or {})} for row in measured]
                progress.advance(task)
    return rows


def point_key(row):
    return row["preset"], row["axis"], row["batch_size"], row["length"]


def ratio(row, native):
    reference = native.get(point_key(row))
    return row["samples_per_s"] / reference["samples_per_s"] if reference else None


def run_child(runner, preset, axis, points, min_seconds):
    """One sweep in a fresh process (`--run`); its rows, or [] and a message on failure."""
    command = [sys.executable, str(Path(__file__).resolve()), "--min-seconds", str(min_seconds),
               "--run", runner, preset, axis, ",".join(map(str, points))]
    environment = {} if runner == "native-torch" else {"KERAS_BACKEND": runner}
    return child_process.last_json(command, f"{preset} by {axis} on {runner}", TIMEOUT_S, environment) or []


# ---------------------------------------------------------------- in the child process


def run_sweep(runner, preset, axis, points, min_seconds):
    """The rows of one sweep in this process: `runner` is "native-torch" or
    the active Keras backend's name. Points run from the smallest."""
    import zoo

    card = zoo.info(preset)
    fixed = FIXED[axis]
    shapes = [(point, fixed) if axis == "batch" else (fixed, point) for point in sorted(points)]
    overrides = widened_positions(card, max(length for _, length in shapes))
    predictor = native_predictor if runner == "native-torch" else zoo_predictor
    predict, jit_compile, versions, device = predictor(preset, overrides, generate=axis == "generate")
    rows = []
    for batch_size, length in shapes:
        if axis == "generate":
            inputs, tokens_per_row = scaling_batch(card, batch_size, PROMPT_LENGTH), length - PROMPT_LENGTH
        else:
            inputs, tokens_per_row = scaling_batch(card, batch_size, length), length
        timing = time_point(lambda: predict(inputs, batch_size, length), batch_size, min_seconds)
        rows.append({"preset": preset, "axis": axis, "backend": runner, "jit_compile": jit_compile,
                     "batch_size": batch_size, "length": length, **timing,
                     "tokens_per_s": timing["samples_per_s"] * tokens_per_row, "device": device,
                     "versions": versions})
    return rows


def widened_positions(card, length):
    """Config overrides that give the preset's position tables room for
    `length` source tokens (and the seq2seq target, 3/4 of them)."""
    config = card.config
    if "encoder_max_length" in config:
        return {"encoder_max_length": max(config["encoder_max_length"], length),
                "decoder_max_length": max(config["decoder_max_length"], example_target_length(length))}
    if "max_length" in config:
        return {"max_length": max(config["max_length"], length)}
    return {}


def scaling_batch(card, batch_size, length, seed=0):
    """Full rows of token ids in [3, vocab) (no padding, no special tokens):
    an array, or the seq2seq family's dict, as the zoo model takes them.

    Example:
    >>> import zoo
    >>> batch = scaling_batch(zoo.info("transformer-tiny"), 2, 8)
    >>> {name: ids.shape for name, ids in batch.items()}
    {'encoder_token_ids': (2, 8), 'decoder_token_ids': (2, 6)}
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab_size = card.config["vocab_size"]
    if card.family != "transformer":
        return rng.integers(3, vocab_size, size=(batch_size, length), dtype="int32")
    return {"encoder_token_ids": rng.integers(3, vocab_size, size=(batch_size, length), dtype="int32"),
            "decoder_token_ids": rng.integers(3, vocab_size, size=(batch_size, example_target_length(length)),
                                              dtype="int32")}


def zoo_predictor(preset, overrides, generate=False):
    """`predict(batch, batch_size, length)` of the zoo model (random weights)
    on the active backend at jit "auto": `model.predict`, or with `generate`
    greedy `model.generate` of every row to `length` tokens (no stop token,
    so every row runs to the end)."""
    import zoo
    from zoo.runtime import backend

    model = zoo.load(preset, pretrained=False, **overrides)

    def predict(inputs, batch_size, length):
        if generate:
            return model.generate(inputs, max_length=length)
        return model.predict(inputs, batch_size=batch_size, verbose=0)

    workload = "generate" if generate else "predict"
    return predict, backend.jit_compile_for(model, workload), backend.versions(), backend.device_kind()


def native_predictor(preset, overrides, generate=False):
    """`predict(batch, batch_size, length)` of the native PyTorch twin: eval
    mode, outputs to numpy. It has no key/value cache, so no `generate`."""
    if generate:
        raise SystemExit("the native PyTorch twin cannot generate: a generate sweep runs the zoo's backends only")
    import torch

    from tools import native_torch

    torch.manual_seed(0)
    native = native_torch.build_native(preset, **overrides).eval()

    def predict(inputs, batch_size, length):  # the zoo's signature; the batch says its shape
        with torch.inference_mode():
            return native(native_torch.native_inputs(inputs)).numpy()

    return predict, False, f"torch {torch.__version__}, {torch.get_num_threads()} threads", "cpu"


def time_point(call, batch_size, min_seconds):
    """Rows per second of `call()` (one batch of `batch_size` rows), its first
    call, and the process' peak memory once timed."""
    from zoo.eval import bench

    def run_steps(steps):
        for _ in range(steps):
            call()

    timing = bench.time_steps(run_steps, batch_size, min_seconds)
    return {"samples_per_s": timing.samples_per_s, "first_step_s": timing.first_step_s,
            "peak_memory_mb": bench.peak_memory_mb()}


# ---------------------------------------------------------------- reports


def read_rows(path):
    return result_csv.read_rows(path, floats=("samples_per_s", "tokens_per_s", "vs_native", "first_step_s",
                                              "peak_memory_mb"), ints=("batch_size", "length", "threads"))


def sweeps_of(rows):
    return list(dict.fromkeys((row["preset"], row["axis"]) for row in rows))


def text_report(rows):
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    buffer = StringIO()
    console = Console(file=buffer, width=150)
    for preset, axis in sweeps_of(rows):
        sweep = [row for row in rows if (row["preset"], row["axis"]) == (preset, axis)]
        table = Table(title=f"{preset} by {axis} (inference, one batch per call, {sweep[0]['device']})",
                      title_justify="left")
        for column in ("backend", "jit", "batch", "length", "tokens/s", "vs native", "first call", "peak memory"):
            table.add_column(column, justify="left" if column in ("backend", "jit") else "right")
        for row in sweep:
            shown_ratio = "-" if row["vs_native"] is None else f"{row['vs_native']:.2f}x"
            table.add_row(row["backend"], str(row["jit_compile"]), str(row["batch_size"]), str(row["length"]),
                          f"{row['tokens_per_s']:,.0f}", shown_ratio, f"{row['first_step_s']:.2f} s",
                          f"{row['peak_memory_mb']:,.0f} MB")
        console.print(table)
    return buffer.getvalue()


def markdown_tables(rows):
    """Per sweep, one line per point: native PyTorch's tokens/s, and each
    backend's ratio to it, first call and peak memory."""
    tables = []
    for preset, axis in sweeps_of(rows):
        sweep = [row for row in rows if (row["preset"], row["axis"]) == (preset, axis)]
        if axis == "generate":
            tables.append(generate_table(preset, sweep))
            continue
        title = (f"**{preset}** by {axis} ({held_fixed(axis, sweep)}): native PyTorch's tokens/s and peak "
                 "memory; per backend, the ratio to native, the first call (compiling included) and peak memory")
        lines = [title,
                 "",
                 f"| {axis} | native PyTorch | " + " | ".join(BACKENDS) + " |",
                 "|---:|---:|" + "---:|" * len(BACKENDS)]
        for key in dict.fromkeys((row["batch_size"], row["length"]) for row in sweep):
            cells = {row["backend"]: row for row in sweep if (row["batch_size"], row["length"]) == key}
            native = cells.get("native-torch")
            shown = [_markdown_cell(cells.get(backend)) for backend in BACKENDS]
            point = key[0] if axis == "batch" else key[1]
            native_cell = f"{native['tokens_per_s']:,.0f}, {native['peak_memory_mb']:,.0f} MB" if native else "-"
            lines.append(f"| {point} | {native_cell} | " + " | ".join(shown) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def generate_table(preset, sweep):
    """Greedy generation to each max_length: per backend, generated tokens/s,
    the first call (compiling included) and peak memory."""
    lines = [f"**{preset}** generating ({held_fixed('generate', sweep)}): per backend, generated tokens/s, the "
             "first call (compiling included) and peak memory",
             "",
             "| max_length | " + " | ".join(BACKENDS) + " |",
             "|---:|" + "---:|" * len(BACKENDS)]
    for length in dict.fromkeys(row["length"] for row in sweep):
        cells = {row["backend"]: row for row in sweep if row["length"] == length}
        shown = [f"{cells[b]['tokens_per_s']:,.0f}, {cells[b]['first_step_s']:.2f} s, "
                 f"{cells[b]['peak_memory_mb']:,.0f} MB" if b in cells else "-" for b in BACKENDS]
        lines.append(f"| {length} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def held_fixed(axis, sweep):
    """What a sweep holds fixed, in words: "batch 8", "64 tokens", "batch 8, 16-token prompts"."""
    if axis == "batch":
        return f"{sweep[0]['length']} tokens"
    if axis == "generate":
        return f"batch {sweep[0]['batch_size']}, {PROMPT_LENGTH}-token prompts"
    return f"batch {sweep[0]['batch_size']}"


def _markdown_cell(row):
    if row is None:
        return "-"
    ratio_text = "-" if row["vs_native"] is None else f"{row['vs_native']:.2f}x"
    return f"{ratio_text}, {row['first_step_s']:.2f} s, {row['peak_memory_mb']:,.0f} MB"


def plot(rows, folder):
    """One PNG per preset in `folder` (benchmarks/scaling-<preset>.png): per
    axis, tokens/s and peak memory against the swept value, a line per
    backend and native PyTorch, both axes logarithmic. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    paths = []
    for preset in dict.fromkeys(row["preset"] for row in rows):
        axes_swept = [axis for p, axis in sweeps_of(rows) if p == preset]
        figure, grid = plt.subplots(len(axes_swept), 2, figsize=(12, 4 * len(axes_swept)), squeeze=False)
        for (speed, memory), axis in zip(grid, axes_swept):
            sweep = [row for row in rows if (row["preset"], row["axis"]) == (preset, axis)]
            key = "batch_size" if axis == "batch" else "length"
            for runner in RUNNERS:
                points = sorted((row[key], row["tokens_per_s"], row["peak_memory_mb"]) for row in sweep
                                if row["backend"] == runner)
                if not points:
                    continue
                style = {"label": "native PyTorch" if runner == "native-torch" else runner, "marker": "o",
                         "color": f"C{RUNNERS.index(runner)}",  # the same colour in every chart
                         "linestyle": "--" if runner == "native-torch" else "-"}
                speed.plot([p[0] for p in points], [p[1] for p in points], **style)
                memory.plot([p[0] for p in points], [p[2] for p in points], **style)
            label = {"batch": "batch size (rows)", "length": "sequence length (tokens)",
                     "generate": "max_length (prompt and generated tokens)"}[axis]
            tokens = "generated tokens / s" if axis == "generate" else "tokens / s"
            for chart, measured in ((speed, tokens), (memory, "peak resident memory (MB)")):
                chart.set_xscale("log", base=2)
                chart.set_yscale("log")
                chart.set_xlabel(label)
                chart.set_ylabel(measured)
                chart.grid(True, which="both", alpha=0.3)
                chart.legend()
            work = "greedy generation" if axis == "generate" else "inference throughput"
            speed.set_title(f"{preset}: {work} by {axis} ({held_fixed(axis, sweep)})", fontsize=10)
            memory.set_title(f"{preset}: peak memory by {axis}")
        figure.tight_layout()
        path = Path(folder) / f"scaling-{preset}.png"
        figure.savefig(path, dpi=80)
        plt.close(figure)
        paths.append(path)
    return paths


if __name__ == "__main__":
    sys.exit(main())
