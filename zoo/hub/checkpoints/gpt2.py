"""GPT-2 (GPT2LMHeadModel, GPT2Model) -> the `transformer-decoder` family.

Pre-norm decoder blocks with tanh-approximate GELU, learned positions and an
output projection tied to the token embedding: the zoo's decoder already.
GPT-2 has no padding id (id 0 is "!"), so nothing is derived from ids.
GPT-2 stores its projections as Conv1D, (in, out): no transpose.
"""

from zoo.hub.checkpoints.mapping import From, base_prefix, layer, layer_norm, one_dropout, require, value

MODEL_TYPE = "gpt2"
ACTIVATIONS = {"gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate", "gelu": "gelu",
               "relu": "relu"}
# Causal-mask buffers of old checkpoints; the LM head, tied to the token embedding.
IGNORED = (r".*attn\.(masked_)?bias", r"lm_head\.weight")


def family_config(hf):
    """(family, config) for a GPT-2 config.json."""
    require(hf, "add_cross_attention", (False,), False, "no cross-attention in the decoder family")
    require(hf, "scale_attn_weights", (True,), True, "attention scores are scaled by 1/sqrt(head size)")
    require(hf, "scale_attn_by_inverse_layer_idx", (False,), False, "no per-layer attention scaling")
    require(hf, "tie_word_embeddings", (True,), True, "the output projection is the token embedding")
    activation = require(hf, "activation_function", tuple(ACTIVATIONS), "gelu_new", "feed-forward activation")
    hidden = value(hf, "n_embd", "hidden_size")
    return "transformer-decoder", {
        "vocab_size": value(hf, "vocab_size"),
        "hidden_dim": hidden,
        "num_heads": value(hf, "n_head", "num_attention_heads"),
        "intermediate_dim": value(hf, "n_inner", default=4 * hidden),
        "num_layers": value(hf, "n_layer", "num_hidden_layers"),
        "max_length": value(hf, "n_positions", "max_position_embeddings"),
        "dropout": one_dropout(hf, "resid_pdrop", "embd_pdrop", "attn_pdrop"),
        "activation": ACTIVATIONS[activation],
        "normalize_first": True,
        "layer_norm_epsilon": value(hf, "layer_norm_epsilon", default=1e-5),
        "pad_token_id": None,
        "padding_mask_input": True,
    }


def weight_map(config, names):
    """`{zoo path: From}` for a decoder of `config` from GPT-2 tensors `names`."""
    base = base_prefix(names, ("transformer.",))
    weights = {
        "decoder_embedding/token_embedding/embeddings": From(f"{base}wte.weight"),
        "decoder_embedding/position_embedding/embeddings": From(f"{base}wpe.weight"),
        **layer("decoder_final_norm", layer_norm(f"{base}ln_f")),
    }
    for index in range(config["num_layers"]):
        weights.update(block_map(f"decoder_block_{index}", f"{base}h.{index}"))
    return weights


def block_map(zoo, hf):
    attention = f"{zoo}/self_attention"
    weights = {
        **layer(f"{zoo}/self_attention_layer_norm", layer_norm(f"{hf}.ln_1")),
        **layer(f"{zoo}/feedforward_layer_norm", layer_norm(f"{hf}.ln_2")),
        **layer(f"{attention}/attention_output", conv1d(f"{hf}.attn.c_proj")),
        **layer(f"{zoo}/feedforward_intermediate_dense", conv1d(f"{hf}.mlp.c_fc")),
        **layer(f"{zoo}/feedforward_output_dense", conv1d(f"{hf}.mlp.c_proj")),
    }
    for part, projection in enumerate(("query", "key", "value")):
        weights[f"{attention}/{projection}/kernel"] = From(f"{hf}.attn.c_attn.weight", part=part, parts=3)
        weights[f"{attention}/{projection}/bias"] = From(f"{hf}.attn.c_attn.bias", part=part, parts=3)
    return weights


def conv1d(name):
    return {"kernel": From(f"{name}.weight"), "bias": From(f"{name}.bias")}
