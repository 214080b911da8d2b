"""The work of a transformer described only by its shape — what a published on-device result
names (a model, its precision, a prompt length) when there is no artifact to read. Priced by
the same rules as an artifact's ops (converter/work.py), op by op as a runtime runs them.
"""

from dataclasses import dataclass
from pathlib import Path

from pocketfit.converter.work import Operand, Work, price

# Bytes per weight as stored: int8 and int4 carry a 16-bit scale per group of 32 (Q8_0, Q4_0,
# ExecuTorch's 8da4w at group 32; per-channel int8 pays less, within 1%)
WEIGHT_BYTES = {"fp32": 4.0, "fp16": 2.0, "int8": 34 / 32, "int4": 18 / 32}


@dataclass(frozen=True)
class Shape:
    architecture: str  # "decoder" | "encoder"
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool = False
    head_dim: int | None = None

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads


def kernel_precision(weights: str, activations: str) -> str:
    """Integer weights run integer kernels: XNNPACK (under LiteRT's and ExecuTorch's dynamic
    recipes), llama.cpp and onnxruntime quantize float activations to int8 on the fly, per call
    ("dynamic range" quantization), so a model card's "float activations" still multiplies in
    int8. Float weights run at the activations' precision."""
    return weights if weights in ("int8", "int4") else activations


def work(shape: Shape, phase: str, tokens: int, weights: str, activations: str, label: str = "") -> Work:
    """prefill: `tokens` prompt tokens in one call; decode: one token attending `tokens`
    positions; inference: an encoder's forward pass over `tokens`."""
    precision = kernel_precision(weights, activations)
    act = 2 if activations == "fp16" else 4
    wb = WEIGHT_BYTES[weights]
    m = 1 if phase == "decode" else tokens
    ops = []

    def linear(name, rows, k, n):
        ops.append(price(name, "linear", "matmul", precision, [Operand((rows, k), act), Operand((k, n), wb, True)],
                         [Operand((rows, n), act)]))

    def each(name, kind, elements):
        ops.append(price(name, kind, kind, "fp32", [Operand((elements,), act)], [Operand((elements,), act)]))

    if shape.architecture == "mobilebert":
        return _mobilebert(shape, tokens, precision, act, wb, label)
    q_width, kv_width = shape.heads * shape.dim, shape.kv_heads * shape.dim
    ops.append(price("embed", "embedding", "gather", "fp32", [Operand((shape.vocab, shape.hidden), wb, True), Operand((m,), 8)],
                     [Operand((m, shape.hidden), act)], rows_read=m))
    for i in range(shape.layers):
        each(f"{i}.norm1", "norm", m * shape.hidden)
        linear(f"{i}.q", m, shape.hidden, q_width)
        linear(f"{i}.k", m, shape.hidden, kv_width)
        linear(f"{i}.v", m, shape.hidden, kv_width)
        # causal prefill: query j attends j+1 keys, (tokens+1)/2 on average; decode: the context
        keys = {"decode": tokens, "prefill": (tokens + 1) / 2, "inference": tokens}[phase]
        cache = [Operand((2, int(keys), kv_width), act)]
        ops.append(price(f"{i}.attention", "sdpa", "attention", "fp32", [Operand((m, q_width), act)] + cache,
                         [Operand((m, q_width), act)], attention=(shape.heads, m, int(round(keys)), shape.dim)))
        linear(f"{i}.o", m, q_width, shape.hidden)
        each(f"{i}.norm2", "norm", m * shape.hidden)
        if shape.architecture == "decoder":  # gated FFN (SwiGLU)
            linear(f"{i}.gate", m, shape.hidden, shape.intermediate)
            linear(f"{i}.up", m, shape.hidden, shape.intermediate)
            each(f"{i}.act", "elementwise", 2 * m * shape.intermediate)
        else:
            linear(f"{i}.up", m, shape.hidden, shape.intermediate)
            each(f"{i}.act", "elementwise", m * shape.intermediate)
        linear(f"{i}.down", m, shape.intermediate, shape.hidden)
    if shape.architecture == "decoder":
        each("final_norm", "norm", shape.hidden)
        linear("lm_head", 1, shape.hidden, shape.vocab)  # logits of the last position only
    return Work(Path(label or "shape"), "shape", phase, m, tokens if phase == "decode" else None, tuple(ops),
                "built from the model's published shape")


MOBILEBERT_BOTTLENECK = 128  # google/mobilebert-uncased config.json: intra_bottleneck_size 128
MOBILEBERT_FFN_STACKS = 4  # num_feedforward_networks 4; key_query_shared_bottleneck true


def _mobilebert(shape: Shape, tokens: int, precision: str, act: int, wb: float, label: str) -> Work:
    """MobileBERT's block: the 512-wide layer input squeezed to a 128-wide bottleneck (once for
    the block, once shared by query and key), values from the 512-wide input, four stacked
    128 -> 512 -> 128 FFNs, and the bottleneck widened back to 512."""
    m, b, ops = tokens, MOBILEBERT_BOTTLENECK, []

    def linear(name, k, n):
        ops.append(price(name, "linear", "matmul", precision, [Operand((m, k), act), Operand((k, n), wb, True)],
                         [Operand((m, n), act)]))

    def norm(name, width):
        ops.append(price(name, "norm", "norm", "fp32", [Operand((m, width), act)], [Operand((m, width), act)]))

    ops.append(price("embed", "embedding", "gather", "fp32", [Operand((shape.vocab, b), wb, True), Operand((m,), 8)],
                     [Operand((m, b), act)], rows_read=m))
    linear("embed.transform", 3 * b, shape.hidden)  # trigram embedding 384 -> 512
    for i in range(shape.layers):
        linear(f"{i}.bottleneck_in", shape.hidden, b)
        linear(f"{i}.bottleneck_attention", shape.hidden, b)
        linear(f"{i}.q", b, b)
        linear(f"{i}.k", b, b)
        linear(f"{i}.v", shape.hidden, b)
        ops.append(price(f"{i}.attention", "sdpa", "attention", "fp32", [Operand((m, b), act), Operand((2, m, b), act)],
                         [Operand((m, b), act)], attention=(shape.heads, m, m, b // shape.heads)))
        linear(f"{i}.o", b, b)
        norm(f"{i}.norm_attention", b)
        for j in range(MOBILEBERT_FFN_STACKS):
            linear(f"{i}.ffn{j}.up", b, shape.intermediate)
            ops.append(price(f"{i}.ffn{j}.act", "relu", "elementwise", "fp32", [Operand((m, shape.intermediate), act)],
                             [Operand((m, shape.intermediate), act)]))
            linear(f"{i}.ffn{j}.down", shape.intermediate, b)
            norm(f"{i}.ffn{j}.norm", b)
        linear(f"{i}.bottleneck_out", b, shape.hidden)
        norm(f"{i}.norm_out", shape.hidden)
    return Work(Path(label or "shape"), "shape", "inference", m, None, tuple(ops), "built from the model's published shape")
