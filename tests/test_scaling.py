"""tools/scaling.py: how inference cost grows with length and batch, per
backend against native PyTorch. Backend-free: each backend runs in a process
of its own, all three in one sweep."""

import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import scaling  # noqa: E402

pytestmark = pytest.mark.backend_free


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """transformer-tiny by length at 8 and 96 tokens (past its 64 positions),
    native PyTorch and every backend."""
    path = tmp_path_factory.mktemp("scaling") / "scaling.csv"
    scaling.main(["--sweeps", "transformer-tiny:length", "--values", "96", "8", "--min-seconds", "0.05",
                  "--csv", str(path)])
    return scaling.read_rows(path)


def test_each_backend_sweeps_the_same_points_as_native_pytorch(tiny_sweep):
    runners = [row["backend"] for row in tiny_sweep]
    assert runners == [runner for runner in scaling.RUNNERS for _ in range(2)]
    native = {row["length"]: row for row in tiny_sweep if row["backend"] == "native-torch"}
    for runner in scaling.RUNNERS:
        assert [row["length"] for row in tiny_sweep if row["backend"] == runner] == [8, 96]
    for row in tiny_sweep:
        assert (row["batch_size"], row["preset"], row["axis"]) == (8, "transformer-tiny", "length")
        assert row["tokens_per_s"] == pytest.approx(row["samples_per_s"] * row["length"], rel=1e-3)
        assert row["vs_native"] == pytest.approx(row["samples_per_s"] / native[row["length"]]["samples_per_s"],
                                                 rel=1e-3)
        assert row["first_step_s"] > 0 and row["cpu"] and row["threads"] >= 1


def test_points_run_from_the_smallest_so_peak_memory_only_grows(tiny_sweep):
    for runner in scaling.RUNNERS:
        short, long = [row for row in tiny_sweep if row["backend"] == runner]
        assert short["length"] < long["length"]
        assert 0 < short["peak_memory_mb"] <= long["peak_memory_mb"]


def test_each_backend_runs_at_auto_what_its_policy_picks_for_predict(tiny_sweep):
    from zoo.runtime import jit_policy

    for row in tiny_sweep:
        if row["backend"] != "native-torch":
            expected = jit_policy.auto_setting(row["backend"], "cpu", "predict")
            assert row["jit_compile"] == str(expected), row["backend"]
            assert row["versions"].startswith("keras ")


def test_the_seq2seq_batch_has_full_rows_and_three_quarter_targets():
    import zoo

    batch = scaling.scaling_batch(zoo.info("transformer-tiny"), 3, 40)
    assert batch["encoder_token_ids"].shape == (3, 40) and batch["decoder_token_ids"].shape == (3, 30)
    assert all((ids >= 3).all() for ids in batch.values())  # no padding, no special tokens
    assert scaling.widened_positions(zoo.info("transformer-tiny"), 1024) == {
        "encoder_max_length": 1024, "decoder_max_length": 768}


def test_tables_and_plots_come_from_the_rows(tiny_sweep, tmp_path):
    table = scaling.markdown_tables(tiny_sweep)
    assert "**transformer-tiny** by length (batch 8)" in table
    assert table.count("\n| 8 |") == table.count("\n| 96 |") == 1
    (path,) = scaling.plot(tiny_sweep, tmp_path)
    assert path.name == "scaling-transformer-tiny.png"
    with open(path, "rb") as file:
        header = file.read(24)
    width, height = struct.unpack(">II", header[16:24])
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and width > 400 and height > 200


@pytest.mark.parametrize("sweep, message", [
    ("nope:length", "No preset named 'nope'"),
    ("dense-tiny:length", "does not read token ids"),
    ("lstm-tiny:width", "use PRESET:length, PRESET:batch or PRESET:generate"),
    ("lstm-tiny:generate", "generate sweeps are for the transformer-decoder family"),
])
def test_bad_sweeps_are_refused_before_anything_runs(sweep, message, capsys):
    with pytest.raises(SystemExit) as raised:
        scaling.main(["--sweeps", sweep])
    assert raised.value.code == 2 and message in capsys.readouterr().err


def test_readme_shows_the_recorded_scaling_run():
    rows = scaling.read_rows(ROOT / "benchmarks" / "scaling-cpu.csv")
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    assert scaling.markdown_tables(rows) in readme, (
        "update the scaling tables in benchmarks/README.md: python tools/scaling.py --markdown"
    )
    for preset in dict.fromkeys(row["preset"] for row in rows):
        assert (ROOT / "benchmarks" / f"scaling-{preset}.png").exists(), "python tools/scaling.py --plot"
        assert f"scaling-{preset}.png" in readme


def test_generate_sweeps_time_cached_decoding_on_every_backend(tmp_path):
    path = tmp_path / "generate.csv"
    scaling.main(["--sweeps", "transformer-decoder-tiny:generate", "--values", "40", "24", "--min-seconds", "0.05",
                  "--csv", str(path)])
    rows = scaling.read_rows(path)
    assert [row["backend"] for row in rows] == [backend for backend in scaling.BACKENDS for _ in range(2)]
    from zoo.runtime import jit_policy

    for row in rows:
        new_tokens = row["length"] - scaling.PROMPT_LENGTH  # each row generates to max_length
        assert row["tokens_per_s"] == pytest.approx(row["samples_per_s"] * new_tokens, rel=1e-3)
        assert row["vs_native"] is None  # the native twin has no cache to generate with
        assert row["jit_compile"] == str(jit_policy.auto_setting(row["backend"], "cpu", "generate"))
    assert [row["length"] for row in rows[:2]] == [24, 40]
    table = scaling.markdown_tables(rows)
    assert table.startswith("**transformer-decoder-tiny** generating (batch 8, 16-token prompts)")
    assert table.count("\n| 24 |") == table.count("\n| 40 |") == 1
