"""Native PyTorch twins of the zoo's six families: the yardstick of the zoo's speed.

The zoo's samples/s are reported as a ratio against these models, so each is
what a PyTorch engineer would write by hand for the same architecture, with
standard modules and nothing from Keras: nn.Linear stacks, ResNet basic
blocks of nn.Conv2d + nn.BatchNorm2d (NCHW), nn.LSTM over packed sequences,
nn.TransformerEncoder / nn.TransformerDecoder. They are for benchmarking
only; `copy_zoo_weights` proves a twin is its preset's architecture by making
it reproduce the zoo model's outputs.

    python tools/native_torch.py cnn-small --mode train --json
    python tools/native_torch.py transformer-small --mode infer --batch-size 32 --length 64 --json

The batch is the zoo model's own `example_batch` (seed 0), made in a child
process (KERAS_BACKEND=torch) so that Keras never loads into the measured
process and its peak memory is the native model's alone. Images arrive NHWC
and are converted to NCHW once, before timing (`native_inputs`).

Parameters are counted as Keras' `count_params()` does (`count_params`):
trainable weights plus the state Keras keeps as weights (normalisation
statistics, batch-norm moving averages). Where PyTorch's module holds more
than the Keras layer, the twin narrows it: nn.LSTM's second (recurrent) bias
is a constant zero, since Keras' LSTM has one bias per gate. Known
differences, none in a real position's eval output: PyTorch's transformer
layers also apply dropout after the feed-forward activation (keras_hub does
not); nn.BatchNorm2d updates its running variance with the unbiased batch
variance; a per-step LSTM outputs head(0) at padded steps where Keras repeats
the last real step (padded steps carry no loss).
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.data.special_tokens import PAD_ID

ROOT = Path(__file__).resolve().parents[1]
NORMALIZATION_EPSILON = 1e-7  # keras.backend.epsilon(): Normalization's floor on the standard deviation
BATCH_NORM_EPSILON = 1e-3  # Keras' BatchNormalization default
LAYER_NORM_EPSILON = 1e-5  # keras_hub's transformer blocks and the zoo's final norms
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}  # GELU exact, as Keras'
SEQUENCE_FAMILIES = ("lstm", "transformer-encoder", "transformer-decoder", "transformer")


# ---------------------------------------------------------------- dense


class NativeDense(nn.Module):
    """MLP: a fixed input affine (Keras' Normalization), Linear + activation + dropout, a linear head."""

    def __init__(self, config):
        super().__init__()
        # The statistics Normalization.adapt() sets: identity until adapted, never trained.
        self.register_buffer("mean", torch.zeros(config.num_features))
        self.register_buffer("variance", torch.ones(config.num_features))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))  # adapt()'s sample count, as Keras keeps it
        layers, width = [], config.num_features
        for units in config.hidden_units:
            layers += [nn.Linear(width, units), ACTIVATIONS[config.activation](), nn.Dropout(config.dropout)]
            width = units
        outputs = config.num_classes if config.task == "classification" else config.num_targets
        layers.append(nn.Linear(width, outputs))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features):
        scale = self.variance.sqrt().clamp_min(NORMALIZATION_EPSILON)
        return self.mlp((features - self.mean) / scale)


# ---------------------------------------------------------------- cnn


