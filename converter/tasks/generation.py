"""text-generation: one decode step of a decoder-only model over a static KV cache.

The artifact takes one token and its position and returns the next-token logits; the cache of
`max_context` positions either lives inside the program (CacheStyle.STATE) or is passed in and
returned (CacheStyle.IO). Its size is fixed at export, so it is part of the memory the artifact
plans, not something that grows while the app runs. A prompt is fed one token at a time.
"""

import numpy as np
import torch

from pocketfit.errors import BadInput

from ..recipes import Fp16, Int4Weight, Int8Dynamic, Int8Static, NoQuant
from ..texts import sentences
from . import CacheStyle, Graph, Input, KvCache, conform, no_grad

AUTO_CLASS = "AutoModelForCausalLM"
DEFAULT_MAX_CONTEXT = 256
PROMPTS = 2  # fixed sentences used as prompts
PROMPT_TOKENS = 8
GENERATED = 24  # greedy steps per prompt: 48 compared next-token choices in all
MIN_CONTEXT = PROMPT_TOKENS + GENERATED

# Greedy next-token agreement with the torch model. A random-weight test decoder has many
# near-ties among its logits, so quantization error flips some choices that a trained model
# would keep; fp32 and fp16 may differ only by rounding.
FLOORS = {
    NoQuant: {"token_agreement": 0.97},
    Fp16: {"token_agreement": 0.9},
    Int8Dynamic: {"token_agreement": 0.75},
    Int8Static: {"token_agreement": 0.6},
    Int4Weight: {"token_agreement": 0.6},
}


def geometry(config, max_context: int) -> KvCache:
    # A config that derives the head size from hidden_size / heads (GPT-2) cannot say "fewer heads
    # of the same size": head pruning records the count it left in pocketfit_attention_heads.
    heads = getattr(config, "pocketfit_attention_heads", None) or config.num_attention_heads
    return KvCache(
        layers=config.num_hidden_layers,
        kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
        max_context=max_context,
    )


