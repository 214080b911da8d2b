"""A quantization-aware heal trains under each format's own rounding: the emulation a backend
offers (train_as) must compute what its real quantizer makes of the same weights."""

import numpy as np
import pytest
import torch

from pocketfit.converter import Int4Weight, Int8Dynamic, NoQuant, Onnx, Ort, Pte, Tflite
from pocketfit.converter.backends import backend


def _linear(inp: int = 96, out: int = 40, seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layer = torch.nn.Linear(inp, out)
    with torch.no_grad():  # a few outliers, as trained weights have, so groups differ in range
        layer.weight[:, 5] *= 6
        layer.weight[3] -= 0.2
    return torch.nn.Sequential(layer)


def test_onnx_emulation_is_matmulnbits_rounding():
    """The weights MatMulNBits stores, dequantized by onnxruntime itself (the graph run on the
    identity), against the emulated weights."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    module = _linear()
    w = module[0].weight.detach().numpy()
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, w.shape[1]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, w.shape[0]])],
                              [numpy_helper.from_array(np.ascontiguousarray(w.T), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    quantizer = MatMulNBitsQuantizer(model, block_size=32, is_symmetric=False)
    quantizer.process()
    assert any(n.op_type == "MatMulNBits" for n in quantizer.model.model.graph.node)
    session = ort.InferenceSession(quantizer.model.model.SerializeToString(), providers=["CPUExecutionProvider"])
    stored = session.run(None, {"x": np.eye(w.shape[1], dtype=np.float32)})[0].T

    restore = backend(Onnx()).train_as(module, Int4Weight(group_size=32))
    emulated = module[0].weight.detach().numpy()
    assert not np.allclose(emulated, w, atol=1e-3)  # it does round
    np.testing.assert_allclose(emulated, stored, atol=1e-6)
    restore()
    assert type(module[0]) is torch.nn.Linear and np.array_equal(module[0].weight.detach().numpy(), w)


@pytest.mark.parametrize("recipe", [Int4Weight(group_size=32), Int8Dynamic()], ids=["int4", "int8"])
def test_pte_emulation_is_torchao_rounding(recipe):
    """torchao's fake quantizers against the quantized layers the .pte export lowers."""
    from pocketfit.converter.backends import pte

    module, x = _linear(), torch.randn(7, 96)
    restore = backend(Pte()).train_as(module, recipe)
    emulated = module(x)
    emulated.sum().backward()  # gradients reach the float weights through the rounding
    assert module[0].weight.grad is not None and module[0].weight.grad.abs().sum() > 0
    restore()
    assert type(module[0]) is torch.nn.Linear
    plain = module(x)
    pte._quantize_linears(module, torch.int4 if isinstance(recipe, Int4Weight) else torch.int8,
                          recipe.group_size if isinstance(recipe, Int4Weight) else None)
    with torch.no_grad():
        real = module(x)
    assert (emulated - plain).abs().max() > 1e-3  # it does round
    torch.testing.assert_close(emulated.detach(), real, atol=2e-4, rtol=1e-3)


def test_formats_and_recipes_without_an_emulation_say_so():
    assert backend(Tflite()).train_as(_linear(), Int4Weight()) is None
    assert backend(Onnx()).train_as(_linear(), NoQuant()) is None
    assert backend(Ort()).train_as(_linear(), Int8Dynamic()) is None
    assert backend(Ort()).train_as(_linear(), Int4Weight()) is not None


def test_onnx_emulation_of_4bit_embeddings_is_gatherblockquantized():
    """An embedding table quantized by onnxruntime (Gather -> GatherBlockQuantized), every row
    looked up, against the emulated table."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    torch.manual_seed(1)
    module = torch.nn.Sequential(torch.nn.Embedding(50, 128))
    with torch.no_grad():
        module[0].weight[:, 7] += 3
    table = module[0].weight.detach().numpy().copy()
    graph = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["rows"])], "g",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
                              [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [None, table.shape[1]])],
                              [numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    quantizer = MatMulNBitsQuantizer(model, block_size=64, is_symmetric=False, op_types_to_quantize=("MatMul", "Gather"))
    quantizer.process()
    assert any(n.op_type == "GatherBlockQuantized" for n in quantizer.model.model.graph.node)
    session = ort.InferenceSession(quantizer.model.model.SerializeToString(), providers=["CPUExecutionProvider"])
    stored = session.run(None, {"ids": np.arange(table.shape[0], dtype=np.int64)})[0]

    restore = backend(Onnx()).train_as(module, Int4Weight(group_size=64, embeddings=4))
    emulated = module[0].weight.detach().numpy()
    assert not np.allclose(emulated, table, atol=1e-3)
    np.testing.assert_allclose(emulated, stored, atol=1e-6)
    restore()
    assert backend(Onnx()).train_as(module, Int4Weight(group_size=64)) is not None
    assert not hasattr(module[0], "parametrizations")  # int8 embeddings are not emulated: left alone


def test_4bit_embeddings_are_refused_where_the_runtime_has_no_such_kernel():
    assert "ONNX and ORT only" in backend(Pte()).refuse(Int4Weight(embeddings=4))
    assert "ONNX and ORT only" in backend(Tflite()).refuse(Int4Weight(embeddings=4))
    assert backend(Ort()).refuse(Int4Weight(embeddings=4)) is None
