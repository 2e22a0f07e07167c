"""Benchmark every family on every backend against native PyTorch and the machine's matmul rate.

    python tools/bench_all.py                    # small presets, 3 backends x jit off/on (~40 min on 2 CPU cores)
    python tools/bench_all.py --quick            # tiny presets, jit "auto" only, 1 s runs; prints, writes no CSV
    python tools/bench_all.py --backends jax torch --presets cnn-small --jit off
    python tools/bench_all.py --presets dense-small --update   # re-measure one preset in the recorded CSV
    python tools/bench_all.py --show             # print the recorded CSV and the targets
    python tools/bench_all.py --markdown         # the table of benchmarks/README.md, from the recorded CSV

Every measurement runs in a fresh process (`zoo bench PRESET --backend B --jit
J --json`, the same for train and infer), and beside it, in the same
invocation and on the same batch, the native PyTorch implementation of the
same architecture (tools/native_torch.py: idiomatic torch, the reference a
PyTorch user would write) and the best float32 matmul among torch, JAX,
TensorFlow and numpy (the most FLOP/s this machine gives; tools/machine_facts.py).
Each row carries two ratios:

- `vs_native`: zoo samples/s / native PyTorch samples/s (> 1: the zoo is faster);
- `of_peak`: achieved FLOP/s (samples/s x FLOPs per sample, counted on the
  native model with torch's FlopCounterMode) / best matmul FLOP/s;

and the machine: the CPU model, its vector extensions (AVX2, AVX-512, AMX),
threads, and its theoretical float32 FMA peak, since ratios move between CPUs.

Rows go to benchmarks/results-<device>.csv. The targets: for every family the
fastest backend >= 1.0x native for train and infer, and no backend below
0.7x, at jit "auto" (the headline: the off or on row that "auto" runs for
the workload) and at each backend's better setting.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import child_process, machine_facts, result_csv  # noqa: E402  (the checkout is on sys.path above)
from zoo.runtime import jit_policy  # noqa: E402  (imports no Keras)

BACKENDS = ("tensorflow", "jax", "torch")
FAMILIES = ("dense", "cnn", "lstm", "transformer-encoder", "transformer-decoder", "transformer")
MODES = ("train", "infer")
JIT_SETTINGS = ("off", "on")
BEST_TARGET, FLOOR_TARGET = 1.0, 0.7
FIELDS = ("preset", "mode", "backend", "jit_compile", "samples_per_s", "vs_native", "gflops", "of_peak",
          "first_step_s", "load_s", "peak_memory_mb", "batch_size", "length", "flops_per_sample",
          "native_samples_per_s", "matmul_gflops", "matmul_by", "fma_peak_gflops", "cpu", "vector_extensions",
          "threads", "device", "versions")
TIMEOUT_S = 1200  # torch.compile of one model's steps takes minutes on a small CPU


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--presets", nargs="+", help="default: each family's small preset (tiny with --quick)")
    parser.add_argument("--jit", nargs="+", choices=("off", "on", "auto"),
                        help="jit settings to measure (default: off and on; auto with --quick)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--matmul-size", type=int, default=machine_facts.MATMUL_SIZE,
                        help="rows of the square matmuls that measure the machine's peak")
    parser.add_argument("--min-seconds", type=float, help="length of each timed run (default 3, 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny presets, jit auto, short runs; no CSV unless --csv")
    parser.add_argument("--csv", type=Path, help="where to write the rows (default benchmarks/results-<device>.csv)")
    parser.add_argument("--update", action="store_true",
                        help="replace only the measured presets' rows in the CSV, keep the others")
    parser.add_argument("--show", action="store_true", help="measure nothing: print the recorded CSV")
    parser.add_argument("--markdown", action="store_true", help="measure nothing: print the table of benchmarks/README.md")
    args = parser.parse_args(argv)
    if args.show or args.markdown:
        rows = read_rows(args.csv or ROOT / "benchmarks" / "results-cpu.csv")
        print(markdown_table(rows) if args.markdown else text_report(rows))
        return 0
    size = "tiny" if args.quick else "small"
    presets = args.presets or [f"{family}-{size}" for family in FAMILIES]
    jits = args.jit or (["auto"] if args.quick else list(JIT_SETTINGS))
    min_seconds = args.min_seconds or (1.0 if args.quick else 3.0)
    started = time.perf_counter()
    rows = run_all(presets, args.backends, jits, args.batch_size, min_seconds, args.matmul_size)
    print(text_report(rows))
    print(f"measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.csv or not args.quick:
        path = args.csv or ROOT / "benchmarks" / f"results-{rows[0]['device']}.csv"
        if args.update and path.exists():
            rows = merge_rows(read_rows(path), rows)
        result_csv.write_rows(path, rows, FIELDS)
        print(f"wrote {len(rows)} rows to {path}")
    return 0


def run_all(presets, backends, jits, batch_size, min_seconds, matmul_size=machine_facts.MATMUL_SIZE):
    """Measure every preset x backend x jit setting, each preset beside its native run."""
    from rich.progress import Progress

    rows = []
    with Progress(transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(presets) * (1 + len(backends) * len(jits)))
        for preset in presets:
            progress.update(task, description=f"{preset}: matmul and native PyTorch")
            machine = machine_row(matmul_size)
            native = {mode: run_native(preset, mode, batch_size, min_seconds) for mode in MODES}
            rows += [native_row(native[mode], machine) for mode in MODES]
            progress.advance(task)
            for backend in backends:
                for jit in jits:
                    progress.update(task, description=f"{preset} on {backend}, jit {jit}")
                    for result in run_zoo(preset, backend, jit, batch_size, min_seconds):
                        rows.append(zoo_row(result, native[result["mode"]], machine))
                    progress.advance(task)
    return rows


def run_zoo(preset, backend, jit, batch_size, min_seconds):
    """`zoo bench` in a fresh process; [] (and a message) when it fails or runs too long."""
    command = [sys.executable, "-m", "zoo", "bench", preset, "--backend", backend, "--jit", jit,
               "--batch-size", str(batch_size), "--min-seconds", str(min_seconds), "--json"]
    return child_process.last_json(command, f"{preset} on {backend} (jit {jit})", TIMEOUT_S) or []


def run_native(preset, mode, batch_size, min_seconds):
    command = [sys.executable, str(ROOT / "tools" / "native_torch.py"), preset, "--mode", mode,
               "--batch-size", str(batch_size), "--min-seconds", str(min_seconds), "--json"]
    result = child_process.last_json(command, f"native PyTorch {preset} {mode}", TIMEOUT_S)
    if not result:
        raise SystemExit(f"the native PyTorch run of {preset} failed: no ratios can be computed")
    return result


def machine_row(matmul_size=machine_facts.MATMUL_SIZE):
    """The machine's columns of every row: its CPU, and the best float32 matmul
    among torch, JAX, TensorFlow and numpy measured now (beside each preset's
    runs, as the machine's load may change during a long run)."""
    facts = machine_facts.cpu_facts()
    matmul_gflops, matmul_by = machine_facts.best_matmul(size=matmul_size)
    return {"matmul_gflops": matmul_gflops, "matmul_by": matmul_by, "fma_peak_gflops": facts.fma_peak_gflops,
            "cpu": facts.model, "vector_extensions": facts.extensions, "threads": facts.threads}


def native_row(native, machine):
    gflops = native["samples_per_s"] * native["flops_per_sample"] / 1e9
    return {
        "preset": native["preset"], "mode": native["mode"], "backend": "native-torch", "jit_compile": False,
        "samples_per_s": native["samples_per_s"], "vs_native": 1.0, "gflops": gflops,
        "of_peak": gflops / machine["matmul_gflops"], "first_step_s": native["first_step_s"], "load_s": None,
        "peak_memory_mb": native["peak_memory_mb"], "batch_size": native["batch_size"],
        "length": native["length"], "flops_per_sample": native["flops_per_sample"],
        "native_samples_per_s": native["samples_per_s"], **machine,
        "device": native["device"], "versions": f"torch {native['torch']}, {native['threads']} threads",
    }


def zoo_row(result, native, machine):
    gflops = result["samples_per_s"] * native["flops_per_sample"] / 1e9
    return {
        **{key: result[key] for key in ("preset", "mode", "backend", "jit_compile", "samples_per_s",
                                        "first_step_s", "load_s", "peak_memory_mb", "batch_size", "length",
                                        "device", "versions")},
        "vs_native": result["samples_per_s"] / native["samples_per_s"],
        "gflops": gflops, "of_peak": gflops / machine["matmul_gflops"], "flops_per_sample": native["flops_per_sample"],
        "native_samples_per_s": native["samples_per_s"], **machine,
    }


def merge_rows(recorded, measured):
    """`recorded` rows with every preset in `measured` replaced by its new
    rows (where its old ones were; new presets go last). A preset's ratios
    come from one invocation either way: each is measured beside its native run."""
    new_rows = {}
    for row in measured:
        new_rows.setdefault(row["preset"], []).append(row)
    merged, placed = [], set()
    for row in recorded:
        preset = row["preset"]
        if preset not in new_rows:
            merged.append(row)
        elif preset not in placed:
            merged.extend(new_rows[preset])
            placed.add(preset)
    return merged + [row for preset, rows in new_rows.items() if preset not in placed for row in rows]


def read_rows(path):
    rows = result_csv.read_rows(path, floats=("samples_per_s", "vs_native", "gflops", "of_peak", "first_step_s",
                                              "matmul_gflops"), bools=("jit_compile",))
    for row in rows:  # runs before the machine's columns existed: torch's matmul, CPU unrecorded
        row.setdefault("matmul_by", "torch")
        row["fma_peak_gflops"] = float(row["fma_peak_gflops"]) if row.get("fma_peak_gflops") else None
    return rows


def runs_at_auto(row):
    """Whether `row` measured the setting that jit_compile="auto" runs (its
    workload's entry in zoo.runtime.jit_policy): "auto" is not measured a
    third time, it is one of the off / on rows."""
    if row["backend"] == "native-torch":
        return False
    return row["jit_compile"] == jit_policy.auto_setting(row["backend"], row["device"],
                                                         jit_policy.bench_workload(row["mode"]))


def target_verdicts(rows, at="auto"):
    """Per (preset, mode): the best zoo ratio and backend, the worst backend's
    ratio, and whether the targets hold, with each backend at jit "auto"
    (`at="auto"`, what users run) or at its better setting (`at="best"`)."""
    verdicts = {}
    for preset, mode in dict.fromkeys((row["preset"], row["mode"]) for row in rows):
        per_backend = {}
        for row in rows:
            if (row["preset"], row["mode"]) != (preset, mode) or row["backend"] == "native-torch":
                continue
            if at == "auto" and not runs_at_auto(row):
                continue
            per_backend[row["backend"]] = max(per_backend.get(row["backend"], 0), row["vs_native"])
        if not per_backend:
            continue
        best_backend = max(per_backend, key=per_backend.get)
        worst_backend = min(per_backend, key=per_backend.get)
        verdicts[preset, mode] = {
            "best": (best_backend, per_backend[best_backend]),
            "worst": (worst_backend, per_backend[worst_backend]),
            "met": per_backend[best_backend] >= BEST_TARGET and per_backend[worst_backend] >= FLOOR_TARGET,
        }
    return verdicts


def text_report(rows):
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    first = rows[0]
    machine = (f"{first['cpu']}, {first['threads']} threads, {first['vector_extensions']}; float32 FMA peak "
               f"{first['fma_peak_gflops']:.0f} GFLOP/s, best matmul ({first['matmul_by']}) "
               f"{float(first['matmul_gflops']):.0f} GFLOP/s" if first.get("cpu") else "machine not recorded")
    table = Table(title=f"samples/s, batch {first['batch_size']} ({first['device']})", title_justify="left",
                  caption=machine)
    for column in ("preset", "mode", "backend", "jit", "samples/s", "vs native", "GFLOP/s", "of matmul",
                   "first step"):
        table.add_column(column, justify="left" if column in ("preset", "mode", "backend") else "right")
    for row in rows:
        jit = ("on" if row["jit_compile"] else "off") + (" (auto)" if runs_at_auto(row) else "")
        table.add_row(row["preset"], row["mode"], row["backend"], jit,
                      f"{row['samples_per_s']:,.0f}", f"{row['vs_native']:.2f}x", f"{row['gflops']:.1f}",
                      f"{row['of_peak']:.0%}", f"{row['first_step_s']:.2f} s")
    buffer = StringIO()
    console = Console(file=buffer, width=140)
    console.print(table)
    for at, title in (("auto", 'at jit "auto" (the default)'), ("best", "at each backend's better jit setting")):
        console.print(f"targets {title}:")
        for (preset, mode), verdict in target_verdicts(rows, at).items():
            (best, best_ratio), (worst, worst_ratio) = verdict["best"], verdict["worst"]
            console.print(f"  {preset} {mode}: best {best} {best_ratio:.2f}x, lowest {worst} {worst_ratio:.2f}x: "
                          f"{'targets met' if verdict['met'] else 'TARGET MISSED'}")
    return buffer.getvalue()


def markdown_table(rows):
    """Per preset and mode: samples/s and ratio of each backend at jit "auto",
    and the other setting's ratio where that is faster."""
    lines = ["| preset | mode | native PyTorch | " + " | ".join(BACKENDS) + " |",
             "|---|---|---:|" + "---:|" * len(BACKENDS)]
    for (preset, mode), verdict in target_verdicts(rows).items():
        cells = []
        native = next(r for r in rows if (r["preset"], r["mode"], r["backend"]) == (preset, mode, "native-torch"))
        for backend in BACKENDS:
            candidates = [r for r in rows if (r["preset"], r["mode"], r["backend"]) == (preset, mode, backend)]
            auto = next((r for r in candidates if runs_at_auto(r)), None)
            if auto is None:
                cells.append("-")
                continue
            mark = "**" if backend == verdict["best"][0] else ""
            cell = f"{mark}{auto['samples_per_s']:,.0f} ({auto['vs_native']:.2f}x, {_jit_word(auto)}){mark}"
            faster = [r for r in candidates if r["vs_native"] > auto["vs_native"]]
            if faster:
                cell += f"; {_jit_word(faster[0])} {faster[0]['vs_native']:.2f}x"
            cells.append(cell)
        lines.append(f"| {preset} | {mode} | {native['samples_per_s']:,.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _jit_word(row):
    return "jit" if row["jit_compile"] else "eager"


if __name__ == "__main__":
    sys.exit(main())
