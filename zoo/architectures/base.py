"""The base class every zoo family derives from.

A family is a `ZooModel` subclass: a functional Keras model whose constructor
takes the family's typed config as keyword arguments. Serialising it stores
only that config, so `.keras` files and `get_config()` stay small, readable and
free of code; reloading simply calls the constructor again.
"""

import keras
import numpy as np

from zoo.architectures.config import check_model_size, config_to_dict, make_config
from zoo.data.arrays import check_finite, check_in_range
from zoo.data.special_tokens import PAD_ID
from zoo.runtime import backend, predicting


class ZooModel(keras.Model):
    """A functional `keras.Model` built from a family config.

    Subclasses set `family`, `Config` (a frozen dataclass) and implement
    `build_graph(config) -> (inputs, outputs, layers)`, plus `task`,
    `example_batch` and `default_loss` so that generic tools (tests, demo, benchmarks)
    can drive any family the same way.
    """

    family = None
    Config = None
    sharding = {}
    """Model parallelism: `{variable path regex: axes}`, an axis per weight
    dimension, "model" where it is split across the mesh's model axis and None
    where it is replicated (see `zoo.model_parallel`). Unlisted weights are
    replicated."""
    default_steps_per_execution = 1
    """Steps of `fit`, `evaluate` and `predict` that Keras runs per call into
    the backend on JAX and TensorFlow when `compile()` is not given
    `steps_per_execution`, and batches that `predict` on arrays runs as one
    call on every backend (torch included, see zoo/runtime/predicting.py). Families
    whose steps take well under a millisecond set more: there Keras' own
    per-step loop (iterator, callbacks, state hand-over) costs more than the
    step. Callbacks then see one batch end per execution;
    `compile(steps_per_execution=1)` brings back one per batch."""
    sequence_inputs = False
    """Whether the inputs are sequences with a length (token ids; an lstm's
    feature vectors): `example_batch` then takes `length=`, and without a
    tokenizer the zoo command cannot read text for the model."""
    tokenizer = None
    """Text <-> token ids for token families (a keras_hub tokenizer), from the
    preset's assets/tokenizer/ when it has one; `generate` and the zoo
    command use it for text in, text out."""

    @classmethod
    def data_layout(cls, config):
        """The data file the zoo command reads for a preset of this family
        with `config`: "table", "images", "text-classifier", "language-model"
        or "text-pairs" (see zoo/data/model_data.py); None when it reads none,
        and the Python API is the way in."""
        return None

    @classmethod
    def config_with_classes(cls, config, num_classes):
        """`config` (a dict) changed to output `num_classes` classes."""
        return {**config, "num_classes": num_classes}

    def adapt_to_data(self, x):
        """Fit what a freshly initialised model learns from the data itself
        before training (the dense family's input normalization); nothing
        for families without such layers."""

    def __init__(self, *, name=None, trainable=True, **config):
        zoo_config = make_config(self.Config, config, family=self.family)
        check_model_size(zoo_config, self.family)  # before a single weight is allocated
        inputs, outputs, layers = self.build_graph(zoo_config)
        super().__init__(
            inputs=inputs,
            outputs=outputs,
            name=name or self.family.replace("-", "_"),
            trainable=trainable,
        )
        self.zoo_config = zoo_config
        self._set_steps_per_execution(self.default_steps_per_execution)
        # Facts from the preset folder (label names, data set, ...); the
        # loader and zoo.finetune fill it in, save_preset writes it out.
        self.preset_metadata = {}
        # Named handles on layers that methods such as generate() reuse.
        for attribute, layer in layers.items():
            setattr(self, attribute, layer)

    @property
    def optional_inputs(self):
        """Names of inputs a call may leave out (see `complete_inputs`)."""
        return ()

    def complete_inputs(self, inputs):
        """What a call was given, completed with the inputs it may leave out
        (a family with optional inputs makes them here); as given by default."""
        return inputs

    def __call__(self, inputs, *args, **kwargs):
        # Before Keras checks the inputs against the model's (see complete_inputs).
        return super().__call__(self.complete_inputs(inputs), *args, **kwargs)

    def call(self, inputs, training=None, mask=None, **kwargs):
        # JAX's stateless calls (fit, predict) come here without __call__.
        return super().call(self.complete_inputs(inputs), training=training, mask=mask, **kwargs)

    def __setattr__(self, name, value):
        # A tokenizer is a Keras layer; tracked as one it would join the
        # model's layers and weight files. It is an asset, so store it plainly.
        if name == "tokenizer":
            object.__setattr__(self, name, value)
            return
        if name == "jit_compile":
            # A setting given directly holds for every workload. (Here, not in
            # a property setter: tensorflow's attribute tracking skips those.)
            self.__dict__.pop("_zoo_jit_request", None)
        super().__setattr__(name, value)

    def compile(self, *args, steps_per_execution=None, jit_compile="auto", run_eagerly=False, **kwargs):
        """Keras' `compile`, with two zoo defaults: `steps_per_execution` is
        the family's `default_steps_per_execution` instead of 1, and
        `jit_compile="auto"` picks the fastest measured setting per workload
        (predict, training step, generate; see
        `zoo.runtime.backend.AUTO_JIT_COMPILE`) instead of one for all.
        Like Keras' compiled steps, predict's compiled batch call is made
        afresh after it.

        Example:
        >>> import zoo
        >>> from zoo.runtime import backend
        >>> model = zoo.load("dense-tiny")
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        >>> backend.jit_compile_for(model, "train") == backend.resolve_jit_compile("auto", model, "train")
        True
        """
        if steps_per_execution is None:
            steps_per_execution = self.default_steps_per_execution
        request = False if run_eagerly else jit_compile
        super().compile(*args, steps_per_execution=backend.steps_per_execution(steps_per_execution),
                        jit_compile=backend.resolve_jit_compile(request, self, "predict"), run_eagerly=run_eagerly,
                        **kwargs)
        backend.remember_jit_request(self, request)
        self._set_steps_per_execution(steps_per_execution)
        predicting.forget_inference_function(self)

    def make_train_function(self, force=False):
        # Keras reads `jit_compile` here; "auto" may choose differently for training.
        with backend.compiling_as(self, "train"):
            return super().make_train_function(force)

    def _set_steps_per_execution(self, requested):
        self.steps_per_execution = backend.steps_per_execution(requested)
        # Keras' torch trainer takes one step per call, but the zoo's own
        # predict (zoo/runtime/predicting.py) runs the requested batches per call on
        # every backend.
        self.predict_batches_per_call = requested

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Keras' `predict`. Arrays in memory (an array, or a dict of arrays
        for several inputs) take a leaner path with the same results,
        callbacks and progress bar: each batch's outputs are copied into one
        output array (see zoo/runtime/predicting.py), where Keras keeps every batch
        and joins them at the end, holding the outputs twice.

        Example:
        >>> import zoo
        >>> model = zoo.load("dense-tiny")
        >>> model.predict(np.zeros((70, 30), "float32"), batch_size=32, verbose=0).shape
        (70, 2)
        """
        predicting.check_batch_size(batch_size)
        self.check_inputs(x, "predict() input", finite=False)  # NaN features give NaN outputs: honest
        call = predicting.in_place_call(self, x, steps)
        if call is not None:
            return predicting.predict_arrays(self, call, x, batch_size, verbose, callbacks)
        return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)

    @property
    def context_lengths(self):
        """`{input name: most positions}` for inputs with a fixed context (a
        position embedding); empty for families without one."""
        return {}

    def check_inputs(self, x, what="inputs", finite=True):
        """Refuse inputs the model would read wrongly without a word: token
        ids outside 0..vocab_size-1 (JAX gathers garbage for them, other
        backends fail deep inside), sequences longer than the model's context,
        and (with `finite`) NaN or infinite features. Checks numpy arrays (or
        a dict of them, by input name); anything else is left to Keras.

        Example:
        >>> import zoo
        >>> zoo.load("transformer-decoder-tiny").check_inputs(np.array([[5, 4096]]))
        Traceback (most recent call last):
        ...
        zoo.errors.InvalidDataError: inputs: token ids must be in 0..4095 (the vocabulary), found 4096 (1 of 2 values).
        """
        if isinstance(x, dict):
            # Keras matches a dict with an extra key to the inputs by position, not name.
            self._refuse_unknown_keys(x, what)
        for name, array in self._named_input_arrays(x):
            label = what if len(self.inputs) == 1 else f"{what}[{name!r}]"
            context = self.context_lengths.get(name)
            if context is not None and array.ndim == 2 and array.shape[1] > context:
                from zoo.errors import InvalidDataError

                raise InvalidDataError(
                    f"{label} has {array.shape[1]} positions, more than this model's context of "
                    f"{context} (its position embedding): cut or split the sequences first."
                )
            if np.issubdtype(array.dtype, np.integer):
                size, ids, where = self.input_vocabulary(name)
                if size:
                    check_in_range(array, 0, size - 1, label, ids, where)
            elif finite and np.issubdtype(array.dtype, np.floating):
                check_finite(array, label)

    def _refuse_unknown_keys(self, x, what):
        from zoo.errors import InvalidDataError

        names = [tensor.name for tensor in self.inputs]
        unknown = sorted(set(x) - set(names))
        if unknown:
            hint = " (transformers' attention_mask is the zoo's padding_mask)" if "attention_mask" in unknown else ""
            raise InvalidDataError(f"{what} has the key(s) {unknown}, which this model does not take; its "
                                   f"inputs are {sorted(names)}{hint}.")

    def input_vocabulary(self, name):
        """`(size, what the ids are, where they index)` of integer input
        `name`, for the range check; size None for inputs without one."""
        if name == "token_type_ids":
            return self.zoo_config.type_vocab_size, "token type ids", "(type_vocab_size)"
        return getattr(self.zoo_config, "vocab_size", None), "token ids", "(the vocabulary)"

    def _named_input_arrays(self, x):
        names = [tensor.name for tensor in self.inputs]
        if isinstance(x, dict):
            items = [(name, x[name]) for name in names if name in x]
        elif len(names) == 1:
            items = [(names[0], x)]
        else:  # token ids alone, for a model whose other inputs are optional
            items = [("token_ids", x)] if "token_ids" in names else []
        return [(name, value) for name, value in items if isinstance(value, np.ndarray)]

    def build_graph(self, config):
        raise NotImplementedError

    @property
    def task(self):
        raise NotImplementedError

    def example_batch(self, batch_size=2, seed=0):
        """A deterministic `(inputs, targets)` batch of the right shapes.

        Sequence families also take `length=` (tokens per row, before padding;
        the seq2seq family's targets are 3/4 of it)."""
        raise NotImplementedError

    def default_loss(self):
        """The Keras loss that fits this model's outputs (logits)."""
        raise NotImplementedError

    @property
    def head_layer_names(self):
        """Layers that map features to the task's outputs: replaced by
        `num_classes=`, trained alone by `zoo.finetune(freeze="backbone")`.
        Empty for families whose output is tied to their input embedding."""
        return tuple(layer.name for layer in self.layers if layer.name == "head")

    @property
    def label_names(self):
        """Class names from the preset metadata, or None."""
        return self.preset_metadata.get("label_names")

    def predict_labels(self, x, batch_size=32):
        """Predicted class of each input: its label name when the preset has
        label names, else its class index. Classifiers only.

        Example:
        >>> import zoo
        >>> model = zoo.load("dense-tiny", label_names=["no", "yes"])
        >>> model.predict_labels(np.zeros((2, 30), "float32"))[0] in ("no", "yes")
        True
        """
        if "classification" not in self.task:
            raise TypeError(f"predict_labels() is for classifiers; this model's task is {self.task!r}.")
        if self.tokenizer is not None and _is_text(x):
            x = self.encode_text(x)
        logits = self.predict(x, batch_size=batch_size, verbose=0)
        indices = np.argmax(logits, axis=-1)
        if self.label_names is None:
            return indices
        return [self.label_names[index] for index in indices]

    def encode_text(self, texts):
        """Model inputs for `texts` (a string or a list) through the model's
        tokenizer: token ids of the longest text's length (up to the
        context), with a padding mask when the model takes one."""
        from zoo.data import tokenizers

        context = self.context_lengths.get("token_ids")
        rows = [len(row) for row in self.tokenizer.tokenize([texts] if isinstance(texts, str) else list(texts))]
        length = min(max(rows), context) if context else max(rows)
        ids = tokenizers.encode(self.tokenizer, texts, length)
        if "padding_mask" not in [tensor.name for tensor in self.inputs]:
            return ids
        return {"token_ids": ids, "padding_mask": tokenizers.padding_mask(self.tokenizer, texts, length)}

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            **config_to_dict(self.zoo_config),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _is_text(x):
    return isinstance(x, str) or (isinstance(x, (list, tuple)) and bool(x) and all(isinstance(t, str) for t in x))


def sparse_logits_loss():
    """Cross-entropy over integer labels, from logits (every classifier here)."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def token_logits_loss(pad_id=PAD_ID):
    """Cross-entropy over next-token targets, from logits, averaged over real
    tokens only: positions whose target is padding (`pad_id`) teach nothing."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=pad_id)


def example_token_ids(rng, batch_size, length, vocab_size):
    """Token ids in [1, vocab) with trailing padding: row i keeps a random prefix."""
    ids = rng.integers(1, vocab_size, size=(batch_size, length), dtype="int32")
    lengths = rng.integers(max(1, length // 2), length + 1, size=batch_size)
    lengths[0] = length  # one row without padding
    positions = np.arange(length)[None, :]
    return np.where(positions < lengths[:, None], ids, PAD_ID).astype("int32")
