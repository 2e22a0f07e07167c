"""Token generation shared by the decoder and encoder-decoder families.

Sampling itself is keras_hub's (its samplers run the decoding loop with
`keras.ops.while_loop` on every backend); this module only turns user input
(token ids, or text through the model's tokenizer) into the padded buffer and
mask the samplers expect, and back, and compiles the whole decoding (prefill
and sampling loop) into one program that later calls reuse when the model's
`jit_compile` is on (`run_sampling`).
"""

import numpy as np
from keras import ops

from zoo.data.arrays import check_in_range, token_id_matrix
from zoo.data import special_tokens, tokenizers
from zoo.data.special_tokens import PAD_ID
from zoo.errors import InvalidConfigError
from zoo.runtime import backend
from zoo.runtime.quiet_imports import keras_hub

SAMPLERS = {
    "greedy": keras_hub.samplers.GreedySampler,
    "beam": keras_hub.samplers.BeamSampler,
    "top_k": keras_hub.samplers.TopKSampler,
    "top_p": keras_hub.samplers.TopPSampler,
    "random": keras_hub.samplers.RandomSampler,
}
DETERMINISTIC_SAMPLERS = ("greedy", "beam")  # these take no seed
NEVER = -1e9  # a logit whose probability underflows to exactly 0


def get_sampler(sampler, seed=None, **options):
    """A keras_hub sampler from a name ("greedy", "beam", "top_k", ...) or an instance.

    Example:
    >>> get_sampler("beam", num_beams=3).num_beams
    3
    """
    if isinstance(sampler, keras_hub.samplers.Sampler):
        check_sampler(sampler)
        return sampler
    if sampler not in SAMPLERS:
        raise InvalidConfigError(
            f"Unknown sampler {sampler!r}. Use one of {', '.join(SAMPLERS)}, "
            "or pass a keras_hub.samplers.Sampler instance."
        )
    if sampler not in DETERMINISTIC_SAMPLERS:
        options["seed"] = seed
    try:
        instance = SAMPLERS[sampler](**options)
    except TypeError as error:
        raise InvalidConfigError(
            f"sampler {sampler!r} does not take the options {sorted(options)}: {error}. "
            f"See keras_hub.samplers.{SAMPLERS[sampler].__name__} for the ones it takes."
        ) from None
    check_sampler(instance)
    return instance


def check_sampler(sampler):
    """Refuse sampler settings that would fail deep inside decoding (k=0
    takes the argmax of nothing, temperature 0 divides by zero)."""
    temperature = getattr(sampler, "temperature", 1.0)
    if not _is_number(temperature) or not temperature > 0:
        raise InvalidConfigError(f"temperature must be a number > 0, got {temperature!r}.")
    if isinstance(sampler, keras_hub.samplers.TopKSampler) and not (
            isinstance(sampler.k, int) and not isinstance(sampler.k, bool) and sampler.k >= 1):
        raise InvalidConfigError(f"k must be a whole number >= 1 (tokens to sample among), got {sampler.k!r}.")
    if isinstance(sampler, keras_hub.samplers.TopPSampler) and not (_is_number(sampler.p) and 0 < sampler.p <= 1):
        raise InvalidConfigError(f"p must be a probability in (0, 1], got {sampler.p!r}.")
    if not isinstance(sampler, keras_hub.samplers.BeamSampler):
        return
    if not isinstance(sampler.num_beams, int) or sampler.num_beams < 1:
        raise InvalidConfigError(f"num_beams must be a positive integer, got {sampler.num_beams!r}.")
    if sampler.return_all_beams:
        raise InvalidConfigError(
            "generate() returns the best beam only; leave return_all_beams=False, or call "
            "a keras_hub.samplers.BeamSampler yourself to get every beam."
        )


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)


def repeat_for_beams(sampler, *tensors):
    """`tensors` repeated along axis 0 once per beam, as BeamSampler repeats the cache.

    A step function that closes over batch-sized tensors (an encoder output,
    its mask) must see them at the beam-expanded batch size.
    """
    if not isinstance(sampler, keras_hub.samplers.BeamSampler) or sampler.num_beams == 1:
        return tensors
    return tuple(ops.repeat(tensor, sampler.num_beams, axis=0) for tensor in tensors)


