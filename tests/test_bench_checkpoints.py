"""tools/bench_checkpoints.py: what it measures and writes (never how fast)."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import bench_checkpoints

NUMBERS = ("zoo_per_s", "transformers_per_s", "vs_transformers", "first_call_s", "transformers_first_call_s",
           "steady_s", "load_s")


@pytest.mark.slow
def test_quick_run_writes_one_row_per_model_task_and_batch(tmp_path):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    out = tmp_path / "checkpoints.csv"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_checkpoints.py"), "--quick", "--backends", backend,
         "--out", str(out), "--min-seconds", "0.05"],
        check=False, capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out, newline="") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames) == bench_checkpoints.FIELDS
        rows = list(reader)
    keys = [(row["model"], row["task"], row["batch_size"], row["backend"], row["jit"]) for row in rows]
    assert keys == [
        ("gpt2-tiny", "forward", "2", backend, "auto"),
        ("gpt2-tiny", "generate", "1", backend, "auto"),
        ("gpt2-tiny", "generate", "2", backend, "auto"),
        ("bert-tiny", "forward", "2", backend, "auto"),
    ]
    for row in rows:
        for key in NUMBERS:
            value = float(row[key])
            assert math.isfinite(value) and value > 0, (key, row)
        assert float(row["vs_transformers"]) == pytest.approx(
            float(row["zoo_per_s"]) / float(row["transformers_per_s"]), rel=1e-3)
        assert int(row["steady_calls"]) >= 1 and int(row["threads"]) >= 1
        assert row["outputs_match"] == "True", row  # the zoo computed what transformers did
        assert row["unit"] == ("samples/s" if row["task"] == "forward" else "tokens/s")
        assert row["cpu"] and row["versions"].startswith("keras ") and "transformers" in row["transformers_versions"]
        assert row["jit_compile"] in ("True", "False")
    generate = [row for row in rows if row["task"] == "generate"]
    assert all((row["length"], row["new_tokens"]) == ("4", "8") for row in generate)
    # The table of the README comes from the same CSV, one line per model, task and batch.
    table = bench_checkpoints.markdown_table(bench_checkpoints.read_rows(out))
    assert table.count("\n| gpt2-tiny |") == 3 and table.count("\n| bert-tiny |") == 1
    assert "| gpt2-tiny | generate (tokens/s) | 1 |" in table and "**" in table


def test_outputs_match_compares_logits_within_a_tolerance_and_tokens_exactly():
    assert bench_checkpoints.outputs_match([[1.0, 2.0]], [[1.0, 2.0 + 1e-4]], forward=True)
    assert not bench_checkpoints.outputs_match([[1.0, 2.0]], [[1.0, 2.1]], forward=True)
    assert bench_checkpoints.outputs_match([5, 6, 7], [5, 6, 7], forward=False)
    assert not bench_checkpoints.outputs_match([5, 6, 7], [5, 6, 8], forward=False)


def test_a_full_run_measures_real_sizes():
    full, quick = bench_checkpoints.sizes(quick=False), bench_checkpoints.sizes(quick=True)
    assert (full["forward_batch"], full["length"], full["prompt"], full["new_tokens"]) == (8, 128, 16, 128)
    assert full["generate_batches"] == [1, 8] and full["min_seconds"] >= 2
    assert bench_checkpoints.tasks("gpt2", full) == [("forward", 8), ("generate", 1), ("generate", 8)]
    assert bench_checkpoints.tasks("bert", quick) == [("forward", 2)]
    gpt2 = bench_checkpoints.checkpoint_config("gpt2", quick=False)
    assert (gpt2.n_layer, gpt2.n_embd, gpt2.vocab_size, gpt2.n_positions) == (12, 768, 50257, 1024)
    bert = bench_checkpoints.checkpoint_config("bert", quick=False)
    assert (bert.num_hidden_layers, bert.hidden_size, bert.vocab_size) == (12, 768, 30522)


class FakeClock:
    """A `time` module whose clock moves only when a fake call runs: timings without sleeping."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_time_calls_keeps_the_faster_steady_run_apart_from_the_first_call(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(bench_checkpoints, "time", clock)
    seconds_per_call = iter([3.0, 0.02, 0.02, 0.021, 0.019])  # the first call compiles
    calls = []

    def run(n):
        calls.append(n)
        clock.now += n * next(seconds_per_call)

    timing = bench_checkpoints.time_calls(run, per_call=8, min_seconds=0.07)
    # 1 call lasts 0.02 s: the next run aims at 0.084 s (5 calls), which is timed twice.
    assert calls == [1, 1, 5, 5] and timing["runs"] == 2 and timing["calls"] == 5
    assert timing["first_call_s"] == pytest.approx(3.0)
    assert timing["seconds"] == pytest.approx(5 * 0.020)  # the faster of the two runs of 5 calls
    assert timing["per_s"] == pytest.approx(5 * 8 / timing["seconds"])

    calls.clear()
    seconds_per_call = iter([30.0, 12.0])
    long = bench_checkpoints.time_calls(run, per_call=1, min_seconds=2.0)
    assert calls == [1, 1] and (long["calls"], long["runs"], long["seconds"]) == (1, 1, 12.0)  # not repeated
