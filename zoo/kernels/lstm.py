"""Fused sequence loop for `zoo.layers.LSTM` (Keras' LSTM with a fast path).

Keras' LSTM has a fused kernel only for cuDNN; on a CPU (and with any mask on
torch) it runs the cell step by step from Python on torch. Here the whole
sequence runs in torch's own LSTM op (the one behind `nn.LSTM`), as packed
sequences when the mask is right padding (checked eagerly); any other mask
falls back to Keras' loop.

jax and tensorflow keep Keras' loop (`lax.scan` / `tf.while_loop`): a scan
that projects all steps' inputs with one matmul first, then loops over the
recurrent part only, measured slower under jax.jit (train 0.7x, infer 0.75x
of Keras' loop for one bidirectional lstm-small layer) and mixed on
tensorflow (train 0.87x, infer 1.2x), on 2 shared CPU cores.

`lstm()` returns what `keras.src.backend.rnn` returns, `(last_output,
outputs, [h, c])`, or None where no fast path applies.
`bidirectional_lstm()` runs both directions of a bidirectional layer in one
call of the same op, as `nn.LSTM(bidirectional=True)` does: the padding is
packed once for both (Keras runs the two layers one after the other).
"""

import keras

# Keras' default activations: torch's fused op hard-codes exactly these.
_STANDARD_ACTIVATIONS = (keras.activations.tanh, keras.activations.sigmoid)


def lstm(cell, sequences, initial_state, mask, return_sequences, go_backwards, zero_output_for_mask):
    """Run `cell` (a built `keras.layers.LSTMCell`) over `sequences`.

    `sequences` (batch, time, features) already has input dropout applied;
    `mask` is None or boolean (batch, time). Returns `(last_output, outputs,
    [h, c])` as Keras' `backend.rnn` does (`outputs` in processing order, i.e.
    reversed for `go_backwards`), or None when the configuration has no fast
    path here (then the caller runs Keras' loop): on jax and tensorflow, with
    recurrent dropout, other activations (on torch), or a mask that is not
    right padding.

    Example:
    >>> import numpy as np
    >>> cell = keras.layers.LSTMCell(3)
    >>> cell.build((None, 2))
    >>> x = np.ones((1, 4, 2), "float32")
    >>> state = [np.zeros((1, 3), "float32")] * 2
    >>> result = lstm(cell, x, state, None, True, False, False)
    >>> result is None or tuple(result[1].shape) == (1, 4, 3)
    True
    """
    if keras.backend.backend() != "torch" or not _torch_op_computes(cell):
        return None  # off torch: see the module docstring
    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    return _torch_lstm(cell, sequences, initial_state, mask, return_sequences, go_backwards, zero_output_for_mask)


def bidirectional_lstm(forward_cell, backward_cell, sequences, mask, return_sequences):
    """Both directions of `keras.layers.Bidirectional` over built
    `keras.layers.LSTMCell`s, merged by concatenation, with Keras' results
    for a bidirectional layer without initial state (padded steps of returned
    sequences are zeros, as Keras' Bidirectional makes them) in inference or
    without input dropout (each direction draws its own mask while training:
    the caller checks); None where there is no fast path: off torch, with
    recurrent dropout, other activations, or a mask that is not right padding.

    Example:
    >>> import numpy as np
    >>> cells = [keras.layers.LSTMCell(3) for _ in range(2)]
    >>> for cell in cells:
    ...     cell.build((None, 2))
    >>> x = np.ones((1, 4, 2), "float32")
    >>> result = bidirectional_lstm(*cells, x, None, True)
    >>> result is None or tuple(result.shape) == (1, 4, 6)
    True
    """
    if keras.backend.backend() != "torch" or not all(map(_torch_op_computes, (forward_cell, backward_cell))):
        return None  # off torch: see the module docstring
    import torch

    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    x = _float_tensor(sequences)
    lengths = _packing_lengths(mask, x.shape[1])
    if lengths is False:
        return None
    params = _torch_params(forward_cell, x.dtype) + _torch_params(backward_cell, x.dtype)
    zeros = torch.zeros(2, x.shape[0], forward_cell.units, dtype=x.dtype, device=x.device)
    if lengths is None:
        outputs, h, _ = torch._VF.lstm(x, (zeros, zeros), params, True, 1, 0.0, torch.is_grad_enabled(), True, True)
    else:
        outputs, h, _ = _torch_packed_call(x, lengths, (zeros, zeros), params, bidirectional=True)
    # h: (direction, batch, units); the backward direction's last output is
    # its state after the first step.
    return outputs if return_sequences else torch.cat([h[0], h[1]], dim=-1)


def _torch_op_computes(cell):
    """Whether torch's LSTM op computes what `cell` does: it has no recurrent
    dropout, and hard-codes Keras' default activations."""
    standard = (cell.activation, cell.recurrent_activation) == _STANDARD_ACTIVATIONS
    return standard and not cell.recurrent_dropout and cell.implementation == 2