def same_padding(size, kernel_size, stride):
    """Keras/TensorFlow "same" padding of one spatial axis: (before, after, output size).
    An odd total puts the extra row or column after (bottom/right)."""
    output = -(-size // stride)
    total = max((output - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2, output


class SameConv2d(nn.Conv2d):
    """Bias-free Conv2d with Keras' "same" padding. PyTorch's `padding=` is
    symmetric, and a stride-2 convolution of an even size pads only the
    bottom/right in Keras, so that case pads explicitly first."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, input_size):
        pads = [same_padding(size, kernel_size, stride) for size in input_size]
        symmetric = all(before == after for before, after, _ in pads)
        super().__init__(in_channels, out_channels, kernel_size, stride, bias=False,
                         padding=tuple(before for before, _, _ in pads) if symmetric else 0)
        (top, bottom, height), (left, right, width) = pads
        self.explicit_padding = None if symmetric else (left, right, top, bottom)
        self.output_size = (height, width)

    def forward(self, x):
        if self.explicit_padding:
            x = F.pad(x, self.explicit_padding)
        return super().forward(x)


class ConvBN(nn.Module):
    """SameConv2d, BatchNorm2d (Keras' epsilon; Keras momentum m is PyTorch's 1 - m), optional ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, input_size, momentum, relu=True):
        super().__init__()
        self.conv = SameConv2d(in_channels, out_channels, kernel_size, stride, input_size)
        self.bn = nn.BatchNorm2d(out_channels, eps=BATCH_NORM_EPSILON, momentum=1 - momentum)
        self.relu = relu
        self.output_size = self.conv.output_size

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x, inplace=True) if self.relu else x


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 ConvBNs, a 1x1 ConvBN shortcut when the shape changes."""

    def __init__(self, in_channels, filters, stride, input_size, config):
        super().__init__()
        conv = dict(momentum=config.norm_momentum)
        self.a = ConvBN(in_channels, filters, config.kernel_size, stride, input_size, **conv)
        self.b = ConvBN(filters, filters, config.kernel_size, 1, self.a.output_size, relu=False, **conv)
        self.shortcut = None
        if stride != 1 or in_channels != filters:
            self.shortcut = ConvBN(in_channels, filters, 1, stride, input_size, relu=False, **conv)
        self.output_size = self.b.output_size

    def forward(self, x):
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu(shortcut + self.b(self.a(x)), inplace=True)


class NativeCNN(nn.Module):
    """Stem ConvBN, stages of basic blocks (or plain ConvBNs), global average pool, dropout, head. NCHW."""

    def __init__(self, config):
        super().__init__()
        height, width, channels = config.input_shape
        first = config.stage_filters[0]
        self.stem = ConvBN(channels, first, config.kernel_size, 1, (height, width), config.norm_momentum)
        blocks, size, in_channels = [], self.stem.output_size, first
        self.block_names = []  # the zoo's layer names, for copy_zoo_weights
        for stage, filters in enumerate(config.stage_filters):
            for block in range(config.blocks_per_stage):
                self.block_names.append(f"stage{stage}_block{block}")
                stride = 2 if stage > 0 and block == 0 else 1
                if config.residual:
                    blocks.append(BasicBlock(in_channels, filters, stride, size, config))
                else:
                    blocks.append(ConvBN(in_channels, filters, config.kernel_size, stride, size,
                                         config.norm_momentum))
                size, in_channels = blocks[-1].output_size, filters
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(in_channels, config.num_classes)

    def forward(self, images):
        x = self.blocks(self.stem(images))
        return self.head(self.dropout(x.mean(dim=(2, 3))))


# ---------------------------------------------------------------- lstm


def keras_lstm_biases(lstm):
    """Keras' LSTM has one bias per gate, PyTorch's two (input and recurrent)
    that only ever add up: make the recurrent one a constant zero, so the
    twin trains Keras' parameters and no more."""
    for name in [name for name in lstm._flat_weights_names if name.startswith("bias_hh")]:
        zeros = torch.zeros_like(getattr(lstm, name))
        delattr(lstm, name)
        lstm.register_buffer(name, zeros, persistent=False)
    lstm._init_flat_weights()  # nn.LSTM reads its weights from this list
    return lstm


class NativeLSTM(nn.Module):
    """Embedding(padding_idx=0), (bi)LSTMs over packed right-padded sequences, dropout, head.

    Consecutive layers of one width are one multi-layer nn.LSTM (its `dropout`
    is Keras' dropout between layers). Sequence classification reads the final
    states (forward: the last real token; backward: the first token), as
    Keras' masked (bi)LSTM returns them; per-step tasks read every step."""

    def __init__(self, config):
        super().__init__()
        self.per_step = config.task != "classification"
        self.embedding = None
        width = config.num_features
        if config.vocab_size:
            self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
            width = config.embedding_dim
        self.lstms = nn.ModuleList()
        directions = 2 if config.bidirectional else 1
        for units, group in itertools.groupby(config.units):
            layers = len(list(group))
            self.lstms.append(keras_lstm_biases(nn.LSTM(
                width, units, num_layers=layers, batch_first=True, bidirectional=config.bidirectional,
                dropout=config.dropout if layers > 1 else 0.0)))
            width = units * directions
        self.dropout = nn.Dropout(config.dropout)
        outputs = {"classification": config.num_classes, "language_model": config.vocab_size,
                   "forecast": config.num_targets}[config.task]
        self.head = nn.Linear(width, outputs)

    def forward(self, inputs):
        if self.embedding is not None:
            x, lengths = self.embedding(inputs), (inputs != PAD_ID).sum(dim=1)
        else:  # feature input: all-zero steps are padding (right-padded)
            x, lengths = inputs, (inputs != 0).any(dim=-1).sum(dim=1)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        for index, lstm in enumerate(self.lstms):
            if index:
                packed = packed._replace(data=self.dropout(packed.data))
            packed, (final_states, _) = lstm(packed)
        if self.per_step:
            steps, _ = pad_packed_sequence(packed, batch_first=True, total_length=x.shape[1])
            return self.head(self.dropout(steps))
        directions = 2 if self.lstms[-1].bidirectional else 1
        features = torch.cat(list(final_states[-directions:]), dim=-1)  # [forward, backward] as Keras concatenates
        return self.head(self.dropout(features))


# ---------------------------------------------------------------- transformers


class TokenAndPositionEmbedding(nn.Module):
    """Token embedding plus a learned position embedding (keras_hub's TokenAndPositionEmbedding)."""

    def __init__(self, vocab_size, max_length, hidden_dim):
        super().__init__()
        self.token = nn.Embedding(vocab_size, hidden_dim)
        self.position = nn.Embedding(max_length, hidden_dim)
        # Small weights, as GPT-style code and Keras ("uniform", +-0.05) do.
        # nn.Embedding's N(0, 1) makes the tied output's logits so large that
        # most softmax gradients are denormal floats, which made the backward
        # matmuls 17x slower than the forward one on the CPU.
        nn.init.normal_(self.token.weight, std=0.02)
        nn.init.normal_(self.position.weight, std=0.02)

    def forward(self, token_ids):
        positions = torch.arange(token_ids.shape[1], device=token_ids.device)
        return self.token(token_ids) + self.position(positions)


def _layer_options(config):
    return dict(d_model=config.hidden_dim, nhead=config.num_heads, dim_feedforward=config.intermediate_dim,
                dropout=config.dropout, activation=config.activation, layer_norm_eps=LAYER_NORM_EPSILON,
                batch_first=True, norm_first=config.normalize_first)


def _final_norm(config):
    # Pre-norm stacks end with a layer norm; post-norm blocks already normalised.
    return nn.LayerNorm(config.hidden_dim, eps=LAYER_NORM_EPSILON) if config.normalize_first else None


def encoder_stack(config, num_layers):
    layer = nn.TransformerEncoderLayer(**_layer_options(config))
    return nn.TransformerEncoder(layer, num_layers, norm=_final_norm(config), enable_nested_tensor=False)


def causal_mask(length, device):
    """True above the diagonal: position i may not attend to j > i."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


class NativeTransformerEncoder(nn.Module):
    """Embeddings, pre-norm encoder with a key padding mask, final norm, masked mean pool, head."""

    def __init__(self, config):
        super().__init__()
        self.embedding = TokenAndPositionEmbedding(config.vocab_size, config.max_length, config.hidden_dim)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.encoder = encoder_stack(config, config.num_layers)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_dim, config.num_classes)

    def forward(self, token_ids):
        padding = token_ids == PAD_ID
        x = self.embedding_dropout(self.embedding(token_ids))
        x = self.encoder(x, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(dim=1) / keep.sum(dim=1)
        return self.head(self.dropout(pooled))


class NativeTransformerDecoder(nn.Module):
    """GPT-style LM: embeddings, causal self-attention blocks (encoder layers
    with a causal mask: keras_hub's decoder block without cross-attention),
    final norm, output tied to the token embedding."""

    def __init__(self, config):
        super().__init__()
        self.embedding = TokenAndPositionEmbedding(config.vocab_size, config.max_length, config.hidden_dim)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.decoder = encoder_stack(config, config.num_layers)

    def forward(self, token_ids):
        x = self.embedding_dropout(self.embedding(token_ids))
        x = self.decoder(x, mask=causal_mask(token_ids.shape[1], token_ids.device),
                         src_key_padding_mask=token_ids == PAD_ID, is_causal=True)
        return F.linear(x, self.embedding.token.weight)


class NativeTransformer(nn.Module):
    """Encoder-decoder: encoder stack, decoder stack with cross-attention,
    final norms, output tied to the decoder's token embedding. Takes a dict
    {"encoder_token_ids", "decoder_token_ids"}."""

    def __init__(self, config):
        super().__init__()
        self.encoder_embedding = TokenAndPositionEmbedding(
            config.vocab_size, config.encoder_max_length, config.hidden_dim)
        self.decoder_embedding = TokenAndPositionEmbedding(
            config.vocab_size, config.decoder_max_length, config.hidden_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = encoder_stack(config, config.num_encoder_layers)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(**_layer_options(config)), config.num_decoder_layers,
            norm=_final_norm(config))

    def forward(self, inputs):
        source, target = inputs["encoder_token_ids"], inputs["decoder_token_ids"]
        source_padding = source == PAD_ID
        memory = self.encoder(self.dropout(self.encoder_embedding(source)), src_key_padding_mask=source_padding)
        x = self.decoder(
            self.dropout(self.decoder_embedding(target)), memory,
            tgt_mask=causal_mask(target.shape[1], target.device), tgt_is_causal=True,
            tgt_key_padding_mask=target == PAD_ID, memory_key_padding_mask=source_padding)
        return F.linear(x, self.decoder_embedding.token.weight)


NATIVE_CLASSES = {
    "dense": NativeDense,
    "cnn": NativeCNN,
    "lstm": NativeLSTM,
    "transformer-encoder": NativeTransformerEncoder,
    "transformer-decoder": NativeTransformerDecoder,
    "transformer": NativeTransformer,
}


# ---------------------------------------------------------------- public API


def build_native(preset_name, **overrides):
    """The native PyTorch twin of preset `preset_name` (randomly initialised;
    train mode); `overrides` change config keys as in `zoo.load`.

    Example:
    >>> import zoo
    >>> model = build_native("dense-tiny")
    >>> model(torch.zeros(2, 30)).shape
    torch.Size([2, 2])
    >>> count_params(model) == zoo.info("dense-tiny").params
    True
    """
    import zoo
    from zoo.errors import FamilyNotFoundError

    card = zoo.info(preset_name)
    if card.family not in NATIVE_CLASSES:
        raise FamilyNotFoundError(card.family, sorted(NATIVE_CLASSES))
    # Cards list every config key, so the config needs no defaults (and no Keras).
    return NATIVE_CLASSES[card.family](types.SimpleNamespace(**{**card.config, **overrides}))


def count_params(native):
    """Parameters as Keras' `count_params()` counts them: the state dict
    (trainable weights, normalisation statistics, moving averages) without
    PyTorch's batch-norm step counters.

    Example:
    >>> count_params(nn.Linear(3, 2))
    8
    """
    return sum(tensor.numel() for name, tensor in native.state_dict().items()
               if not name.endswith("num_batches_tracked"))


def copy_zoo_weights(native, zoo_model):
    """Copy a zoo model's weights (via numpy) into its native twin, so that in
    eval mode both give the same outputs. Returns `native`.

    Example:
    >>> import zoo
    >>> zoo_model = zoo.load("dense-tiny")
    >>> x, _ = zoo_model.example_batch(3)
    >>> native = copy_zoo_weights(build_native("dense-tiny"), zoo_model).eval()
    >>> expected = zoo_model.predict(x, verbose=0)
    >>> bool(np.allclose(native(native_inputs(x)).detach().numpy(), expected, atol=1e-5))
    True
    """
    weights = {variable.path: np.asarray(variable.numpy()) for variable in zoo_model.weights}
    copy = {NativeDense: _copy_dense, NativeCNN: _copy_cnn, NativeLSTM: _copy_lstm,
            NativeTransformerEncoder: _copy_transformer_encoder,
            NativeTransformerDecoder: _copy_transformer_decoder,
            NativeTransformer: _copy_transformer}[type(native)]
    with torch.no_grad():
        copy(native, weights)
    return native


def native_inputs(inputs):
    """Zoo inputs (numpy, from `example_batch`) as the twin's: torch tensors,
    token ids as int64, images NHWC -> NCHW (once, outside any timing), a dict
    stays a dict.

    Example:
    >>> native_inputs(np.zeros((2, 8, 8, 3), "float32")).shape
    torch.Size([2, 3, 8, 8])
    """
    if isinstance(inputs, dict):
        return {key: native_inputs(value) for key, value in inputs.items()}
    tensor = torch.from_numpy(np.ascontiguousarray(inputs))
    if not tensor.is_floating_point():
        return tensor.long()
    if tensor.ndim == 4:
        return tensor.permute(0, 3, 1, 2).contiguous()
    return tensor


def native_targets(targets):
    """Zoo targets as torch tensors: class and token ids int64, values float32.

    Example:
    >>> native_targets(np.array([1, 0], "int32")).dtype
    torch.int64
    """
    tensor = torch.from_numpy(np.ascontiguousarray(targets))
    return tensor if tensor.is_floating_point() else tensor.long()


class TokenCrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy from per-token logits (batch, length, vocab), averaged
    over real target tokens only (padding, id 0, is ignored), as the zoo's
    `token_logits_loss`."""

    def __init__(self):
        super().__init__(ignore_index=PAD_ID)

    def forward(self, logits, targets):
        return super().forward(logits.flatten(0, -2), targets.flatten())


def native_loss(family, task):
    """The PyTorch loss equal to the zoo model's `default_loss()`: MSE for
    regression and forecasting, token cross-entropy ignoring padding for
    language models and seq2seq, cross-entropy from logits otherwise.

    Example:
    >>> loss = native_loss("dense", "classification")
    >>> round(float(loss(torch.zeros(2, 4), torch.tensor([1, 3]))), 4)  # log(4)
    1.3863
    """
    from zoo.errors import InvalidConfigError

    if family not in NATIVE_CLASSES:
        raise InvalidConfigError(f"family={family!r}: use one of {sorted(NATIVE_CLASSES)}.")
    if task in ("regression", "forecasting"):
        return nn.MSELoss()
    if task in ("language-modelling", "seq2seq"):
        return TokenCrossEntropy()
    if task.endswith("classification"):
        return nn.CrossEntropyLoss()
    raise InvalidConfigError(f"task={task!r} is no zoo task: see `model.task` of a zoo model.")


# ---------------------------------------------------------------- weight copying


def _assign(tensor, array):
    tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)).reshape(tensor.shape))