def check_length(max_length, limit, what):
    """`max_length` checked to be a whole number in 1..`limit`; `limit` when it is None.

    Example:
    >>> check_length(None, 128, "decoder"), check_length(20, 128, "decoder")
    (128, 20)
    """
    if max_length is None:
        return limit
    whole = isinstance(max_length, (int, np.integer)) and not isinstance(max_length, bool)
    if not whole or not 1 <= max_length <= limit:
        raise InvalidConfigError(
            f"max_length={max_length!r} is out of range for this model's {what}: "
            f"use a whole number from 1 to {limit} (the model's position embedding size), "
            "or leave it out for the whole context."
        )
    return int(max_length)


def prompt_buffer(prompt_ids, max_length, vocab_size, pad_id=PAD_ID, stop_token_ids=None):
    """Right-pad prompts into a `(batch, max_length)` int32 buffer.

    Returns `(tokens, keep, start)`: `keep` marks the prompt tokens samplers
    must not overwrite, `start` is the shortest prompt's length, where decoding
    begins. A prompt ends at its first `pad_id`; with `pad_id` None (a
    vocabulary without padding, GPT-2's) every id is a prompt token. Ids
    outside 0..vocab_size-1 are refused: JAX would embed garbage for them and
    the other backends fail deep inside.
    """
    prompt = token_id_matrix(prompt_ids, "prompt")
    check_in_range(prompt, 0, vocab_size - 1, "prompt", "token ids", "(the vocabulary)")
    real = np.ones(prompt.shape, bool) if pad_id is None else prompt != pad_id
    lengths = real.sum(axis=1)
    if prompt.shape[1] > max_length or lengths.min() < 1:
        raise InvalidConfigError(
            f"every prompt needs 1 to max_length={max_length} tokens; got prompt "
            f"lengths {lengths.tolist()} in a buffer of {prompt.shape[1]}."
        )
    fill = _first_id_not_in(stop_token_ids or ()) if pad_id is None else pad_id
    tokens = np.full((prompt.shape[0], max_length), fill, dtype="int32")
    tokens[:, : prompt.shape[1]] = prompt
    keep = np.zeros(tokens.shape, bool)
    keep[:, : prompt.shape[1]] = real
    return tokens, keep, int(lengths.min())


def _first_id_not_in(ids):
    taken = {int(token) for token in ids}
    return next(token for token in range(len(taken) + 1) if token not in taken)


def truncate_after_stop(tokens, keep, stop_token_ids, pad_id=PAD_ID):
    """Pad everything after the first generated stop token of each row (with
    `pad_id`; with the stop token itself for a vocabulary without padding)."""
    tokens = np.array(tokens)
    if not stop_token_ids:
        return tokens
    generated_stop = np.isin(tokens, stop_token_ids) & ~keep
    after_stop = np.cumsum(generated_stop, axis=1) - generated_stop > 0
    tokens[after_stop] = stop_token_ids[0] if pad_id is None else pad_id
    return tokens


def sample(model, step, tokens, keep, start, cache, sampler, stop_token_ids, pad_id=PAD_ID):
    """Fill the `tokens` tensor from position `start` on with `sampler`.

    `step(token_ids, cache, index) -> (logits, cache)` runs the model on the
    tokens placed at `index` with a key/value cache; each sampler step feeds
    it the single previous token. The padding id (`pad_id`, unless None) is
    never generated. Returns the tokens tensor, stop tokens not yet applied
    (see `truncate_after_stop`). Written in keras.ops alone, so that it can
    run inside a compiled program.
    """

    def next_token_logits(prompt, cache, index):
        batch_size = ops.shape(prompt)[0]
        previous = ops.slice(prompt, [0, index - 1], [batch_size, 1])
        logits, cache = step(previous, cache, index - 1)
        logits = logits[:, 0, :]
        if pad_id is not None:
            # Padding is never a prediction: a generated pad would be masked out of
            # attention by the very next full forward pass.
            never = ops.full((batch_size, 1), NEVER, dtype=logits.dtype)
            logits = ops.slice_update(logits, [0, pad_id], never)
        is_prompt = ops.slice(beam_keep, [0, index], [batch_size, 1])
        return force_prompt_tokens(logits, ops.slice(prompt, [0, index], [batch_size, 1]), is_prompt), None, cache

    keep = ops.convert_to_tensor(keep)
    (beam_keep,) = repeat_for_beams(sampler, keep)  # the prompt the step sees is beam-expanded
    return sampler(
        next_token_logits,
        tokens,
        cache=cache,
        index=start,
        mask=keep,
        stop_token_ids=stop_token_ids,
        model=model,
    )


