"""A candidate's estimate before anything is exported: its parameters by arithmetic on the
teacher's own module sizes, its bytes by the recipe's bytes per weight, and its phone latency
from the latency model over the shape it would have.

Bytes are a floor, not a guess at the file: a recipe stores at least this much per weight
(scales and zero points counted, nothing for an exporter's overheads), and every weight is read
by every call but the token table's rows (only a call's own tokens are looked up, and a runtime
that maps the file leaves the rest on flash), so a model needs at least its bytes less that table
in memory to run at speed. That is what lets the search skip a candidate on an estimate without
ever being wrong about it.
"""

from dataclasses import dataclass

from pocketfit.converter.shrinking import families

from .frontier import Estimate, Knobs

# Bytes per weight of a linear layer and of an embedding table, by recipe, at least: int8 keeps
# one float scale per output channel (nothing per weight, near enough); int4 one float scale and
# a 4-bit zero point per group of 32 (64 with emb4, the recipe's group for its tables).
LINEAR = {"none": 4.0, "fp16": 2.0, "int8": 1.0, "int8-static": 1.0, "int4": 0.5 + 4.5 / 32, "int4-emb4": 0.5 + 4.5 / 64}
TABLE = {"none": 4.0, "fp16": 2.0, "int8": 1.0, "int8-static": 1.0, "int4": 1.0, "int4-emb4": 0.5 + 4.5 / 64}


@dataclass(frozen=True)
class Sizes:
    """Where a model's parameters are, read once from the teacher's modules."""

    hidden: int
    vocab: int
    positions: int  # rows of a learned position table; 0 with rotary positions
    position_offset: int
    layers: int
    attention: int  # one layer's query, key, value and output projections (weights and biases)
    ffn: int  # one layer's FFN linear layers
    layer_rest: int  # one layer's norms
    tables_rest: int  # other tables and norms outside the layers (token types, embedding norm, final norm)
    untied_head: bool  # a decoder's output head with weights of its own
    tied_head: bool = False  # a decoder whose output head is its token table: every row is read every step

    def parameters(self, k: Knobs) -> int:
        return self._tables(k) + self._linear(k) + self._rest(k)

    def bytes(self, k: Knobs) -> int:
        """The floor: what lies outside the layers but the token table (a pooler the task never
        runs, say) may not be exported at all, nor every position row (an artifact that fixes
        its sequence length may keep only the rows it can reach), so neither is counted."""
        layers = k.layers or self.layers
        tokens = self._vocab(k) * self.hidden
        return int(tokens * TABLE[k.recipe] + self._linear(k) * LINEAR[k.recipe] + layers * self.layer_rest * 4)

    def resident(self, k: Knobs) -> int:
        """The floor of what must be in memory to run at speed: every weight a call reads. A call
        reads only its own tokens' rows of the token table, so a runtime that maps the file need
        not hold the others; unless the table is also the output head, read whole every step."""
        table = 0 if self.tied_head else int(self._vocab(k) * self.hidden * TABLE[k.recipe])
        return self.bytes(k) - table

    def _vocab(self, k: Knobs) -> int:
        return min(k.vocab or self.vocab, self.vocab)

    def _tables(self, k: Knobs) -> int:
        rows = min(k.seq + self.position_offset, self.positions) if k.seq and self.positions else self.positions
        return (self._vocab(k) + rows) * self.hidden

    def _linear(self, k: Knobs) -> int:
        layers = k.layers or self.layers
        head = self._vocab(k) * self.hidden if self.untied_head else 0
        return int(layers * (self.attention * k.heads + self.ffn * k.ffn)) + head

    def _rest(self, k: Knobs) -> int:
        return (k.layers or self.layers) * self.layer_rest + self.tables_rest


def sizes(module) -> Sizes:
    family = families.of(module)
    layers = families.get(module, family.layers)
    layer = layers[0]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    paths = {family.query, family.key, family.value, family.attention_out}
    attention = sum(count(families.get(layer, p)) for p in paths)
    ffn = sum(count(families.get(layer, p)) for p in filter(None, (family.ffn_in, family.ffn_gate, family.ffn_out)))
    words = families.get(module, family.word_embeddings)
    positions = families.get(module, family.position_embeddings) if family.position_embeddings else None
    head = families.get(module, family.output_embeddings) if family.output_embeddings else None
    untied = head is not None and head.weight.data_ptr() != words.weight.data_ptr()
    tied = head is not None and not untied
    outside = count(module) - len(layers) * count(layer) - words.weight.numel() - (positions.weight.numel() if positions else 0)
    outside -= head.weight.numel() if untied else 0
    return Sizes(hidden=words.embedding_dim, vocab=words.num_embeddings, positions=positions.num_embeddings if positions else 0,
                 position_offset=family.position_offset, layers=len(layers), attention=attention, ffn=ffn,
                 layer_rest=count(layer) - attention - ffn, tables_rest=outside, untied_head=untied,
                 tied_head=tied)


def estimate(s: Sizes, k: Knobs, footprint: int, latency_ms: float | None = None) -> Estimate:
    """The floor of bytes, and of the memory on the phone: the weights a call reads, and the runtime."""
    size, resident = s.bytes(k), s.resident(k)
    return Estimate(size, resident + footprint, latency_ms, table=size - resident)


def shape_of(s: Sizes, module, k: Knobs):
    """The candidate's shape, for the latency model (runtime/cost/shapes.py)."""
    from pocketfit.runtime.cost.shapes import Shape

    config = module.config
    heads = getattr(config, "pocketfit_attention_heads", None) or config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    ffn = getattr(config, families.of(module).ffn_size, None) or 4 * s.hidden
    decoder = families.of(module).output_embeddings is not None
    keep = lambda n, f: max(1, round(n * f))  # noqa: E731
    return Shape("decoder" if decoder else "encoder", k.layers or s.layers, s.hidden, keep(ffn, k.ffn),
                 keep(heads, k.heads) if not decoder else keep(kv, k.heads) * (heads // kv), keep(kv, k.heads),
                 min(k.vocab or s.vocab, s.vocab), head_dim=getattr(config, "head_dim", None) or s.hidden // heads)


PRECISION = {"none": "fp32", "fp16": "fp16", "int8": "int8", "int8-static": "int8", "int4": "int4", "int4-emb4": "int4"}


def phone_latency_ms(shape, k: Knobs, device, seq_len: int = 128) -> float | None:
    """The latency model's figure for the shape on `device`: an encoder's inference over
    `seq_len` tokens, a decoder's step at that context; None for a phone without [compute] facts."""
    from pocketfit.runtime import cost
    from pocketfit.runtime.cost import shapes

    try:
        peaks = cost.phone_peaks(device)
    except cost.NoComputeFacts:
        return None
    phase = "decode" if shape.architecture == "decoder" else "inference"
    done = shapes.work(shape, phase, seq_len, PRECISION[k.recipe], "fp32", label=k.describe())
    return cost.predict(done, peaks, cost.RUNTIMES[k.format], cost.params()).ms
