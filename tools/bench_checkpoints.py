"""Benchmark transformers checkpoints converted into the zoo against transformers itself.

    python tools/bench_checkpoints.py                 # GPT-2 124M and BERT-base, 3 backends, jit auto (~9 min, 2 cores)
    python tools/bench_checkpoints.py --jit auto on   # also with compilation forced on
    python tools/bench_checkpoints.py --backends tensorflow --jit on --update   # add rows to the recorded CSV
    python tools/bench_checkpoints.py --quick --backends torch --out /tmp/quick.csv   # tiny sizes, under a minute
    python tools/bench_checkpoints.py --markdown      # measure nothing: the table of benchmarks/README.md
    python tools/bench_checkpoints.py --profile gpt2 generate 8 torch   # where the time goes, into benchmarks/

One invocation builds each checkpoint with random weights at its real size
(GPT-2 124M: `transformers.GPT2Config()`; BERT-base: `transformers.BertConfig()`,
saved with `save_pretrained` into a temporary folder; nothing is downloaded),
converts it once into a temporary ZOO_HOME, and measures, each in a fresh
process and on the same inputs:

- the reference: transformers' own torch model (`from_pretrained`, eval,
  float32, `torch.inference_mode`, all of this machine's threads);
- the zoo model (`zoo.load(folder, jit_compile=J)`) on every backend (a
  process per backend and jit setting, KERAS_BACKEND set, as
  tools/bench_all.py does), each jax process with its own empty compilation
  cache, so that its first call includes compiling.

Tasks: `forward` (samples/s of `model.predict` / `model(...).logits` on one
batch of 8 x 128 tokens, BERT with an all-ones padding mask) and, for GPT-2,
`generate` (greedy, a 16-token prompt plus 128 new tokens at batch 1 and 8;
tokens/s counts generated tokens only: zoo `model.generate(prompt,
max_length=16 + 128)` against transformers' `generate(..., do_sample=False,
max_new_tokens=128, min_new_tokens=128, eos_token_id=None, pad_token_id=0)`).
Each number is the steady state after a first call (reported apart as
`first_call_s`, compiling included): calls are repeated until one run of them
lasts `--min-seconds` (2 s), and that run is timed twice, keeping the faster
(as `zoo.eval.bench.time_steps`), unless it lasted 10 s already (`time_calls`).
Each row also says whether the zoo's outputs matched transformers' (the first
row's first logits within 1e-3, or its generated tokens identical). Rows go to
benchmarks/checkpoints-cpu.csv (or --out) with the ratio zoo / transformers
(> 1: the zoo is faster), the machine's CPU model and thread count.
"""

import argparse
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import result_csv  # noqa: E402  (the checkout is on sys.path above)

BACKENDS = ("tensorflow", "jax", "torch")
MODEL_TYPES = ("gpt2", "bert")
JIT_SETTINGS = ("auto", "on", "off")
FIELDS = ("model", "task", "batch_size", "length", "new_tokens", "unit", "backend", "jit", "jit_compile",
          "zoo_per_s", "transformers_per_s", "vs_transformers", "first_call_s", "transformers_first_call_s",
          "steady_calls", "steady_s", "steady_runs", "load_s", "outputs_match", "cpu", "threads", "versions",
          "transformers_versions")
TIMEOUT_S = 1800  # one process: loading, compiling and every task of one model on one backend
LOGIT_TOLERANCE = 1e-3
REPEAT_BELOW_S = 10.0  # a steady run shorter than this is timed twice (the faster kept)


# ---------------------------------------------------------------- what is measured


def sizes(quick):
    """Batch shapes and timing of a full run, or of a --quick one (tiny models, seconds)."""
    if quick:
        return {"forward_batch": 2, "length": 16, "generate_batches": [1, 2], "prompt": 4, "new_tokens": 8,
                "min_seconds": 0.1}
    return {"forward_batch": 8, "length": 128, "generate_batches": [1, 8], "prompt": 16, "new_tokens": 128,
            "min_seconds": 2.0}


