"""What a benchmark ran on: the CPU, its vector extensions and threads, its
theoretical float32 FMA peak, and the best float32 matmul rate among torch,
JAX, TensorFlow and numpy measured now.

Ratios between backends moved by up to 2x between two machines of the same
kind (different CPUs behind one VM type), so every result row carries these.

    python tools/machine_facts.py        # print them for this machine

Written by hand: no well-kept library reports a CPU's vector width and FMA
peak (py-cpuinfo reads the flags but computes no peak, and is not a
dependency of the zoo).
"""

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

MATMUL_SIZE = 2048
MATMUL_REPEATS = 10
# Float32 FMA units per core: two on every x86 server core with AVX2 or
# AVX-512 since Haswell / Skylake-SP (the count cannot be read from the OS;
# some client cores have one AVX-512 unit, so the peak is an upper bound).
FMA_UNITS = 2
# (cpuinfo flag, name, float32 lanes for an FMA of that width or None)
EXTENSIONS = (("avx2", "AVX2", 8), ("avx512f", "AVX-512", 16), ("amx_tile", "AMX", None))

# One timing loop per library, run in its own process (each may start its own thread pool).
_MATMUL_PROGRAMS = {
    "numpy": "import numpy as np\na = np.random.rand(N, N).astype('float32'); b = a.copy()\nrun = lambda: a @ b",
    "torch": "import torch\na = torch.randn(N, N); b = torch.randn(N, N)\nrun = lambda: a @ b",
    "jax": ("import jax, jax.numpy as jnp\na = jnp.ones((N, N), jnp.float32); b = a + 1\n"
            "mm = jax.jit(lambda a, b: a @ b)\nrun = lambda: mm(a, b).block_until_ready()"),
    "tensorflow": "import tensorflow as tf\na = tf.random.normal((N, N)); b = tf.random.normal((N, N))\n"
                  "run = lambda: (a @ b).numpy()",
}
_TIMING = ("import time\nrun()\nbest = float('inf')\nfor _ in range(R):\n"
           "    start = time.perf_counter(); run(); best = min(best, time.perf_counter() - start)\n"
           "print(2 * N ** 3 / best / 1e9)\n")


class CpuFacts(NamedTuple):
    model: str
    extensions: str  # "AVX2 AVX-512 AMX": the vector extensions this CPU has
    threads: int
    ghz: float | None  # the clock the OS reports (None where it does not)
    fma_peak_gflops: float | None  # cores x clock x FMA_UNITS x 2 x float32 lanes of the widest FMA


def cpu_facts(cpuinfo_text=None, threads=None):
    """The facts of this CPU (or of the given /proc/cpuinfo text).

    Example:
    >>> text = "model name : Xeon\\ncpu MHz : 2600.0\\nflags : fma avx2 avx512f amx_tile\\n"
    >>> cpu_facts(text, threads=2)
    CpuFacts(model='Xeon', extensions='AVX2 AVX-512 AMX', threads=2, ghz=2.6, fma_peak_gflops=332.8)
    """
    if cpuinfo_text is None:
        path = Path("/proc/cpuinfo")
        cpuinfo_text = path.read_text() if path.exists() else ""
    fields = {}
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's
    flags = set(fields.get("flags", "").split())
    present = [(name, lanes) for flag, name, lanes in EXTENSIONS if flag in flags]
    threads = threads or _usable_threads()
    ghz = float(fields["cpu MHz"]) / 1000 if fields.get("cpu MHz") else None
    # Hyperthreads share their core's FMA units: count cores.
    per_core = int(fields["siblings"]) // int(fields["cpu cores"]) if fields.get("siblings") and fields.get(
        "cpu cores") else 1
    cores = max(1, threads // max(1, per_core))
    lanes = max((lanes for _, lanes in present if lanes), default=4)  # SSE: 4 float32 lanes
    fma = "fma" in flags
    peak = round(cores * ghz * (FMA_UNITS if fma else 1) * 2 * lanes, 1) if ghz else None
    return CpuFacts(fields.get("model name") or platform.processor() or platform.machine(),
                    " ".join(name for name, _ in present) or "none", threads, ghz, peak)


def _usable_threads():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def matmul_gflops(library, size=MATMUL_SIZE, repeats=MATMUL_REPEATS):
    """`library`'s best float32 `size` x `size` matmul rate here, in GFLOP/s,
    from a fresh process; None when it is not installed or fails.

    Example:
    >>> matmul_gflops("numpy", size=64, repeats=2) > 0
    True
    """
    code = f"N, R = {size}, {repeats}\n" + _MATMUL_PROGRAMS[library] + "\n" + _TIMING
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=False)
    if done.returncode:
        return None
    return float(done.stdout.split()[-1])


def best_matmul(libraries=tuple(_MATMUL_PROGRAMS), size=MATMUL_SIZE, repeats=MATMUL_REPEATS):
    """`(GFLOP/s, library)` of the fastest float32 matmul among `libraries`:
    the roofline that "of peak" divides by (XLA beats torch's matmul on
    AVX-512 machines, so torch's alone understated the peak)."""
    rates = {library: matmul_gflops(library, size, repeats) for library in libraries}
    rates = {library: rate for library, rate in rates.items() if rate}
    if not rates:
        raise SystemExit(f"no float32 matmul ran in {', '.join(libraries)}")
    library = max(rates, key=rates.get)
    return rates[library], library


def main():
    facts = cpu_facts()
    print(f"CPU: {facts.model}, {facts.threads} threads, {facts.ghz or '?'} GHz, {facts.extensions}")
    print(f"theoretical float32 FMA peak: {facts.fma_peak_gflops or '?'} GFLOP/s")
    for library in _MATMUL_PROGRAMS:
        rate = matmul_gflops(library)
        print(f"{library} float32 matmul {MATMUL_SIZE}x{MATMUL_SIZE}: " + (f"{rate:.0f} GFLOP/s" if rate else "failed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
