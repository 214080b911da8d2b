"""Training under a format's own rounding, for a quantization-aware heal: each backend that can
emulate how its quantizer rounds a recipe's weights offers `train_as(module, recipe)`, which
makes the module's linear layers compute with those rounded weights (gradients pass straight
through the rounding to the float weights) and returns the function that puts plain layers back.

It has to be the format's own rounding: onnxruntime's 4-bit groups are asymmetric, torchao's are
symmetric with a different scale, and a model healed for one grid lost quality on the other
(MiniLM int4: 0.971 → 0.980 cosine in ONNX after healing for ONNX's rounding, but 0.957 → 0.951
in .pte and 0.961 → 0.947 in .tflite).
"""

from collections.abc import Callable


def asymmetric_groups(module, bits: int, group_size: int, embeddings: bool = False) -> Callable[[], None]:
    """Min-max asymmetric groups along the input axis, the zero point rounded, the range always
    holding zero: onnxruntime's MatMulNBits quantizer with is_symmetric=False. With
    `embeddings`, the embedding tables too, in groups along each row (GatherBlockQuantized)."""
    import torch
    from torch.nn.utils import parametrize

    top = (1 << bits) - 1

    class Rounded(torch.nn.Module):
        def forward(self, w):
            out, inp = w.shape
            if inp % group_size:  # the quantizer pads the last group with zeros
                pad = group_size - inp % group_size
                x = torch.nn.functional.pad(w, (0, pad)).reshape(out, -1, group_size)
            else:
                pad, x = 0, w.reshape(out, -1, group_size)
            lo = x.amin(-1, keepdim=True).clamp(max=0)
            hi = x.amax(-1, keepdim=True).clamp(min=0)
            scale = (hi - lo) / top
            scale = torch.where(scale == 0, torch.ones_like(scale), scale)
            zero = torch.round(-lo / scale).clamp(0, top)
            q = (torch.clamp(torch.round(x / scale) + zero, 0, top) - zero) * scale
            q = q.reshape(out, -1)[:, :inp]
            return w + (q - w).detach()

    kinds = (torch.nn.Linear, torch.nn.Embedding) if embeddings else (torch.nn.Linear,)
    layers = [m for m in module.modules() if isinstance(m, kinds)]
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", Rounded())

    def restore() -> None:
        for layer in layers:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)

    return restore


def torchao_qat(module, base_config) -> Callable[[], None]:
    """torchao's own fake quantizers for `base_config` (activations and weights as its
    quantize_ will round them), swapped back to plain Linear layers afterwards."""
    import torch
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig
    from torchao.quantization.qat.linear import FakeQuantizedLinear

    quantize_(module, QATConfig(base_config, step="prepare"), lambda m, fqn: isinstance(m, torch.nn.Linear))

    def restore() -> None:
        for name, child in list(module.named_modules()):
            for attr, sub in list(child.named_children()):
                if isinstance(sub, FakeQuantizedLinear):
                    setattr(child, attr, sub.to_linear())

    return restore
