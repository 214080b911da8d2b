"""A decoder's step over its KV cache in ExecuTorch's LLM operators. Used by pte.export.

Written with transformers' own attention and static cache, one decode step attends over the
whole `max_context` cache (masked) and writes its row with an index_put that ExecuTorch runs on
portable kernels; measured on the tiny Llama of bench-peers (4 x 128, context 256, one step at
position 32): 1.64 ms fp32 and 1.34 ms int8 against 0.92 and 0.40 ms for optimum-executorch,
which uses these operators. Here the cache is one (1, max_context, kv_heads, head_dim) buffer per
layer and per keys/values, written by `llama::update_cache` at the step's position, and
attention is `llama::custom_sdpa`, which reads only the positions up to the step's own (causal,
grouped-query heads included) — the cost of a step grows with the context used, not the one
planned. With the RMSNorms kept in XNNPACK (GemmRMSNorm) and pte's unit-axis permutes as views:
0.89 ms fp32 and 0.50 ms int8 in the same benchmark; alternated with optimum-executorch's
programs in one process, 0.84 vs 0.83 and 0.46 vs 0.48 ms. Both operators ship with
ExecuTorch's pip package (and its Android and iOS runtimes); the Runner registers their
kernels before loading a program.
"""

import torch

from ._onnx_fusions import RMS_NORMS

_NAME = "pocketfit_llama_ops"  # the transformers attention and mask implementation registered here


def supports(config, kv) -> bool:
    """Whether custom_sdpa computes this model's attention: plain causal attention over every
    position, no logit soft-capping and no sliding window shorter than the cache (Gemma 2,
    Mistral's windows). Other models keep transformers' attention over the static cache."""
    window = getattr(config, "sliding_window", None)
    windowed = window is not None and window < kv.max_context and getattr(config, "use_sliding_window", True)
    return not windowed and not getattr(config, "attn_logit_softcapping", None)


def load_ops() -> None:
    """Register llama::update_cache and llama::custom_sdpa (ATen for export, kernels for the runtime)."""
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401


class DecodeOps(torch.nn.Module):
    """(token, position) -> logits, like generation.DecodeState, with the cache written and
    read by ExecuTorch's LLM operators."""

    def __init__(self, model: torch.nn.Module, kv):
        super().__init__()
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface

        load_ops()
        AttentionInterface.register(_NAME, _attention)
        AttentionMaskInterface.register(_NAME, _no_mask)
        self.model = model
        self.kv = kv
        model.config._attn_implementation = _NAME
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child).__name__ in RMS_NORMS:
                    setattr(parent, name, GemmRMSNorm(child))
        for i in range(kv.layers):
            shape = (1, kv.max_context, kv.kv_heads, kv.head_dim)
            self.register_buffer(f"key_cache_{i}", torch.zeros(shape), persistent=False)
            self.register_buffer(f"value_cache_{i}", torch.zeros(shape), persistent=False)

    def forward(self, input_ids, position):
        from transformers import StaticCache

        start = position[0].item()
        torch._check_is_size(start)
        torch._check(start < self.kv.max_context)
        cache = StaticCache(config=self.model.config, max_cache_len=self.kv.max_context)
        cache.layers = [_layer(getattr(self, f"key_cache_{i}"), getattr(self, f"value_cache_{i}"), start)
                        for i in range(self.kv.layers)]
        for m in self.model.modules():
            if hasattr(m, "layer_idx") and hasattr(m, "is_causal"):
                m.pocketfit_start = start
        positions = position.unsqueeze(0)
        return self.model(input_ids=input_ids, position_ids=positions, cache=cache, use_cache=True).logits[:, -1, :]


class GemmRMSNorm(torch.nn.Module):
    """RMSNorm with its mean of squares as a fully connected layer of one output (weights
    1/width): XNNPACK has no row reduction, and each portable `mean` split the delegate."""

    def __init__(self, norm: torch.nn.Module):
        super().__init__()
        width = norm.weight.shape[0]
        self.eps = norm.variance_epsilon
        self.register_buffer("average", torch.full((1, width), 1.0 / width))
        self.weight = torch.nn.Parameter(norm.weight.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        variance = torch.nn.functional.linear(x32 * x32, self.average.float())  # fp32 under the fp16 recipe too
        return self.weight * (x32 * torch.rsqrt(variance + self.eps)).to(x.dtype)


def _layer(keys, values, start):
    """A transformers static cache layer over (1, max_context, kv_heads, head_dim) buffers."""
    from transformers.cache_utils import StaticLayer

    class Layer(StaticLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            torch.ops.llama.update_cache(key_states.transpose(1, 2), self.keys, start)
            torch.ops.llama.update_cache(value_states.transpose(1, 2), self.values, start)
            return self.keys, self.values  # as stored: _attention knows the layout

    layer = Layer(max_cache_len=keys.shape[1])
    layer.keys, layer.values, layer.is_initialized = keys, values, True
    return layer


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """(batch, heads, length, head_dim) query; keys and values the (batch, max_context, kv_heads,
    head_dim) cache buffers as the cache layer returns them (not transposed to transformers'
    layout and back: two copies of the cache per layer). Returns (batch, length, heads, head_dim)."""
    out = torch.ops.llama.custom_sdpa(query.transpose(1, 2), key, value,
                                      module.pocketfit_start, None, 0.0, True, scaling)
    return out, None


def _no_mask(*args, **kwargs):
    return None  # custom_sdpa masks causally from the step's start position
