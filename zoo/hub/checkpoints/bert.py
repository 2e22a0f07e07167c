"""BERT (BertForMaskedLM / ForPreTraining, ForSequenceClassification, the
bare BertModel) -> the `transformer-encoder` family.

Post-norm blocks with exact GELU and eps 1e-12, token-type embeddings, a
layer norm after the embeddings; the classifier reads [CLS] through a tanh
pooler, the masked-LM head is dense + GELU + norm + the tied embedding +
a bias. RoBERTa shares all of it (see roberta.py).
"""

from zoo.hub.checkpoints.mapping import (
    From, base_prefix, layer, layer_norm, linear, new_layer, one_dropout, require, value,
)

MODEL_TYPE = "bert"
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate",
               "relu": "relu"}
# Tied copies of the embedding; next-sentence prediction; the pooler, which a masked-LM head does not use.
IGNORED = (r"cls\.predictions\.decoder\.(weight|bias)", r"cls\.seq_relationship\..*",
           r"(bert\.)?pooler\.dense\..*", r".*position_ids")


def family_config(hf):
    """(family, config) for a BERT config.json."""
    return "transformer-encoder", {**encoder_config(hf), **head_config(hf, pooler="tanh")}


def encoder_config(hf, position_offset=0):
    """The encoder part of BERT and RoBERTa configs."""
    require(hf, "position_embedding_type", ("absolute",), "absolute", "learned absolute positions")
    require(hf, "is_decoder", (False,), False, "an encoder, not a causal decoder")
    require(hf, "add_cross_attention", (False,), False, "no cross-attention in the encoder family")
    require(hf, "tie_word_embeddings", (True,), True, "the masked-LM projection is the token embedding")
    activation = require(hf, "hidden_act", tuple(ACTIVATIONS), "gelu", "feed-forward activation")
    return {
        "vocab_size": value(hf, "vocab_size"),
        "hidden_dim": value(hf, "hidden_size"),
        "num_heads": value(hf, "num_attention_heads"),
        "intermediate_dim": value(hf, "intermediate_size"),
        "num_layers": value(hf, "num_hidden_layers"),
        "max_length": value(hf, "max_position_embeddings") - position_offset,
        "dropout": one_dropout(hf, "hidden_dropout_prob", "attention_probs_dropout_prob"),
        "activation": ACTIVATIONS[activation],
        "normalize_first": False,
        "layer_norm_epsilon": value(hf, "layer_norm_eps", default=1e-12),
        "pad_token_id": value(hf, "pad_token_id", default=0),
        "padding_mask_input": True,
        "type_vocab_size": value(hf, "type_vocab_size", default=2),
        "embedding_norm": True,
    }


def head_config(hf, pooler):
    """The head keys: masked-LM for pre-training checkpoints, the classifier
    (with its number of labels) for sequence classification ones, and for a
    bare model a classifier whose head the user's `num_classes` will replace."""
    head = checkpoint_head(hf)
    require(hf, "problem_type", (None, "single_label_classification"), None,
            "the classifier is single-label: softmax over the classes")
    config = {"pooling": "first", "pooler_activation": pooler}
    if head == "masked-lm":
        return {**config, "head": "masked-lm"}
    return {**config, "head": "classifier", "num_classes": len(hf.get("id2label") or {}) or hf.get("num_labels", 2)}


def checkpoint_head(hf):
    """"masked-lm", "classifier" or "none" (a bare model), from config.json's architectures."""
    architectures = hf.get("architectures") or []
    if any(name.endswith(("ForMaskedLM", "ForPreTraining")) for name in architectures):
        return "masked-lm"
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return "classifier"
    supported = [name for name in architectures if name.endswith("Model")]
    if architectures and not supported:
        raise_unsupported_architecture(hf, architectures)
    return "none"


def has_no_head(hf):
    """A bare model: its classifier is made fresh, and `num_classes` must say its size."""
    return checkpoint_head(hf) == "none"


def raise_unsupported_architecture(hf, architectures):
    from zoo.errors import InvalidPresetError

    kind = hf.get("model_type")
    raise InvalidPresetError(
        f"This {kind} checkpoint is a {', '.join(architectures)}; the zoo converts the masked-LM, "
        "sequence-classification and bare models of this type."
    )


def weight_map(config, names):
    """`{zoo path: From}` for an encoder of `config` from BERT tensors `names`."""
    base = base_prefix(names, ("bert.",))
    weights = embedding_map(f"{base}embeddings", config)
    for index in range(config["num_layers"]):
        weights.update(block_map(f"encoder_block_{index}", f"{base}encoder.layer.{index}"))
    if config["head"] == "masked-lm":
        weights.update(masked_lm_map("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
                                     "cls.predictions.bias"))
    else:
        weights.update(classifier_map(f"{base}pooler.dense", "classifier", names))
    return weights


def embedding_map(hf, config, position_offset=0):
    weights = {
        "encoder_embedding/token_embedding/embeddings": From(f"{hf}.word_embeddings.weight"),
        "encoder_embedding/position_embedding/embeddings": From(f"{hf}.position_embeddings.weight",
                                                                 skip_rows=position_offset),
        **layer("encoder_embedding_norm", layer_norm(f"{hf}.LayerNorm")),
    }
    if config.get("type_vocab_size"):
        weights["encoder_token_type_embedding/embeddings"] = From(f"{hf}.token_type_embeddings.weight")
    return weights


def block_map(zoo, hf):
    attention = f"{zoo}/self_attention_layer"
    return {
        **layer(f"{attention}/query", linear(f"{hf}.attention.self.query")),
        **layer(f"{attention}/key", linear(f"{hf}.attention.self.key")),
        **layer(f"{attention}/value", linear(f"{hf}.attention.self.value")),
        **layer(f"{attention}/attention_output", linear(f"{hf}.attention.output.dense")),
        **layer(f"{zoo}/self_attention_layer_norm", layer_norm(f"{hf}.attention.output.LayerNorm")),
        **layer(f"{zoo}/feedforward_intermediate_dense", linear(f"{hf}.intermediate.dense")),
        **layer(f"{zoo}/feedforward_output_dense", linear(f"{hf}.output.dense")),
        **layer(f"{zoo}/feedforward_layer_norm", layer_norm(f"{hf}.output.LayerNorm")),
    }


def masked_lm_map(dense, norm, bias):
    return {
        **layer("mlm_dense", linear(dense)),
        **layer("mlm_norm", layer_norm(norm)),
        "mlm_bias/bias": From(bias),
    }


def classifier_map(pooler, classifier, names):
    """The pooler and head, each from the checkpoint when it has them, else new."""
    weights = {}
    for zoo, hf in (("pooler", pooler), ("head", classifier)):
        if f"{hf}.weight" in names:
            weights.update(layer(zoo, linear(hf)))
        else:
            weights.update(new_layer(zoo, "kernel", "bias"))
    return weights
