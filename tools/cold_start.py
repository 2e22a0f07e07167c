"""Cold start as a user feels it: a fresh process that loads a model and predicts once.

    python tools/cold_start.py                      # each family's small preset, 3 backends + native PyTorch, 3 runs
    python tools/cold_start.py --presets transformer-encoder-small --backends torch --runs 1
    python tools/cold_start.py --show               # print the recorded benchmarks/cold-start-cpu.csv
    python tools/cold_start.py --markdown           # the table of benchmarks/README.md, from that CSV

For every preset, each run is a fresh Python process doing what a user's
script does, timed by the parent from launch to exit (`process_s`: the
interpreter's start-up included) and by itself in phases:

- zoo, per backend: `import zoo` and Keras with its backend (`import_s`),
  `zoo.load(folder)` of a saved preset folder (`load_s`: keras_hub's import
  for the transformer families, building, verifying the files' sha256,
  reading the weights), one `model.predict` of one example
  (`first_predict_s`: tracing, and compiling where jit_compile="auto" does),
  with an empty ZOO_HOME (no jax compilation cache).
- native PyTorch (tools/native_torch.py's twin of the same architecture):
  `import torch` (`import_s`), construct the module and `load_state_dict`
  from a safetensors file (`load_s`), one eval-mode forward pass
  (`first_predict_s`).

Both read the same weights from local disk (the zoo's preset folder and the
twin's state dict are written once, before any run) and predict on the same
example. The median of `--runs` runs is kept; rows go to
benchmarks/cold-start-<device>.csv with the machine's columns (see
tools/machine_facts.py).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import child_process, machine_facts, result_csv  # noqa: E402  (the checkout is on sys.path above)

BACKENDS = ("tensorflow", "jax", "torch")
FAMILIES = ("dense", "cnn", "lstm", "transformer-encoder", "transformer-decoder", "transformer")
LENGTH = 64  # tokens of the one example, as in zoo bench
PHASES = ("import_s", "load_s", "first_predict_s", "process_s")
FIELDS = ("preset", "backend", *PHASES, "vs_native", "runs", "cpu", "vector_extensions", "threads", "device",
          "versions")
TIMEOUT_S = 600

# What each child runs; it prints its phases as JSON. argv: folder of the prepared files.
_ZOO_CHILD = """
import time; start = time.perf_counter()
import json, sys
import numpy as np
import zoo
from zoo.runtime import backend
imported = time.perf_counter()
model = zoo.load(sys.argv[1] + "/preset")
loaded = time.perf_counter()
with np.load(sys.argv[1] + "/example.npz") as saved:
    x = {key[2:]: saved[key] for key in saved.files}
x = x.pop("inputs") if "inputs" in x else x
model.predict(x, verbose=0)
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "load_s": loaded - imported, "first_predict_s": done - loaded,
                  "versions": backend.versions(), "device": backend.device_kind()}))
"""
_NATIVE_CHILD = """
import time; start = time.perf_counter()
import json, sys
import numpy as np
import torch
from safetensors.torch import load_file
sys.path.insert(0, sys.argv[2])
from tools import native_torch
imported = time.perf_counter()
native = native_torch.build_native(sys.argv[3])
native.load_state_dict(load_file(sys.argv[1] + "/native.safetensors"))
native.eval()
loaded = time.perf_counter()
with np.load(sys.argv[1] + "/example.npz") as saved:
    x = {key[2:]: saved[key] for key in saved.files}
x = native_torch.native_inputs(x.pop("inputs") if "inputs" in x else x)
with torch.inference_mode():
    native(x).numpy()
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "load_s": loaded - imported, "first_predict_s": done - loaded,
                  "versions": f"torch {torch.__version__}", "device": "cpu"}))
"""
# Writes the preset folder and the example (on torch: any backend writes the same files).
_PREPARE_CHILD = """
import sys
import numpy as np
import zoo
from zoo.eval import bench
model = zoo.load(sys.argv[2])
zoo.save_preset(model, sys.argv[1] + "/preset")
x, _ = bench.bench_batch(model, 1, int(sys.argv[3]) if model.sequence_inputs else None)
np.savez(sys.argv[1] + "/example.npz", **({"x_" + k: v for k, v in x.items()} if isinstance(x, dict) else {"x_inputs": x}))
print("{}")  # the parent reads a JSON line from every child
"""
_PREPARE_NATIVE_CHILD = """
import sys
from safetensors.torch import save_file
sys.path.insert(0, sys.argv[2])
from tools import native_torch
state = native_torch.build_native(sys.argv[3]).state_dict()
save_file({name: tensor.contiguous() for name, tensor in state.items()}, sys.argv[1] + "/native.safetensors")
print("{}")
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--presets", nargs="+", help="default: each family's small preset")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per backend; the median is kept")
    parser.add_argument("--csv", type=Path, help="where to write the rows (default benchmarks/cold-start-<device>.csv)")
    parser.add_argument("--show", action="store_true", help="measure nothing: print the recorded CSV")
    parser.add_argument("--markdown", action="store_true", help="measure nothing: print the table of benchmarks/README.md")
    args = parser.parse_args(argv)
    if args.show or args.markdown:
        rows = read_rows(args.csv or ROOT / "benchmarks" / "cold-start-cpu.csv")
        print(markdown_table(rows) if args.markdown else text_report(rows))
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    presets = args.presets or [f"{family}-small" for family in FAMILIES]
    rows = []
    facts = machine_facts.cpu_facts()
    machine = {"cpu": facts.model, "vector_extensions": facts.extensions, "threads": facts.threads}
    for preset in presets:
        rows += measure_preset(preset, args.backends, args.runs, machine)
    print(text_report(rows))
    path = args.csv or ROOT / "benchmarks" / f"cold-start-{rows[0]['device']}.csv"
    result_csv.write_rows(path, rows, FIELDS)
    print(f"wrote {len(rows)} rows to {path}")
    return 0