def _copy_linear(linear, weights, path):
    _assign(linear.weight, weights[f"{path}/kernel"].T)
    _assign(linear.bias, weights[f"{path}/bias"])


def _copy_dense(native, weights):
    for name in ("mean", "variance", "count"):
        _assign(getattr(native, name), weights[f"normalization/{name}"])
    linears = [module for module in native.mlp if isinstance(module, nn.Linear)]
    paths = [f"hidden_{index}" for index in range(len(linears) - 1)] + ["head"]
    for linear, path in zip(linears, paths):
        _copy_linear(linear, weights, path)


def _copy_conv_bn(conv_bn, weights, name):
    _assign(conv_bn.conv.weight, weights[f"{name}_conv/kernel"].transpose(3, 2, 0, 1))  # HWIO -> OIHW
    bn = conv_bn.bn
    for torch_name, keras_name in (("weight", "gamma"), ("bias", "beta"),
                                   ("running_mean", "moving_mean"), ("running_var", "moving_variance")):
        _assign(getattr(bn, torch_name), weights[f"{name}_bn/{keras_name}"])


def _copy_cnn(native, weights):
    _copy_conv_bn(native.stem, weights, "stem")
    for name, block in zip(native.block_names, native.blocks):
        if isinstance(block, ConvBN):
            _copy_conv_bn(block, weights, name)
            continue
        _copy_conv_bn(block.a, weights, f"{name}_a")
        _copy_conv_bn(block.b, weights, f"{name}_b")
        if block.shortcut is not None:
            _copy_conv_bn(block.shortcut, weights, f"{name}_shortcut")
    _copy_linear(native.head, weights, "head")


