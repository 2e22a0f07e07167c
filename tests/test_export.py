"""zoo.export and `zoo export`: every family to every format its backend can
write, run in the format's own runtime and compared with Keras; the routes
that cannot work refused with where to go instead; a failed export leaves
nothing behind. Runs on each backend (the routes differ by backend)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

import zoo
from tools import deployment_table
from zoo.cli.commands import main
from zoo.deploy import export as exporting
from zoo.deploy import routes, runtimes

pytest.importorskip("onnxruntime")

BACKEND = keras.backend.backend()
FAMILIES = list(deployment_table.FAMILY_PRESETS)  # the presets of the published table
TRANSFORMERS = [name for name in FAMILIES if name.startswith("transformer")]
# What works, per backend: the table of docs/deployment.md (tools/deployment_table.py measures it).
WORKS = {
    "tensorflow": {
        "onnx": FAMILIES,
        "tf_saved_model": FAMILIES,
        "litert": ["dense-tiny", "cnn-tiny", *TRANSFORMERS],
    },
    "jax": {
        "onnx": ["dense-tiny", "cnn-tiny", "transformer-encoder-tiny"],
        "tf_saved_model": ["dense-tiny", "cnn-tiny", "lstm-tiny"],
    },
    "torch": {
        "onnx": ["dense-tiny", "cnn-tiny", *TRANSFORMERS],
        "torch_export": ["dense-tiny", "cnn-tiny", *TRANSFORMERS],
    },
}[BACKEND]
WORKING = [(preset, format) for format, presets in WORKS.items() for preset in presets]
REFUSED = [(preset, format) for format in routes.FORMATS for preset in FAMILIES if preset not in WORKS.get(format, ())]
# The slowest conversions (tf2onnx and the TFLite converter on the seq2seq model: ~20 s each on 2 cores).
SLOW = {("transformer-tiny", "onnx"), ("transformer-tiny", "litert")} if BACKEND == "tensorflow" else set()


def artefact_path(folder, format, stem="model"):
    return folder / f"{stem}{routes.SUFFIXES[format]}"


def keras_outputs(model, batch):
    inputs = next(iter(batch.values())) if len(batch) == 1 else batch
    return np.asarray(model.predict(inputs, verbose=0))


@pytest.mark.parametrize(
    ("preset", "format"),
    [pytest.param(*route, marks=[pytest.mark.slow] if route in SLOW else []) for route in WORKING],
    ids=lambda value: value,
)
def test_export_runs_in_its_runtime_as_keras_does(preset, format, models, tmp_path):
    model = models(preset)
    path = artefact_path(tmp_path, format)
    report = zoo.export(model, path, format=format)
    assert report.path == path and path.exists()
    assert report.format == format and report.backend == BACKEND
    assert report.max_abs_diff <= 1e-5 * max(1, report.largest_output)
    assert path in report.files and sorted(tmp_path.iterdir()) == sorted(report.files)  # no partial file left
    # Our own check, on a batch export() did not see (another batch size, length and seed).
    (batch,) = exporting.check_batches(model, exporting.input_signature(model), shapes=((2, 11),), seed=7)
    output = runtimes.run(format, path, batch)
    expected = keras_outputs(model, batch)
    np.testing.assert_allclose(output, expected, atol=1e-5 * max(1, np.abs(expected).max()), rtol=0)
    # Dynamic batch (and length): the checked shapes differ in both.
    (first_rows, first_length), (second_rows, second_length) = report.checked
    assert first_rows != second_rows and (first_length != second_length or not model.sequence_inputs)


@pytest.mark.parametrize(("preset", "format"), REFUSED, ids=lambda value: value)
def test_impossible_routes_are_refused_with_where_to_go(preset, format, models, tmp_path):
    path = artefact_path(tmp_path, format)
    with pytest.raises(zoo.UnsupportedBackendError) as refused:
        zoo.export(models(preset), path, format=format)
    message = str(refused.value)
    assert f"format={format!r}" in message and BACKEND in message
    assert "KERAS_BACKEND=" in message or "exports as" in message or "No backend" in message
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_differs_from_keras_saves_nothing_and_replaces_nothing(models, tmp_path):
    model = models("transformer-encoder-tiny")
    path = tmp_path / "encoder.onnx"
    path.write_text("the previous export")
    with pytest.raises(zoo.ExportError, match="differs from Keras by .* more than tolerance=1e-15 x max"):
        zoo.export(model, path, format="onnx", overwrite=True, tolerance=1e-15)
    assert path.read_text() == "the previous export"
    assert [entry.name for entry in tmp_path.iterdir()] == ["encoder.onnx"]


def test_exporting_leaves_the_model_as_it_was(models, tmp_path):
    model = models("transformer-decoder-tiny")
    x, _ = model.example_batch(batch_size=2, length=9)
    before = np.asarray(model.predict(x, verbose=0))
    classes = {id(layer): type(layer) for layer in model._flatten_layers()}
    format = "torch_export" if BACKEND == "torch" else "onnx" if BACKEND == "tensorflow" else "tf_saved_model"
    if format in WORKS and "transformer-decoder-tiny" not in WORKS[format]:
        model, x = models("dense-tiny"), models("dense-tiny").example_batch(batch_size=2)[0]
        before = np.asarray(model.predict(x, verbose=0))
        classes = {id(layer): type(layer) for layer in model._flatten_layers()}
    zoo.export(model, artefact_path(tmp_path, format), format=format)
    assert {id(layer): type(layer) for layer in model._flatten_layers()} == classes
    np.testing.assert_array_equal(np.asarray(model.predict(x, verbose=0)), before)


@pytest.mark.parametrize(
    ("path", "format", "message"),
    [
        ("model.onnx", "pickle", "not an export format; choose one of onnx, tf_saved_model, litert, torch_export"),
        ("model.bin", "onnx", "A onnx export is a .onnx file: got"),
        # The format this backend writes that is not one .onnx file.
        ("saved.onnx", "tf_saved_model", "A tf_saved_model export is a folder") if BACKEND != "torch" else
        ("model.onnx", "torch_export", "A torch_export export is a .pt2 file: got"),
        ("missing/model.onnx", "onnx", "does not exist: create it first"),
    ],
)
def test_bad_destinations_are_refused_before_anything_runs(path, format, message, models, tmp_path):
    with pytest.raises(zoo.ExportError, match=message.replace(".", r"\.")):
        zoo.export(models("dense-tiny"), tmp_path / path, format=format)
    assert not (tmp_path / path).exists()


def test_an_existing_destination_needs_overwrite(models, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("kept")
    with pytest.raises(zoo.ExportError, match="exists; pass overwrite=True"):
        zoo.export(models("dense-tiny"), path, format="onnx")
    assert path.read_text() == "kept"
    report = zoo.export(models("dense-tiny"), path, format="onnx", overwrite=True)
    assert report.max_abs_diff <= 1e-5 and path.read_bytes() != b"kept"


FOLDER_FORMAT_BACKENDS = routes.BACKENDS["tf_saved_model"]
writes_folders = pytest.mark.skipif(
    BACKEND not in FOLDER_FORMAT_BACKENDS,
    reason=f"backend-specific: tf_saved_model (a folder) is written on {', '.join(FOLDER_FORMAT_BACKENDS)}")


@writes_folders
@pytest.mark.parametrize("destination", ["..", "."])
def test_a_destination_naming_a_parent_or_current_folder_is_never_replaced(destination, models, tmp_path,
                                                                           monkeypatch):
    """A regression: "out/.." was a folder named "..", and overwrite deleted what it pointed at."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("kept")
    monkeypatch.chdir(tmp_path / "out")
    with pytest.raises(zoo.ExportError, match="is not a SavedModel; overwrite replaces only an earlier"):
        zoo.export(models("dense-tiny"), destination, format="tf_saved_model", overwrite=True)
    assert (tmp_path / "out" / "notes.txt").read_text() == "kept"
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["out"]


