"""The work an ExecuTorch program does in one call, op by op: the portable kernels of its
execution plan, and every node of the XNNPACK subgraphs it delegates to, decoded from the
delegate's own flatbuffer with the flatc and schema that ship with ExecuTorch.

Shapes in a program are its planned upper bounds: an encoder's sequence axis is stored at the
export's maximum, so for a shorter input every activation dimension equal to that maximum is
scaled down to the requested length. (A model whose feature width equals the maximum sequence
would be over-counted; the maximum itself is always exact.) A decoder's step is exact: its
custom SDPA kernel attends `context` positions of the cache, the rest untouched.
"""

import functools
import json
import re
import subprocess
import tempfile
from pathlib import Path

from pocketfit.errors import InvalidArtifact

from ..work import Operand, Work, no_rule, price
from ._util import reason

NONE_ID = 4294967295  # XNNPACK's "no value"
_XNN_ITEMSIZE = {"fp32": 4, "fp16": 2, "qdint8": 1, "qcint8": 1, "qint8": 1, "quint8": 1, "qcint4": 0.5, "qbint4": 0.5,
                 "int32": 4, "qint32": 4, "qcint32": 4, "bf16": 2, "qpint8": 1}
_XNN_KIND = {
    "XNNFullyConnected": "matmul", "XNNBatchMatrixMultiply": "matmul",
    "XNNSoftmax": "softmax", "XNNConvert": "quantize",
    "XNNStaticReshape": "metadata", "XNNStaticTranspose": "movement", "XNNConcatenate2": "movement",
    "XNNConcatenate3": "movement", "XNNConcatenate4": "movement", "XNNConcatenate5": "movement",
    "XNNStaticSlice": "movement", "XNNCopy": "movement", "XNNStaticConstantPad": "movement",
}
_XNN_ELEMENTWISE = {"XNNAdd", "XNNMultiply", "XNNSubtract", "XNNDiv", "XNNReciprocalSquareRoot", "XNNSquareRoot",
                    "XNNGelu", "XNNSigmoid", "XNNTanh", "XNNClamp", "XNNMaximum", "XNNMinimum", "XNNNegate", "XNNSquare",
                    "XNNAbs", "XNNExp", "XNNLog", "XNNCeiling", "XNNFloor", "XNNHardswish", "XNNLeakyReLU", "XNNELU",
                    "XNNSin", "XNNCos", "XNNGlobalAvgPooling2d", "XNNSquaredDifference", "XNNPReLU"}
_PORTABLE_MOVEMENT = {"select_copy", "_to_dim_order_copy", "cat", "slice_copy",
                      "gather", "expand_copy", "permute_copy", "clone", "index",
                      "update_cache", "index_put", "copy_", "transpose_copy", "split_with_sizes_copy", "_clone_dim_order",
                      "where", "full_like", "full", "arange", "scalar_tensor", "empty", "constant_pad_nd", "repeat",
                      "tril", "triu", "split_copy", "unbind_copy", "select_scatter", "slice_scatter", "fill_", "zeros",
                      "zeros_like", "ones", "index_select", "masked_fill", "cumsum", "_to_copy", "pixel_shuffle",
                      "narrow_copy", "roll", "flip", "stack", "unfold_copy", "as_strided_copy", "detach_copy",
                      "lift_fresh_copy", "_assert_async", "_assert_scalar", "copy", "expand_as"}
_PORTABLE_METADATA = {"view_copy", "unsqueeze_copy", "squeeze_copy", "alias_copy", "sym_size", "_local_scalar_dense", "sym_numel", "sym_storage_offset", "et_view", "sym_max", "sym_min",
                      "floordiv", "truediv", "ceil", "round", "mod", "neg_int", "sym_float"}
_PORTABLE_ELEMENTWISE = {"add", "mul", "sub", "div", "rsqrt", "sqrt", "pow", "neg", "exp", "sin", "cos", "sigmoid",
                         "tanh", "gelu", "silu", "mean", "sum", "amax", "amin", "eq", "ne", "lt", "le", "gt", "ge",
                         "logical_and", "logical_not", "logical_or", "logical_xor", "bitwise_or", "bitwise_xor",
                         "clamp", "minimum", "maximum", "abs", "erf", "relu", "reciprocal", "log", "any", "all",
                         "argmax", "argmin", "max", "min", "var", "std", "floor", "ceil", "round", "sign", "remainder",
                         "fmod", "hardtanh", "leaky_relu", "elu", "square", "rsub", "isnan", "isinf",
                         "bitwise_and", "bitwise_not", "ones_like", "dequantize_per_tensor", "quantize_per_tensor",
                         "choose_qparams_per_token_asymmetric", "quantize_per_token", "dequantize_per_token"}