def _copy_lstm(native, weights):
    if native.embedding is not None:
        _assign(native.embedding.weight, weights["embedding/embeddings"])
    index = 0
    for lstm in native.lstms:
        for layer in range(lstm.num_layers):
            if lstm.bidirectional:
                cells = {"": f"bidirectional_{index}/forward_lstm_{index}",
                         "_reverse": f"bidirectional_{index}/backward_lstm_{index}"}
            else:
                cells = {"": f"lstm_{index}"}
            for suffix, path in cells.items():
                # Both order the gates input, forget, cell, output.
                _assign(getattr(lstm, f"weight_ih_l{layer}{suffix}"), weights[f"{path}/lstm_cell/kernel"].T)
                _assign(getattr(lstm, f"weight_hh_l{layer}{suffix}"),
                        weights[f"{path}/lstm_cell/recurrent_kernel"].T)
                _assign(getattr(lstm, f"bias_ih_l{layer}{suffix}"), weights[f"{path}/lstm_cell/bias"])
            index += 1
    _copy_linear(native.head, weights, "head")


def _copy_embedding(embedding, weights, prefix):
    _assign(embedding.token.weight, weights[f"{prefix}_embedding/token_embedding/embeddings"])
    _assign(embedding.position.weight, weights[f"{prefix}_embedding/position_embedding/embeddings"])


