"""tools/machine_facts.py: what each benchmark row says about the machine.
Backend-free: the matmuls run in their own processes."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import machine_facts  # noqa: E402

pytestmark = pytest.mark.backend_free


@pytest.mark.parametrize("library", ["numpy", "torch", "jax", "tensorflow"])
def test_every_library_s_matmul_rate_is_measured(library):
    # Each in its own process, whatever the backend of this one.
    assert machine_facts.matmul_gflops(library, size=64, repeats=2) > 0


def test_the_fma_peak_counts_cores_vector_lanes_and_two_units():
    smt = "model name : X\ncpu MHz : 3000\nflags : fma avx2\nsiblings : 4\ncpu cores : 2\n"
    facts = machine_facts.cpu_facts(smt, threads=4)  # 2 cores x 3 GHz x 2 units x 2 (FMA) x 8 lanes
    assert (facts.extensions, facts.fma_peak_gflops) == ("AVX2", 192.0)
    assert machine_facts.cpu_facts("flags : sse2\n", threads=1).fma_peak_gflops is None  # no clock: no peak
    assert machine_facts.cpu_facts().threads >= 1

