"""Every supported format × recipe × task: exported, run in the format's own runtime, and held
to its parity floors. Unsupported pairs are refused with the reason."""

import json
import re
from dataclasses import dataclass
from typing import ClassVar

import jsonschema
import pytest

from pocketfit import manifest
from pocketfit.converter import FORMATS, RECIPES, Task, check_supported
from pocketfit.converter.backends import backend
from pocketfit.errors import UnsupportedCombination

# Real MiniLM weights for the embedding cases the issue names floors for; tiny models elsewhere.
MODELS = {
    Task.FEATURE_EXTRACTION: lambda recipe: "minilm" if recipe in ("none", "int8", "int4") else "tiny-bert",
    Task.TEXT_CLASSIFICATION: lambda recipe: "tiny-classifier",
    Task.TEXT_GENERATION: lambda recipe: "tiny-llama",
}


def _supported():
    for task in Task:
        for fmt_name, fmt in sorted(FORMATS.items()):
            for recipe_name, recipe in RECIPES.items():
                try:
                    check_supported(fmt(), recipe(), task)
                except UnsupportedCombination:
                    continue
                group = pytest.mark.xdist_group(f"{MODELS[task](recipe_name)}-{fmt_name}")  # shares one trace
                yield pytest.param(task, fmt_name, recipe_name, id=f"{task.value}-{fmt_name}-{recipe_name}", marks=group)


@pytest.mark.parametrize("task, fmt, recipe", list(_supported()))
def test_export_verifies_in_its_runtime(exported, task, fmt, recipe):
    artifact = exported(MODELS[task](recipe), fmt, recipe)
    m = artifact.manifest
    assert m.format == fmt and m.task == task.value and m.quantization["scheme"] == recipe
    assert m.parity.passed, f"below floor: {m.parity.metrics} vs {m.parity.floors}"
    metrics = m.parity.metrics
    if task is Task.FEATURE_EXTRACTION:
        assert metrics["cosine_mean"] >= {"none": 0.9999, "fp16": 0.999, "int8": 0.99, "int8-static": 0.98, "int4": 0.95}[recipe]
    elif task is Task.TEXT_CLASSIFICATION:
        assert metrics["label_agreement"] >= {"none": 1.0, "fp16": 1.0, "int8": 0.98}.get(recipe, 0.9)
        assert m.parity.inputs >= 32
    else:
        assert m.parity.inputs >= 32  # greedy decode steps compared
        kv = m.details["kv_cache"]
        assert kv["max_context"] == 64 and kv["bytes"] == 2 * kv["layers"] * kv["kv_heads"] * kv["head_dim"] * 64 * 4
    jsonschema.validate(json.loads((artifact.path.parent / "manifest.json").read_text()), manifest.schema())


@dataclass(frozen=True)
class _Pruning:
    """A recipe no backend implements: the refusal must name what each offers instead."""

    name: ClassVar[str] = "prune-50"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_recipe_the_backend_lacks_is_refused_naming_what_it_offers(fmt):
    offered = ", ".join(r.name for r in backend(FORMATS[fmt]()).RECIPES)
    with pytest.raises(UnsupportedCombination, match=f"format {fmt} has no recipe 'prune-50'; it offers: {re.escape(offered)}"):
        check_supported(FORMATS[fmt](), _Pruning(), Task.FEATURE_EXTRACTION)


@pytest.mark.parametrize("fmt, group, reason", [
    ("tflite", 16, "4-bit blocks of 32, 64, 128, 256 only, not 16"),
    ("onnx", 8, "groups of 16 or more, not 8"),
    ("ort", 8, "groups of 16 or more, not 8"),
])
def test_int4_groups_a_runtime_cannot_take_are_refused(fmt, group, reason):
    with pytest.raises(UnsupportedCombination, match=reason):
        check_supported(FORMATS[fmt](), RECIPES["int4"](group_size=group), Task.FEATURE_EXTRACTION)