def _float_tensor(sequences):
    import torch

    x = keras.ops.convert_to_tensor(sequences)
    return x if torch.is_floating_point(x) else x.float()


def _torch_params(cell, dtype):
    """The cell's weights as torch's LSTM op takes them, in `dtype`."""
    import torch

    kernel = keras.ops.cast(cell.kernel.value, dtype)
    recurrent_kernel = keras.ops.cast(cell.recurrent_kernel.value, dtype)
    if cell.bias is None:
        bias = torch.zeros(kernel.shape[1], dtype=dtype, device=kernel.device)
    else:
        bias = keras.ops.cast(cell.bias.value, dtype)
    # Keras' gate order (i, f, c, o) is torch's (i, f, g, o); torch wants
    # (4 * units, inputs) and has a second bias, zero here. cuDNN reads the
    # weights as flat memory: a transposed view fails there ("view size is not
    # compatible"), so the transposes are made contiguous.
    return [kernel.T.contiguous(), recurrent_kernel.T.contiguous(), bias, torch.zeros_like(bias)]


def _packing_lengths(mask, steps):
    """Row lengths to pack by; None where nothing needs packing (no mask, or
    no padding), False where the mask is not right padding (or has an empty
    row): then Keras' loop handles it."""
    if mask is None:
        return None
    lengths = _right_padded_lengths(keras.ops.convert_to_tensor(mask).bool())
    if lengths is None:
        return False
    return None if bool((lengths == steps).all()) else lengths


def _torch_lstm(cell, sequences, initial_state, mask, return_sequences, go_backwards, zero_output_for_mask):
    import torch

    x = _float_tensor(sequences)
    params = _torch_params(cell, x.dtype)
    h0, c0 = (keras.ops.cast(s, x.dtype) for s in initial_state)
    hx = (h0.unsqueeze(0), c0.unsqueeze(0))
    lengths = _packing_lengths(mask, x.shape[1])
    if lengths is False:
        return None
    if lengths is not None:
        mask = keras.ops.convert_to_tensor(mask).bool()

    if lengths is None:
        if go_backwards:
            x = torch.flip(x, [1])
        outputs, h, c = torch._VF.lstm(x, hx, params, True, 1, 0.0, torch.is_grad_enabled(), False, True)
    else:
        outputs, h, c = _torch_packed_lstm(x, lengths, hx, params, mask, go_backwards, zero_output_for_mask)
    h, c = h.squeeze(0), c.squeeze(0)
    return outputs[:, -1], outputs, [h, c]


def _right_padded_lengths(mask):
    """Per-row lengths if `mask` is right padding with no empty row, else None."""
    import torch

    lengths = mask.sum(dim=1)
    steps = torch.arange(mask.shape[1], device=mask.device)
    right_padded = steps[None, :] < lengths[:, None]
    if not torch.equal(mask, right_padded) or not bool((lengths > 0).all()):
        return None
    return lengths


def _torch_packed_lstm(x, lengths, hx, params, mask, go_backwards, zero_output_for_mask):
    """Right-padded rows as a packed sequence; outputs follow Keras' masking rules."""
    import torch

    if go_backwards:
        # Keras reverses whole padded rows, so the padding comes first and keeps
        # the initial state: the same as reversing each row's valid prefix.
        reverse_prefix = _prefix_reversal_index(lengths, x.shape[1])
        x = torch.gather(x, 1, reverse_prefix[:, :, None].expand(-1, -1, x.shape[2]))
    outputs, h, c = _torch_packed_call(x, lengths, hx, params, bidirectional=False)
    if go_backwards:
        # Back to Keras' processing order: padded (zero-output) steps first.
        outputs = torch.gather(outputs, 1, reverse_prefix[:, :, None].expand(-1, -1, outputs.shape[2]))
        return torch.flip(outputs, [1]), h, c
    if not zero_output_for_mask:
        outputs = torch.where(mask[:, :, None], outputs, h.squeeze(0)[:, None, :])
    return outputs, h, c


def _torch_packed_call(x, lengths, hx, params, bidirectional):
    """torch's LSTM op over the rows of `x` packed to their `lengths`:
    `(outputs, h, c)`, outputs padded back with zeros."""
    import torch
    from torch.nn.utils import rnn

    packed = rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    sorted_hx = tuple(state.index_select(1, packed.sorted_indices) for state in hx)
    data, h, c = torch._VF.lstm(
        packed.data, packed.batch_sizes, sorted_hx, params, True, 1, 0.0, torch.is_grad_enabled(), bidirectional
    )
    h, c = (state.index_select(1, packed.unsorted_indices) for state in (h, c))
    packed_outputs = rnn.PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    outputs, _ = rnn.pad_packed_sequence(packed_outputs, batch_first=True, total_length=x.shape[1])
    return outputs, h, c


def _prefix_reversal_index(lengths, steps):
    """Index that reverses each row's first `length` steps and keeps the rest."""
    import torch

    positions = torch.arange(steps, device=lengths.device)[None, :]
    return torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)
