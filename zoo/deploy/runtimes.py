"""Run an exported artefact in its own runtime, without Keras: what `zoo.export`
checks each export with, and what a serving process would do.

Each `run_<format>(path, inputs)` takes `inputs`, a dict `{input name: numpy
array}` in the model's input order, and returns the first output as a numpy
array. The runtimes are imported only when used.
"""

import numpy as np

from zoo.errors import MissingDependencyError

RUNTIMES = {
    "onnx": "onnxruntime",
    "tf_saved_model": "tensorflow",
    "litert": "ai-edge-litert",
    "torch_export": "torch",
}


def run(format, path, inputs):
    """The artefact at `path` (in `format`) run on `inputs`; its first output."""
    return {
        "onnx": run_onnx,
        "tf_saved_model": run_tf_saved_model,
        "litert": run_litert,
        "torch_export": run_torch_export,
    }[format](str(path), inputs)


def runtime_module(name, format):
    """Import the runtime package `name` of `format`, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingDependencyError(
            f"Checking a {format} export needs {RUNTIMES[format]}, which is not installed: "
            "pip install 'keras-zoo[export]'."
        ) from None


def run_onnx(path, inputs):
    onnxruntime = runtime_module("onnxruntime", "onnx")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]
    return session.run(None, dict(zip(names, _matched(names, inputs))))[0]


def run_tf_saved_model(path, inputs):
    tf = runtime_module("tensorflow", "tf_saved_model")
    loaded = tf.saved_model.load(path)  # kept while serving: its variables go with it
    return np.asarray(loaded.serve(_one_or_dict(inputs)))


def run_litert(path, inputs):
    runtime_module("ai_edge_litert", "litert")
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    details = interpreter.get_input_details()
    arrays = _matched([detail["name"] for detail in details], inputs)
    for detail, array in zip(details, arrays):
        interpreter.resize_tensor_input(detail["index"], array.shape, strict=True)
    interpreter.allocate_tensors()
    for detail, array in zip(details, arrays):
        interpreter.set_tensor(detail["index"], array.astype(detail["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def run_torch_export(path, inputs):
    torch = runtime_module("torch", "torch_export")
    program = torch.export.load(path).module()
    with torch.no_grad():
        output = program(*(torch.from_numpy(np.ascontiguousarray(array)) for array in inputs.values()))
    return output.detach().cpu().numpy()


def _matched(artefact_names, inputs):
    """`inputs` in the artefact's input order: by name where each artefact
    input contains one of ours (exporters decorate names, e.g.
    "serving_default_token_ids:0"; the longest wins, so "token_type_ids" is
    not "token_ids"), else in the model's order."""
    chosen = []
    for artefact_name in artefact_names:
        matches = sorted((name for name in inputs if name in artefact_name), key=len)
        if not matches:
            return list(inputs.values())
        chosen.append(matches[-1])
    if sorted(chosen) != sorted(inputs):
        return list(inputs.values())
    return [inputs[name] for name in chosen]


def _one_or_dict(inputs):
    return next(iter(inputs.values())) if len(inputs) == 1 else dict(inputs)
