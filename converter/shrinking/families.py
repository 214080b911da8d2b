"""Where each model family keeps the parts shrinking cuts, and which config keys say their sizes:
a small table keyed by the config's model_type, so the pruning code never names a family.

Module paths are relative to the loaded module (a transformers AutoModel); layer paths are
relative to one layer of `layers`.
"""

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
    tokenizer: str = "wordpiece"


_BERT = Family(
    layers="encoder.layer", ffn_in="intermediate.dense", ffn_out="output.dense",
    query="attention.self.query", key="attention.self.key", value="attention.self.value",
    attention_out="attention.output.dense", attention="attention.self",
    word_embeddings="embeddings.word_embeddings", position_embeddings="embeddings.position_embeddings",
)

FAMILIES = {
    "bert": _BERT,
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
                       f"it shrinks {', '.join(sorted(FAMILIES))} encoders")
    return FAMILIES[kind]


def get(root, path: str):
    for name in path.split("."):
        root = getattr(root, name)
    return root


def put(root, path: str, value) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get(root, parent) if parent else root, name, value)
