"""Where each model family keeps the parts shrinking cuts, and which config keys say their sizes:
a small table keyed by the config's model_type, so the pruning code never names a family.

Module paths are relative to the loaded module (a transformers AutoModel); layer paths are
relative to one layer of `layers`.
"""

import dataclasses
from dataclasses import dataclass

from pocketfit.errors import BadInput


@dataclass(frozen=True)
class Family:
    layers: str  # the ModuleList of transformer layers
    ffn_in: str  # Linear hidden -> intermediate
    ffn_out: str  # Linear intermediate -> hidden
    query: str
    key: str
    value: str
    attention_out: str  # Linear heads -> hidden
    attention: str  # the module holding num_attention_heads / all_head_size
    word_embeddings: str
    position_embeddings: str | None
    position_offset: int = 0  # RoBERTa numbers positions from padding_idx + 1
    shared_head_bias: str | None = None  # a per-head table all layers share (MPNet's relative bias)
    ffn_gate: str | None = None  # gated FFNs: the second Linear hidden -> intermediate (its rows cut with ffn_in's)
    grouped_kv: bool = False  # keys and values have config.num_key_value_heads heads, each shared by a group
    output_embeddings: str | None = None  # a decoder's LM head: its rows are the vocabulary too
    fused_qkv: bool = False  # query, key and value are one layer (query, key, value name it), its outputs [q | k | v]
    ffn_size: str = "intermediate_size"  # the config key that says the FFN's width


_BERT = Family(
    layers="encoder.layer", ffn_in="intermediate.dense", ffn_out="output.dense",
    query="attention.self.query", key="attention.self.key", value="attention.self.value",
    attention_out="attention.output.dense", attention="attention.self",
    word_embeddings="embeddings.word_embeddings", position_embeddings="embeddings.position_embeddings",
)

# Llama-style decoders (RoPE, so no position table; gated FFN; grouped-query attention).
_LLAMA = Family(
    layers="model.layers", ffn_in="mlp.up_proj", ffn_gate="mlp.gate_proj", ffn_out="mlp.down_proj",
    query="self_attn.q_proj", key="self_attn.k_proj", value="self_attn.v_proj", attention_out="self_attn.o_proj",
    attention="self_attn", word_embeddings="model.embed_tokens", position_embeddings=None, grouped_kv=True,
    output_embeddings="lm_head",
)

# GPT-2: Conv1D layers (weights stored in x out), one fused query-key-value layer, learned
# positions, and a head size the config derives from n_embd / n_head.
_GPT2 = Family(
    layers="transformer.h", ffn_in="mlp.c_fc", ffn_out="mlp.c_proj", query="attn.c_attn", key="attn.c_attn",
    value="attn.c_attn", attention_out="attn.c_proj", attention="attn", word_embeddings="transformer.wte",
    position_embeddings="transformer.wpe", output_embeddings="lm_head", fused_qkv=True, ffn_size="n_inner",
)

FAMILIES = {
    "bert": _BERT,
    "roberta": dataclasses.replace(_BERT, position_offset=2),  # positions from padding_idx + 1
    "gpt2": _GPT2,
    "llama": _LLAMA,
    "qwen2": _LLAMA,
    "mpnet": Family(
        layers="encoder.layer", ffn_in="intermediate.dense", ffn_out="output.dense",
        query="attention.attn.q", key="attention.attn.k", value="attention.attn.v",
        attention_out="attention.attn.o", attention="attention.attn",
        word_embeddings="embeddings.word_embeddings", position_embeddings="embeddings.position_embeddings",
        position_offset=2, shared_head_bias="encoder.relative_attention_bias",
    ),
}


def of(module) -> Family:
    kind = getattr(getattr(module, "config", None), "model_type", None)
    if kind not in FAMILIES:
        raise BadInput(f"pocketfit does not know how to shrink a {kind or type(module).__name__} model: "
                       f"it shrinks {', '.join(sorted(FAMILIES))} models")
    family = FAMILIES[kind]
    try:
        get(module, family.layers)
    except AttributeError:  # the family's weights under another head (a BERT loaded as a causal LM, say)
        raise BadInput(f"pocketfit does not know how to shrink a {type(module).__name__}: it shrinks {kind} models laid out "
                       f"with their layers at {family.layers}, and this one has none there") from None
    return family


def get(root, path: str):
    for name in path.split("."):
        root = getattr(root, name)
    return root


def put(root, path: str, value) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get(root, parent) if parent else root, name, value)
