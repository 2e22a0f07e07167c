"""`transformer`: the encoder-decoder of "Attention Is All You Need", for seq2seq."""

import dataclasses

import keras
import numpy as np
from keras import ops

from zoo.architectures import generation
from zoo.architectures import transformer_blocks as blocks
from zoo.architectures.base import ZooModel, example_token_ids, token_logits_loss
from zoo.architectures.config import PositiveInt
from zoo.data.arrays import example_target_length
from zoo.data.special_tokens import PAD_ID


@dataclasses.dataclass(frozen=True)
class TransformerConfig(blocks.TransformerDims):
    num_encoder_layers: PositiveInt = 4
    num_decoder_layers: PositiveInt = 4
    encoder_max_length: PositiveInt = 128
    decoder_max_length: PositiveInt = 128
    start_token_id: int = 1
    """Token that begins every decoder sequence."""
    end_token_id: int = 2
    """Token that ends a decoded sequence; generation stops there."""

    def __post_init__(self):
        super().__post_init__()
        for key in ("start_token_id", "end_token_id"):
            if not 0 < getattr(self, key) < self.vocab_size:
                raise ValueError(f"{key} must be in 1..vocab_size-1 (0 is padding)")

    def weight_count(self):
        """Weights of the built model, computed from the config alone (two
        embeddings; the decoder's is also its output projection)."""
        encoder = (self.embedding_weights(self.encoder_max_length)
                   + self.num_encoder_layers * self.block_weights())
        decoder = (self.embedding_weights(self.decoder_max_length)
                   + self.num_decoder_layers * self.block_weights(cross_attention=True))
        return encoder + decoder + 2 * self.final_norm_weights()

    def largest_activation(self, length=None):
        encoder, decoder = self.encoder_max_length, self.decoder_max_length
        return max(decoder * self.vocab_size, self.attention_activation(encoder, encoder),
                   self.attention_activation(decoder, max(encoder, decoder)))


