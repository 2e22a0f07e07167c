"""tools/machine_facts.py (what each benchmark row says about the machine) and
tools/cold_start.py. Backend-free: the frameworks run in processes of their own."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
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


def test_cold_start_times_fresh_processes_against_native_pytorch(tmp_path):
    # The tool's processes import the frameworks; this one imports none.
    import cold_start

    path = tmp_path / "cold.csv"
    cold_start.main(["--presets", "dense-tiny", "--backends", "torch", "--runs", "1", "--csv", str(path)])
    native, zoo = cold_start.read_rows(path)
    assert (native["backend"], zoo["backend"]) == ("native-torch", "torch")
    for row in (native, zoo):
        assert all(row[phase] > 0 for phase in cold_start.PHASES)
        assert row["process_s"] > row["import_s"] + row["load_s"] + row["first_predict_s"]  # start-up and exit too
        assert row["cpu"] and row["threads"] >= 1
    assert zoo["vs_native"] == pytest.approx(native["process_s"] / zoo["process_s"], rel=1e-3)
    assert zoo["versions"].startswith("keras ") and native["versions"].startswith("torch ")


def test_readme_shows_the_recorded_cold_start_run():
    import cold_start

    rows = cold_start.read_rows(ROOT / "benchmarks" / "cold-start-cpu.csv")
    assert cold_start.markdown_table(rows) in (ROOT / "benchmarks" / "README.md").read_text(), (
        "update the cold start table in benchmarks/README.md: python tools/cold_start.py --markdown"
    )