def run_sampling(model, sample_tokens, arrays, sampler, key):
    """`sample_tokens(*arrays)` (tensors in, a tokens tensor out) as numpy.

    When `model` compiles generation (`jit_compile` on, or "auto" where that
    compiles generate(); see zoo.runtime.backend) and the backend can compile the whole
    decoding loop (jax, tensorflow), it runs as one compiled program, traced
    and compiled once per `key` and input shapes and reused by later calls:
    `key` must name everything else `sample_tokens` closes over (sampler
    options, stop tokens). Otherwise it runs as it is (on jax, keras'
    while_loop then compiles its body again on every call).
    """
    arrays = [ops.convert_to_tensor(array) for array in arrays]
    with backend.inference_mode():
        compiled = backend.jit_compile_for(model, "generate")
        program = compiled_program(model, sample_tokens, sampler, key) if compiled else None
        tokens = sample_tokens(*arrays) if program is None else program(sampler, arrays)
        return ops.convert_to_numpy(tokens)


def compiled_program(model, sample_tokens, sampler, key):
    """The `CompiledSampling` of `key` on `model`, made on first use; None
    where the backend cannot compile a decoding loop (torch)."""
    programs = compiled_samplers(model)
    key = (key, tuple(id(variable) for variable in model.variables))  # LoRA adds variables
    if key not in programs:
        program = CompiledSampling(model, sample_tokens, sampler)
        if program.program is None:
            return None
        programs[key] = program
    return programs[key]


def compiled_samplers(model):
    """The `CompiledSampling` programs `run_sampling` keeps on `model`, by key."""
    if "_zoo_compiled_samplers" not in model.__dict__:
        # Set past Keras' attribute tracking: these are functions, not layers.
        object.__setattr__(model, "_zoo_compiled_samplers", {})
    return model.__dict__["_zoo_compiled_samplers"]


class CompiledSampling:
    """`sample_tokens` compiled once and reused with new samplers of the same settings.

    The program belongs to the sampler it was traced with; a later call's
    sampler lends it its seed state and takes back the advanced one, so a
    seed gives the same tokens as without compilation. `traces` counts how
    often the Python function was traced (once per input shapes).
    """

    def __init__(self, model, sample_tokens, sampler):
        self.sampler = sampler
        self.sample_tokens = sample_tokens
        self.traces = 0
        self.program = backend.compile_function(self.traced_sample, sampler.variables + model.variables)

    def traced_sample(self, *arrays):
        self.traces += 1  # Python runs this only while the program is traced
        return self.sample_tokens(*arrays)

    def __call__(self, sampler, arrays):
        for own, lent in zip(self.sampler.variables, sampler.variables):
            own.assign(lent.value)
        tokens = self.program(*arrays)
        for own, lent in zip(self.sampler.variables, sampler.variables):
            lent.assign(own.value)
        return tokens


def program_key(kind, sampler, options, stop_token_ids):
    """What a compiled decoding program depends on besides the model and the
    input shapes: the `kind` of generate(), its `sampler` argument (a name and
    its options, or an instance by identity) and the stop tokens. Not the
    seed: the sampler's seed state goes into the program as an argument.

    Example:
    >>> program_key("decoder", "top_k", {"k": 5}, [2]) == program_key("decoder", "top_k", {"k": 5}, (2,))
    True
    """
    if isinstance(sampler, keras_hub.samplers.Sampler):
        sampler = ("instance", id(sampler))
    else:
        sampler = (sampler, tuple(sorted((name, repr(value)) for name, value in options.items())))
    stops = None if stop_token_ids is None else tuple(int(token) for token in stop_token_ids)
    return kind, sampler, stops