@keras.saving.register_keras_serializable(package="zoo")
class TransformerSeq2Seq(ZooModel):
    """Encoder and decoder stacks with cross-attention; the decoder's output
    projection is tied to its token embedding.

    Inputs: a dict with "encoder_token_ids" and "decoder_token_ids" (0 =
    padding; the decoder input starts with `start_token_id`). Output: logits
    for the next decoder token at every decoder position.

    Example:
    >>> model = TransformerSeq2Seq(vocab_size=50, hidden_dim=16, num_heads=2,
    ...     intermediate_dim=32, num_encoder_layers=1, num_decoder_layers=1,
    ...     encoder_max_length=10, decoder_max_length=10)
    >>> model.generate(np.array([[5, 6, 7]]), max_length=6).shape
    (1, 6)
    """

    family = "transformer"
    sequence_inputs = True
    Config = TransformerConfig
    sharding = blocks.SHARDING

    def build_graph(self, config):
        encoder_ids = blocks.token_input("encoder_token_ids")
        decoder_ids = blocks.token_input("decoder_token_ids")
        encoded, encoder_mask, encoder = blocks.encode(
            encoder_ids, config, config.num_encoder_layers, config.encoder_max_length, "encoder"
        )
        x, decoder_mask, embedding = blocks.embed(decoder_ids, config, config.decoder_max_length, "decoder")
        decoder_blocks = blocks.decoder_blocks(config, config.num_decoder_layers, "decoder")
        for block in decoder_blocks:
            x = block(
                x,
                decoder_padding_mask=decoder_mask,
                encoder_sequence=encoded,
                encoder_padding_mask=encoder_mask,
            )
            blocks.use_fast_layers(block)  # after the call that built it
        norm = blocks.final_norm(config, "decoder")
        logits = embedding.token_embedding(norm(x), reverse=True)
        inputs = {"encoder_token_ids": encoder_ids, "decoder_token_ids": decoder_ids}
        layers = {
            "encoder_embedding": encoder["embedding"],
            "encoder_blocks": encoder["blocks"],
            "encoder_norm": encoder["norm"],
            "decoder_embedding": embedding,
            "decoder_blocks": decoder_blocks,
            "decoder_norm": norm,
        }
        return inputs, logits, layers

    @property
    def context_lengths(self):
        config = self.zoo_config
        return {"encoder_token_ids": config.encoder_max_length, "decoder_token_ids": config.decoder_max_length}

    @property
    def task(self):
        return "seq2seq"

    @classmethod
    def data_layout(cls, config):
        return "text-pairs"

    def example_batch(self, batch_size=2, seed=0, length=None):
        """`length` is the source length (default 16); targets are 3/4 of it."""
        config = self.zoo_config
        rng = np.random.default_rng(seed)
        length = length or 16
        source = example_token_ids(rng, batch_size, min(length, config.encoder_max_length), config.vocab_size)
        target_length = min(example_target_length(length), config.decoder_max_length)
        target = example_token_ids(rng, batch_size, target_length, config.vocab_size)
        decoder_input = np.concatenate(
            [np.full((batch_size, 1), config.start_token_id, "int32"), target[:, :-1]], axis=1
        )
        return {"encoder_token_ids": source, "decoder_token_ids": decoder_input}, target

    def default_loss(self):
        return token_logits_loss()

    def encode(self, encoder_token_ids):
        """Encoder output and padding mask for `encoder_token_ids`."""
        mask = ops.not_equal(encoder_token_ids, PAD_ID)
        x = self.encoder_embedding(encoder_token_ids)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=mask)
        return self.encoder_norm(x), mask

    def call_with_cache(self, token_ids, encoded, encoder_mask, cache, cross_cache, index,
                        cross_index=None):
        """Decoder logits for `token_ids` placed at `index`, with key/value
        caches for self-attention (updated) and cross-attention (computed once,
        when `cross_index` is 0, and reused after)."""
        x = self.decoder_embedding(token_ids, start_index=index)
        next_cache, next_cross_cache = [], []
        for layer_index, block in enumerate(self.decoder_blocks):
            x, layer_cache, layer_cross_cache = block(
                x,
                encoder_sequence=encoded,
                encoder_padding_mask=encoder_mask,
                self_attention_cache=cache[layer_index],
                self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache[layer_index],
                cross_attention_cache_update_index=cross_index,
            )
            next_cache.append(layer_cache)
            next_cross_cache.append(layer_cross_cache)
        logits = self.decoder_embedding.token_embedding(self.decoder_norm(x), reverse=True)
        return logits, tuple(next_cache), tuple(next_cross_cache)

    def generate(self, encoder_token_ids, max_length=None, sampler="greedy", seed=None,
                 stop_token_ids="end", **sampler_options):
        """Decode output token ids for `encoder_token_ids` (batch, length).

        Decoding starts from `start_token_id` and stops at `end_token_id`
        (pass `stop_token_ids=None` to always run to `max_length`). Returns a
        numpy array `(batch, max_length)` that begins with the start token;
        tokens after the end token are 0. With a tokenizer (`model.tokenizer`),
        the input may be a string or a list of strings and the result is the
        decoded text; text sources are encoded followed by the end id, so
        token-id sources should end with it too (as the training data of
        `zoo finetune` and of the pretrained presets do). `sampler` and `sampler_options` are as for
        `TransformerDecoderLM.generate` ("beam" with `num_beams=...` included).

        Example:
        >>> from zoo.data.tokenizers import train_tokenizer
        >>> model = TransformerSeq2Seq(vocab_size=50, hidden_dim=16, num_heads=2,
        ...     intermediate_dim=32, num_encoder_layers=1, num_decoder_layers=1,
        ...     encoder_max_length=10, decoder_max_length=10)
        >>> model.tokenizer = train_tokenizer(["hello world", "bye"], vocab_size=50)
        >>> outputs = model.generate(["hello world", "bye"], max_length=6, sampler="beam", num_beams=2)
        >>> len(outputs), type(outputs[0]).__name__
        (2, 'str')
        """
        config = self.zoo_config
        max_length = generation.check_length(max_length, config.decoder_max_length, "decoder")
        if stop_token_ids == "end":
            stop_token_ids = (config.end_token_id,)
        key = generation.program_key("seq2seq", sampler, sampler_options, stop_token_ids)
        sampler = generation.get_sampler(sampler, seed, **sampler_options)

        def sample_tokens(source, tokens, keep, index):
            return self._sample_with_cache(source, tokens, keep, index, sampler, stop_token_ids)

        def generate_ids(encoder_token_ids):
            source, _, _ = generation.prompt_buffer(encoder_token_ids, config.encoder_max_length, config.vocab_size)
            source = source[:, : max(1, int((source != PAD_ID).sum(axis=1).max()))]
            start = np.full((len(source), 1), config.start_token_id, "int32")
            tokens, keep, index = generation.prompt_buffer(start, max_length, config.vocab_size)
            arrays = (source, tokens, keep, np.int32(index))
            output = generation.run_sampling(self, sample_tokens, arrays, sampler, key)
            return generation.truncate_after_stop(output, keep, stop_token_ids)

        return generation.generate_from_text(
            self, encoder_token_ids, generate_ids, config.encoder_max_length, config.vocab_size,
            add_start=False, start_end_ids=(config.start_token_id, config.end_token_id),
            add_end=True,  # a source ends with the end id (as in BART and T5): training data do the same
        )

    def _sample_with_cache(self, source, tokens, keep, index, sampler, stop_token_ids):
        config = self.zoo_config
        encoded, encoder_mask = self.encode(source)
        batch_size, length = ops.shape(tokens)
        cache = blocks.empty_cache(batch_size, config.num_decoder_layers, length, config)
        cross_cache = blocks.empty_cache(batch_size, config.num_decoder_layers, ops.shape(source)[1], config)
        _, cache, cross_cache = self.call_with_cache(tokens, encoded, encoder_mask, cache, cross_cache, 0, 0)
        # The sampler repeats `cache` per beam itself; the step's closure must match it.
        encoded, encoder_mask, *cross_cache = generation.repeat_for_beams(
            sampler, encoded, encoder_mask, *cross_cache
        )

        def step(token_ids, cache, index):
            logits, cache, _ = self.call_with_cache(
                token_ids, encoded, encoder_mask, cache, cross_cache, index
            )
            return logits, cache

        return generation.sample(self, step, tokens, keep, index, cache, sampler, stop_token_ids)
