"""Token generation shared by the decoder and encoder-decoder families.

Sampling itself is keras_hub's (its samplers run the decoding loop with
`keras.ops.while_loop` on every backend); this module only turns user input
into the padded buffer and mask the samplers expect, and back.
"""

import keras_hub
import numpy as np
from keras import ops

from zoo.architectures.base import PAD_ID
from zoo.errors import InvalidConfigError

SAMPLERS = {
    "greedy": keras_hub.samplers.GreedySampler,
    "top_k": keras_hub.samplers.TopKSampler,
    "top_p": keras_hub.samplers.TopPSampler,
    "random": keras_hub.samplers.RandomSampler,
}


def get_sampler(sampler, seed=None, **options):
    """A keras_hub sampler from a name ("greedy", "top_k", ...) or an instance."""
    if isinstance(sampler, keras_hub.samplers.Sampler):
        return sampler
    if sampler not in SAMPLERS:
        raise InvalidConfigError(
            f"Unknown sampler {sampler!r}. Use one of {', '.join(SAMPLERS)}, "
            "or pass a keras_hub.samplers.Sampler instance."
        )
    if sampler != "greedy":
        options["seed"] = seed
    return SAMPLERS[sampler](**options)


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
    prompt = np.asarray(prompt_ids)
    if prompt.ndim == 1:
        prompt = prompt[None, :]
    if prompt.ndim != 2 or not np.issubdtype(prompt.dtype, np.integer):
        raise InvalidConfigError(
            f"prompt must be integer token ids of shape (batch, length), got "
            f"dtype {prompt.dtype} and shape {prompt.shape}."
        )
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
    it the single previous token. The padding id is never generated. Returns the numpy tokens with everything
    after a generated stop token set to padding.
    """

    def next_token_logits(prompt, cache, index):
        batch_size = ops.shape(prompt)[0]
        previous = ops.slice(prompt, [0, index - 1], [batch_size, 1])
        logits, cache = step(previous, cache, index - 1)
        # Padding is never a prediction: a generated 0 would be masked out of
        # attention by the very next full forward pass.
        never = ops.full((batch_size, 1), -1e9, dtype=logits.dtype)
        return ops.slice_update(logits[:, 0, :], [0, PAD_ID], never), None, cache

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