def force_prompt_tokens(logits, current, is_prompt):
    """Logits that leave only the prompt token `current` (batch, 1) where
    `is_prompt` (batch, 1) says it is one.

    Samplers overwrite those positions with the prompt anyway, but BeamSampler
    scores its beams before that: without this, a longer prompt in a ragged
    batch would be scored (and its beams chosen) on tokens that never appear.
    """
    only_prompt = (ops.one_hot(current[:, 0], ops.shape(logits)[-1], dtype=logits.dtype) - 1) * -NEVER
    return ops.where(is_prompt, only_prompt, logits)


def is_text(inputs):
    """Whether generate() inputs are text (a string or a list of strings).

    Example:
    >>> is_text(["a prompt"]), is_text(np.array([[5, 6]]))
    (True, False)
    """
    if isinstance(inputs, str):
        return True
    is_sequence = isinstance(inputs, (list, tuple)) and bool(inputs)
    return is_sequence and all(isinstance(item, str) for item in inputs)


def text_tokenizer(model, vocab_size):
    """The model's tokenizer, checked to fit an embedding of `vocab_size` ids."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise InvalidConfigError(
            f"This {model.family} model has no tokenizer, so generate() cannot take text. "
            "Load a preset that ships assets/tokenizer/, or give it one: "
            "`model.tokenizer = zoo.data.tokenizers.load_tokenizer(folder)` (or "
            "`zoo.data.tokenizers.train_tokenizer(texts, vocab_size)`). Or pass integer token ids."
        )
    if tokenizer.vocabulary_size() > vocab_size:
        raise InvalidConfigError(
            f"The tokenizer has {tokenizer.vocabulary_size()} tokens but the model embeds only "
            f"vocab_size={vocab_size}; train the tokenizer with vocab_size<={vocab_size}."
        )
    return tokenizer


def generate_from_text(model, inputs, generate_ids, length, vocab_size, add_start,
                       start_end_ids=None, add_end=False):
    """Text in, text out around `generate_ids(token_ids) -> numpy ids`.

    Token-id `inputs` go straight to `generate_ids`. Text is encoded with the
    model's tokenizer into `length` ids (longer texts are truncated; with
    `add_start` each begins with the start id, with `add_end` each ends with
    the end id, as seq2seq sources do), and the generated ids are
    decoded back: one string for one string, a list for a list.
    `start_end_ids` are the model's own start/end ids, which must be the
    tokenizer's for its output to decode.
    """
    if not is_text(inputs):
        return generate_ids(inputs)
    tokenizer = text_tokenizer(model, vocab_size)
    expected = (special_tokens.START_ID, special_tokens.END_ID)
    if start_end_ids is not None and tuple(start_end_ids) != expected:
        raise InvalidConfigError(
            f"Text generation needs start_token_id/end_token_id = {expected} (the tokenizer's), "
            f"but this model has {tuple(start_end_ids)}; pass token ids instead, or build the "
            "model with the default start/end ids."
        )
    if getattr(tokenizer, "pad_id", PAD_ID) is None and not isinstance(inputs, str):
        # Without a padding id (GPT-2) a shorter prompt cannot be padded out
        # to the longest, so each prompt is continued on its own.
        return [generate_from_text(model, text, generate_ids, length, vocab_size, add_start, start_end_ids, add_end)
                for text in inputs]
    ids = tokenizers.encode(tokenizer, inputs, length, add_start=add_start, add_end=add_end)
    if getattr(tokenizer, "pad_id", PAD_ID) is None:
        ids = ids[:, : int(tokenizers.padding_mask(tokenizer, inputs, length).sum())]
    texts = tokenizers.decode(tokenizer, generate_ids(ids))
    return texts[0] if isinstance(inputs, str) else texts
