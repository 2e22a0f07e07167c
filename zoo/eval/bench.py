"""How fast a preset trains and predicts on the active backend: `zoo bench`.

`benchmark(name)` loads a preset in this process and measures, on a
synthetic batch of the preset's own input shapes (`model.example_batch`):

- `load_s`: the cold `zoo.load` (building the model, reading the weights);
- `first_step_s`: the first training step (or prediction), compilation
  included;
- `samples_per_s`: the steady state, from the faster of two runs of the same
  whole steps (the first lasting at least `min_seconds`), through the entry
  points users call: `model.fit` (AdamW, the model's default loss) or
  `model.predict`;
- `peak_memory_mb`: the process' peak resident memory (host memory: on a GPU
  the model's memory is on the device).

Timings say nothing alone: tools/bench_all.py runs every preset and backend
in fresh processes beside a native PyTorch implementation and the machine's
float32 matmul rate, and reports ratios.
"""

import dataclasses
import math
import resource
import sys
import time

from zoo.architectures.config import check_batch_fits
from zoo.errors import InvalidConfigError
from zoo.runtime import jit_policy

MODES = ("train", "infer")
DEFAULT_LENGTH = 64  # tokens per row for sequence families: a short sentence or paragraph


@dataclasses.dataclass
class Timing:
    """Seconds of the first step, then a steady run of `steps` steps."""

    first_step_s: float
    steps: int
    seconds: float
    batch_size: int

    @property
    def samples_per_s(self):
        return self.steps * self.batch_size / self.seconds


@dataclasses.dataclass
class BenchResult:
    """One preset's measurement on one backend (see the module docstring)."""

    preset: str
    backend: str
    device: str
    mode: str
    jit_compile: bool
    batch_size: int
    length: int | None
    samples_per_s: float
    first_step_s: float
    steps: int
    seconds: float
    load_s: float
    peak_memory_mb: float
    versions: str

    def to_dict(self):
        return dataclasses.asdict(self)


def time_steps(run_steps, batch_size, min_seconds=3.0, min_steps=2, prepare=None):
    """Time `run_steps(1)` (the first step: compiling and warming up), then
    `run_steps(n)` with n grown until one run lasts `min_seconds`, then that
    run once more, keeping the faster of the two: a first run of a new size
    also pays the operating system for fresh memory (on the 2-core VM, numpy's
    huge-page faults made a first predict with 64 MB of logits per batch
    about 2x slower than the next one).

    `run_steps(n)` must run n steps of `batch_size` samples and return only
    once they are done (no pending asynchronous work). `prepare(n)`, if given,
    is called before each `run_steps(n)`, outside the timing (to build the
    inputs of n steps). Returns a `Timing`.

    Example:
    >>> timing = time_steps(lambda n: time.sleep(0.001 * n), batch_size=8, min_seconds=0.05)
    >>> timing.steps >= 2 and 0 < timing.samples_per_s <= 8000
    True
    """
    prepare = prepare or (lambda steps: None)
    prepare(1)
    start = time.perf_counter()
    run_steps(1)
    first_step_s = time.perf_counter() - start
    steps = min_steps
    while True:
        prepare(steps)
        start = time.perf_counter()
        run_steps(steps)
        seconds = time.perf_counter() - start
        if seconds >= min_seconds:
            start = time.perf_counter()
            run_steps(steps)
            seconds = min(seconds, time.perf_counter() - start)
            return Timing(first_step_s, steps, seconds, batch_size)
        # Aim 20% past the goal so that the next run usually is the last.
        # Grown at most 16x a time: a run slowed down by a busy machine must
        # not make the next one run for minutes.
        goal = math.ceil(steps * 1.2 * min_seconds / max(seconds, 1e-6))
        steps = min(16 * steps, max(2 * steps, goal))


def peak_memory_mb():
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def benchmark(name, mode="train", batch_size=32, length=None, jit_compile="auto", min_seconds=3.0):
    """Measure preset `name` on the active backend; returns a `BenchResult`.

    `mode` is "train" (`model.fit` with AdamW) or "infer" (`model.predict`);
    `length` is the tokens per row for sequence families (default 64, cut
    to the preset's longest); `jit_compile` as in `zoo.load`. Pretrained
    weights are loaded as `zoo.load` would, so `load_s` includes reading them.

    Example:
    >>> result = benchmark("dense-tiny", mode="infer", batch_size=8, min_seconds=0.1)
    >>> result.samples_per_s > 0 and result.steps >= 2
    True
    """
    from zoo.runtime import backend

    _check_arguments(mode, batch_size, length, min_seconds)
    model, x, run_steps, load_s = _prepare(name, mode, batch_size, length, jit_compile)
    timing = time_steps(run_steps, batch_size, min_seconds, prepare=run_steps.prepare)
    return BenchResult(
        preset=name,
        backend=backend.name(),
        device=backend.device_kind(),
        mode=mode,
        jit_compile=backend.jit_compile_for(model, jit_policy.bench_workload(mode)),
        batch_size=batch_size,
        length=_sequence_length(x),
        samples_per_s=timing.samples_per_s,
        first_step_s=timing.first_step_s,
        steps=timing.steps,
        seconds=timing.seconds,
        load_s=load_s,
        peak_memory_mb=peak_memory_mb(),
        versions=backend.versions(),
    )