def _step(model, kv: KvCache, keys, values, input_ids: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Run `input_ids` at `position` through `model`, writing into `keys`/`values` in place.
    `keys[i]`/`values[i]` is layer i's (1, kv_heads, max_context, head_dim) cache: a row of
    one stacked tensor, or a tensor of its own. The sizes come from `kv`, not the tensors: a
    TorchScript trace sees a traced input's sizes as tensors."""
    from transformers import StaticCache

    cache = StaticCache(config=model.config, max_cache_len=kv.max_context)
    cache.early_initialization(1, kv.kv_heads, kv.head_dim, keys[0].dtype, keys[0].device)
    for i, layer in enumerate(cache.layers):
        layer.keys, layer.values = keys[i], values[i]
        layer.cumulative_length = position.reshape(()).clone()
    positions = (position + torch.arange(input_ids.shape[1])).unsqueeze(0)
    return model(input_ids=input_ids, position_ids=positions, cache=cache, use_cache=True).logits[:, -1, :]


class DecodeIO(torch.nn.Module):
    """(token, position, keys, values) -> (logits, keys', values'): the app owns the cache."""

    def __init__(self, model: torch.nn.Module, kv: KvCache):
        super().__init__()
        self.model = model
        self.kv = kv

    def forward(self, input_ids, position, key_cache, value_cache):
        # Each layer's cache copied out and written on its own, the outputs stacked once: written
        # into one stacked copy, every layer's row write became a scatter over the whole stack
        # in ONNX (8 copies of the cache and a full-size index per step: half the step's time).
        keys = [key_cache[i].clone() for i in range(self.kv.layers)]
        values = [value_cache[i].clone() for i in range(self.kv.layers)]
        logits = _step(self.model, self.kv, keys, values, input_ids, position)
        return logits, torch.stack(keys), torch.stack(values)


class DecodeState(torch.nn.Module):
    """(token, position) -> logits, with the cache as mutable buffers of the program.

    One buffer per layer and per keys/values, not one stacked (layers, ...) tensor: the step's
    index_put then writes into a buffer itself. Over a stacked buffer it writes into a row
    selected out of it, which ExecuTorch 1.5.1 reinplaces without keeping that row alive until
    its last reader: its memory planner put later temporaries over the freshly written cache
    (wrong logits from the first step, depending on the arena's layout: --max-context 128).
    The .pte backend swaps it for ExecuTorch's LLM operators where they compute the model's
    attention (backends/_pte_decoder.py); this is what it exports otherwise."""

    def __init__(self, model: torch.nn.Module, kv: KvCache):
        super().__init__()
        self.model = model
        self.kv = kv
        for i in range(kv.layers):
            self.register_buffer(f"key_cache_{i}", torch.zeros(kv.shape[1:]), persistent=False)
            self.register_buffer(f"value_cache_{i}", torch.zeros(kv.shape[1:]), persistent=False)

    def forward(self, input_ids, position):
        keys = [getattr(self, f"key_cache_{i}") for i in range(self.kv.layers)]
        values = [getattr(self, f"value_cache_{i}") for i in range(self.kv.layers)]
        return _step(self.model, self.kv, keys, values, input_ids, position)


def graph(model, cache: CacheStyle = CacheStyle.IO, max_context: int | None = None) -> Graph:
    if not getattr(model.module, "_can_compile_fullgraph", False):
        # transformers' own mark of a model whose attention reads a static cache.
        raise BadInput(
            f"{model.source.architecture} cannot decode over a static KV cache: text-generation needs a "
            "decoder-only model with static-cache support (Llama, Qwen2, Gemma, Phi-3, GPT-2, ...)"
        )
    max_context = max_context or DEFAULT_MAX_CONTEXT
    if max_context < MIN_CONTEXT:
        raise BadInput(f"--max-context {max_context} is too small: verification decodes {MIN_CONTEXT} positions")
    limit = getattr(model.module.config, "max_position_embeddings", None)
    if limit and max_context > limit:
        raise BadInput(f"--max-context {max_context} exceeds the model's max_position_embeddings ({limit})")
    kv = geometry(model.module.config, max_context)
    inputs = {"input_ids": Input("int64", (1, 1)), "position": Input("int64", (1,))}
    if cache is CacheStyle.IO:
        module = DecodeIO(model.module, kv)
        inputs |= {"key_cache": Input("float32", kv.shape), "value_cache": Input("float32", kv.shape)}
        outputs = ("logits", "key_cache_out", "value_cache_out")
    else:
        module = DecodeState(model.module, kv)
        outputs = ("logits",)

    def sample(sizes: dict[str, int]) -> dict[str, torch.Tensor]:
        feeds = {"input_ids": torch.tensor([[model.tokenizer.convert_tokens_to_ids("the") or 1]]), "position": torch.tensor([3])}
        if cache is CacheStyle.IO:
            feeds |= {"key_cache": torch.zeros(kv.shape), "value_cache": torch.zeros(kv.shape)}
        return feeds

    def calibration(texts: list[str]) -> list[dict[str, torch.Tensor]]:
        """Each text fed token by token from position 0, with the cache each step would see."""
        feeds = []
        for text in texts:
            keys, values = torch.zeros(kv.shape), torch.zeros(kv.shape)
            for position, token in enumerate(model.tokenizer(text)["input_ids"][: min(PROMPT_TOKENS * 2, max_context)]):
                step = {"input_ids": torch.tensor([[token]]), "position": torch.tensor([position])}
                if cache is CacheStyle.IO:
                    step |= {"key_cache": keys.clone(), "value_cache": values.clone()}
                feeds.append(step)
                with torch.no_grad():
                    _step(model.module, kv, keys, values, step["input_ids"], step["position"])
        return feeds

    return Graph(
        module=no_grad(module),
        inputs=inputs,
        outputs=outputs,
        sample=sample,
        calibration=calibration,
        intermediate_size=getattr(model.module.config, "intermediate_size", None),
        kv_cache=kv,
        details={"kv_cache": kv.describe() | {"style": cache.value}},
    )


def evaluate(model, graph: Graph, open_runner) -> tuple[dict[str, float], int]:
    """Greedy decoding in the artifact; at every step the torch model sees the same history.

    The torch model reads each prompt's whole history once, after the artifact has decoded it:
    a causal model's logits at a position depend only on the tokens up to it, so that one call
    gives every step's reference (one call per prompt instead of one per step)."""
    errors, agreed, steps = [], 0, 0
    for text in sentences()[:PROMPTS]:
        prompt = model.tokenizer(text)["input_ids"][:PROMPT_TOKENS]
        runner = open_runner()  # a fresh program: a STATE cache starts empty
        carried = {n: np.zeros(graph.kv_cache.shape, np.float32) for n in ("key_cache", "value_cache") if n in graph.inputs}
        history, got, token = [], [], prompt[0]
        for position in range(len(prompt) + GENERATED - 1):
            history.append(token)
            feeds = {"input_ids": np.array([[token]], np.int64), "position": np.array([position], np.int64)} | carried
            outputs = dict(zip(graph.outputs, runner.run(conform(feeds, runner.inputs))))
            carried = {n: outputs[f"{n}_out"] for n in carried}
            got.append(outputs["logits"][0].astype(np.float64))
            token = prompt[position + 1] if position + 1 < len(prompt) else int(got[-1].argmax())
        with torch.no_grad():
            expected = model.module(input_ids=torch.tensor([history])).logits[0].double().numpy()
        for position, logits in enumerate(got):
            errors.append(float(np.abs(logits - expected[position]).max()))
            if position + 1 >= len(prompt):
                steps += 1
                agreed += int(logits.argmax() == expected[position].argmax())
    return {"token_agreement": agreed / steps, "max_logit_error": max(errors)}, steps
