"""jit_compile on zoo.load / zoo.finetune / zoo.evaluate, compiled generation and
the JAX compilation cache, on every backend.

On a CPU, torch.compile takes 35 to 140 s per tiny model for its predict and
train steps (tools/measure_jit.py --quick; tools/jit_measurements.csv has the
small presets), so on torch only dense-tiny is compiled here; on jax and
tensorflow every family is.
"""

import keras
import numpy as np
import pytest
from conftest import TINY_PRESETS, to_numpy
from sklearn import metrics

import zoo
from tools import measure_jit
from zoo import settings
from zoo.architectures import generation
from zoo.errors import InvalidConfigError
from zoo.runtime import backend

TORCH_COMPILED = ("dense-tiny",)  # see the module docstring
GENERATION_COMPILES = backend.compile_function(lambda: None) is not None  # not on torch


def compiled_here(name):
    return pytest.param(name, marks=pytest.mark.skipif(
        backend.name() == "torch" and name not in TORCH_COMPILED,
        reason="torch.compile of this family takes tens of seconds on a CPU: run tools/measure_jit.py"))


def twin_models(name):
    """The same weights twice: one model uncompiled, one compiled."""
    backend.forget_compiled_programs()  # else torch.compile stops compiling after 8 models
    eager = zoo.load(name, jit_compile=False, dropout=0.0)  # dropout would draw differently under XLA
    compiled = zoo.load(name, jit_compile=True, dropout=0.0)
    compiled.set_weights(eager.get_weights())
    return eager, compiled


def one_step(model, x, y, jit_compile):
    """The weights after one training step on `(x, y)`.

    dense-tiny trains through zoo.finetune, which hands `jit_compile` to
    Keras' compile; the others through Keras' own fit with SGD, which costs a
    fraction of finetune's AdamW to compile and run, and whose step does not
    amplify float noise: AdamW's first step divides by |gradient|, so where a
    gradient is near zero, noise turns into differences above 1e-5.
    """
    if model.family == "dense":
        zoo.finetune(model, (x, y), epochs=1, batch_size=len(y), learning_rate=1e-3, weight_decay=0.0,
                     verbose=0, jit_compile=jit_compile)
    else:
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss=model.default_loss(), jit_compile=jit_compile)
        model.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    return [to_numpy(weight) for weight in model.weights]


# --- compiled and uncompiled agree ------------------------------------------


@pytest.mark.parametrize("name", [compiled_here(name) for name in TINY_PRESETS])
def test_compiled_predictions_and_training_step_match_uncompiled(name):
    eager, compiled = twin_models(name)
    x, y = eager.example_batch(batch_size=4, seed=1)
    np.testing.assert_allclose(compiled.predict_on_batch(x), eager.predict_on_batch(x), atol=1e-5, rtol=0)
    before = [to_numpy(weight) for weight in eager.weights]
    after_eager = one_step(eager, x, y, jit_compile=False)
    after_compiled = one_step(compiled, x, y, jit_compile=True)
    assert eager.jit_compile is False and compiled.jit_compile is True
    # The step moves weights by far more than the tolerance, so a wrong step would show.
    assert max(np.abs(new - old).max() for old, new in zip(before, after_eager)) > 10 * 1e-5
    for weight, expected, actual in zip(eager.weights, after_eager, after_compiled, strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0, err_msg=weight.path)


# One sampler per family keeps this file fast: greedy for the decoder, beam
# search (its own decoding loop, cache repeated per beam) for the seq2seq model.
GENERATORS = {"transformer-decoder-tiny": {}, "transformer-tiny": {"sampler": "beam", "num_beams": 2}}


@pytest.fixture(scope="module", params=list(GENERATORS))
def generator(request):
    keras.utils.set_random_seed(5)  # module fixtures are built before the per-test seeding
    model = zoo.load(request.param, jit_compile=False, dropout=0.0)
    x, _ = model.example_batch(batch_size=3, seed=2)
    prompt = x["encoder_token_ids"] if isinstance(x, dict) else x[:, :6]
    prompt[1, 4:] = 0  # ragged: one row is shorter
    return model, prompt, GENERATORS[request.param]