@writes_folders
def test_overwrite_never_deletes_a_folder_that_is_not_an_earlier_export(models, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_text("kept")
    with pytest.raises(zoo.ExportError, match="is not a SavedModel"):
        zoo.export(models("dense-tiny"), folder, format="tf_saved_model", overwrite=True)
    assert (folder / "holiday.jpg").read_text() == "kept"
    # An earlier export is what overwrite replaces.
    zoo.export(models("dense-tiny"), tmp_path / "saved", format="tf_saved_model")
    report = zoo.export(models("dense-tiny"), tmp_path / "saved", format="tf_saved_model", overwrite=True)
    assert (report.path / "saved_model.pb").is_file()


def test_overwrite_never_deletes_a_folder_at_a_file_name(models, tmp_path):
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    (folder / "data.txt").write_text("kept")
    with pytest.raises(zoo.ExportError, match="is a folder; a onnx export is one file"):
        zoo.export(models("dense-tiny"), folder, format="onnx", overwrite=True)
    assert (folder / "data.txt").read_text() == "kept"


def test_a_dangling_symlink_at_the_destination_needs_overwrite(models, tmp_path):
    link = tmp_path / "model.onnx"
    link.symlink_to(tmp_path / "gone.onnx")
    with pytest.raises(zoo.ExportError, match="exists; pass overwrite=True"):
        zoo.export(models("dense-tiny"), link, format="onnx")
    assert link.is_symlink() and not (tmp_path / "gone.onnx").exists()


def test_files_beside_the_destination_or_in_the_working_folder_are_left_alone(models, tmp_path, monkeypatch):
    """A regression: jax2onnx wrote its weights to model.onnx.data beside the
    model, replacing a file of that name without overwrite, and failed when the
    working folder held one. An ONNX export is now one file."""
    (tmp_path / "model.onnx.data").write_text("someone else's")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "model.onnx.data").write_text("someone else's too")
    monkeypatch.chdir(tmp_path / "elsewhere")
    model = models("transformer-encoder-tiny")  # weights over jax2onnx's 1 MB external-data threshold
    report = zoo.export(model, tmp_path / "model.onnx", format="onnx")
    assert report.files == (tmp_path / "model.onnx",)
    assert (tmp_path / "model.onnx.data").read_text() == "someone else's"
    assert (tmp_path / "elsewhere" / "model.onnx.data").read_text() == "someone else's too"


