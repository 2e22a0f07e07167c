"""`zoo bench` and tools/bench_all.py: what they measure and report (never how fast)."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest

import zoo
from zoo.cli import commands
from zoo.errors import InvalidConfigError
from zoo.eval import bench, profiling

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import bench_all  # noqa: E402


def test_time_steps_runs_until_the_steady_run_is_long_enough():
    calls, prepared = [], []

    def run_steps(steps):
        calls.append(steps)
        time.sleep(0.002 * steps)

    def prepare(steps):  # before each run and outside its timing
        prepared.append(steps)
        time.sleep(0.4)

    timing = bench.time_steps(run_steps, batch_size=4, min_seconds=0.1, prepare=prepare)
    assert calls[0] == 1 and calls[-1] == calls[-2] == timing.steps >= 2  # the steady run, twice
    assert prepared == calls[:-1]
    assert 0.1 <= timing.seconds < 0.4  # a run lasts ~0.1-0.2 s: preparing it is not counted
    assert timing.samples_per_s == pytest.approx(4 * timing.steps / timing.seconds)
    assert 0.002 * timing.steps <= timing.seconds


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_benchmark_measures_a_preset(mode):
    result = bench.benchmark("dense-tiny", mode=mode, batch_size=8, min_seconds=0.2)
    assert (result.preset, result.mode, result.backend) == ("dense-tiny", mode, keras.backend.backend())
    assert result.samples_per_s == pytest.approx(8 * result.steps / result.seconds)
    assert result.steps >= 2 and result.seconds > 0  # the faster of two runs, the first >= 0.2 s
    assert result.first_step_s > 0 and result.load_s > 0 and result.peak_memory_mb > 50
    assert result.length is None and result.versions.startswith("keras ")


def test_benchmark_trains_the_model_it_measures():
    # The timed steps must be real training steps: the weights move.
    model_before = zoo.load("lstm-tiny")
    weights_before = [w.copy() for w in model_before.get_weights()]
    run = bench._Steps(model_before, *bench.bench_batch(model_before, 4, length=8), batch_size=4)
    model_before.compile(optimizer=keras.optimizers.AdamW(1e-2), loss=model_before.default_loss())
    run(3)
    assert any(abs(a - b).max() > 1e-4 for a, b in zip(weights_before, model_before.get_weights()))


def test_sequence_presets_take_a_length():
    result = bench.benchmark("transformer-encoder-tiny", mode="infer", batch_size=2, length=12, min_seconds=0.05)
    assert result.length == 12


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"mode": "fit"}, "mode='fit'"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"length": -3}, "length=-3"),
        ({"min_seconds": 0}, "min_seconds=0"),
        ({"length": 10}, "inputs have no length"),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(InvalidConfigError, match=message):
        bench.benchmark("dense-tiny", **arguments)


def test_command_prints_json(capsys):
    assert commands.main(["bench", "dense-tiny", "--mode", "infer", "--min-seconds", "0.1", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["mode"] == "infer" and result["samples_per_s"] > 0


def test_command_prints_a_table(capsys):
    assert commands.main(["bench", "dense-tiny", "--batch-size", "4", "--min-seconds", "0.1", "--jit", "off"]) == 0
    out = capsys.readouterr().out
    assert "dense-tiny" in out and "train" in out and "infer" in out and "off" in out


def test_profile_says_where_the_time_goes():
    text = bench.profile("cnn-tiny", mode="train", batch_size=4, steps=2, top=40)
    assert "function calls" in text  # cProfile, on every backend
    # The backend's own operator table: the convolutions must be in it.
    if keras.backend.backend() == "torch":
        assert "aten::convolution" in text or "aten::mkldnn_convolution" in text
    elif keras.backend.backend() == "jax":
        table = text.split("XLA operations")[1].splitlines()[2:]
        shares = [float(line.split()[1].rstrip("%")) for line in table if line.strip()]
        assert "convolution" in text and sum(shares) == pytest.approx(100, abs=1)
    else:
        assert "XLA operations" not in text and "aten::" not in text  # tensorflow: cProfile alone


def test_a_loop_counts_only_its_own_time_in_the_operator_table():
    """An XLA while loop's trace event encloses its body's operations: the
    table must not count the body twice (it once showed an LSTM's loop as
    48% of XLA's time; the loop's own time is 3%)."""
    events = [
        ("add", 130, 5), ("while", 0, 100), ("dot", 10, 30), ("fusion", 50, 40), ("copy", 60, 10), ("dot", 100, 20)
    ]
    assert profiling.own_times(events) == [
        ("while", 30), ("dot", 30), ("fusion", 30), ("copy", 10), ("dot", 20), ("add", 5)
    ]


def test_command_measures_another_backend_in_a_fresh_process():
    other = "torch" if keras.backend.backend() != "torch" else "jax"
    done = subprocess.run(
        [sys.executable, "-m", "zoo", "bench", "dense-tiny", "--backend", other, "--mode", "infer",
         "--min-seconds", "0.1", "--json"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(done.stdout.splitlines()[-1])
    assert result["backend"] == other


def test_bench_all_reports_ratios_measured_side_by_side(tmp_path):
    # --update replaces the measured preset's old rows and keeps the others.
    path = tmp_path / "results.csv"
    stale = {"device": "cpu", "backend": "jax", "mode": "train", "jit_compile": True, "vs_native": 9.0}
    bench_all.result_csv.write_rows(path, [{**stale, "preset": "dense-tiny"}, {**stale, "preset": "cnn-tiny"}],
                                    bench_all.FIELDS)
    bench_all.main(["--presets", "dense-tiny", "--backends", keras.backend.backend(), "--jit", "auto",
                    "--min-seconds", "0.2", "--matmul-size", "64", "--csv", str(path), "--update"])
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["preset"] for row in rows] == ["dense-tiny"] * 4 + ["cnn-tiny"]
    rows = rows[:4]
    assert [(row["backend"], row["mode"]) for row in rows] == [
        ("native-torch", "train"), ("native-torch", "infer"),
        (keras.backend.backend(), "train"), (keras.backend.backend(), "infer"),
    ]
    for row in rows:
        ratio = float(row["samples_per_s"]) / float(row["native_samples_per_s"])
        assert float(row["vs_native"]) == pytest.approx(ratio, rel=1e-3)
        gflops = float(row["samples_per_s"]) * float(row["flops_per_sample"]) / 1e9
        assert float(row["gflops"]) == pytest.approx(gflops, rel=1e-3)
        assert float(row["of_peak"]) == pytest.approx(gflops / float(row["matmul_gflops"]), rel=1e-3)
        # The machine: the fastest of the four matmuls, and the CPU it ran on.
        assert row["matmul_by"] in ("torch", "jax", "tensorflow", "numpy") and row["cpu"] and int(row["threads"]) >= 1
        assert float(row["matmul_gflops"]) == float(rows[0]["matmul_gflops"])  # measured once per preset
    train, infer = rows[0], rows[1]
    assert float(train["flops_per_sample"]) > float(infer["flops_per_sample"]) > 0  # backward counts too


def _row(preset, mode, backend, ratio, jit_compile=False):
    return {"preset": preset, "mode": mode, "backend": backend, "vs_native": ratio, "jit_compile": jit_compile,
            "device": "cpu"}


def test_targets_hold_at_auto_and_at_each_backends_better_jit_setting():
    # Made-up rows: jax's "auto" compiles; torch's does not.
    rows = [
        _row("cnn-small", "train", "native-torch", 1.0),
        _row("cnn-small", "train", "jax", 0.5, False), _row("cnn-small", "train", "jax", 0.8, True),
        _row("cnn-small", "train", "torch", 1.2, False), _row("cnn-small", "train", "torch", 1.5, True),
        _row("lstm-small", "infer", "torch", 1.1), _row("lstm-small", "infer", "jax", 0.6, True),
    ]
    at_auto = bench_all.target_verdicts(rows)
    assert at_auto["cnn-small", "train"] == {"best": ("torch", 1.2), "worst": ("jax", 0.8), "met": True}
    assert at_auto["lstm-small", "infer"]["met"] is False  # jax below the 0.7x floor
    assert bench_all.target_verdicts(rows, at="best")["cnn-small", "train"]["best"] == ("torch", 1.5)
    rows[1]["vs_native"], rows[2]["vs_native"] = 0.8, 0.5  # now jax's "auto" (compiled) is its slower setting
    assert bench_all.target_verdicts(rows)["cnn-small", "train"]["worst"] == ("jax", 0.5)
    assert bench_all.target_verdicts(rows, at="best")["cnn-small", "train"]["worst"] == ("jax", 0.8)


def test_readme_shows_the_recorded_run():
    """The speed table of benchmarks/README.md is `bench_all.py --markdown` of
    the CSV beside it, so a new run cannot land without its table (or the reverse)."""
    rows = bench_all.read_rows(ROOT / "benchmarks" / "results-cpu.csv")
    assert bench_all.markdown_table(rows) in (ROOT / "benchmarks" / "README.md").read_text(), (
        "update the table in benchmarks/README.md: python tools/bench_all.py --markdown"
    )

