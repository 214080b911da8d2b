"""The work onnxruntime does for an .onnx or .ort artifact, node by node.

onnxruntime rewrites a graph when it loads it (fusing attention, layer norms, GELU and dynamic
quantization into its own kernels), so the file's nodes are not what runs. This reads what does:
one profiled call at the requested length gives every executed node's input and output shapes,
and the optimized graph that session saves says which inputs are stored constants.
"""

import json
import tempfile
from pathlib import Path

import numpy as np

from pocketfit.errors import BadInput, InvalidArtifact

from ..work import Operand, Work, no_rule, price
from ._util import reason

_ITEMSIZE = {"float": 4, "float32": 4, "float16": 2, "double": 8, "int64": 8, "int32": 4, "int16": 2, "int8": 1,
             "uint8": 1, "bool": 1, "uint16": 2, "bfloat16": 2,
             "UInt4x2": 0.5, "Int4x2": 0.5}  # the profile names 4-bit types by their packed pairs
# onnx.TensorProto data types
_ONNX_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 16: 2, 21: 0.5, 22: 0.5}
_MOVEMENT = {"Transpose", "Concat", "Slice", "Expand", "Split", "ScatterElements", "ScatterND", "Tile", "GatherElements", "Pad", "Cast", "Where", "CumSum", "Trilu",
             "QLinearConcat", "GatherND", "DepthToSpace", "SpaceToDepth", "MemcpyFromHost", "MemcpyToHost", "OneHot"}
# views: a reshape moves no data, only its shape changes
_METADATA = {"Shape", "Constant", "ConstantOfShape", "Range", "Size", "Reshape", "Unsqueeze", "Squeeze", "Identity", "Flatten"}
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Tanh", "Sigmoid", "Neg", "Cos", "Sin", "Equal",
                "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Clip", "IsNaN", "IsInf", "Not", "And", "Or", "Max",
                "Min", "Abs", "Exp", "Log", "Reciprocal", "Relu", "Gelu", "FastGelu", "BiasGelu", "QuickGelu", "Mod",
                "DequantizeLinear", "QuantizeLinear", "Floor", "Ceil", "Round", "Softplus", "Mish", "BiasAdd",
                "RotaryEmbedding", "Sign", "HardSigmoid", "LeakyRelu", "QLinearAdd", "QLinearMul", "QLinearSigmoid",
                "QLinearLeakyRelu", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseNot", "Celu", "Elu", "Selu", "ThresholdedRelu"}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ArgMax", "ArgMin", "QLinearReduceMean",
           "ReduceProd", "ReduceSumSquare", "ReduceLogSumExp"}
_NORM = {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
         "SkipSimplifiedLayerNormalization", "RMSNormalization", "EmbedLayerNormalization"}
_MATMUL = {"MatMul", "Gemm", "FusedMatMul", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
           "QLinearMatMul", "MatMulNBits", "FusedGemm", "QGemm"}
_INT8 = {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearMatMul", "QGemm"}


def ops(path: Path, fmt: str, seq_len: int, context: int | None) -> Work:
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as work:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3  # saving the optimized graph warns it is machine-specific: it is read here only
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(work) / "profile")
        options.optimized_model_filepath = str(Path(work) / "optimized.onnx")
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise InvalidArtifact(f"{path} is not a loadable {path.suffix[1:].upper()} model: {reason(e)}") from e
        feeds, phase, context = _feeds(session, path, seq_len, context)
        session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
        graph = onnx.load(str(Path(work) / "optimized.onnx"), load_external_data=False).graph
    constants = {i.name: Operand(tuple(i.dims), _ONNX_ITEMSIZE.get(i.data_type, 4), True) for i in graph.initializer}
    nodes = {n.name: n for n in graph.node}
    priced = []
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        args = event["args"]
        node = nodes.get(name)
        weights = [constants[i] for i in (node.input if node is not None else ()) if i in constants]
        # The profile lists the inputs a kernel still holds: weights it pre-packed at load are
        # gone from it. What is left, less the stored constants, are the activations.
        pending = [(w.itemsize, w.shape) for w in weights]
        inputs = []
        for typed in args.get("input_type_shape", []):
            operand = _operand(typed, False)
            if (operand.itemsize, operand.shape) in pending:
                pending.remove((operand.itemsize, operand.shape))
            else:
                inputs.append(operand)
        inputs += weights
        outputs = [_operand(t, False) for t in args.get("output_type_shape", [])]
        priced.append(_price(fmt, name, args["op_name"], node, inputs, outputs))
    notes = () if phase == "inference" else (
        f"onnxruntime attends over the whole static cache ({_max_context(session)} positions) at every step, whatever the context",)
    return Work(path, fmt, phase, seq_len if phase == "inference" else 1, context, tuple(priced),
                f"the nodes onnxruntime {ort.__version__} runs after its graph optimizations, shapes from one profiled call",
                notes)


