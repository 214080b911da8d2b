"""The work of one call, op by op: the cost rules on hand-made graphs with hand-checked
arithmetic, the same model's totals across formats, and the refusals."""

import json

import numpy as np
import pytest

from pocketfit.converter.reading import work
from pocketfit.converter.work import NoCostRule, Operand, price

from conftest import run_cli


def _onnx(tmp_path, nodes, inputs, outputs, initializers, name="g.onnx", opset=17, domains=()):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.INT64 if t == "int64" else TensorProto.FLOAT, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(a, n) for n, a in initializers.items()])
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, path)
    return path


def test_a_matmul_costs_two_flops_per_multiply_add(tmp_path):
    from onnx import helper

    w = np.random.default_rng(0).standard_normal((384, 1536)).astype(np.float32)
    path = _onnx(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                 [("x", "float", [1, "seq", 384])], ["y"], {"w": w})
    done = work(path, seq_len=128)
    (op,) = [o for o in done.ops if o.kind == "matmul"]
    assert op.flops == 2 * 128 * 384 * 1536
    assert op.weight_bytes == 384 * 1536 * 4  # the whole weight is read once
    assert op.act_bytes == (128 * 384 + 128 * 1536) * 4
    assert op.precision == "fp32"
    assert work(path, seq_len=16).flops == 2 * 16 * 384 * 1536  # shapes follow the requested length


def test_an_embedding_lookup_reads_only_its_rows(tmp_path):
    from onnx import helper

    table = np.zeros((30522, 64), np.float32)
    path = _onnx(tmp_path, [helper.make_node("Gather", ["table", "ids"], ["y"], name="embed")],
                 [("ids", "int64", [1, "seq"])], ["y"], {"table": table})
    (op,) = work(path, seq_len=10).ops
    assert (op.kind, op.flops) == ("gather", 0)
    assert op.weight_bytes == 10 * 64 * 4  # ten rows of the 7.8 MB table


def test_a_4bit_table_lookup_reads_its_rows_codes_scales_and_zero_points(tmp_path):
    """onnxruntime's GatherBlockQuantized (a table in 4-bit groups of 64 along each row): ten
    rows of codes (half a byte each), of their float scales and 4-bit zero points."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    table = np.random.default_rng(0).standard_normal((5000, 128)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["y"], name="embed")], "g",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "seq"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(table, "table")])
    quantizer = MatMulNBitsQuantizer(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), block_size=64,
                                     is_symmetric=False, op_types_to_quantize=("Gather",))
    quantizer.process()
    path = tmp_path / "q4.onnx"
    onnx.save(quantizer.model.model, path)
    (op,) = [o for o in work(path, seq_len=10).ops if o.op_type == "GatherBlockQuantized"]
    assert (op.kind, op.flops) == ("gather", 0)
    assert op.weight_bytes == 10 * (128 // 2 + 2 * 4 + 1)  # codes, two float scales, two 4-bit zero points
    assert op.act_bytes == 10 * 8 + 10 * 128 * 4  # the ids in, the float rows out


def test_fused_attention_costs_scores_weighted_sum_and_softmax(tmp_path):
    from onnx import helper

    node = helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], name="mha", domain="com.microsoft", num_heads=4)
    path = _onnx(tmp_path, [node], [(n, "float", [1, "seq", 64]) for n in "qkv"], ["y"], {}, domains=("com.microsoft",))
    (op,) = work(path, seq_len=32).ops
    heads, q, k, d = 4, 32, 32, 16
    assert op.kind == "attention"
    assert op.flops == 4 * heads * q * k * d + 5 * heads * q * k


def test_the_rules_by_hand():
    x, w = Operand((1, 8, 16), 4), Operand((16, 32), 1, constant=True)
    op = price("fc", "FC", "matmul", "int8", [x, w], [Operand((1, 8, 32), 4)])
    assert (op.flops, op.weight_bytes, op.act_bytes) == (2 * 8 * 16 * 32, 16 * 32, (8 * 16 + 8 * 32) * 4)
    att = price("sdpa", "sdpa", "attention", "fp32", [], [], attention=(2, 1, 100, 64))
    assert att.flops == 4 * 2 * 1 * 100 * 64 + 5 * 2 * 100
    assert price("n", "LayerNorm", "norm", "fp32", [x], [Operand((1, 8, 16), 4)]).flops == 8 * 128
    assert price("s", "Shape", "metadata", "fp32", [x], [Operand((3,), 8)]).bytes == 0


def test_an_operator_without_a_rule_is_refused_not_priced_zero(tmp_path):
    from onnx import helper

    path = _onnx(tmp_path, [helper.make_node("TopK", ["x", "k"], ["y", "i"], name="topk")],
                 [("x", "float", [1, 100])], ["y"], {"k": np.array([5], np.int64)})
    with pytest.raises(NoCostRule, match="'TopK' .* has no cost rule"):
        work(path)
    result = run_cli("inspect", str(path), "--ops")
    assert result.returncode == 2
    assert "no cost rule" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.xdist_group("tiny-exports")
def test_the_same_model_costs_the_same_in_every_format(exported):
    totals = {}
    for fmt in ("onnx", "ort", "pte", "tflite"):
        done = work(exported("tiny-bert", fmt, "int8").path, seq_len=128)
        assert done.phase == "inference" and done.tokens == 128
        assert {o.precision for o in done.ops if o.kind == "matmul" and o.weight_bytes > 4096} == {"int8"}, fmt
        totals[fmt] = done.flops
    low, high = min(totals.values()), max(totals.values())
    assert high <= 1.05 * low, totals


@pytest.mark.xdist_group("tiny-exports")
def test_a_decoder_step_reads_its_weights_and_attends_its_context(exported):
    read = {}
    for fmt in ("onnx", "pte", "tflite"):
        path = exported("tiny-llama", fmt, "int8").path
        short, long = work(path, context=8), work(path, context=64)
        assert short.phase == "decode" and short.tokens == 1
        read[fmt] = sum(o.weight_bytes for o in short.ops if o.kind == "matmul")
        # one token's row of the embedding table, not the table
        assert sum(o.weight_bytes for o in short.ops if o.kind == "gather") < 64 * 8
        if fmt == "pte":  # ExecuTorch's SDPA reads only the positions in use ...
            assert long.flops > short.flops
        else:  # ... the others attend their whole static cache
            assert long.flops == short.flops
    # every step reads every projection's weights, the same bytes whatever the format
    assert max(read.values()) <= 1.1 * min(read.values()), read
    with pytest.raises(Exception, match="exceeds"):
        work(path, context=10_000)


@pytest.mark.xdist_group("tiny-exports")
def test_inspect_ops_json_through_the_cli(exported):
    path = exported("tiny-bert", "pte", "int8").path
    result = run_cli("inspect", str(path), "--ops", "--json", "--seq-len", "16")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["format"] == "pte" and doc["tokens"] == 16
    assert doc["totals"]["flops"] == sum(o["flops"] for o in doc["ops"]) > 0
    assert run_cli("inspect", str(path), "--json").returncode == 2  # --json belongs to --ops