def measure_preset(preset, backends, runs, machine):
    """The native row and one row per backend for `preset`, medians of `runs` fresh processes."""
    with tempfile.TemporaryDirectory() as folder:
        prepare(preset, folder)
        native = median_run([sys.executable, "-c", _NATIVE_CHILD, folder, str(ROOT), preset], {}, runs)
        rows = [{"preset": preset, "backend": "native-torch", **native, "vs_native": 1.0, "runs": runs, **machine}]
        for backend in backends:
            print(f"{preset} on {backend}", file=sys.stderr, flush=True)
            zoo = median_run([sys.executable, "-c", _ZOO_CHILD, folder], {"KERAS_BACKEND": backend}, runs,
                             fresh_home=Path(folder) / f"home-{backend}")
            rows.append({"preset": preset, "backend": backend, **zoo, "vs_native": native["process_s"] / zoo["process_s"],
                         "runs": runs, **machine})
    return rows


def prepare(preset, folder):
    """Write the zoo's preset folder, the twin's state dict and the example
    into `folder`, from child processes (this one imports no framework)."""
    run_child([sys.executable, "-c", _PREPARE_CHILD, folder, preset, str(LENGTH)], {"KERAS_BACKEND": "torch"})
    run_child([sys.executable, "-c", _PREPARE_NATIVE_CHILD, folder, str(ROOT), preset], {})


def median_run(command, environment, runs, fresh_home=None):
    """Each phase's median over `runs` runs of `command`, plus the whole
    process' wall time; each run gets an empty ZOO_HOME under `fresh_home`
    when given (cold: no jax compilation cache from the run before)."""
    results = []
    for run in range(runs):
        if fresh_home is not None:
            environment = {**environment, "ZOO_HOME": str(fresh_home / str(run))}
        start = time.perf_counter()
        result = run_child(command, environment)
        results.append({**result, "process_s": time.perf_counter() - start})
    return {**results[0], **{phase: statistics.median(result[phase] for result in results) for phase in PHASES}}


def run_child(command, environment):
    """Run `command` with `environment` added; the JSON it printed last ({} if
    none). A failed child ends the run: its phases cannot be left out."""
    result = child_process.last_json(command, f"{' '.join(command[:2])} ...", TIMEOUT_S, environment)
    if result is None:
        raise SystemExit("a cold-start child process failed (above); no row was written")
    return result


def read_rows(path):
    return result_csv.read_rows(path, floats=(*PHASES, "vs_native"), ints=("runs", "threads"))


def text_report(rows):
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    first = rows[0]
    table = Table(title=f"cold start: a fresh process loads the model and predicts one example ({first['device']})",
                  title_justify="left", caption=f"{first['cpu']}, {first['threads']} threads; median of "
                                                f"{first['runs']} runs")
    for column in ("preset", "backend", "import", "load", "first predict", "process", "vs native"):
        table.add_column(column, justify="left" if column in ("preset", "backend") else "right")
    for row in rows:
        table.add_row(row["preset"], row["backend"], *(f"{row[phase]:.2f} s" for phase in PHASES),
                      f"{row['vs_native']:.2f}x")
    buffer = StringIO()
    Console(file=buffer, width=140).print(table)
    return buffer.getvalue()


def markdown_table(rows):
    """Per preset: each backend's whole process in seconds and its ratio to native PyTorch (> 1: faster)."""
    lines = ["| preset | native PyTorch | " + " | ".join(BACKENDS) + " |", "|---|---:|" + "---:|" * len(BACKENDS)]
    for preset in dict.fromkeys(row["preset"] for row in rows):
        cells = {row["backend"]: row for row in rows if row["preset"] == preset}
        native = cells["native-torch"]
        shown = [f"{cells[b]['process_s']:.1f} s ({cells[b]['vs_native']:.2f}x)" if b in cells else "-"
                 for b in BACKENDS]
        lines.append(f"| {preset} | {native['process_s']:.1f} s | " + " | ".join(shown) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