def model_name(model_type, quick):
    return f"{model_type}-tiny" if quick else {"gpt2": "gpt2-124M", "bert": "bert-base"}[model_type]


def tasks(model_type, size):
    """[(task, batch size)] of one model: forward for all, generate for GPT-2."""
    measured = [("forward", size["forward_batch"])]
    if model_type == "gpt2":
        measured += [("generate", batch) for batch in size["generate_batches"]]
    return measured


def checkpoint_config(model_type, quick):
    """The transformers config of a checkpoint: the real size's defaults, or a tiny one."""
    import transformers

    if model_type == "gpt2":
        if quick:
            return transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=128)
        return transformers.GPT2Config()  # 12 layers, 768 wide, 50257 tokens, 1024 positions: GPT-2 124M
    if quick:
        return transformers.BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                                       intermediate_size=64, max_position_embeddings=64, vocab_size=128)
    return transformers.BertConfig()  # 12 layers, 768 wide, 30522 tokens: BERT-base


def reference_class(model_type):
    import transformers

    return transformers.GPT2LMHeadModel if model_type == "gpt2" else transformers.BertForMaskedLM


def token_ids(vocab_size, batch, length, seed=0):
    """Random ids in 1..vocab_size-1 (id 0 is BERT's padding)."""
    import numpy as np

    return np.random.default_rng(seed).integers(1, vocab_size, size=(batch, length)).astype("int32")


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------- the parent: one invocation


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--models", nargs="+", choices=MODEL_TYPES, default=list(MODEL_TYPES))
    parser.add_argument("--jit", nargs="+", choices=JIT_SETTINGS, default=["auto"],
                        help="jit_compile settings of the zoo model (default: auto)")
    parser.add_argument("--min-seconds", type=float,
                        help="length of each timed run (default 2; 0.1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny checkpoints and short runs (for tests); writes a CSV only with --out")
    parser.add_argument("--out", type=Path, help="the CSV to write (default benchmarks/checkpoints-<device>.csv)")
    parser.add_argument("--update", action="store_true",
                        help="replace only the measured rows (model, task, batch, backend, jit) in the CSV, "
                             "keep the others")
    parser.add_argument("--markdown", action="store_true",
                        help="measure nothing: print the table of the recorded CSV (--out)")
    parser.add_argument("--profile", nargs=4, metavar=("MODEL", "TASK", "BATCH", "BACKEND"),
                        help="profile one measurement (zoo and transformers) into --profile-out")
    parser.add_argument("--profile-out", type=Path,
                        help="default benchmarks/profile-checkpoint-MODEL-TASK-BACKEND.txt")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a measuring child process (JSON spec)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    if args.markdown:
        print(markdown_table(read_rows(args.out or ROOT / "benchmarks" / "checkpoints-cpu.csv")))
        return 0
    size = sizes(args.quick)
    if args.min_seconds:
        size["min_seconds"] = args.min_seconds
    if args.profile:
        return run_profile(args.profile, args.jit[0], size, args.quick, args.profile_out)
    started = time.perf_counter()
    rows = run_all(args.models, args.backends, args.jit, size, args.quick)
    if not rows:
        raise SystemExit("no zoo measurement succeeded")
    print(markdown_table(rows))
    print(f"measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.out or not args.quick:
        path = args.out or ROOT / "benchmarks" / "checkpoints-cpu.csv"
        if args.update and path.exists():
            rows = merge_rows(read_rows(path), rows)
        result_csv.write_rows(path, rows, FIELDS)
        print(f"wrote {len(rows)} rows to {path}", file=sys.stderr)
    return 0


def run_all(model_types, backends, jits, size, quick):
    """Every model: its checkpoint, transformers' numbers, then the zoo's on each backend x jit."""
    count = sum(len(tasks(m, size)) * (1 + len(backends) * len(jits)) for m in model_types)
    progress = Progress(count)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-checkpoints-") as scratch:
        for model_type in model_types:
            rows += measure_model(model_type, backends, jits, size, quick, Path(scratch), progress)
    return rows


def measure_model(model_type, backends, jits, size, quick, scratch, progress):
    """One model's rows: transformers' run first (the ratios' reference), then the zoo's."""
    name = model_name(model_type, quick)
    folder = prepare_checkpoint(model_type, name, scratch, quick, progress)
    spec = {"model_type": model_type, "folder": str(folder), "size": size, "tasks": tasks(model_type, size)}
    reference, rows = {}, []

    def reference_done(result):
        reference[result["task"], result["batch"]] = result
        progress.report(name, result, "transformers", None)

    run_worker({**spec, "kind": "transformers"}, "torch", scratch, f"{name}: transformers (torch)",
               progress.starting(name, "transformers"), reference_done)
    if len(reference) != len(spec["tasks"]):
        raise SystemExit(f"the transformers run of {name} failed: no ratios can be computed")
    for backend in backends:
        for jit in jits:
            def zoo_done(result, backend=backend, jit=jit):
                row = zoo_row(name, result, reference[result["task"], result["batch"]], size, backend, jit)
                progress.report(name, result, f"{backend} (jit {jit})", row)
                rows.append(row)

            run_worker({**spec, "kind": "zoo", "jit": jit}, backend, scratch, f"{name} on {backend} (jit {jit})",
                       progress.starting(name, f"{backend}, jit {jit}"), zoo_done)
    return rows


class Progress:
    """One line on stderr per measurement started and finished (the full run takes minutes)."""

    def __init__(self, total):
        self.total, self.done, self.started = total, 0, time.perf_counter()

    def note(self, text):
        print(f"[{time.perf_counter() - self.started:6.0f} s] {text}", file=sys.stderr, flush=True)

    def starting(self, name, what):
        def started(task, batch):
            self.note(f"({self.done + 1}/{self.total}) {name} {task} batch {batch} on {what} ...")

        return started

    def report(self, name, result, what, row):
        self.done += 1
        unit = "samples/s" if result["task"] == "forward" else "tokens/s"
        ratio = "" if row is None else f" = {row['vs_transformers']:.2f}x transformers"
        match = "" if row is None or row["outputs_match"] else " (OUTPUTS DIFFER from transformers')"
        self.note(f"({self.done}/{self.total}) {name} {result['task']} batch {result['batch']} on {what}: "
                  f"{result['per_s']:,.1f} {unit}{ratio}; first call {result['first_call_s']:.1f} s{match}")


def prepare_checkpoint(model_type, name, scratch, quick, progress):
    """A transformers checkpoint of random weights in `scratch`, converted once
    into its ZOO_HOME (in a torch process: converting compiles nothing)."""
    folder = scratch / name
    progress.note(f"{name}: building the checkpoint with transformers (random weights, save_pretrained)")
    spec = {"kind": "save", "model_type": model_type, "folder": str(folder), "quick": quick}
    saved = run_worker(spec, "torch", scratch, f"{name}: saving the checkpoint")
    if not saved:
        raise SystemExit(f"could not build the {name} checkpoint")
    progress.note(f"{name}: {saved[0]['parameters'] / 1e6:.1f}M parameters; converting it into the zoo")
    converted = run_worker({"kind": "convert", "folder": str(folder)}, "torch", scratch, f"{name}: converting")
    if not converted:
        raise SystemExit(f"the zoo could not convert the {name} checkpoint")
    progress.note(f"{name}: converted in {converted[0]['seconds']:.1f} s")
    return folder


def run_worker(spec, backend, scratch, label, started=None, done=None):
    """Run `spec` in a fresh process on `backend`; its results (one JSON per
    line on stdout), each also passed to `done(result)` as it comes, and
    `started(task, batch)` called as each measurement starts. A failure or a
    timeout prints a message and ends the list early."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KERAS_BACKEND": backend,
        "ZOO_HOME": str(scratch / "zoo-home"),
        "ZOO_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # A fresh jax compilation cache per process: its first call compiles.
        "JAX_COMPILATION_CACHE_DIR": tempfile.mkdtemp(prefix="jax-cache-", dir=scratch),
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    results = []
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=environment,
                                   cwd=ROOT)
        watchdog = threading.Timer(TIMEOUT_S, process.kill)  # a silent, stuck process is stopped too
        watchdog.start()
        try:
            for line in process.stdout:
                if line.startswith("STARTING "):
                    if started:
                        started(*json.loads(line.removeprefix("STARTING ")))
                elif line.startswith("RESULT "):
                    results.append(json.loads(line.removeprefix("RESULT ")))
                    if done:
                        done(results[-1])
            process.wait()
        finally:
            timed_out = not watchdog.is_alive() and process.returncode != 0
            watchdog.cancel()
        if timed_out:
            print(f"{label}: stopped after {TIMEOUT_S} s", file=sys.stderr)
        elif process.returncode:
            errors.seek(0)
            print(f"{label} failed (exit {process.returncode}):\n{errors.read()[-3000:]}", file=sys.stderr)
    return results


def zoo_row(name, result, reference, size, backend, jit):
    forward = result["task"] == "forward"
    return {
        "model": name, "task": result["task"], "batch_size": result["batch"],
        "length": size["length"] if forward else size["prompt"], "new_tokens": None if forward else size["new_tokens"],
        "unit": "samples/s" if forward else "tokens/s", "backend": backend, "jit": jit,
        "jit_compile": result["jit_compile"], "zoo_per_s": result["per_s"],
        "transformers_per_s": reference["per_s"], "vs_transformers": result["per_s"] / reference["per_s"],
        "first_call_s": result["first_call_s"], "transformers_first_call_s": reference["first_call_s"],
        "steady_calls": result["calls"], "steady_s": result["seconds"], "steady_runs": result["runs"],
        "load_s": result["load_s"],
        "outputs_match": outputs_match(result["check"], reference["check"], forward),
        "cpu": cpu_model(), "threads": reference["threads"], "versions": result["versions"],
        "transformers_versions": reference["versions"],
    }


def outputs_match(zoo_check, reference_check, forward):
    """Whether the zoo computed what transformers did: the first row's first
    logits within LOGIT_TOLERANCE, or the first row's generated tokens equal."""
    if forward:
        pairs = zip(itertools.chain(*zoo_check), itertools.chain(*reference_check))
        return all(abs(a - b) <= LOGIT_TOLERANCE for a, b in pairs)
    return zoo_check == reference_check


# ---------------------------------------------------------------- the CSV and the table


def merge_rows(recorded, measured):
    """`recorded` rows with those measured again replaced in place (same
    model, task, batch, backend and jit setting), the new ones after their
    model, task and batch. Each row keeps the transformers number measured in
    its own invocation, so its ratio stays a same-invocation ratio.

    Example:
    >>> old = [{"model": "m", "task": "forward", "batch_size": 8, "backend": b, "jit": "auto", "v": 1}
    ...        for b in ("jax", "torch")]
    >>> new = [{**old[1], "v": 2}, {**old[0], "jit": "on", "v": 3}, {**old[0], "batch_size": 1, "v": 4}]
    >>> [(row["backend"], row["jit"], row["batch_size"], row["v"]) for row in merge_rows(old, new)]
    [('jax', 'auto', 8, 1), ('jax', 'on', 8, 3), ('torch', 'auto', 8, 2), ('jax', 'auto', 1, 4)]
    """
    def key(row):
        return row["model"], row["task"], int(row["batch_size"]), row["backend"], row["jit"]

    new_rows = {key(row): row for row in measured}
    merged = [new_rows.pop(key(row), row) for row in recorded]
    for row in new_rows.values():
        # After the same backend's rows, else after its model, task and batch, else last.
        for prefix in (4, 3):
            group = [index for index, old in enumerate(merged) if key(old)[:prefix] == key(row)[:prefix]]
            if group:
                merged.insert(group[-1] + 1, row)
                break
        else:
            merged.append(row)
    return merged


def read_rows(path):
    return result_csv.read_rows(
        path, floats=("zoo_per_s", "transformers_per_s", "vs_transformers", "first_call_s",
                      "transformers_first_call_s", "steady_s", "load_s"),
        ints=("batch_size", "steady_calls", "steady_runs", "threads"), bools=("jit_compile", "outputs_match"))


def markdown_table(rows):
    """Per model, task and batch: transformers' number (and first call), and
    each backend's at every jit setting measured (auto first), with its ratio
    and first call; the fastest in bold."""
    title = (f"{rows[0]['cpu']}, {rows[0]['threads']} threads. Each cell: steady state (ratio to transformers "
             "measured in the same invocation), what jit_compile=\"auto\" chose (jit or eager) or the forced "
             "setting (jit on / off), first call.")
    lines = [title, "",
             "| model | task | batch | transformers | " + " | ".join(BACKENDS) + " |",
             "|---|---|---:|---:|" + "---:|" * len(BACKENDS)]
    for key in dict.fromkeys((row["model"], row["task"], row["batch_size"]) for row in rows):
        group = [row for row in rows if (row["model"], row["task"], row["batch_size"]) == key]
        fastest = max(group, key=lambda row: row["vs_transformers"])
        cells = []
        for backend in BACKENDS:
            measured = sorted((row for row in group if row["backend"] == backend),
                              key=lambda row: JIT_SETTINGS.index(row["jit"]))
            cells.append("<br>".join(_cell(row, row is fastest) for row in measured) or "-")
        first = group[0]
        task = f"{first['task']} ({first['unit']})"
        # Rows merged from several invocations (--update) each have their own reference: all are shown.
        reference = " / ".join(dict.fromkeys(
            f"{row['transformers_per_s']:,.1f}, {row['transformers_first_call_s']:.1f} s" for row in group))
        lines.append(f"| {first['model']} | {task} | {first['batch_size']} | {reference} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(row, fastest):
    mark = "**" if fastest else ""
    how = ("jit" if row["jit_compile"] else "eager") if row["jit"] == "auto" else f"jit {row['jit']}"
    differ = "" if row["outputs_match"] else ", outputs differ"
    speed = f"{mark}{row['zoo_per_s']:,.1f} ({row['vs_transformers']:.2f}x){mark}"
    return f"{speed} {how}, {row['first_call_s']:.1f} s{differ}"


# ---------------------------------------------------------------- profiling one measurement


def run_profile(profile, jit, size, quick, out):
    """cProfile and the backend's operator table of the zoo's steady call, and
    the same of transformers' (cProfile + torch.profiler), into one text file."""
    model_type, task, batch, backend = profile
    if model_type not in MODEL_TYPES or task not in ("forward", "generate") or backend not in BACKENDS:
        raise SystemExit(f"--profile MODEL TASK BATCH BACKEND: MODEL in {MODEL_TYPES}, TASK forward or "
                         f"generate, BACKEND in {BACKENDS}; got {profile}")
    out = out or ROOT / "benchmarks" / f"profile-checkpoint-{model_type}-{task}-{backend}.txt"
    name = model_name(model_type, quick)
    progress = Progress(2)
    with tempfile.TemporaryDirectory(prefix="bench-checkpoints-") as scratch:
        scratch = Path(scratch)
        folder = prepare_checkpoint(model_type, name, scratch, quick, progress)
        spec = {"model_type": model_type, "folder": str(folder), "size": size, "tasks": [(task, int(batch))],
                "profile": True}
        texts = []
        for kind, worker_backend in (("zoo", backend), ("transformers", "torch")):
            progress.note(f"profiling {name} {task} batch {batch}: {kind} on {worker_backend}")
            results = run_worker({**spec, "kind": kind, "jit": jit}, worker_backend, scratch, f"profiling {kind}")
            if not results:
                raise SystemExit(f"profiling {kind} failed")
            texts.append(f"==================== {kind} on {worker_backend}\n{results[0]['profile']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(texts))
    print(f"wrote {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- the children


def worker(spec):
    """A child process: build a checkpoint, convert it, or measure (each
    result printed as one `RESULT <json>` line on stdout as soon as it exists)."""
    if spec["kind"] == "save":
        return save_checkpoint(spec)
    if spec["kind"] == "convert":
        import zoo

        start = time.perf_counter()
        zoo.load(spec["folder"])
        emit({"seconds": time.perf_counter() - start})
        return 0
    if spec["kind"] == "transformers":
        model, info = load_transformers(spec)
    else:
        model, info = load_zoo(spec)
    for task, batch in spec["tasks"]:
        print("STARTING " + json.dumps([task, batch]), flush=True)
        run, check = (forward_calls if task == "forward" else generate_calls)(model, spec, batch, info)
        if spec.get("profile"):
            emit({"task": task, "batch": batch, "profile": profile_calls(run, info)})
            continue
        per_call = batch if task == "forward" else batch * spec["size"]["new_tokens"]
        timing = time_calls(run, per_call, spec["size"]["min_seconds"])
        emit({"task": task, "batch": batch, **timing, "check": check(), **info})
    return 0


def time_calls(run, per_call, min_seconds, repeat_below_s=REPEAT_BELOW_S):
    """`run(1)` once (the first call: compiling, warming up), then `run(n)`
    with n grown until one run lasts `min_seconds`, then that run once more,
    keeping the faster, unless it already lasted `repeat_below_s` (a steady
    generate() call of the zoo on torch takes tens of seconds on 2 cores).
    As zoo.eval.bench.time_steps, but a single call may be the steady run.

    Example:
    >>> timing = time_calls(lambda n: time.sleep(0.01 * n), per_call=8, min_seconds=0.05)
    >>> timing["runs"], timing["calls"] >= 5, 0 < timing["per_s"] <= 800
    (2, True, True)
    """
    start = time.perf_counter()
    run(1)
    first_call_s = time.perf_counter() - start
    calls = 1
    while True:
        start = time.perf_counter()
        run(calls)
        seconds = time.perf_counter() - start
        if seconds >= min_seconds:
            runs = 1
            if seconds < repeat_below_s:
                start = time.perf_counter()
                run(calls)
                seconds, runs = min(seconds, time.perf_counter() - start), 2
            return {"per_s": calls * per_call / seconds, "first_call_s": first_call_s, "calls": calls,
                    "seconds": seconds, "runs": runs}
        # Aim 20% past the goal; grow at most 16x a time (see time_steps).
        calls = min(16 * calls, max(2 * calls, math.ceil(calls * 1.2 * min_seconds / max(seconds, 1e-6))))


def emit(result):
    print("RESULT " + json.dumps(result), flush=True)


def save_checkpoint(spec):
    import torch

    torch.manual_seed(0)
    model = reference_class(spec["model_type"])(checkpoint_config(spec["model_type"], spec["quick"])).eval()
    model.save_pretrained(spec["folder"])
    emit({"parameters": sum(parameter.numel() for parameter in model.parameters())})
    return 0


def set_torch_threads():
    import torch

    torch.set_num_threads(os.cpu_count())
    return torch.get_num_threads()


def load_transformers(spec):
    import torch
    import transformers

    threads = set_torch_threads()
    model = reference_class(spec["model_type"]).from_pretrained(spec["folder"], dtype=torch.float32).eval()
    if any(parameter.dtype != torch.float32 for parameter in model.parameters()):
        raise SystemExit("the transformers model is not float32")
    attention = getattr(model.config, "_attn_implementation", "?")
    versions = f"transformers {transformers.__version__}, torch {torch.__version__}, attention {attention}"
    return model, {"kind": "transformers", "threads": threads, "versions": versions,
                   "vocab_size": model.config.vocab_size}


def load_zoo(spec):
    import zoo
    from zoo.runtime import backend

    if backend.name() == "torch":
        set_torch_threads()
    start = time.perf_counter()
    model = zoo.load(spec["folder"], jit_compile={"auto": "auto", "on": True, "off": False}[spec["jit"]])
    return model, {"kind": "zoo", "jit_compile": bool(model.jit_compile), "load_s": time.perf_counter() - start,
                   "versions": backend.versions(), "vocab_size": model.zoo_config.vocab_size}


def forward_calls(model, spec, batch, info):
    """(run(n): n forward passes over one batch, check(): the first logits of row 0)."""
    import numpy as np

    ids = token_ids(info["vocab_size"], batch, spec["size"]["length"])
    mask = np.ones(ids.shape, bool)
    outputs = {}
    if info["kind"] == "transformers":
        import torch

        inputs = {"input_ids": torch.from_numpy(ids.astype("int64"))}
        if spec["model_type"] == "bert":
            inputs["attention_mask"] = torch.from_numpy(mask.astype("int64"))

        def run(calls):
            with torch.inference_mode():
                for _ in range(calls):
                    outputs["logits"] = model(**inputs).logits

        def check():
            return outputs["logits"][0, :4, :8].tolist()
    else:
        inputs = ids if spec["model_type"] == "gpt2" else {"token_ids": ids, "padding_mask": mask}

        def run(calls):
            for _ in range(calls):
                outputs["logits"] = model.predict(inputs, batch_size=batch, verbose=0)

        def check():
            return np.asarray(outputs["logits"][0, :4, :8]).tolist()
    return run, check


def generate_calls(model, spec, batch, info):
    """(run(n): n greedy generations of new_tokens after the prompt, check():
    the tokens generated for row 0)."""
    import numpy as np

    size = spec["size"]
    prompt = token_ids(info["vocab_size"], batch, size["prompt"], seed=1)
    outputs = {}
    if info["kind"] == "transformers":
        import torch

        ids = torch.from_numpy(prompt.astype("int64"))
        mask = torch.ones_like(ids)

        def run(calls):
            with torch.inference_mode():
                for _ in range(calls):
                    outputs["tokens"] = model.generate(
                        ids, attention_mask=mask, do_sample=False, max_new_tokens=size["new_tokens"],
                        min_new_tokens=size["new_tokens"], eos_token_id=None, pad_token_id=0)
    else:

        def run(calls):
            for _ in range(calls):
                outputs["tokens"] = model.generate(prompt, max_length=size["prompt"] + size["new_tokens"])

    def check():
        tokens = np.asarray(outputs["tokens"])
        if tokens.shape != (batch, size["prompt"] + size["new_tokens"]):
            raise SystemExit(f"generate returned {tokens.shape}, not {(batch, size['prompt'] + size['new_tokens'])}")
        return tokens[0, size["prompt"]:].tolist()

    return run, check


def profile_calls(run, info, steady_calls=1, top=30):
    """Where a steady call spends its time (after a first call and a warm-up one)."""
    import cProfile
    import io
    import pstats

    run(1)
    run(1)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(run, steady_calls)
    seconds = time.perf_counter() - start
    text = io.StringIO()
    text.write(f"{info['versions']}; {steady_calls} steady call(s) in {seconds:.2f} s under cProfile\n")
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    if info["kind"] == "transformers":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            run(steady_calls)
        text.write(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))
    else:
        from zoo.eval import profiling

        text.write(profiling.operator_profile(run, steady_calls, top))
    return text.getvalue()


if __name__ == "__main__":
    sys.exit(main())