def test_files_an_exporter_writes_beside_the_model_replace_nothing_without_overwrite(tmp_path):
    """The step that moves a finished export into place, on its own: an
    exporter that writes a second file whose name is taken."""
    work, folder = tmp_path / "work", tmp_path / "out"
    work.mkdir(), folder.mkdir()
    (work / "model.onnx").write_text("new model")
    (work / "model.onnx.data").write_text("new weights")
    (folder / "model.onnx.data").write_text("kept")
    (folder / "model.onnx").symlink_to(folder / "gone")  # dangling, but someone's
    with pytest.raises(zoo.ExportError, match="model.onnx.data exists; pass overwrite=True"):
        exporting._move_into_place(work, folder, overwrite=False)
    assert sorted(entry.name for entry in folder.iterdir()) == ["model.onnx", "model.onnx.data"]
    assert (folder / "model.onnx.data").read_text() == "kept" and (folder / "model.onnx").is_symlink()
    moved = exporting._move_into_place(work, folder, overwrite=True)
    assert moved == (folder / "model.onnx", folder / "model.onnx.data")
    assert (folder / "model.onnx.data").read_text() == "new weights"


@pytest.mark.parametrize("tolerance", [float("nan"), -1e-5, 0, float("inf"), "1e-5", True])
def test_a_tolerance_that_is_not_a_positive_number_is_refused(tolerance, models, tmp_path):
    """A regression: NaN accepted any difference, a string failed deep inside the check."""
    with pytest.raises(zoo.ExportError, match="tolerance must be a positive number"):
        zoo.export(models("dense-tiny"), tmp_path / "model.onnx", format="onnx", tolerance=tolerance)
    assert list(tmp_path.iterdir()) == []


def test_a_model_with_broken_weights_is_named_as_such(tmp_path):
    """A regression: NaN outputs compared as "within tolerance" (NaN > tolerance is False)."""
    model = zoo.load("dense-tiny")
    for weight in model.trainable_weights:  # all of them: a ReLU may turn NaN into 0 on some backends
        weight.assign(np.full(weight.shape, np.nan, dtype="float32"))
    with pytest.raises(zoo.ExportError, match="Keras' own outputs of this model are NaN or infinite"):
        zoo.export(model, tmp_path / "model.onnx", format="onnx")
    assert list(tmp_path.iterdir()) == []


