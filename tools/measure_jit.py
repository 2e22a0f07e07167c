"""Time every family with and without compilation, on every backend, to set `jit_compile="auto"`.

    python tools/measure_jit.py                      # small presets, all backends (~15 min on 2 CPU cores)
    python tools/measure_jit.py --backends jax tensorflow   # the same without torch.compile (~6 min)
    python tools/measure_jit.py --quick              # tiny presets, fewer repeats, prints only
    python tools/measure_jit.py --show               # print the recorded tools/jit_measurements.csv
    python tools/measure_jit.py --backends jax --presets dense-small cnn-small

For each backend (its own subprocess: Keras fixes the backend at import) and
each preset, it times `predict_on_batch`, one training step (`train_on_batch`,
AdamW) and, for the generative families, `generate()`, with jit_compile off
and on: the first and second calls (which compile: torch.compile compiles
Keras' steps twice) and the best of the following calls (the steady state;
the best, because other processes share the machine).
Every batch holds 32 examples. torch.compile and the jax cache start cold:
each backend's run gets fresh cache folders.

It writes the rows to tools/jit_measurements.csv, prints them as a table and
says, per backend, device and operation (predict, train, generate), whether
compiling makes most workloads (one preset's operation, called WORKLOAD_CALLS
times: a short evaluation or fine-tune) faster:
`zoo.runtime.backend.AUTO_JIT_COMPILE` records that choice, and
tests/test_jit.py checks that the two agree. Rows of the backends not
measured in a run stay in the CSV.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKENDS = ("tensorflow", "jax", "torch")
FAMILIES = ("dense", "cnn", "lstm", "transformer-encoder", "transformer-decoder", "transformer")
CSV_PATH = ROOT / "tools" / "jit_measurements.csv"
FIELDS = ("backend", "device", "preset", "operation", "jit_compile", "first_call_s", "second_call_s", "steady_ms",
          "repeats")
BATCH_SIZE = 32
GENERATE_LENGTH = 16  # transformer-small's decoder holds 16 tokens
WORKLOAD_CALLS = 100  # a short evaluation or fine-tune: what a compilation must pay for itself in
STEADY_BUDGET_S = 3.0  # stop repeating a slow call once this much time went into it


class Suggestion(NamedTuple):
    """What the measurements say `jit_compile="auto"` should be for one
    operation (workload) on one backend and device."""

    jit_compile: bool
    faster_compiled: int  # presets whose workload compiling makes faster
    faster_steady: int  # presets whose steady-state call compiling makes faster
    workloads: int
    seconds_off: float  # every preset's workload together
    seconds_on: float


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--presets", nargs="+", help="default: each family's small preset (tiny with --quick)")
    parser.add_argument("--repeats", type=int, help="steady-state calls after the first (default 5, 2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny presets and fewer repeats; writes no CSV unless --csv")
    parser.add_argument("--csv", type=Path, help=f"where to write the rows (default {CSV_PATH.relative_to(ROOT)})")
    parser.add_argument("--show", action="store_true", help="measure nothing: print the table of the CSV")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = "tiny" if args.quick else "small"
    presets = args.presets or [f"{family}-{size}" for family in FAMILIES]
    repeats = args.repeats or (2 if args.quick else 5)
    if args.child:  # runs inside one backend's subprocess
        args.out.write_text(json.dumps(measure_presets(presets, repeats)))
        return 0
    if args.show:
        print_report(read_rows(args.csv or CSV_PATH))
        return 0
    rows = []
    for backend_name in args.backends:
        rows += run_backend(backend_name, presets, repeats)
    csv_path = args.csv or (None if args.quick else CSV_PATH)
    if csv_path is not None:
        write_rows(csv_path, rows)
    print_report(rows)
    return 0


def run_backend(backend_name, presets, repeats):
    """The rows of one backend, measured in a fresh subprocess with cold caches."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "KERAS_BACKEND": backend_name, "ZOO_HOME": str(scratch / "zoo-home"),
               "TORCHINDUCTOR_CACHE_DIR": str(scratch / "inductor"), "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = scratch / "rows.json"
        command = [sys.executable, __file__, "--child", "--out", str(out), "--repeats", str(repeats),
                   "--presets", *presets]
        print(f"measuring {backend_name}: {', '.join(presets)}", file=sys.stderr, flush=True)
        subprocess.run(command, env=env, check=True)
        return json.loads(out.read_text())


def measure_presets(presets, repeats):
    import zoo
    from zoo.runtime import backend

    rows = []
    for name in presets:
        for jit_compile in (False, True):
            backend.forget_compiled_programs()  # else torch.compile stops compiling after 8 models
            model = zoo.load(name, pretrained=False, jit_compile=jit_compile)
            for operation, (first, second, steady, count) in measure_model(model, jit_compile, repeats):
                rows.append(dict(backend=backend.name(), device=backend.device_kind(), preset=name,
                                 operation=operation, jit_compile=jit_compile, first_call_s=round(first, 3),
                                 second_call_s=round(second, 3), steady_ms=round(steady * 1000, 2), repeats=count))
                print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def measure_model(model, jit_compile, repeats):
    """`(operation, time_calls(...))` for each operation of `model`, compiled
    as `jit_compile` says."""
    from zoo.runtime import backend

    x, y = model.example_batch(BATCH_SIZE)
    results = [("predict", time_calls(lambda: model.predict_on_batch(x), repeats))]
    model.compile(optimizer="adamw", loss=model.default_loss(), jit_compile=jit_compile)
    results.append(("train", time_calls(lambda: model.train_on_batch(x, y), repeats)))
    generation_compiles = backend.compile_function(lambda: None) is not None
    if hasattr(model, "generate") and (generation_compiles or not jit_compile):
        prompt = x["encoder_token_ids"] if isinstance(x, dict) else x[:, : GENERATE_LENGTH // 2]
        results.append(("generate", time_calls(lambda: model.generate(prompt, max_length=GENERATE_LENGTH), repeats)))
    return results


def time_calls(call, repeats):
    """`(first call s, second call s, best call after the first s, calls after the first)`.

    The second call is kept apart: torch.compile compiles Keras' steps a
    second time on it (the first call changes Python state its guards watch).
    At least two calls follow the first; more, up to `repeats`, while they
    take less than STEADY_BUDGET_S together.
    """
    times = []
    while len(times) < 3 or (len(times) < repeats + 1 and sum(times[1:]) < STEADY_BUDGET_S):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times[0], times[1], min(times[1:]), len(times) - 1


def write_rows(path, rows):
    """Write `rows` to `path`, keeping the rows it held of other backends and devices."""
    measured = {(row["backend"], row["device"]) for row in rows}
    kept = [row for row in read_rows(path) if (row["backend"], row["device"]) not in measured] if path.exists() else []
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept + rows)