def _copy_attention(attention, weights, path):
    """keras MultiHeadAttention (per-head einsum kernels) -> nn.MultiheadAttention (packed in-projection)."""
    width = attention.embed_dim
    _assign(attention.in_proj_weight, np.concatenate(
        [weights[f"{path}/{name}/kernel"].reshape(width, width).T for name in ("query", "key", "value")]))
    _assign(attention.in_proj_bias, np.concatenate(
        [weights[f"{path}/{name}/bias"].reshape(width) for name in ("query", "key", "value")]))
    _assign(attention.out_proj.weight, weights[f"{path}/attention_output/kernel"].reshape(width, width).T)
    _assign(attention.out_proj.bias, weights[f"{path}/attention_output/bias"])


def _copy_norm(norm, weights, path):
    _assign(norm.weight, weights[f"{path}/gamma"])
    _assign(norm.bias, weights[f"{path}/beta"])


def _copy_feedforward(layer, weights, path):
    _copy_linear(layer.linear1, weights, f"{path}/feedforward_intermediate_dense")
    _copy_linear(layer.linear2, weights, f"{path}/feedforward_output_dense")


def _copy_stack(stack, weights, prefix, attention_name):
    """An encoder stack (or the decoder-only stack: keras_hub names its attention differently)."""
    for index, layer in enumerate(stack.layers):
        path = f"{prefix}_block_{index}"
        _copy_attention(layer.self_attn, weights, f"{path}/{attention_name}")
        _copy_norm(layer.norm1, weights, f"{path}/self_attention_layer_norm")
        _copy_norm(layer.norm2, weights, f"{path}/feedforward_layer_norm")
        _copy_feedforward(layer, weights, path)
    if stack.norm is not None:
        _copy_norm(stack.norm, weights, f"{prefix}_final_norm")