def generate(model, jit_compile, prompt, **options):
    backend.set_jit_compile(model, jit_compile)
    return model.generate(prompt, max_length=10, **options)


def count_traces(model):
    return sum(program.traces for program in generation.compiled_samplers(model).values())


def test_compiled_generation_gives_the_same_tokens_and_compiles_once(generator):
    model, prompt, options = generator
    other_prompt = np.roll(prompt, 1, axis=0)  # the same shape, other tokens
    expected = [generate(model, False, p, **options) for p in (prompt, other_prompt)]
    traces_before = count_traces(model)
    np.testing.assert_array_equal(generate(model, True, prompt, **options), expected[0])
    traces_after_first = count_traces(model)
    np.testing.assert_array_equal(generate(model, True, other_prompt, **options), expected[1])
    if GENERATION_COMPILES:  # torch generates eagerly: nothing is traced
        assert traces_after_first == traces_before + 1
        assert count_traces(model) == traces_after_first, "the second call with the same shapes traced again"


# One family is enough: sampling is the same code for both generating families.
@pytest.mark.parametrize("generator", ["transformer-decoder-tiny"], indirect=True)
def test_a_seeded_sampler_draws_alike_with_and_without_compilation(generator):
    model, prompt, _ = generator
    first, second = (generate(model, True, prompt, sampler="top_k", k=5, seed=7) for _ in range(2))
    np.testing.assert_array_equal(first, second)  # a seed's state is lent to the compiled sampler afresh
    if backend.name() != "tensorflow":
        # XLA draws TensorFlow's random numbers with another algorithm than
        # TensorFlow without XLA, so there the tokens differ (each stays seeded).
        np.testing.assert_array_equal(first, generate(model, False, prompt, sampler="top_k", k=5, seed=7))


# --- choosing: "auto", validation, evaluate ---------------------------------


@pytest.mark.parametrize("value", ["yes", "AUTO", 1, 0, None, "xla"])
def test_anything_but_auto_true_false_is_refused(value):
    with pytest.raises(InvalidConfigError, match="jit_compile="):
        backend.resolve_jit_compile(value)
    with pytest.raises(InvalidConfigError, match="'auto'"):
        zoo.load("dense-tiny", jit_compile=value)


def test_finetune_and_evaluate_refuse_a_bad_jit_compile():
    model = zoo.load("dense-tiny", num_features=4)
    x, y = np.ones((4, 4), "float32"), np.array([0, 1, 0, 1])
    with pytest.raises(InvalidConfigError, match="jit_compile='on'"):
        zoo.finetune(model, (x, y), epochs=1, verbose=0, jit_compile="on")
    with pytest.raises(InvalidConfigError, match="jit_compile=2"):
        zoo.evaluate(model, (x, y), verbose=False, jit_compile=2)


def test_auto_follows_the_table_per_workload_for_this_backend_and_device():
    expected = backend.AUTO_JIT_COMPILE[(backend.name(), backend.device_kind())]
    assert set(expected) == set(backend.WORKLOADS)
    model = zoo.load("dense-tiny")
    assert model.jit_compile is expected["predict"]
    for workload in backend.WORKLOADS:
        assert backend.resolve_jit_compile("auto", workload=workload) is expected[workload]
        assert backend.jit_compile_for(model, workload) is expected[workload]
    model.compile(optimizer="sgd", loss=model.default_loss())
    model.make_train_function()
    assert backend.jit_compile_for(model, "train") is expected["train"]
    assert model.jit_compile is expected["predict"]  # building the training step put it back


@pytest.mark.parametrize("setting", [False, True])
def test_an_explicit_setting_holds_for_every_workload(setting):
    for model in (zoo.load("dense-tiny", jit_compile=setting), zoo.load("dense-tiny")):
        model.jit_compile = setting  # set directly, after an "auto" load too
        assert [backend.jit_compile_for(model, workload) for workload in backend.WORKLOADS] == [setting] * 3
    model.compile(optimizer="sgd", loss=model.default_loss(), jit_compile=setting)
    assert backend.jit_compile_for(model, "train") is setting