def read_rows(path=CSV_PATH):
    """The rows of a CSV that this tool wrote, with numbers and booleans parsed back."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        row["jit_compile"] = row["jit_compile"] == "True"
        for field in ("first_call_s", "second_call_s", "steady_ms"):
            row[field] = float(row[field])
        row["repeats"] = int(row["repeats"])
    return rows


def workload_seconds(row, calls=WORKLOAD_CALLS):
    """Time for `calls` calls: the first two as measured (compiling), the rest at the steady speed."""
    return row["first_call_s"] + row["second_call_s"] + (calls - 2) * row["steady_ms"] / 1000


def paired(rows):
    """`{(backend, device, preset, operation): {False: row, True: row}}`, for the
    operations measured both ways (torch's generate() is never compiled)."""
    pairs = {}
    for row in rows:
        key = (row["backend"], row["device"], row["preset"], row["operation"])
        pairs.setdefault(key, {})[row["jit_compile"]] = row
    return {key: modes for key, modes in pairs.items() if len(modes) == 2}


def suggest_auto(rows, calls=WORKLOAD_CALLS):
    """`{(backend, device, operation): Suggestion}`: compile an operation when
    that makes most of the measured presets' workloads (`calls` calls each)
    faster; on a tie, when it makes most of their steady-state calls faster
    (longer workloads decide by those).

    Most, not the summed time: a user runs one model at one task, and the sum
    would be decided by the slowest workload alone (tensorflow's uncompiled
    generate() of transformer-small outweighs every other row together).
    """
    tallies = {}
    for (backend_name, device, _, operation), modes in paired(rows).items():
        off, on = workload_seconds(modes[False], calls), workload_seconds(modes[True], calls)
        steady_faster = modes[True]["steady_ms"] < modes[False]["steady_ms"]
        wins, steady_wins, count, total_off, total_on = tallies.get((backend_name, device, operation), (0, 0, 0, 0.0, 0.0))
        tallies[(backend_name, device, operation)] = (wins + (on < off), steady_wins + steady_faster, count + 1,
                                                      total_off + off, total_on + on)
    return {key: Suggestion(_compile_wins(wins, steady_wins, count), wins, steady_wins, count, total_off, total_on)
            for key, (wins, steady_wins, count, total_off, total_on) in tallies.items()}


def _compile_wins(wins, steady_wins, count):
    if 2 * wins != count:
        return 2 * wins > count
    return 2 * steady_wins > count


def break_even_calls(off, on):
    """Calls after which compiling has paid for itself, or None if it never does."""
    saving_per_call = (off["steady_ms"] - on["steady_ms"]) / 1000
    extra_first = workload_seconds(on, 2) - workload_seconds(off, 2)
    if extra_first <= 0:
        return 1
    return None if saving_per_call <= 0 else round(extra_first / saving_per_call) + 2


def print_report(rows):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"jit_compile off vs on (batch {BATCH_SIZE}; steady = best call after the first)")
    for header in ("backend", "device", "preset", "operation", "1st+2nd call off", "1st+2nd call on",
                   "steady off", "steady on", "speed-up", "pays off after"):
        table.add_column(header, justify="left" if header in ("backend", "device", "preset", "operation") else "right")
    for (backend_name, device, preset, operation), modes in paired(rows).items():
        off, on = modes[False], modes[True]
        calls = break_even_calls(off, on)
        table.add_row(backend_name, device, preset, operation, f"{workload_seconds(off, 2):.2f} s",
                      f"{workload_seconds(on, 2):.2f} s", f"{off['steady_ms']:.1f} ms", f"{on['steady_ms']:.1f} ms",
                      f"{off['steady_ms'] / max(on['steady_ms'], 1e-3):.2f}x",
                      "never" if calls is None else f"{calls} calls")
    console = Console(width=150)  # the table is wider than a pipe's default 80 columns
    console.print(table)
    for (backend_name, device, operation), suggestion in suggest_auto(rows).items():
        console.print(f'{backend_name} on {device}, {operation}: jit_compile="auto" should be {suggestion.jit_compile}: '
                      f"compiling makes {suggestion.faster_compiled} of {suggestion.workloads} workloads "
                      f"({WORKLOAD_CALLS} calls each) and {suggestion.faster_steady} of their steady-state calls "
                      f"faster; all of them take {suggestion.seconds_off:.0f} s uncompiled, "
                      f"{suggestion.seconds_on:.0f} s compiled")

if __name__ == "__main__":
    sys.exit(main())
