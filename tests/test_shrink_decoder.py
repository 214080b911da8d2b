"""Shrinking Llama-style and GPT-2 decoders: layers, gated FFN neurons and whole grouped-query KV groups
removed exactly, the KV cache renumbered and sized by the rewritten config, a heal that
matches the teacher's next-token distribution, and perplexity before and after each step."""

from pathlib import Path

import pytest
import torch
from conftest import byte_level_bpe

from pocketfit.converter import (CapSequence, DropLayers, Heal, NoQuant, Onnx, Ort, PruneFfn, PruneHeads, Pte, Task, Tflite, TrimVocab,
                                 export, load, shrink, texts)
from pocketfit.converter.shrinking import vocab

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


def test_gpt2_pruning_cuts_its_conv1d_and_fused_attention_exactly(tiny_gpt2_dir, text, tmp_path):
    gpt2 = load(tiny_gpt2_dir, Task.TEXT_GENERATION)
    total = _params(gpt2.module)
    layer = gpt2.module.transformer.h[0]
    assert _params(shrink(gpt2, DropLayers(keep=1)).module) == total - _params(layer)
    ffn = shrink(gpt2, PruneFfn(keep=100), text=text)  # c_fc's outputs (weight and bias), c_proj's inputs
    assert total - _params(ffn.module) == 2 * (256 - 100) * (64 + 1 + 64) and ffn.module.config.n_inner == 100
    heads = shrink(gpt2, PruneHeads(keep=2), text=text)  # q, k and v of two 16-wide heads; c_proj's inputs
    assert total - _params(heads.module) == 2 * (3 * 32 * (64 + 1) + 32 * 64)
    attention = heads.module.transformer.h[0].attn
    assert (attention.num_heads, attention.split_size, attention.head_dim) == (2, 32, 16)
    capped = shrink(gpt2, CapSequence(128))
    assert total - _params(capped.module) == 128 * 64 and capped.module.config.n_positions == 128

    small = shrink(gpt2, DropLayers(keep=1), PruneFfn(keep=0.5), PruneHeads(keep=2), CapSequence(128), text=text)
    ids = torch.tensor([[101, 2023, 2003, 1037]])
    with torch.no_grad():  # the shrunk model is the full one's layer 1, minus what was cut: it still runs
        assert small.module(ids).logits.shape == (1, 4, 30522)
    for fmt in (Onnx(), Pte()):  # the KV cache sized for two heads of 16, though the config says 4 heads of 64
        artifact = export(small, tmp_path / fmt.name, fmt, NoQuant(), max_context=64)
        assert artifact.manifest.parity.passed, (fmt.name, artifact.manifest.parity.metrics)
        assert artifact.manifest.details["kv_cache"]["kv_heads"] == 2


def test_pruned_decoder_runs_and_generates_through_its_cache(llama, text):
    small = shrink(llama, DropLayers(keep=1), PruneFfn(keep=0.5), PruneHeads(keep=1), text=text)
    ids = torch.tensor([[101, 2023, 2003, 1037]])
    with torch.no_grad():
        out = small.module.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 8)


@pytest.mark.parametrize("fmt", [Onnx(), Ort(), Pte(), Tflite()], ids=["onnx", "ort", "pte", "tflite"])
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


def test_decoder_vocabulary_trimming_cuts_the_embedding_and_the_head_and_heals_over_the_kept_tokens(llama, text, tmp_path):
    small = shrink(llama, TrimVocab(text), text=text)
    kept = small.module.config.vocab_size
    assert kept == small.shrunk[0]["tokens"]["after"] < 30522
    assert llama.parameters - small.parameters == 2 * (30522 - kept) * HIDDEN  # embedding rows and (untied) head rows
    assert small.module.lm_head.out_features == small.module.model.embed_tokens.num_embeddings == kept
    mapping = vocab.teacher_ids(small.tokenizer, llama.tokenizer)
    line = texts.lines(text, "text")[1]  # line 0 is kept back from text=, so out of the trim
    ids = small.tokenizer(line, return_tensors="pt")["input_ids"]
    assert torch.equal(mapping[ids], llama.tokenizer(line, return_tensors="pt")["input_ids"])
    with torch.no_grad():  # the same model over the kept tokens: the teacher's logits at the kept ids
        assert torch.allclose(small.module(ids).logits, llama.module(mapping[ids]).logits[..., mapping], atol=1e-5)
    healed = shrink(llama, TrimVocab(text), DropLayers(keep=1), Heal(steps=15, batch=8, learning_rate=1e-3), text=text)
    assert healed.shrunk[-1]["loss_last"] < healed.shrunk[-1]["loss_first"]
    artifact = export(healed, tmp_path, Onnx(), NoQuant(), max_context=64)
    assert artifact.manifest.parity.passed and (tmp_path / "tokenizer").is_dir()


def _byte_level_gpt2(folder: Path, lines: list[str]) -> Path:
    """A tiny GPT-2 with a byte-level BPE tokenizer of its own, trained here on the test text."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = byte_level_bpe(lines, ["<|endoftext|>"], bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=128, bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_bpe_trimming_keeps_the_merges_the_corpus_needs_and_the_tied_head_shrinks_with_the_table(text, tmp_path):
    lines = texts.lines(text, "text")
    gpt2 = load(_byte_level_gpt2(tmp_path / "gpt2", lines), Task.TEXT_GENERATION)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines[:10]) + "\n")
    small = shrink(gpt2, TrimVocab(corpus))
    record, kept = small.shrunk[0], small.module.config.vocab_size
    assert record["tokenizer"] == "bpe" and record["used_by_corpus"] < kept < len(gpt2.tokenizer)
    assert small.module.lm_head.weight is small.module.transformer.wte.weight  # still one table
    assert gpt2.parameters - small.parameters == (len(gpt2.tokenizer) - kept) * 32
    mapping = vocab.teacher_ids(small.tokenizer, gpt2.tokenizer)
    for line in lines[:10]:  # the corpus splits exactly as before, under new ids
        ids = small.tokenizer(line)["input_ids"]
        assert mapping[ids].tolist() == gpt2.tokenizer(line)["input_ids"]
    for line in lines[10:] + ["Quixotic zebras in Reykjavík, 12345 of them!"]:  # other text: more pieces, never lost
        ids = small.tokenizer(line)["input_ids"]
        assert small.tokenizer.decode(ids) == line
        assert len(ids) >= len(gpt2.tokenizer(line)["input_ids"])
    assert small.tokenizer.eos_token_id == small.module.config.eos_token_id == mapping.tolist().index(0)
    artifact = export(small, tmp_path / "out", Onnx(), NoQuant(), max_context=32)
    assert artifact.manifest.parity.passed
    from transformers import AutoTokenizer

    written = AutoTokenizer.from_pretrained(tmp_path / "out" / "tokenizer")
    assert written(lines[20])["input_ids"] == small.tokenizer(lines[20])["input_ids"]
