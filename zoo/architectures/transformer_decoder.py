"""`transformer-decoder`: a GPT-style causal language model with `generate()`."""

import dataclasses

import keras
import numpy as np
from keras import ops

from zoo.architectures import generation
from zoo.architectures import transformer_blocks as blocks
from zoo.architectures.base import ZooModel, example_token_ids, token_logits_loss
from zoo.data.arrays import next_token_targets
from zoo.architectures.config import PositiveInt


@dataclasses.dataclass(frozen=True)
class TransformerDecoderConfig(blocks.StackDims):
    num_layers: PositiveInt = 4
    max_length: PositiveInt = 256
    """Longest sequence, prompt plus generated tokens."""

    def weight_count(self):
        """Weights of the built model, computed from the config alone (the
        output projection is the token embedding)."""
        return (self.embedding_weights(self.max_length) + self.num_layers * self.block_weights()
                + self.final_norm_weights())

    def largest_activation(self, length=None):
        logits = self.max_length * self.vocab_size
        return max(logits, self.attention_activation(self.max_length, self.max_length))


@keras.saving.register_keras_serializable(package="zoo")
class TransformerDecoderLM(ZooModel):
    """Causal decoder blocks over token + position embeddings; the output
    projection is tied to the token embedding. Input: token ids (0 = padding);
    output: next-token logits at every position. GPT-2 checkpoints load into
    this family (tanh-approximate GELU, no padding id).

    Example:
    >>> model = TransformerDecoderLM(vocab_size=50, hidden_dim=16, num_heads=2,
    ...                              intermediate_dim=32, num_layers=1, max_length=12)
    >>> model.generate(np.array([[5, 6, 7]]), max_length=8).shape
    (1, 8)
    """

    family = "transformer-decoder"
    sequence_inputs = True
    Config = TransformerDecoderConfig
    sharding = blocks.SHARDING

    def build_graph(self, config):
        inputs = blocks.stack_inputs(config)
        x, mask, embedding = blocks.embed(inputs, config, config.max_length, "decoder")
        decoder_blocks = blocks.decoder_blocks(config, config.num_layers, "decoder")
        for block in decoder_blocks:
            x = block(x, decoder_padding_mask=mask)
            blocks.use_fast_layers(block)  # after the call that built it
        norm = blocks.final_norm(config, "decoder")
        logits = embedding.token_embedding(norm(x), reverse=True)
        layers = {"embedding": embedding, "decoder_blocks": decoder_blocks, "final_norm": norm}
        return inputs, logits, layers

    @property
    def optional_inputs(self):
        return self.zoo_config.optional_inputs()

    def complete_inputs(self, inputs):
        return blocks.complete_inputs(inputs, self.zoo_config)

    @property
    def context_lengths(self):
        return {"token_ids": self.zoo_config.max_length}

    @property
    def task(self):
        return "language-modelling"

    @classmethod
    def data_layout(cls, config):
        return "language-model"

    def example_batch(self, batch_size=2, seed=0, length=16):
        config = self.zoo_config
        rng = np.random.default_rng(seed)
        x = example_token_ids(rng, batch_size, min(length, config.max_length), config.vocab_size)
        y = next_token_targets(x)
        return x, y

    def default_loss(self):
        return token_logits_loss(self.zoo_config.pad_token_id)

    def call_with_cache(self, token_ids, cache, index):
        """Logits for `token_ids` placed at `index`, reading and updating the
        key/value cache so earlier positions are never recomputed."""
        x = self.embedding(token_ids, start_index=index)
        next_cache = []
        for layer_index, block in enumerate(self.decoder_blocks):
            x, layer_cache = block(
                x,
                self_attention_cache=cache[layer_index],
                self_attention_cache_update_index=index,
            )
            next_cache.append(layer_cache)
        logits = self.embedding.token_embedding(self.final_norm(x), reverse=True)
        return logits, tuple(next_cache)

    def generate(self, prompt_ids, max_length=None, sampler="greedy", seed=None,
                 stop_token_ids=None, **sampler_options):
        """Continue prompts to `max_length` tokens with cached decoding.

        `prompt_ids` is `(batch, length)` integer ids (right-padded with 0) or
        one 1-D prompt; the result is a numpy array `(batch, max_length)`
        holding prompt and continuation, with tokens after a generated stop
        token set to 0. With a tokenizer (`model.tokenizer`), `prompt_ids` may
        be a string or a list of strings (each encoded after a start token)
        and the result is the prompt plus continuation as text, to the first
        end token. `sampler` is "greedy", "beam", "top_k", "top_p", "random"
        or a keras_hub sampler; `sampler_options` go to it (e.g. `k=5`,
        `num_beams=4`).

        Example:
        >>> from zoo.data.tokenizers import train_tokenizer
        >>> model = TransformerDecoderLM(vocab_size=50, hidden_dim=16, num_heads=2,
        ...                              intermediate_dim=32, num_layers=1, max_length=12)
        >>> model.generate(np.array([[5, 6, 7]]), max_length=8, sampler="beam", num_beams=2).shape
        (1, 8)
        >>> model.tokenizer = train_tokenizer(["the cat sat on the mat"], vocab_size=50)
        >>> model.generate("the cat", max_length=8).startswith("the cat")
        True
        """
        max_length = generation.check_length(max_length, self.zoo_config.max_length, "decoder")
        key = generation.program_key("decoder", sampler, sampler_options, stop_token_ids)
        sampler = generation.get_sampler(sampler, seed, **sampler_options)
        pad_id = self.zoo_config.pad_token_id

        def sample_tokens(tokens, keep, start):
            batch_size, length = ops.shape(tokens)
            cache = blocks.empty_cache(batch_size, self.zoo_config.num_layers, length, self.zoo_config)
            _, cache = self.call_with_cache(tokens, cache, 0)
            return generation.sample(self, self.call_with_cache, tokens, keep, start, cache, sampler, stop_token_ids,
                                     pad_id)

        def generate_ids(prompt_ids):
            tokens, keep, start = generation.prompt_buffer(prompt_ids, max_length, self.zoo_config.vocab_size, pad_id,
                                                           stop_token_ids)
            # `start` goes in as an array: a compiled program would take a number as a constant.
            arrays = (tokens, keep, np.int32(start))
            output = generation.run_sampling(self, sample_tokens, arrays, sampler, key)
            return generation.truncate_after_stop(output, keep, stop_token_ids, pad_id)

        return generation.generate_from_text(
            self, prompt_ids, generate_ids, max_length, self.zoo_config.vocab_size, add_start=True
        )
