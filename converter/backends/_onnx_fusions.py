"""onnxruntime's transformer fusions on an exported encoder, before it is quantized.

Both of torch's exporters write transformers' SDPA attention decomposed: q and k each scaled by
sqrt(scale), the mask applied with Where, and a NaN guard after the Softmax (the TorchScript
exporter adds a reshape of the context to its own shape). onnxruntime's attention patterns
(onnxruntime.transformers.optimizer) match neither graph (no Attention on MiniLM from either),
so the attention is fused here into com.microsoft.MultiHeadAttention; the optimizer then fuses
what it does match (SkipLayerNormalization, BiasGelu, LayerNormalization). One fused kernel per
block instead of a dozen small ops is what makes a short sequence fast, and the int8 quantizer
then works on the same MatMuls as before, so parity is unchanged.
"""

from collections import Counter
from contextlib import contextmanager
from pathlib import Path

FUSED = ("MultiHeadAttention", "SkipLayerNormalization", "BiasGelu", "Gelu", "FastGelu", "LayerNormalization")


def fuse_encoder(src: Path, dst: Path, num_heads: int, hidden_size: int, mask_input: str = "attention_mask") -> dict[str, int]:
    """Write `src` with its attention and normalization fused to `dst`. Returns the fused
    operators and how many of each the graph now holds (new model; `src` is not changed)."""
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model = onnx.load(str(src))
    _fuse_attention(model, num_heads, mask_input)
    options = FusionOptions("bert")
    options.enable_attention = False  # done above, for both exporters' graphs
    # The token table stays a Gather: the int8 quantizer quantizes Gathers, not the fused
    # EmbedLayerNormalization, and that table is half of MiniLM's weights.
    options.enable_embed_layer_norm = False
    # Symbolic shape inference copies the whole model (weights included) four times and costs
    # most of the fusion time; without it SkipLayerNormalization fuses the same 12 of 12 here.
    options.enable_shape_inference = False
    # opt_level 0: the fusions only, in memory; onnxruntime's own graph optimizations run when a
    # session loads the artifact, on the device's CPU, not ahead of time for this machine's.
    optimized = optimize_model(model, model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                               optimization_options=options, opt_level=0)
    optimized.save_model_to_file(str(dst))
    counts = Counter(node.op_type for node in optimized.model.graph.node)
    return {op: counts[op] for op in FUSED if counts[op]}


def _fuse_attention(model, num_heads: int, mask_input: str) -> int:
    """Replace each decomposed attention (Softmax((q*s)(k*s)^T + mask) v) by one
    MultiHeadAttention over the projections' (batch, sequence, hidden) outputs, with the 2-D
    padding mask as its key_padding_mask. In place; returns how many were fused."""
    import onnx
    from onnx import helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)

    def only(name: str, op: str):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None

    def reader(name: str):
        """The one node that reads `name` for its values (Shape nodes read only its shape)."""
        users = [n for n in consumers.get(name, []) if n.op_type != "Shape"]
        return users[0] if len(users) == 1 else None

    def source(name: str) -> tuple[str, float]:
        """Walk up through reshapes, transposes and constant scalings to the projection's output."""
        scale = 1.0
        while (node := producer.get(name)) is not None and node.op_type in ("Reshape", "Transpose", "Mul"):
            if node.op_type == "Mul":
                const = [i for i in node.input if i in constants and constants[i].size == 1]
                if not const:
                    break
                scale *= float(constants[const[0]].reshape(()))
                name = next(i for i in node.input if i != const[0])
            else:
                name = node.input[0]
        return name, scale

    replacements = []
    for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
        add = producer.get(softmax.input[0])
        if add is None or add.op_type != "Add":
            continue
        scores = next((producer[i] for i in add.input if i in producer and producer[i].op_type == "MatMul"), None)
        if scores is None:
            continue
        # The NaN guard (a fully masked row gives NaN, set to 0), then the product with v.
        guard = only(softmax.output[0], "Where") or next((n for n in consumers.get(softmax.output[0], []) if n.op_type == "Where"), None)
        probs = guard.output[0] if guard is not None else softmax.output[0]
        context = only(probs, "MatMul")
        if context is None:
            continue
        after = reader(context.output[0])
        while after is not None and after.op_type == "Reshape":  # TorchScript's SDPA: a reshape to its own shape
            after = reader(after.output[0])
        transpose = after if after is not None and after.op_type == "Transpose" else None
        merged = only(transpose.output[0], "Reshape") if transpose is not None else None
        if merged is None:
            continue
        (q, q_scale), (k, k_scale) = source(scores.input[0]), source(scores.input[1])
        v, _ = source(context.input[1])
        replacements.append((merged.output[0], q, k, v, q_scale * k_scale, softmax.name))

    if not replacements:
        return 0
    mask32 = mask_input + "_int32"
    new_nodes = [helper.make_node("Cast", [mask_input], [mask32], to=onnx.TensorProto.INT32, name="pocketfit_mask_int32")]
    for out, q, k, v, scale, name in replacements:
        new_nodes.append(helper.make_node("MultiHeadAttention", [q, k, v, "", mask32], [out], domain="com.microsoft",
                                          num_heads=num_heads, scale=scale, name=f"{name}_mha"))
    replaced = {out for out, *_ in replacements}
    kept = [n for n in graph.node if not set(n.output) & replaced]
    del graph.node[:]
    graph.node.extend(_topological(kept + new_nodes, graph))
    _prune(graph)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return len(replacements)


def _topological(nodes: list, graph) -> list:
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    ordered, pending = [], list(nodes)
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("attention fusion left a cycle or a dangling input")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if n not in ready]
    return ordered


def _prune(graph) -> None:
    """Drop the nodes and initializers nothing reads any more (the old attention and mask ops)."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if set(node.output) & needed:
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [init for init in graph.initializer if init.name not in needed]
    for init in unused:
        graph.initializer.remove(init)



@contextmanager
def fusable_rms_norms(module):
    """While exporting `module`, its transformers RMSNorms (Llama's and the models that copy
    it) are written as x / sqrt(mean(x^2) + eps), the pattern onnxruntime fuses into one
    SimplifiedLayerNormalization when it loads the graph. torch's exporter writes their
    rsqrt as Sqrt + Reciprocal, which it leaves as five small ops per norm (nine norms in the
    tiny Llama decoder: an eighth of its decode step)."""
    import torch

    def forward(norm, x):
        x32 = x.float()
        return norm.weight * (x32 / torch.sqrt(x32.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)).to(x.dtype)

    norms = [m for m in module.modules() if type(m).__name__ in RMS_NORMS]
    for norm in norms:
        norm.forward = forward.__get__(norm)
    try:
        yield len(norms)
    finally:
        for norm in norms:
            del norm.forward


# transformers' RMSNorms written as Llama's (the others are marked "Copied from" it).
RMS_NORMS = {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "Phi3RMSNorm", "SmolLM3RMSNorm"}