def test_sentence_pairs_are_checked_with_both_token_types():
    """The check batches cover segment 1 of a model with token types (BERT's), not only segment 0."""
    model = zoo.load("transformer-encoder-tiny", type_vocab_size=2)
    signature = exporting.input_signature(model)
    assert "token_type_ids" in [item.name for item in signature]
    first, second = exporting.check_batches(model, signature)
    assert set(np.unique(first["token_type_ids"])) == {0}
    assert set(np.unique(second["token_type_ids"])) == {0, 1}


def test_an_onnx_export_serves_without_keras(models, tmp_path):
    """The deployment story: a process with no Keras, TensorFlow, JAX or torch runs the model."""
    model = zoo.load("dense-small.breast-cancer")
    path = tmp_path / "breast-cancer.onnx"
    zoo.export(model, path, format="onnx")
    features = np.random.default_rng(0).normal(size=(5, 30)).astype("float32")
    np.save(tmp_path / "features.npy", features)
    script = textwrap.dedent(f"""
        import sys
        for name in ("keras", "tensorflow", "jax", "torch", "zoo"):
            sys.modules[name] = None  # importing any of them now fails
        import numpy as np
        import onnxruntime
        session = onnxruntime.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])
        (name,) = [node.name for node in session.get_inputs()]
        logits = session.run(None, {{name: np.load({str(tmp_path / "features.npy")!r})}})[0]
        np.save({str(tmp_path / "logits.npy")!r}, logits)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    expected = model.predict(features, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, atol=1e-5 * max(1, np.abs(expected).max()))


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_command_exports_and_says_how_close(capsys, tmp_path):
    out_path = tmp_path / "dense.onnx"
    code, out, err = run_cli(capsys, "export", "dense-tiny", "--format", "onnx", "--out", str(out_path))
    assert code == 0, err
    assert out_path.is_file() and "onnxruntime matches Keras within" in out and "features (batch, 30)" in out


def test_command_refuses_an_impossible_route_in_one_line(capsys, tmp_path):
    format = "torch_export" if BACKEND != "torch" else "tf_saved_model"
    code, out, err = run_cli(capsys, "export", "dense-tiny", "--format", format, "--out",
                             str(artefact_path(tmp_path, format)))
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error:") and "KERAS_BACKEND=" in err
    assert list(tmp_path.iterdir()) == []


def test_a_terminated_export_leaves_nothing_behind(tmp_path):
    """A regression: SIGTERM (a container stopping) ended the process before the
    work folder was removed, leaving a hidden .model.onnx.partial-* folder."""
    out_path = tmp_path / "model.onnx"
    command = [sys.executable, "-m", "zoo", "export", "transformer-encoder-tiny", "--format", "onnx",
               "--out", str(out_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob(".model.onnx.partial-*")):  # the exporter is at work
            assert process.poll() is None and time.monotonic() < deadline, "the export never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err[-2000:]
    assert err.strip().endswith("terminated")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_command_exports_from_another_backend_in_a_fresh_process(tmp_path):
    other = "torch" if BACKEND != "torch" else "tensorflow"
    format = "torch_export" if other == "torch" else "tf_saved_model"
    out_path = artefact_path(tmp_path, format)
    done = subprocess.run(
        [sys.executable, "-m", "zoo", "export", "dense-tiny", "--format", format, "--out", str(out_path),
         "--backend", other],
        capture_output=True, text=True, timeout=600, check=False, env={**os.environ},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"written on {other}" in done.stdout and out_path.exists()


def test_the_published_routes_are_the_ones_tested_here():
    """docs/deployment.md's table (tools/deployment_table.py's last run) says what these tests hold."""
    rows = deployment_table.read_rows(deployment_table.CSV_PATH)
    published = {(row["preset"], row["format"]) for row in rows if row["backend"] == BACKEND and
                 row["status"] == "works"}
    assert published == set(WORKING)
