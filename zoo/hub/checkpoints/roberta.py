"""RoBERTa -> the `transformer-encoder` family: BERT's layout (bert.py) with
another prefix and head names, and positions that start after the padding
id (padding_idx + 1), so the first rows of its position table are dropped.
"""

from zoo.hub.checkpoints import bert
from zoo.hub.checkpoints.mapping import base_prefix

has_no_head = bert.has_no_head
MODEL_TYPE = "roberta"
IGNORED = (r"lm_head\.decoder\.(weight|bias)", r"(roberta\.)?pooler\.dense\..*", r".*position_ids")


def position_offset(hf_or_config):
    return hf_or_config["pad_token_id"] + 1


def family_config(hf):
    """(family, config) for a RoBERTa config.json."""
    hf = {"pad_token_id": 1, **hf}
    encoder = bert.encoder_config(hf, position_offset=position_offset(hf))
    return "transformer-encoder", {**encoder, **bert.head_config(hf, pooler="tanh")}


def weight_map(config, names):
    """`{zoo path: From}` for an encoder of `config` from RoBERTa tensors `names`."""
    base = base_prefix(names, ("roberta.",))
    weights = bert.embedding_map(f"{base}embeddings", config, position_offset=position_offset(config))
    for index in range(config["num_layers"]):
        weights.update(bert.block_map(f"encoder_block_{index}", f"{base}encoder.layer.{index}"))
    if config["head"] == "masked-lm":
        weights.update(bert.masked_lm_map("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"))
    else:
        # RoBERTa's classification head: dense + tanh on <s>, then the output projection.
        weights.update(bert.classifier_map("classifier.dense", "classifier.out_proj", names))
    return weights