def _operand(typed: dict, constant: bool) -> Operand:
    (dtype, shape), = typed.items()
    return Operand(tuple(int(d) for d in shape), _ITEMSIZE.get(dtype, 4), constant)


def _max_context(session) -> int | None:
    for i in session.get_inputs():
        if "cache" in i.name and len(i.shape) == 5:
            return int(i.shape[3])
    return None


def _feeds(session, path: Path, seq_len: int, context: int | None):
    names = [i.name for i in session.get_inputs()]
    if "position" not in names:
        feeds = {}
        for i in session.get_inputs():
            shape = [d if isinstance(d, int) else (1 if k == 0 else seq_len) for k, d in enumerate(i.shape)]
            feeds[i.name] = np.ones(shape, np.int64) if "int64" in i.type else np.zeros(shape, np.float32)
        return feeds, "inference", None
    context = context or seq_len
    limit = _max_context(session)
    if limit is not None and context > limit:
        raise BadInput(f"context {context} exceeds the {limit} positions of {path}'s KV cache")
    feeds = {}
    for i in session.get_inputs():
        dtype = {"tensor(int64)": np.int64, "tensor(float16)": np.float16}.get(i.type, np.float32)
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        value = context - 1 if i.name == "position" else (1 if i.name == "input_ids" else 0)
        feeds[i.name] = np.full(shape, value, dtype)
    return feeds, "decode", context


def _attr(node, name: str, default=None):
    for a in (node.attribute if node is not None else ()):
        if a.name == name:
            return a.i
    return default


def _price(fmt: str, name: str, op_type: str, node, inputs: list[Operand], outputs: list[Operand]):
    if op_type in _MATMUL:
        if op_type == "MatMulNBits":
            precision = "int4" if (_attr(node, "bits", 4) == 4) else "int8"
        elif op_type in _INT8:
            precision = "int8"
        else:
            precision = "fp16" if inputs and inputs[0].itemsize == 2 else "fp32"
        # Operands past the two multiplied (scales, zero points, bias) are read as weights too
        return price(name, op_type, "matmul", precision, inputs, outputs)
    precision = "fp16" if inputs and inputs[0].itemsize == 2 and op_type not in _METADATA else "fp32"
    if op_type in ("MultiHeadAttention", "Attention"):
        heads = _attr(node, "num_heads")
        query = inputs[0] if inputs else None
        if heads is None or query is None or len(query.shape) != 3:
            raise no_rule(fmt, op_type, name)
        if op_type == "MultiHeadAttention":  # separate query, key, value inputs (B, S, hidden)
            key = inputs[1] if len(inputs) > 1 and len(inputs[1].shape) == 3 else query
            attention = (heads, query.shape[1], key.shape[1], query.shape[2] // heads)
            return price(name, op_type, "attention", precision, inputs, outputs, attention=attention)
        # Attention: the packed QKV projection runs inside the kernel, then self-attention
        width = outputs[0].shape[2]
        op = price(name, op_type, "attention", precision, inputs, outputs,
                   attention=(heads, query.shape[1], query.shape[1], width // heads))
        projection = 2 * query.elements * inputs[1].shape[-1]
        return type(op)(name, op_type, "attention", precision, op.flops + projection, op.weight_bytes, op.act_bytes)
    if op_type in ("Softmax", "QLinearSoftmax", "LogSoftmax"):
        return price(name, op_type, "softmax", precision, inputs, outputs)
    if op_type in _NORM:
        return price(name, op_type, "norm", precision, inputs, outputs)
    if op_type in _REDUCE:
        return price(name, op_type, "elementwise", precision, inputs, [Operand(inputs[0].shape, outputs[0].itemsize)]
                     if inputs else outputs)
    if op_type in _ELEMENTWISE:
        return price(name, op_type, "elementwise", precision, inputs, outputs)
    if op_type == "DynamicQuantizeLinear":
        return price(name, op_type, "quantize", "fp32", inputs, outputs)
    if op_type in ("Gather", "GatherBlockQuantized"):  # the second: a 4-bit table, dequantized row by row
        table = next((i for i in inputs if i.constant), None)
        if table is not None:
            indices = next((i for i in inputs if not i.constant), Operand((1,), 8))
            return price(name, op_type, "gather", precision, inputs, outputs, rows_read=indices.elements)
        return price(name, op_type, "movement", precision, inputs, outputs)
    if op_type in _MOVEMENT:
        return price(name, op_type, "movement", precision, inputs, outputs)
    if op_type in _METADATA:
        return price(name, op_type, "metadata", "fp32", inputs, outputs)
    raise no_rule(fmt, op_type, name)
