"""Shrinking Llama-style decoders: layers, gated FFN neurons and whole grouped-query KV groups
removed exactly, the KV cache renumbered and sized by the rewritten config, a heal that
matches the teacher's next-token distribution, and perplexity before and after each step."""

from pathlib import Path

import pytest
import torch

from pocketfit.converter import (CapSequence, DropLayers, Heal, NoQuant, Onnx, PruneFfn, PruneHeads, Pte, Task, TrimVocab,
                                 export, load, shrink, texts)
from pocketfit.errors import UnsupportedCombination

HIDDEN, FFN, HEADS, KV, HEAD_DIM = 64, 128, 4, 2, 16


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load(tiny_llama_dir, Task.TEXT_GENERATION)


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "app.txt"
    path.write_text("\n".join(texts.calibration()) + "\n", encoding="utf-8")
    return path


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_decoder_pruning_removes_exactly_the_configured_weights(llama, text):
    layers = shrink(llama, DropLayers(keep=1))
    per_layer = (_params(llama.module) - _params(layers.module))
    assert layers.module.config.num_hidden_layers == 1 and per_layer == _params(llama.module.model.layers[0])
    assert layers.module.model.layers[0].self_attn.layer_idx == 0  # kept layer 1 now indexes cache slot 0

    ffn = shrink(llama, PruneFfn(keep=48), text=text)
    assert _params(llama.module) - _params(ffn.module) == 2 * 3 * HIDDEN * (FFN - 48)  # gate, up rows; down columns
    assert ffn.module.config.intermediate_size == 48

    heads = shrink(llama, PruneHeads(keep=1), text=text)  # one of the two KV groups, with both its query heads
    config = heads.module.config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 1, HEAD_DIM)
    q_and_o = 2 * HIDDEN * (HEADS - 2) * HEAD_DIM
    k_and_v = 2 * HIDDEN * (KV - 1) * HEAD_DIM
    assert _params(llama.module) - _params(heads.module) == 2 * (q_and_o + k_and_v)
    record = heads.shrunk[0]
    assert record["kv_groups"] == {"before": KV, "after": 1} and len(record["kept_groups"]) == 2

    capped = shrink(llama, CapSequence(64))
    assert capped.module.config.max_position_embeddings == 64 and _params(capped.module) == _params(llama.module)


def test_pruned_decoder_runs_and_generates_through_its_cache(llama, text):
    small = shrink(llama, DropLayers(keep=1), PruneFfn(keep=0.5), PruneHeads(keep=1), text=text)
    ids = torch.tensor([[101, 2023, 2003, 1037]])
    with torch.no_grad():
        out = small.module.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 8)


@pytest.mark.parametrize("fmt", [Onnx(), Pte()], ids=["onnx", "pte"])
def test_shrunk_decoder_exports_with_parity(llama, text, tmp_path, fmt):
    small = shrink(llama, DropLayers(keep=1), PruneFfn(keep=0.5), PruneHeads(keep=1), text=text)
    artifact = export(small, tmp_path, fmt, NoQuant(), max_context=64)
    assert artifact.manifest.parity.passed, artifact.manifest.parity.metrics
    assert [r["step"] for r in artifact.manifest.shrink] == ["layers", "ffn", "heads"]
    assert artifact.manifest.parameters == small.parameters < llama.parameters


def test_decoder_heal_matches_the_teachers_next_tokens_and_records_perplexity(llama, text):
    cut = shrink(llama, DropLayers(keep=1), text=text)
    healed = shrink(llama, DropLayers(keep=1), Heal(steps=15, batch=8, learning_rate=1e-3), text=text)
    layers, heal = healed.shrunk
    assert heal["loss_last"] < heal["loss_first"]
    teacher = layers["perplexity_before"]
    assert cut.shrunk[0]["perplexity_after"] == layers["perplexity_after"] != teacher
    assert heal["perplexity_before"] == layers["perplexity_after"]
    # Closer to the teacher's next-token distribution: its perplexity moves towards the teacher's.
    assert abs(heal["perplexity_after"] - teacher) < abs(layers["perplexity_after"] - teacher)


def test_decoder_vocabulary_trimming_is_refused(llama, text):
    with pytest.raises(UnsupportedCombination, match="vocabulary trimming is for encoders"):
        shrink(llama, TrimVocab(text))
