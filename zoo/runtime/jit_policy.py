"""What `jit_compile="auto"` compiles, per backend, device kind and workload.

Plain data, importing no Keras: zoo.runtime.backend resolves "auto" with it,
and the benchmark tools read it to name the rows that "auto" runs.
"""

# What `jit_compile="auto"` means per (backend, device kind) and workload:
# Keras' predict and evaluate steps ("predict"), its training step ("train")
# and the zoo's generate() ("generate"). Each is compiled where that made most
# of the families' workloads faster in tools/measure_jit.py's run recorded in
# tools/jit_measurements.csv (2 CPU cores; each family's small preset, batch
# 32; a workload is 100 calls of one preset's operation, compile time
# included; a tie goes to the setting that is faster once compiled, since
# longer workloads decide by that). tests/test_jit.py keeps this table and
# that file in agreement.
# - jax on CPU: every workload compiled. Uncompiled, jax dispatches every op
#   from Python: steady state is 2-117x slower (the LSTM most).
# - tensorflow on CPU: predict and generate compiled, training not. Without
#   XLA Keras still runs a tf.function graph. XLA makes the transformer
#   families' inference 1.2-1.4x faster and the LSTM's 1.5x, generate()
#   17-21x (the decoding loop becomes one program), but it slows the dense,
#   cnn and lstm training steps 1.4-3x and costs 1-8 s of compiling there.
# - torch on CPU: nothing compiled. torch.compile spends 17-170 s per model
#   and operation (Inductor builds C++ kernels, and compiles Keras' step again
#   on the second call) for steady-state gains of at most 4x (0.1-0.6x, i.e.
#   slower, for dense and lstm) that take 280-3400 calls to repay; Keras
#   cannot compile generate()'s loop on torch at all.
# GPU and TPU rows were not measured (no accelerator on the machine that ran
# the tool); they follow Keras' own "auto": XLA for jax and tensorflow, eager
# for torch. Run tools/measure_jit.py on such a machine to check them.
WORKLOADS = ("predict", "train", "generate")
ALL_COMPILED = dict.fromkeys(WORKLOADS, True)
NONE_COMPILED = dict.fromkeys(WORKLOADS, False)
AUTO_JIT_COMPILE = {
    ("jax", "cpu"): ALL_COMPILED,
    ("jax", "gpu"): ALL_COMPILED,
    ("jax", "tpu"): ALL_COMPILED,
    ("tensorflow", "cpu"): {"predict": True, "train": False, "generate": True},
    ("tensorflow", "gpu"): ALL_COMPILED,
    ("tensorflow", "tpu"): ALL_COMPILED,
    ("torch", "cpu"): NONE_COMPILED,
    ("torch", "gpu"): NONE_COMPILED,
}


def auto_setting(backend_name, device, workload):
    """Whether "auto" compiles `workload` ("predict", "train" or "generate")
    on `backend_name` and `device` ("cpu", "gpu" or "tpu"); off where unmeasured.

    Example:
    >>> auto_setting("tensorflow", "cpu", "train"), auto_setting("jax", "cpu", "train")
    (False, True)
    """
    if workload not in WORKLOADS:
        raise ValueError(f"workload={workload!r}: use one of {WORKLOADS}")
    return AUTO_JIT_COMPILE.get((backend_name, device), NONE_COMPILED)[workload]


def bench_workload(mode):
    """The workload of a benchmark mode: "train" for "train", "predict" for "infer"."""
    return "train" if mode == "train" else "predict"