def _copy_transformer_encoder(native, weights):
    _copy_embedding(native.embedding, weights, "encoder")
    _copy_stack(native.encoder, weights, "encoder", "self_attention_layer")
    _copy_linear(native.head, weights, "head")


def _copy_transformer_decoder(native, weights):
    _copy_embedding(native.embedding, weights, "decoder")
    _copy_stack(native.decoder, weights, "decoder", "self_attention")


def _copy_transformer(native, weights):
    _copy_embedding(native.encoder_embedding, weights, "encoder")
    _copy_stack(native.encoder, weights, "encoder", "self_attention_layer")
    _copy_embedding(native.decoder_embedding, weights, "decoder")
    for index, layer in enumerate(native.decoder.layers):
        path = f"decoder_block_{index}"
        _copy_attention(layer.self_attn, weights, f"{path}/self_attention")
        _copy_norm(layer.norm1, weights, f"{path}/self_attention_layer_norm")
        _copy_attention(layer.multihead_attn, weights, f"{path}/cross_attention")
        _copy_norm(layer.norm2, weights, f"{path}/cross_attention_layer_norm")
        _copy_norm(layer.norm3, weights, f"{path}/feedforward_layer_norm")
        _copy_feedforward(layer, weights, path)
    if native.decoder.norm is not None:
        _copy_norm(native.decoder.norm, weights, "decoder_final_norm")