def test_finetune_and_evaluate_keep_auto_per_workload():
    expected = backend.AUTO_JIT_COMPILE[(backend.name(), backend.device_kind())]
    model = zoo.load("dense-tiny", num_features=4)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    zoo.finetune(model, (x, y), epochs=1, batch_size=4, verbose=0)
    assert [backend.jit_compile_for(model, workload) for workload in backend.WORKLOADS] == [
        expected[workload] for workload in backend.WORKLOADS]
    zoo.evaluate(model, (x, y), batch_size=4, verbose=False, jit_compile=not expected["predict"])
    assert [backend.jit_compile_for(model, workload) for workload in backend.WORKLOADS] == [
        expected[workload] for workload in backend.WORKLOADS]


@pytest.mark.skipif(not GENERATION_COMPILES, reason="Keras cannot compile a decoding loop on torch")
def test_generate_compiles_at_auto_where_the_table_says_so():
    model = zoo.load("transformer-decoder-tiny")
    model.generate(np.array([[5, 6]]), max_length=6)
    compiled = bool(generation.compiled_samplers(model))
    assert compiled is backend.AUTO_JIT_COMPILE[(backend.name(), backend.device_kind())]["generate"]


def test_auto_is_off_for_a_model_with_a_layer_that_cannot_compile():
    model = zoo.load("dense-tiny", jit_compile=True)
    assert backend.resolve_jit_compile("auto", model) is backend.resolve_jit_compile("auto")
    model.get_layer("head").supports_jit = False  # as Keras layers that XLA cannot compile declare
    assert backend.resolve_jit_compile("auto", model) is False
    assert backend.resolve_jit_compile(True, model) is True  # an explicit choice is Keras' to refuse
    # Keras turns it off on jax and torch (on TensorFlow its setter is bypassed); every workload follows.
    model.compile(optimizer="sgd", loss=model.default_loss(), jit_compile=True)
    kept = [bool(model.jit_compile)] * 3
    assert [backend.jit_compile_for(model, workload) for workload in backend.WORKLOADS] == kept


def test_the_auto_table_is_what_the_recorded_measurements_say():
    rows = measure_jit.read_rows()
    measured = {(row["backend"], row["preset"], row["operation"], row["jit_compile"]) for row in rows}
    for backend_name in measure_jit.BACKENDS:
        for family in measure_jit.FAMILIES:
            for operation in ("predict", "train"):
                for jit_compile in (False, True):
                    assert (backend_name, f"{family}-small", operation, jit_compile) in measured
    suggested = measure_jit.suggest_auto(rows)
    assert {key[0] for key in suggested} == set(measure_jit.BACKENDS)
    for (backend_name, device, operation), suggestion in suggested.items():
        table = backend.AUTO_JIT_COMPILE[(backend_name, device)]
        assert table[operation] is suggestion.jit_compile, (backend_name, device, operation)


def test_a_tie_goes_to_the_setting_faster_once_compiled():
    def rows(preset, off, on):
        return [{"backend": "jax", "device": "cpu", "preset": preset, "operation": "predict", "jit_compile": jit,
                 "first_call_s": first, "second_call_s": 0.0, "steady_ms": steady}
                for jit, (first, steady) in ((False, off), (True, on))]

    # a: compiling wins the workload; b: it loses it (a slow first call) but is faster after.
    measured = rows("a", (1.0, 10.0), (1.0, 5.0)) + rows("b", (0.1, 10.0), (5.0, 9.0))
    assert measure_jit.suggest_auto(measured)[("jax", "cpu", "predict")].jit_compile is True
    measured = rows("a", (1.0, 10.0), (1.0, 5.0)) + rows("b", (0.1, 9.0), (5.0, 10.0))
    assert measure_jit.suggest_auto(measured)[("jax", "cpu", "predict")].jit_compile is False