_DTYPE_ITEMSIZE = {0: 1, 1: 1, 2: 2, 3: 4, 4: 8, 5: 2, 6: 4, 7: 8, 11: 1, 15: 2}  # ExecuTorch ScalarType


def xnnpack_graphs(program) -> dict[int, dict]:
    """Delegate index (in the program's backend_delegate_data) -> the decoded XNNPACK graph."""
    import executorch

    root = Path(executorch.__path__[0])
    flatc, schema = root / "data/bin/flatc", root / "backends/xnnpack/serialization/schema.fbs"
    graphs = {}
    for plan in program.execution_plan:
        for delegate in plan.delegates:
            if delegate.id != "XnnpackBackend" or delegate.processed.location != 0:  # inline payloads only
                continue
            blob = program.backend_delegate_data[delegate.processed.index].data
            if blob[4:8] == b"XH00":  # XNNHeader: the flatbuffer's offset and size follow the magic
                start, size = int.from_bytes(blob[10:14], "little"), int.from_bytes(blob[14:18], "little")
                blob = blob[start:start + size]
            with tempfile.TemporaryDirectory() as work:
                (Path(work) / "g.bin").write_bytes(blob)
                subprocess.run([str(flatc), "--json", "--strict-json", "--raw-binary", "-o", work, str(schema), "--",
                                str(Path(work) / "g.bin")], capture_output=True, check=False)
                out = Path(work) / "g.json"
                if out.exists():
                    # flatc writes non-finite floats bare (inf, nan), which JSON does not allow
                    graphs[delegate.processed.index] = json.loads(
                        re.sub(r"(?<=[:\[,\s])(-?inf|nan)(?=\s*[,\]}])", r'"\1"', out.read_text()))
    return graphs


@functools.cache
def _node_inputs() -> dict[str, tuple[str, ...]]:
    """XNode type -> its input-id fields, in order, read from ExecuTorch's schema: flatc leaves
    out fields equal to their default (0), so which fields exist must come from the schema."""
    import executorch

    text = (Path(executorch.__path__[0]) / "backends/xnnpack/serialization/schema.fbs").read_text()
    tables = {m.group(1): re.findall(r"(\w+_id)\s*:\s*uint", m.group(2)) for m in re.finditer(r"table\s+(\w+)\s*\{([^}]*)\}", text)}
    union = re.search(r"union\s+XNodeUnion\s*\{([^}]*)\}", text).group(1)
    members = {}
    for entry in union.split(","):
        entry = entry.split("//")[0].strip()
        if entry:
            name, _, table = (part.strip() for part in entry.partition(":"))
            members[name] = tuple(f for f in tables.get(table or name, []) if f != "output_id")
    return members