# ---------------------------------------------------------------- benchmark


def zoo_batch(preset_name, batch_size=32, length=64):
    """The zoo model's benchmark batch (`zoo.eval.bench.bench_batch`, seed 0) as
    numpy `(inputs, targets)`; `length` is ignored by dense and cnn. Loads the
    zoo model on the active Keras backend.

    Example:
    >>> x, y = zoo_batch("lstm-tiny", batch_size=3, length=5)
    >>> x.shape, y.shape
    ((3, 5), (3,))
    """
    import zoo
    from zoo.eval import bench

    model = zoo.load(preset_name)
    return bench.bench_batch(model, batch_size, length if model.family in SEQUENCE_FAMILIES else None)


def _zoo_batch_in_child(preset_name, batch_size, length):
    """`zoo_batch` run in a child process on KERAS_BACKEND=torch, so that
    Keras and the zoo model never enter this process (its peak memory)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "batch.npz")
        code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]);"
                "from tools.native_torch import zoo_batch;"
                "x, y = zoo_batch(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]));"
                "x = x if isinstance(x, dict) else {'inputs': x};"
                "np.savez(sys.argv[5], targets=y, **{'x_' + k: v for k, v in x.items()})")
        subprocess.run([sys.executable, "-c", code, str(ROOT), preset_name, str(batch_size), str(length), path],
                       env={**os.environ, "KERAS_BACKEND": "torch"}, check=True, stdout=subprocess.DEVNULL)
        with np.load(path) as saved:
            inputs = {key[2:]: saved[key] for key in saved.files if key.startswith("x_")}
            targets = saved["targets"]
    return inputs.get("inputs", inputs), targets


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps(native, loss_fn, x, y):
    """`run_steps(n)` for `zoo.eval.bench.time_steps`: n AdamW training steps on the batch."""
    # Keras' AdamW default weight decay, so both optimizers do the same work.
    optimizer = torch.optim.AdamW(native.parameters(), lr=1e-3, weight_decay=0.004)
    device = next(native.parameters()).device

    def run_steps(steps):
        native.train()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(native(x), y)
            loss.backward()
            optimizer.step()
        _synchronize(device)

    return run_steps


def infer_steps(native, x):
    """`run_steps(n)` for `zoo.eval.bench.time_steps`: n eval-mode forward passes,
    their outputs gathered into one host array as `model.predict` returns them
    (for a language model that is most of the work: 64 MB of logits a batch)."""

    def run_steps(steps):
        native.eval()
        with torch.inference_mode():
            outputs = [native(x) for _ in range(steps)]
            torch.cat(outputs).cpu().numpy()

    return run_steps


def flops_per_sample(native, x, run_steps, mode, batch_size):
    """FLOPs of one step per sample, as PyTorch's FlopCounterMode counts them
    (matmuls, convolutions, attention): forward for "infer", forward,
    backward (and optimizer) for "train"."""
    from torch.utils.flop_counter import FlopCounterMode

    # The counter cannot see into fused kernels, so count the same math on
    # the unfused paths: oneDNN off (its LSTM kernel), and inference in train
    # mode (the transformer layers' fused eval kernel; dropout counts no FLOPs).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # flags() prints an Intel-GPU notice
        with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as counter:
            if mode == "train":
                run_steps(1)
            else:
                native.train()
                with torch.inference_mode():
                    native(x)
    return counter.get_total_flops() / batch_size


def _token_length(x):
    # The source length for seq2seq, as zoo.eval.bench reports it.
    return (x["encoder_token_ids"] if isinstance(x, dict) else x).shape[1]


def _to_device(inputs, device):
    if isinstance(inputs, dict):
        return {key: value.to(device) for key, value in inputs.items()}
    return inputs.to(device)


def measure(preset_name, mode="train", batch_size=32, length=64, min_seconds=3.0, batch=None, device=None,
            threads=None):
    """Time the native twin of `preset_name` (see the module docstring);
    returns a JSON-ready dict. `batch` is a numpy `(inputs, targets)` (default:
    the zoo model's benchmark batch, made in a child process); `threads` sets
    PyTorch's intra-op threads (default: PyTorch's choice, one per core).

    Example:
    >>> batch = (np.zeros((4, 30), "float32"), np.zeros(4, "int32"))
    >>> result = measure("dense-tiny", "infer", batch_size=4, min_seconds=0.01, batch=batch)
    >>> result["flops_per_sample"] == 2 * (30 * 32 + 32 * 2), result["params"]
    (True, 1119)
    """
    import zoo
    from zoo.errors import InvalidConfigError
    from zoo.eval import bench

    if mode not in ("train", "infer"):
        raise InvalidConfigError(f"mode={mode!r}: use 'train' or 'infer'.")
    card = zoo.info(preset_name)
    if threads:
        torch.set_num_threads(threads)
    x, y = batch if batch is not None else _zoo_batch_in_child(preset_name, batch_size, length)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    native = build_native(preset_name).to(device)
    inputs = _to_device(native_inputs(x), device)
    if mode == "train":
        run_steps = train_steps(native, native_loss(card.family, card.task).to(device), inputs,
                                native_targets(y).to(device))
    else:
        run_steps = infer_steps(native, inputs)
    timing = bench.time_steps(run_steps, batch_size, min_seconds)
    return {
        "preset": preset_name,
        "framework": "torch-native",
        "mode": mode,
        "device": device.type,
        "batch_size": batch_size,
        "length": _token_length(x) if card.family in SEQUENCE_FAMILIES else None,
        "samples_per_s": timing.samples_per_s,
        "first_step_s": timing.first_step_s,
        "steps": timing.steps,
        "seconds": timing.seconds,
        # Counted after timing, so that the timed first step is the cold one.
        "flops_per_sample": flops_per_sample(native, inputs, run_steps, mode, batch_size),
        "peak_memory_mb": bench.peak_memory_mb(),
        "params": count_params(native),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "input_layout": "NCHW (converted once before timing)" if card.family == "cnn" else None,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time the native PyTorch twin of a zoo preset.")
    parser.add_argument("preset")
    parser.add_argument("--mode", choices=("train", "infer"), default="train")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=64, help="tokens per row (sequence families)")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch intra-op threads (default: PyTorch's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (else key: value lines)")
    args = parser.parse_args(argv)
    result = measure(args.preset, args.mode, args.batch_size, args.length, args.min_seconds,
                     device=args.device, threads=args.threads)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # `import zoo` from a checkout
    main()
