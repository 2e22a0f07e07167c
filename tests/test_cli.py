"""The `zoo` command line."""

import io
import json
import shutil
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import zoo
from zoo.cli.commands import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.backend_free
def test_list_prints_every_preset_with_params(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    assert f"{len(zoo.list_presets())} presets" in out
    for name in zoo.list_presets():
        assert name in out
    assert "7.5M" in out  # transformer-small's parameter count


@pytest.mark.backend_free
def test_list_filters_by_pattern_and_family(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli(capsys, "list", "*-tiny", "--family", "cnn")
    assert code == 0 and "1 presets" in out and "cnn-tiny" in out and "cnn-small" not in out
    code, out, _ = run_cli(capsys, "list", "--pretrained")
    assert code == 0 and "transformer-small" in out and "dense-tiny" not in out
    code, out, _ = run_cli(capsys, "list", "nothing*")
    assert code == 1 and "No preset matches" in out


@pytest.mark.backend_free
def test_info_shows_the_card(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli(capsys, "info", "transformer-small")
    assert code == 0
    assert "config.num_encoder_layers" in out and "7,527,424" in out and "seq2seq" in out
    assert "model card" in out and "transformer-small/README.md" in out


@pytest.mark.backend_free
def test_info_json_is_the_card(capsys):
    code, out, _ = run_cli(capsys, "info", "cnn-tiny", "--json")
    assert code == 0
    assert json.loads(out) == zoo.info("cnn-tiny").to_dict()


@pytest.mark.backend_free
def test_unknown_name_is_an_error_with_suggestions(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, _, err = run_cli(capsys, "info", "lstm-smal")
    assert code == 2
    assert "No preset named 'lstm-smal'" in err and "lstm-small" in err


@pytest.mark.backend_free
def test_console_script_is_installed():
    # Beside this interpreter (a venv used without activating it), else on PATH.
    beside = Path(sys.executable).parent / "zoo"
    executable = str(beside) if beside.exists() else shutil.which("zoo")
    if executable is None:
        pytest.fail("the `zoo` console script is missing: install the package (pip install -e .)")
    result = subprocess.run([executable, "list", "--family", "dense"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "dense-small" in result.stdout


def test_demo_predicts_far_better_than_the_majority_class(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    from zoo.cli import demo

    console = Console(file=io.StringIO(), width=200)
    accuracy, majority = demo.tabular_demo(console)
    assert accuracy > majority + 0.2
    assert "dense-small.breast-cancer" in console.file.getvalue()
    code, out, _ = run_cli(capsys, "demo", "--preset", "transformer-decoder-tiny")
    assert code == 0
    assert "majority class" in out and "generate(greedy, 12 tokens)" in out


# --- what the zoo prints on its own ---------------------------------------------


LOAD_A_TRANSFORMER = "import zoo; zoo.load('transformer-tiny').generate([[5, 6]], max_length=4); print('ok')"


def test_the_zoo_command_prints_no_tensorflow_start_up_noise(tmp_path):
    """On every backend, TensorFlow's included: the command starts Keras itself (and on
    TensorFlow, evaluating compiles predict with XLA, which logs INFO lines)."""
    user_shell = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # set in here
    result = subprocess.run([sys.executable, "-m", "zoo", "eval", "dense-small.breast-cancer"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path, env=user_shell)
    assert result.returncode == 0, result.stderr[-2000:]
    for noise in ("absl::InitializeLog", "cudart_stub.cc", "port.cc", "cpu_feature_guard", "cuInit",
                  "Compiled cluster using XLA", "XLA service"):
        assert noise not in result.stderr, result.stderr


def test_loading_a_transformer_prints_no_tensorflow_start_up_noise():
    """keras_hub imports TensorFlow under every backend; its C++ start-up lines
    (absl's notice, oneDNN, CUDA drivers) must not reach a JAX or torch user."""
    import keras

    if keras.backend.backend() == "tensorflow":
        pytest.skip("backend-specific: on TensorFlow, Keras itself imports TensorFlow (and its noise)")
    result = subprocess.run([sys.executable, "-c", LOAD_A_TRANSFORMER], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    for noise in ("absl::InitializeLog", "cudart_stub.cc", "port.cc"):
        assert noise not in result.stderr, result.stderr


@pytest.mark.backend_free
def test_the_quiet_import_writes_back_everything_else(capfd):
    """Backend-free: only TensorFlow's start-up lines are dropped."""
    import os

    from zoo.runtime.quiet_imports import stderr_filtered, tensorflow_startup

    with stderr_filtered(tensorflow_startup):
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1796391333.084040   11295 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"E0000 00:00:1796398048.793959    3332 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n")
        os.write(2, b"a real error from an import\n")
    # without TensorFlow's "no driver" line, a failed CUDA start is news: it stays
    assert capfd.readouterr().err == (
        "E0000 00:00:1796398048.793959    3332 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
        "a real error from an import\n"
    )
