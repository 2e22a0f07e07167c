import keras


@keras.saving.register_keras_serializable(package="zoo")
class PaddingMask(keras.layers.Layer):
    """Boolean mask that is True where a token id is not padding (`pad_id`;
    everywhere when `pad_id` is None, for vocabularies without one).

    Keras has no layer for this (Embedding's `mask_zero` hides the mask in
    `_keras_mask`, which keras_hub blocks and pooling read inconsistently), so
    the zoo computes it once and passes it explicitly to every block.

    Example:
    >>> import keras, numpy as np
    >>> keras.ops.convert_to_numpy(PaddingMask()(np.array([[5, 7, 0]]))).tolist()
    [[True, True, False]]
    """

    def __init__(self, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = pad_id

    def call(self, token_ids):
        if self.pad_id is None:
            return keras.ops.ones_like(token_ids, dtype="bool")
        return keras.ops.not_equal(token_ids, self.pad_id)

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}