def ops(path: Path, seq_len: int, context: int | None) -> Work:
    from executorch.exir._serialize._program import deserialize_pte_binary

    from pocketfit.errors import BadInput

    program = _load_program(path, deserialize_pte_binary)
    plan = program.execution_plan[0]
    values = plan.values

    def tensor(i: int):
        v = values[i].val
        return v if type(v).__name__ == "Tensor" else None

    inputs = [tensor(i) for i in plan.inputs]
    decoder = len(plan.inputs) == 2 and all(t is not None and list(t.sizes) in ([1, 1], [1]) for t in inputs)
    bound = None if decoder else next((int(t.sizes[1]) for t in inputs if t is not None and len(t.sizes) == 2), None)
    scale = {bound: seq_len} if bound and seq_len != bound else {}
    if bound and seq_len > bound:
        raise BadInput(f"{path} takes at most {bound} tokens, not {seq_len}")
    max_context = None
    graphs = xnnpack_graphs(program)
    priced = []
    for step, instruction in enumerate(plan.chains[0].instructions):
        call = instruction.instr_args
        if type(call).__name__ == "DelegateCall":
            delegate = plan.delegates[call.delegate_index]
            graph = graphs.get(delegate.processed.index)
            if graph is None:
                raise no_rule("pte", f"delegate {delegate.id}", str(step))
            priced += _xnnpack_ops(graph, step, scale)
        elif type(call).__name__ == "KernelCall":
            op = plan.operators[call.op_index]
            short = op.name.split("::")[-1]
            if op.name.startswith("executorch_prim::"):  # scalar arithmetic on sizes, views
                short = "et_view" if short not in _PORTABLE_MOVEMENT else short
            seen, operands = set(), []
            for i in call.args:
                t = tensor(i)
                if t is not None and i not in seen:
                    seen.add(i)
                    constant = t.allocation_info is None and i not in plan.inputs and t.data_buffer_idx > 0
                    shape = tuple(scale.get(int(d), int(d)) if not constant else int(d) for d in t.sizes)
                    operands.append(Operand(shape, _DTYPE_ITEMSIZE.get(int(t.scalar_type), 4), constant))
            ins, outs = operands[:-1], operands[-1:]
            name = f"{step}:{op.name}"
            if short == "custom_sdpa":
                query, cache = ins[0], ins[1]
                max_context = cache.shape[1]
                attend = min(context or seq_len, max_context)
                if (context or seq_len) > max_context:
                    raise BadInput(f"context {context or seq_len} exceeds the {max_context} positions of {path}'s KV cache")
                used = [Operand((1, attend) + c.shape[2:], c.itemsize) for c in ins[1:3]]
                priced.append(price(name, op.name, "attention", "fp32", [query] + used, outs,
                                    attention=(query.shape[2], query.shape[1], attend, query.shape[3])))
            elif short.startswith("embedding"):
                table = next((o for o in ins if o.constant), ins[0])
                indices = next((o for o in ins if o.itemsize == 8), Operand((1,), 8))
                priced.append(price(name, op.name, "gather", "int8" if table.itemsize == 1 else "fp32",
                                    [Operand(table.shape, table.itemsize, True)] + [o for o in ins if o is not table], outs,
                                    rows_read=indices.elements))
            elif short in ("mm", "bmm", "addmm", "linear"):
                priced.append(price(name, op.name, "matmul", "fp32", ins, outs))
            elif short in _PORTABLE_MOVEMENT:
                priced.append(price(name, op.name, "movement", "fp32", ins, outs))
            elif short in _PORTABLE_METADATA:
                priced.append(price(name, op.name, "metadata", "fp32", ins, outs))
            elif short in _PORTABLE_ELEMENTWISE:
                priced.append(price(name, op.name, "elementwise", "fp32", ins, outs))
            elif short in ("native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm"):
                priced.append(price(name, op.name, "norm", "fp32", ins[:1], outs))
            elif short in ("softmax", "_softmax"):
                priced.append(price(name, op.name, "softmax", "fp32", ins, outs))
            else:
                raise no_rule("pte", op.name, name)
    import executorch  # noqa: F401

    from importlib.metadata import version

    notes = []
    if scale:
        notes.append(f"activation dimensions of {bound} (the export's maximum sequence) scaled to {seq_len}")
    return Work(path, "pte", "decode" if decoder else "inference", 1 if decoder else seq_len,
                (context or seq_len) if decoder else None, tuple(priced),
                f"the program's portable kernels and its XNNPACK subgraphs' nodes (executorch {version('executorch')}), "
                "shapes as planned", tuple(notes))


def _xnnpack_ops(graph: dict, step: int, scale: dict[int, int]) -> list:
    values = {}
    for v in graph.get("xvalues", []):
        body = v.get("xvalue_union", {})
        t = body.get("tensor_value", body)
        dtype = t.get("datatype", "xnn_datatype_fp32").replace("xnn_datatype_", "")
        constant = bool(t.get("constant_buffer_idx", 0))
        shape = tuple(int(d) if constant else scale.get(int(d), int(d)) for d in t.get("dims", []))
        values[t.get("id_out", 0)] = (Operand(shape, _XNN_ITEMSIZE.get(dtype, 4), constant), dtype)
    fields = _node_inputs()
    priced = []
    for n, node in enumerate(graph.get("xnodes", [])):
        kind_name, body = node["xnode_union_type"], node.get("xnode_union", {})
        ids = [body.get(f, 0) for f in fields.get(kind_name, ())]
        ins = [values[i] for i in ids if i != NONE_ID and i in values]
        out = values.get(body.get("output_id", 0))
        outs = [out[0]] if out else []
        name = f"{step}.{n}:{kind_name}"
        kind = _XNN_KIND.get(kind_name) or ("elementwise" if kind_name in _XNN_ELEMENTWISE else None)
        if kind is None:
            raise no_rule("pte", kind_name, name)
        dtypes = [d for _, d in ins]
        if kind == "matmul" and kind_name == "XNNFullyConnected" and len(ins) > 1:
            weight = dtypes[1]
            precision = "int4" if "int4" in weight else "int8" if "int8" in weight else "fp16" if weight == "fp16" else "fp32"
        else:
            precision = "fp16" if dtypes and dtypes[0] == "fp16" else "fp32"
        priced.append(price(name, kind_name, kind, precision, [o for o, _ in ins], outs))
    return priced


def _load_program(path: Path, deserialize):
    try:
        return deserialize(path.read_bytes()).program
    except Exception as e:  # a damaged flatbuffer fails in many ways
        raise InvalidArtifact(f"{path} is not an ExecuTorch program: {reason(e)}") from e
