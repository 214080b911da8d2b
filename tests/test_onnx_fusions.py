"""The ONNX backend's int8 path fuses attention, norms and GELU before quantizing, keeps parity
doing so, and opens every session with the options an app on a phone wants."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from pocketfit.converter import inspect
from pocketfit.converter.backends import onnx as onnx_backend
from pocketfit.converter.backends._onnx_fusions import fuse_encoder

pytestmark = pytest.mark.xdist_group("tiny-bert-onnx")  # shares the matrix's tiny-bert exports


@pytest.mark.parametrize("fmt", ["onnx", "ort"])
def test_int8_runs_fused_attention_norms_and_gelu(exported, fmt):
    """One layer of tiny-bert: one MultiHeadAttention, both residual norms as SkipLayerNorm, one
    BiasGelu, in the .onnx and still in the ORT format made from it; parity kept."""
    artifact = exported("tiny-bert", fmt, "int8")
    ops = inspect(artifact.path).operators
    assert ops.get("com.microsoft.MultiHeadAttention") == 1, ops
    assert ops.get("com.microsoft.SkipLayerNormalization") == 2, ops
    assert ops.get("com.microsoft.BiasGelu") == 1, ops
    assert "Softmax" not in ops and "Erf" not in ops, ops  # the unfused attention and GELU are gone
    assert artifact.manifest.details["fusions"] == {"MultiHeadAttention": 1, "SkipLayerNormalization": 2, "BiasGelu": 1,
                                                    "LayerNormalization": 1}
    assert artifact.manifest.parity.passed and artifact.manifest.parity.metrics["cosine_mean"] >= 0.99


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_fusion_changes_no_output_of_a_padded_batch(models, tmp_path, exporter):
    """fp32 before and after fusion, on a batch of two sentences of unequal length (the padding
    mask must reach the fused attention as its key-padding mask). Encoders are traced by the
    TorchScript exporter; the dynamo exporter's graph (taken when a trace cannot be trusted)
    fuses the same way."""
    from pocketfit.converter.tasks import spec

    model = models("tiny-bert")
    graph = spec(model.task).graph(model, onnx_backend.CACHE, None)
    plain, fused = tmp_path / "plain.onnx", tmp_path / "fused.onnx"
    if exporter == "torchscript":
        plain.write_bytes(onnx_backend._trace(graph, onnx_backend.Onnx()))
    else:
        onnx_backend._dynamo(graph, onnx_backend.Onnx(), plain)
    counts = fuse_encoder(plain, fused, num_heads=2, hidden_size=64)
    assert counts == {"MultiHeadAttention": 1, "SkipLayerNormalization": 2, "BiasGelu": 1, "LayerNormalization": 1}
    feeds = {k: v.numpy() for k, v in graph.sample({"batch": 2, "sequence": 12}).items()}
    feeds["attention_mask"][1, 5:] = 0  # the second sentence ends after 5 tokens
    feeds["input_ids"][1, 5:] = 0
    want = onnx_backend.open(plain).run(feeds)[0]
    got = onnx_backend.open(fused).run(feeds)[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert [d.dim_param or d.dim_value for d in onnx.load(str(plain)).graph.output[0].type.tensor_type.shape.dim] == ["batch", 64]


def test_sessions_open_with_phone_options(exported):
    import onnxruntime as ort

    runner = onnx_backend.open(exported("tiny-bert", "onnx", "int8").path, threads=2)
    options = runner.session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.enable_cpu_mem_arena is False
    assert options.enable_mem_pattern is False


def test_a_fused_model_path_is_not_left_behind(exported):
    artifact = exported("tiny-bert", "onnx", "int8")
    assert sorted(p.name for p in Path(artifact.path).parent.iterdir()) == ["manifest.json", "model.onnx"]
