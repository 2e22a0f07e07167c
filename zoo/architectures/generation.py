"""Token generation shared by the decoder and encoder-decoder families.

Sampling itself is keras_hub's (its samplers run the decoding loop with
`keras.ops.while_loop` on every backend); this module only turns user input
(token ids, or text through the model's tokenizer) into the padded buffer and
mask the samplers expect, and back.
"""

import keras_hub
import numpy as np
from keras import ops

from zoo import tokenizers
from zoo.architectures.base import PAD_ID, token_id_matrix
from zoo.errors import InvalidConfigError

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
    if not isinstance(sampler, keras_hub.samplers.BeamSampler):
        return
    if not isinstance(sampler.num_beams, int) or sampler.num_beams < 1:
        raise InvalidConfigError(f"num_beams must be a positive integer, got {sampler.num_beams!r}.")
    if sampler.return_all_beams:
        raise InvalidConfigError(
            "generate() returns the best beam only; leave return_all_beams=False, or call "
            "a keras_hub.samplers.BeamSampler yourself to get every beam."
        )


def repeat_for_beams(sampler, *tensors):
    """`tensors` repeated along axis 0 once per beam, as BeamSampler repeats the cache.

    A step function that closes over batch-sized tensors (an encoder output,
    its mask) must see them at the beam-expanded batch size.
    """
    if not isinstance(sampler, keras_hub.samplers.BeamSampler) or sampler.num_beams == 1:
        return tensors
    return tuple(ops.repeat(tensor, sampler.num_beams, axis=0) for tensor in tensors)


def check_length(max_length, limit, what):
    if not 1 <= max_length <= limit:
        raise InvalidConfigError(
            f"max_length={max_length} is out of range for this model's {what}: "
            f"use 1 to {limit} (the model's position embedding size)."
        )


def prompt_buffer(prompt_ids, max_length):
    """Right-pad prompts into a `(batch, max_length)` int32 buffer.

    Returns `(tokens, keep, start)`: `keep` marks the prompt tokens samplers
    must not overwrite, `start` is the shortest prompt's length, where decoding
    begins.
    """
    prompt = token_id_matrix(prompt_ids, "prompt")
    lengths = (prompt != PAD_ID).sum(axis=1)
    if prompt.shape[1] > max_length or lengths.min() < 1:
        raise InvalidConfigError(
            f"every prompt needs 1 to max_length={max_length} tokens; got prompt "
            f"lengths {lengths.tolist()} in a buffer of {prompt.shape[1]}."
        )
    tokens = np.full((prompt.shape[0], max_length), PAD_ID, dtype="int32")
    tokens[:, : prompt.shape[1]] = prompt
    return tokens, tokens != PAD_ID, int(lengths.min())


def truncate_after_stop(tokens, keep, stop_token_ids):
    """Pad everything after the first generated stop token of each row."""
    tokens = np.array(tokens)
    if not stop_token_ids:
        return tokens
    generated_stop = np.isin(tokens, stop_token_ids) & ~keep
    after_stop = np.cumsum(generated_stop, axis=1) - generated_stop > 0
    tokens[after_stop] = PAD_ID
    return tokens


def decode(model, step, tokens, keep, start, cache, sampler, stop_token_ids):
    """Fill `tokens` from position `start` on with `sampler`.

    `step(token_ids, cache, index) -> (logits, cache)` runs the model on the
    tokens placed at `index` with a key/value cache; each sampler step feeds
    it the single previous token. The padding id is never generated. Returns
    the numpy tokens with everything after a generated stop token set to padding.
    """

    def next_token_logits(prompt, cache, index):
        batch_size = ops.shape(prompt)[0]
        previous = ops.slice(prompt, [0, index - 1], [batch_size, 1])
        logits, cache = step(previous, cache, index - 1)
        logits = logits[:, 0, :]
        # Padding is never a prediction: a generated 0 would be masked out of
        # attention by the very next full forward pass.
        never = ops.full((batch_size, 1), NEVER, dtype=logits.dtype)
        logits = ops.slice_update(logits, [0, PAD_ID], never)
        return force_prompt_tokens(logits, ops.slice(prompt, [0, index], [batch_size, 1])), None, cache

    output = sampler(
        next_token_logits,
        ops.convert_to_tensor(tokens),
        cache=cache,
        index=start,
        mask=ops.convert_to_tensor(keep),
        stop_token_ids=stop_token_ids,
        model=model,
    )
    return truncate_after_stop(ops.convert_to_numpy(output), keep, stop_token_ids)


def force_prompt_tokens(logits, current):
    """Logits that leave only the prompt token where `current` (batch, 1) holds one.

    Samplers overwrite those positions with the prompt anyway, but BeamSampler
    scores its beams before that: without this, a longer prompt in a ragged
    batch would be scored (and its beams chosen) on tokens that never appear.
    """
    is_prompt = ops.not_equal(current, PAD_ID)
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
            "`model.tokenizer = zoo.tokenizers.load_tokenizer(folder)` (or "
            "`zoo.tokenizers.train_tokenizer(texts, vocab_size)`). Or pass integer token ids."
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
    expected = (tokenizers.START_ID, tokenizers.END_ID)
    if start_end_ids is not None and tuple(start_end_ids) != expected:
        raise InvalidConfigError(
            f"Text generation needs start_token_id/end_token_id = {expected} (the tokenizer's), "
            f"but this model has {tuple(start_end_ids)}; pass token ids instead, or build the "
            "model with the default start/end ids."
        )
    ids = tokenizers.encode(tokenizer, inputs, length, add_start=add_start, add_end=add_end)
    texts = tokenizers.decode(tokenizer, generate_ids(ids))
    return texts[0] if isinstance(inputs, str) else texts
