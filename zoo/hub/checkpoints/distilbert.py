"""DistilBERT -> the `transformer-encoder` family: BERT's post-norm blocks
under other names, no token types, eps 1e-12 throughout, and a ReLU
pre-classifier before the classification head.
"""

from zoo.hub.checkpoints import bert
from zoo.hub.checkpoints.mapping import base_prefix, layer, layer_norm, linear, one_dropout, require, value

has_no_head = bert.has_no_head
MODEL_TYPE = "distilbert"
IGNORED = (r"vocab_projector\.weight", r".*position_ids")
LAYER_NORM_EPSILON = 1e-12  # fixed in DistilBERT's code, not in its config


def family_config(hf):
    """(family, config) for a DistilBERT config.json."""
    require(hf, "tie_word_embeddings", (True,), True, "the masked-LM projection is the token embedding")
    activation = require(hf, "activation", tuple(bert.ACTIVATIONS), "gelu", "feed-forward activation")
    config = {
        "vocab_size": value(hf, "vocab_size"),
        "hidden_dim": value(hf, "dim", "hidden_size"),
        "num_heads": value(hf, "n_heads", "num_attention_heads"),
        "intermediate_dim": value(hf, "hidden_dim", "intermediate_size"),
        "num_layers": value(hf, "n_layers", "num_hidden_layers"),
        "max_length": value(hf, "max_position_embeddings"),
        "dropout": one_dropout(hf, "dropout", "attention_dropout"),
        "activation": bert.ACTIVATIONS[activation],
        "normalize_first": False,
        "layer_norm_epsilon": LAYER_NORM_EPSILON,
        "pad_token_id": value(hf, "pad_token_id", default=0),
        "padding_mask_input": True,
        "type_vocab_size": 0,
        "embedding_norm": True,
    }
    return "transformer-encoder", {**config, **bert.head_config(hf, pooler="relu")}


def weight_map(config, names):
    """`{zoo path: From}` for an encoder of `config` from DistilBERT tensors `names`."""
    base = base_prefix(names, ("distilbert.",))
    # The position table is stored even when sinusoidal: copying it is exact either way.
    weights = bert.embedding_map(f"{base}embeddings", config)
    for index in range(config["num_layers"]):
        weights.update(block_map(f"encoder_block_{index}", f"{base}transformer.layer.{index}"))
    if config["head"] == "masked-lm":
        weights.update(bert.masked_lm_map("vocab_transform", "vocab_layer_norm", "vocab_projector.bias"))
    else:
        weights.update(bert.classifier_map("pre_classifier", "classifier", names))
    return weights


def block_map(zoo, hf):
    attention = f"{zoo}/self_attention_layer"
    return {
        **layer(f"{attention}/query", linear(f"{hf}.attention.q_lin")),
        **layer(f"{attention}/key", linear(f"{hf}.attention.k_lin")),
        **layer(f"{attention}/value", linear(f"{hf}.attention.v_lin")),
        **layer(f"{attention}/attention_output", linear(f"{hf}.attention.out_lin")),
        **layer(f"{zoo}/self_attention_layer_norm", layer_norm(f"{hf}.sa_layer_norm")),
        **layer(f"{zoo}/feedforward_intermediate_dense", linear(f"{hf}.ffn.lin1")),
        **layer(f"{zoo}/feedforward_output_dense", linear(f"{hf}.ffn.lin2")),
        **layer(f"{zoo}/feedforward_layer_norm", layer_norm(f"{hf}.output_layer_norm")),
    }