def profile(name, mode="train", batch_size=32, length=None, jit_compile="auto", steps=20, top=25):
    """Where a second run of `steps` steps of preset `name` spends its time, as text:
    Python's cProfile by own time (the framework's dispatch and Keras' layer
    calls are Python; a compiled program shows as the one call that runs it)
    and the backend's operator table: torch.profiler's on torch, XLA's
    operations on jax.

    Example:
    >>> "function calls" in profile("dense-tiny", mode="infer", batch_size=4, steps=2, top=3)
    True
    """
    import cProfile
    import io
    import pstats

    from zoo.eval import profiling
    from zoo.runtime import backend

    _check_arguments(mode, batch_size, length, 1.0)
    model, _, run_steps, _ = _prepare(name, mode, batch_size, length, jit_compile)
    # Outside the profile: compile, warm up, and run once at this size, so
    # that the profile shows the steady state (a first run of a new size
    # also pays for fresh memory; see time_steps).
    run_steps(steps)
    profiler = cProfile.Profile()
    profiler.runcall(run_steps, steps)
    text = io.StringIO()
    text.write(f"{name} {mode} on {backend.versions()}, jit {model.jit_compile}, batch {batch_size}, {steps} steps\n")
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    text.write(profiling.operator_profile(run_steps, steps, top))
    return text.getvalue()


def print_results(results, console):
    """`BenchResult`s as a rich table."""
    from rich.table import Table

    first = results[0]
    title = f"{first.preset} on {first.backend} ({first.device}), batch {first.batch_size}"
    if first.length:
        title += f", {first.length} tokens"
    table = Table(title=title, title_justify="left", caption=first.versions)
    for column in ("mode", "jit", "samples/s", "first step", "steady run", "load", "peak memory"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for result in results:
        table.add_row(
            result.mode,
            jit_label(result),
            f"{result.samples_per_s:,.0f}",
            f"{result.first_step_s:.2f} s",
            f"{result.steps} steps in {result.seconds:.1f} s",
            f"{result.load_s:.2f} s",
            f"{result.peak_memory_mb:,.0f} MiB",
        )
    console.print(table)


def jit_label(result):
    """"on" or "off", with "(auto)" where that is what jit_compile="auto" runs.

    Example:
    >>> jit_label(benchmark("dense-tiny", mode="infer", batch_size=4, min_seconds=0.05, jit_compile="auto"))[-6:]
    '(auto)'
    """
    auto = jit_policy.auto_setting(result.backend, result.device, jit_policy.bench_workload(result.mode))
    return ("on" if result.jit_compile else "off") + (" (auto)" if result.jit_compile == auto else "")


def _prepare(name, mode, batch_size, length, jit_compile):
    """The loaded model, its batch, `run_steps(n)` for `mode` and the seconds
    `zoo.load` took: what benchmark() times and profile() profiles."""
    import keras

    from zoo.hub import loader

    start = time.perf_counter()
    model = loader.load(name, jit_compile=jit_compile)
    load_s = time.perf_counter() - start
    x, y = bench_batch(model, batch_size, length)
    if mode == "infer":
        return model, x, _Steps(model, x, None, batch_size), load_s
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=model.default_loss(), jit_compile=jit_compile)
    return model, x, _Steps(model, x, y, batch_size), load_s


def bench_batch(model, batch_size, length=None):
    """`model.example_batch` of `batch_size` rows; sequence families get
    `length` tokens per row (default 64, at most the preset's longest)."""
    if not model.sequence_inputs:
        if length is not None:
            raise InvalidConfigError(f"--length is for sequence models; {model.family!r} inputs have no length.")
        check_batch_fits(model.zoo_config, model.family, batch_size)
        return model.example_batch(batch_size, seed=0)
    length = length or DEFAULT_LENGTH
    check_batch_fits(model.zoo_config, model.family, batch_size, length)
    return model.example_batch(batch_size, seed=0, length=length)


def _sequence_length(x):
    first = next(iter(x.values())) if isinstance(x, dict) else x
    return first.shape[1] if first.ndim == 2 and first.dtype.kind == "i" else None


def _repeat(array_or_dict, times):
    import numpy as np

    if isinstance(array_or_dict, dict):
        return {key: np.concatenate([value] * times) for key, value in array_or_dict.items()}
    return np.concatenate([array_or_dict] * times)


class _Steps:
    """`steps(n)` runs n steps of `fit` (with targets `y`) or `predict` (without)
    over n copies of the batch; `prepare(n)` makes the copies, so that a
    timing can leave them out (the native loop reuses one batch in place)."""

    def __init__(self, model, x, y, batch_size):
        self.model, self.x, self.y, self.batch_size = model, x, y, batch_size
        self.prepared = None, None, None  # steps, inputs, targets

    def prepare(self, steps):
        if self.prepared[0] != steps:
            self.prepared = steps, _repeat(self.x, steps), None if self.y is None else _repeat(self.y, steps)

    def __call__(self, steps):
        self.prepare(steps)
        _, x, y = self.prepared
        if y is None:
            self.model.predict(x, batch_size=self.batch_size, verbose=0)
        else:
            self.model.fit(x, y, batch_size=self.batch_size, epochs=1, shuffle=False, verbose=0)


def _check_arguments(mode, batch_size, length, min_seconds):
    if mode not in MODES:
        raise InvalidConfigError(f"mode={mode!r}: use 'train' or 'infer'.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidConfigError(f"batch_size={batch_size!r}: use a positive whole number, e.g. 32.")
    if length is not None and (not isinstance(length, int) or length < 1):
        raise InvalidConfigError(f"length={length!r}: use a positive whole number of tokens, e.g. 64.")
    if not min_seconds > 0:
        raise InvalidConfigError(f"min_seconds={min_seconds!r}: use a positive number of seconds.")