def test_the_measuring_tool_times_both_calls_and_the_steady_state():
    model = zoo.load("dense-tiny", jit_compile=False)
    results = dict(measure_jit.measure_model(model, jit_compile=False, repeats=2))
    assert set(results) == {"predict", "train"}
    for first, second, steady, count in results.values():
        assert first > 0 and second > 0 and 0 < steady <= second and count >= 2
    row = {"first_call_s": 2.0, "second_call_s": 1.0, "steady_ms": 10.0}
    assert measure_jit.workload_seconds(row, calls=12) == pytest.approx(3.1)


def test_evaluate_compiles_as_asked_for_that_call_only():
    model = zoo.load("dense-tiny", num_features=4, jit_compile=True)
    x = np.random.default_rng(0).normal(size=(12, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    report = zoo.evaluate(model, (x, y), batch_size=4, verbose=False, jit_compile=False)
    assert model.jit_compile is True and model.predict_function is None  # as before the call
    predicted = np.argmax(to_numpy(model(x, training=False)), axis=-1)
    assert report.metrics["accuracy"] == pytest.approx(metrics.accuracy_score(y, predicted))


# --- the JAX compilation cache ----------------------------------------------


@pytest.mark.skipif(backend.name() != "jax", reason="the persistent compilation cache is jax's")
def test_jax_keeps_compiled_programs_under_zoo_home(tmp_path, monkeypatch):
    import jax

    zoo.load("dense-tiny")
    folder = settings.zoo_home() / "jax-cache"
    assert folder.is_dir() and jax.config.jax_compilation_cache_dir == str(folder)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "elsewhere"))
    model = zoo.load("dense-tiny", jit_compile=True)
    folder = tmp_path / "elsewhere" / "jax-cache"
    assert jax.config.jax_compilation_cache_dir == str(folder)
    threshold = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # tiny programs compile in under 1 s
    try:
        model.predict_on_batch(np.ones((3, 30), "float32"))
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", threshold)
    assert any(folder.iterdir()), "no compiled program was written to the cache"


# --- steps per execution ----------------------------------------------------


def test_dense_models_run_many_steps_per_call_where_keras_allows_it():
    many = 1 if backend.name() == "torch" else 32  # Keras' torch trainer runs one step per call
    small = zoo.load("dense-tiny")
    assert small.steps_per_execution == many
    small.compile(optimizer="adam", loss=small.default_loss())
    assert small.steps_per_execution == many
    assert small.predict_batches_per_call == 32  # zoo's own predict, on every backend
    small.compile(optimizer="adam", loss=small.default_loss(), steps_per_execution=1)
    assert small.steps_per_execution == small.predict_batches_per_call == 1
    assert zoo.load("dense-tiny", hidden_units=[1024, 1024]).steps_per_execution == 1  # over a million weights
    assert zoo.load("lstm-tiny").steps_per_execution == 1


@pytest.mark.skipif(backend.name() == "torch", reason="Keras' torch trainer runs one step per call")
def test_many_steps_per_call_predict_and_train_as_one_step_per_call():
    # 37 whole batches and a short one: executions of 32 steps, then of 5 and a short batch.
    x = np.random.default_rng(0).normal(size=(32 * 37 + 7, 30)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    runs = {}
    for steps in (32, 1):
        keras.utils.set_random_seed(1)
        model = zoo.load("dense-tiny", dropout=0.0)  # dropout masks are drawn differently per execution
        start = [to_numpy(weight) for weight in model.weights]
        model.compile(optimizer="adam", loss=model.default_loss(), steps_per_execution=steps)
        history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
        runs[steps] = model.predict(x, verbose=0), history["loss"], [to_numpy(weight) for weight in model.weights]
    np.testing.assert_allclose(runs[32][0], runs[1][0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(runs[32][1], runs[1][1], atol=1e-6, rtol=0)
    for expected, actual in zip(runs[1][2], runs[32][2], strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=0)
    assert max(np.abs(new - old).max() for old, new in zip(start, runs[1][2])) > 1e-2  # training moved them
