"""An encoder rewritten into operators the XNNPACK delegate takes, so that ExecuTorch runs it in
a few large partitions instead of many small ones joined by portable kernels. Used by pte.export.

Measured on all-MiniLM-L6-v2 int8 before this rewrite (ETDump, 32 tokens): 57 delegate calls
and 185 portable-kernel calls, about 30% of the run time outside XNNPACK. What left the delegate:
- SDPA, decomposed by torch.export, guards fully masked rows with `any`/`where` and scales q and
  k with `mul.Scalar`: 6 portable calls per layer;
- `torch.matmul` on 4-D tensors becomes `expand_copy` + `bmm`: 4 portable copies per layer;
- LayerNorm, which XNNPACK has no operator for: 2 per layer.
Here attention is `bmm` on 3-D tensors with an additive padding mask built once, and LayerNorm
is written with fully connected means (XNNPACK has no row reduction but a 1-wide GEMM): the
same math as the eager module (MiniLM fp32 outputs within 1e-6). After it: 2 delegate calls and
15 portable calls (embedding lookups, the pooling sums, index and dtype bookkeeping).
"""

import torch

_NAME = "pocketfit_xnnpack"  # the transformers attention and mask implementation registered here


def rewrite(module: torch.nn.Module) -> list[str]:
    """In place: point the config of every transformers model in `module` that takes a registered
    attention function (`_supports_attention_backend`) at this module's attention and mask, and
    swap every LayerNorm for `GemmLayerNorm`. Returns what it changed."""
    from transformers import AttentionInterface, PreTrainedModel
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(_NAME, _attention)
    AttentionMaskInterface.register(_NAME, _mask)
    changed = []
    for m in module.modules():
        if isinstance(m, PreTrainedModel) and m._supports_attention_backend and m.config._attn_implementation != _NAME:
            m.config._attn_implementation = _NAME
            changed.append(f"attention: {type(m).__name__} -> bmm with an additive padding mask")
    norms = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.LayerNorm and len(child.normalized_shape) == 1:
                setattr(parent, name, GemmLayerNorm(child))
                norms += 1
    if norms:
        changed.append(f"layer norms: {norms} written with fully connected means")
    return changed


class GemmLayerNorm(torch.nn.Module):
    """LayerNorm over the last axis, its two means as fully connected layers of one output
    (weights 1/width), which XNNPACK runs in fp32."""

    def __init__(self, norm: torch.nn.LayerNorm):
        super().__init__()
        width = norm.normalized_shape[0]
        self.eps = norm.eps
        self.register_buffer("average", torch.full((1, width), 1.0 / width))
        self.weight = torch.nn.Parameter(norm.weight.detach().clone(), requires_grad=False) if norm.weight is not None else None
        self.bias = torch.nn.Parameter(norm.bias.detach().clone(), requires_grad=False) if norm.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - torch.nn.functional.linear(x, self.average)
        variance = torch.nn.functional.linear(centred * centred, self.average)
        y = centred * torch.rsqrt(variance + self.eps)
        if self.weight is not None:
            y = y * self.weight
        return y + self.bias if self.bias is not None else y


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' eager attention ((batch, heads, length, head_dim) in, (batch, length,
    heads, head_dim) out) as bmm on (batch * heads, length, ...) tensors: no expand copies, and
    each view has one dynamic size at most (XNNPACK's reshape takes one)."""
    batch, heads, length, width = query.shape
    if key.shape[1] != heads:  # grouped keys and values: repeat them for their query heads
        key = key.repeat_interleave(heads // key.shape[1], dim=1)
        value = value.repeat_interleave(heads // value.shape[1], dim=1)
    keys = key.shape[2]
    scaling = width ** -0.5 if scaling is None else scaling
    scores = torch.bmm((query * scaling).reshape(batch * heads, length, width),
                       key.transpose(2, 3).reshape(batch * heads, width, keys))
    if attention_mask is not None and attention_mask.shape[2] == 1:  # a padding bias, (batch, 1, 1, keys)
        bias = attention_mask.reshape(batch, 1, keys)
        scores = scores + (bias.repeat_interleave(heads, dim=0) if batch > 1 else bias)
    elif attention_mask is not None:  # a full (batch, 1, queries, keys) mask
        scores = (scores.view(batch, heads, length, keys) + attention_mask).view(batch * heads, length, keys)
    probs = torch.softmax(scores, dim=-1)
    out = torch.bmm(probs, value.reshape(batch * heads, keys, width))
    return out.view(batch, heads, length, width).transpose(1, 2).contiguous(), probs.view(batch, heads, length, keys)


def _mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, mask_function=None, attention_mask=None,
          dtype=torch.float32, **kwargs):
    """A padding-only (bidirectional) mask as an additive (batch, 1, 1, keys) bias that attention
    broadcasts over heads and queries; any other pattern as transformers' eager float mask."""
    from transformers.masking_utils import bidirectional_mask_function, eager_mask

    if mask_function is not bidirectional_mask_function or (attention_mask is not None and attention_mask.shape[-1] != kv_length):
        return eager_mask(batch_size=batch_size, q_length=q_length, kv_length=kv_length, q_offset=q_offset,
                          kv_offset=kv_offset, mask_function=mask_function, attention_mask=attention_mask, dtype=dtype, **kwargs)
    if attention_mask is None:
        return None
    keep = attention_mask[:, None, None, :].to(dtype)
    return (keep - 1.0) * torch.finfo(dtype).max  # 0 where kept, the lowest finite value where padded