def test_every_format_exports_every_task():
    """LiteRT included: litert-torch converts the decode step with its cache as inputs and outputs."""
    for fmt in FORMATS.values():
        assert backend(fmt()).UNSUPPORTED_TASKS == {}


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=pytest.mark.xdist_group(f"minilm-{f}")) for f in sorted(FORMATS)])
def test_minilm_really_shrinks(exported, fmt):
    """The word-embedding table is half of MiniLM's weights: only quantized embeddings get here."""
    module = backend(FORMATS[fmt]())
    fp32 = exported("minilm", fmt, "none").manifest.bytes
    for recipe, limit in (("int8", 0.30), ("int4", 0.22)):
        if RECIPES[recipe] in module.RECIPES:
            ratio = exported("minilm", fmt, recipe).manifest.bytes / fp32
            assert ratio <= limit, f"{fmt} {recipe} is {ratio:.1%} of fp32, above {limit:.0%}"


def test_a_state_cache_step_writes_into_its_buffers_not_into_rows_of_them(models):
    """The decode step's cache writes take a cache buffer itself as their target. Written into a
    row selected out of one stacked buffer, ExecuTorch reinplaced the write but planned the row's
    memory as free right after it, and later temporaries overwrote the cache: a .pte at
    --max-context 128 agreed on 12% of tokens."""
    import torch

    from pocketfit.converter.tasks import CacheStyle
    from pocketfit.converter.tasks import generation

    graph = generation.graph(models("tiny-llama"), CacheStyle.STATE, 128)
    program = torch.export.export(graph.module, (), kwargs=graph.sample({}), strict=False)
    buffers = set(program.graph_signature.inputs_to_buffers)
    writes = [n for n in program.graph.nodes if n.op == "call_function" and re.search(r"index_(copy|put)", str(n.target))]
    assert writes and all(n.args[0].name in buffers for n in writes), [str(n.args[0]) for n in writes]


def test_a_pte_decode_step_runs_in_executorch_llm_operators(exported):
    """The .pte decoder writes its cache with llama::update_cache and attends with
    llama::custom_sdpa (reading only the positions up to the step's own), one of each per layer
    and keys/values; no index_put over the whole cache and no copy of it transposed."""
    from pocketfit.converter.backends import pte

    artifact = exported("tiny-llama", "pte", "int8")
    layers = artifact.manifest.details["kv_cache"]["layers"]
    operators = pte.inspect(artifact.path).operators
    assert operators.get("llama::update_cache.out") == 2 * layers
    assert operators.get("llama::custom_sdpa.out") == layers
    assert not any("index_put" in name or "mean" in name for name in operators), operators


def test_an_onnx_decode_step_copies_each_layer_cache_once(exported):
    """Each layer's cache is written on its own (a scatter over that layer), and the outputs
    stacked once: no scatter into the whole stacked cache per layer. The RMSNorms load as
    onnxruntime's fused SimplifiedLayerNormalization."""
    import onnx
    import onnxruntime as ort

    artifact = exported("tiny-llama", "onnx", "none")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(artifact.path)))
    kv = artifact.manifest.details["kv_cache"]
    values = list(model.graph.value_info) + list(model.graph.input)
    sizes = {v.name: sorted(d.dim_value for d in v.type.tensor_type.shape.dim) for v in values}
    one_layer = sorted([1, kv["kv_heads"], kv["max_context"], kv["head_dim"]])
    written = [sizes.get(n.input[0]) for n in model.graph.node if n.op_type.startswith("Scatter")]
    assert written.count(one_layer) == 2 * kv["layers"]
    assert sorted([kv["layers"]] + one_layer) not in written  # nothing written into the stacked cache
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(artifact.path.parent / "optimized.onnx")
    ort.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
    fused = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert fused.count("SimplifiedLayerNormalization") >= 2 * kv["layers"]


def test_decoders_custom_sdpa_cannot_compute_keep_transformers_attention():
    """Soft-capped attention logits or a sliding window shorter than the cache are not what
    llama::custom_sdpa computes: such models keep transformers' attention in the .pte."""
    from types import SimpleNamespace

    from pocketfit.converter.backends._pte_decoder import supports
    from pocketfit.converter.tasks import KvCache

    kv = KvCache(layers=2, kv_heads=2, head_dim=16, max_context=256)
    assert supports(SimpleNamespace(), kv)
    assert supports(SimpleNamespace(sliding_window=4096), kv)  # a window longer than the cache never slides
    assert supports(SimpleNamespace(sliding_window=128, use_sliding_window=False), kv)  # Qwen2's switch
    assert not supports(SimpleNamespace(sliding_window=128), kv)
    assert not supports(SimpleNamespace(attn_logit_softcapping=50.0), kv)
