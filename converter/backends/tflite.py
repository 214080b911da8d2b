"""LiteRT .tflite: converted from torch with litert-torch, shrunk with ai-edge-quantizer, run in
the ai-edge-litert interpreter (XNNPACK delegate on, as on a phone).

ai-edge-litert is the successor of tflite-runtime: tflite-runtime's last release (2.14) cannot
build an interpreter under numpy 2 and lacks ops the converted BERT uses (../shared/STACK.md),
so it is not used, not even as a fallback.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pocketfit.errors import ExportFailed, InvalidArtifact, UnsupportedCombination
from pocketfit.manifest import TensorSpec
from pocketfit.progress import Progress, Silent

from ..inspection import Inspection, Tensor
from ..layout import COPIED, MAPPED, Layout, Weight
from ..recipes import Fp16, Int4Weight, Int8Dynamic, Int8Static, NoQuant
from ..tasks import CacheStyle, conform
from . import _layout
from ._util import check_options, quiet, reason


@dataclass(frozen=True)
class Tflite:
    name: ClassVar[str] = "tflite"
    suffix: ClassVar[str] = ".tflite"
    runtime: ClassVar[str] = "ai-edge-litert"
    # litert-torch cannot convert a dynamic sequence axis of a transformers BERT (its int64->int32
    # rewrite and the position-id slice both need a static length): the axis is fixed here and
    # shorter inputs are padded, with mask 0, to it.
    sequence: int = 128


FORMAT = Tflite
RECIPES = (NoQuant, Fp16, Int8Dynamic, Int8Static, Int4Weight)
CACHE = CacheStyle.IO
UNSUPPORTED_TASKS: dict = {}
# xnnpack=off runs LiteRT's builtin kernels, which read the weights where the file is mapped:
# pageable, but slower. XNNPACK (the default, as in apps) repacks them into anonymous memory.
OPTIONS = {"xnnpack": ("on", "off")}
WEIGHTS = ("LiteRT maps the .tflite file. With XNNPACK (the default, as in apps) the weights are repacked into "
           "anonymous memory at load and the mapped copy goes cold; with the runtime option xnnpack=off the builtin "
           "kernels read the weights from the mapping, so they stay pageable, at a cost in speed.")
_SIGNATURE = "serving_default"


_BLOCKS = (32, 64, 128, 256)  # ai-edge-quantizer's BLOCKWISE_* granularities


def train_as(module, recipe):
    """No quantization-aware heal here: the 4-bit blocks' clipping range is searched by OCTAV
    inside ai-edge-quantizer, and int8's activations are rounded at run time; neither is
    emulated in torch (a heal for another format's grid made .tflite worse, _rounding.py)."""
    return None


def refuse(recipe) -> str | None:
    if isinstance(recipe, Int4Weight) and recipe.group_size not in _BLOCKS:
        return f"ai-edge-quantizer has 4-bit blocks of {', '.join(map(str, _BLOCKS))} only, not {recipe.group_size}"
    if isinstance(recipe, Int4Weight) and recipe.embeddings == 4:
        return "4-bit embedding tables are ONNX and ORT only for now (onnxruntime's GatherBlockQuantized): use embeddings=8"
    return None


def export(graph, fmt: Tflite, recipe, path: Path, progress: Progress = Silent()) -> dict:
    """Convert `graph` at batch 1 and `fmt.sequence` tokens, then quantize the .tflite by `recipe`."""
    import litert_torch
    import torch

    config = next((m.config for m in graph.module.modules() if hasattr(m, "config")), None)
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and positions < fmt.sequence:  # a sequence cap (--shrink seq=) below the fixed axis
        raise UnsupportedCombination(f"LiteRT fixes the sequence at {fmt.sequence} tokens, and this model has only "
                                     f"{positions} positions: cap it at {fmt.sequence} tokens or more for .tflite")
    work = path.with_name(path.name + ".fp32.tflite")
    key = ("tflite", fmt.sequence)
    try:
        if key in graph.derived:  # converted once per graph, quantized per recipe
            work.write_bytes(graph.derived[key])
        else:
            # Integer inputs become int32: LiteRT's kernels take int32 ids, and litert-torch
            # would narrow them anyway.
            sample = {k: v if v.is_floating_point() else v.to(torch.int32)
                      for k, v in graph.sample({"batch": 1, "sequence": fmt.sequence}).items()}
            try:
                with progress.step("converting with litert-torch"), quiet(), torch.no_grad():
                    litert_torch.convert(graph.module, sample_kwargs=sample).export(str(work))
            except Exception as e:  # litert-torch raises from torch.export, jax and MLIR alike
                raise ExportFailed(f"litert-torch could not convert the model: {reason(e)}") from e
            graph.derived[key] = work.read_bytes()
        if isinstance(recipe, NoQuant):
            work.replace(path)
        else:
            with progress.step("quantizing with ai-edge-quantizer"), quiet():
                _quantize(graph, recipe, work, path)
    finally:
        work.unlink(missing_ok=True)
    return {"sequence": {"fixed": fmt.sequence}} if any("sequence" in s.axes for s in graph.inputs.values()) else {}


def _quantize(graph, recipe, src: Path, dst: Path) -> None:
    import ai_edge_quantizer as aeq
    from ai_edge_quantizer import qtyping

    op, granularity = qtyping.TFLOperationName, qtyping.QuantGranularity
    quantizer = aeq.Quantizer(str(src))
    calibration = None
    if isinstance(recipe, Fp16):
        for name in (op.FULLY_CONNECTED, op.EMBEDDING_LOOKUP):
            quantizer.add_weight_only_config(regex=".*", operation_name=name, num_bits=16,
                                             algorithm_key=aeq.algorithm_manager.AlgorithmName.FLOAT_CASTING)
    elif isinstance(recipe, Int8Dynamic):
        per = granularity.CHANNELWISE if recipe.per_channel else granularity.TENSORWISE
        for name in (op.FULLY_CONNECTED, op.BATCH_MATMUL, op.EMBEDDING_LOOKUP):
            quantizer.add_dynamic_config(regex=".*", operation_name=name, num_bits=8, granularity=per)
    elif isinstance(recipe, Int4Weight):
        blocks = getattr(granularity, f"BLOCKWISE_{recipe.group_size}")  # refuse() vetted the size
        # OCTAV picks each block's clipping range to minimise error: MiniLM 0.961 against 0.960
        # for plain min-max (XNNPACK's 4-bit blocks are symmetric, so no zero point to help).
        quantizer.add_dynamic_config(regex=".*", operation_name=op.FULLY_CONNECTED, num_bits=4, granularity=blocks,
                                     algorithm_key=aeq.algorithm_manager.AlgorithmName.OCTAV)
        quantizer.add_dynamic_config(regex=".*", operation_name=op.EMBEDDING_LOOKUP, num_bits=8, granularity=granularity.CHANNELWISE)
    elif isinstance(recipe, Int8Static):
        calibration = _static(graph, recipe, quantizer, src)
    result = quantizer.quantize(calibration)
    result.export_model(str(dst), overwrite=True)  # dst is the staged name, already created


def _static(graph, recipe: Int8Static, quantizer, src: Path):
    """Calibrated int8 on the linear layers. Three things stay off fixed scales, each measured
    on MiniLM: the attention-mask add and the decomposed LayerNorm (cosine 0.60 with them
    static), and the FFN down-projections' post-activation inputs, quantized at run time."""
    from ai_edge_quantizer import qtyping

    from ..texts import calibration

    op, granularity = qtyping.TFLOperationName, qtyping.QuantGranularity
    per = granularity.CHANNELWISE if recipe.per_channel else granularity.TENSORWISE
    quantizer.add_static_config(regex=".*", operation_name=op.FULLY_CONNECTED, activation_num_bits=8, weight_num_bits=8,
                                weight_granularity=per)
    for scope in _ffn_down_scopes(src, graph.intermediate_size):
        quantizer.add_dynamic_config(regex=scope, operation_name=op.FULLY_CONNECTED, num_bits=8, granularity=per)
    quantizer.add_dynamic_config(regex=".*", operation_name=op.EMBEDDING_LOOKUP, num_bits=8, granularity=granularity.CHANNELWISE)
    runner = Runner(src)
    feeds = [conform({k: v.numpy() for k, v in f.items()}, runner.inputs) for f in graph.calibration(calibration(recipe.calibration))]
    return quantizer.calibrate({_SIGNATURE: feeds})


def _ffn_down_scopes(path: Path, intermediate_size: int | None) -> list[str]:
    """Regexes matching exactly the FULLY_CONNECTED ops whose weight reads the FFN's inner width.
    The quantizer matches an op by its output tensors' names joined with ';', plus a final ';'."""
    import re

    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    if not intermediate_size:
        return []
    model = flatbuffer_utils.read_model(str(path))
    scopes = []
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            code = model.operatorCodes[operator.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.FULLY_CONNECTED:
                continue
            weight = subgraph.tensors[operator.inputs[1]]
            if len(weight.shape) == 2 and weight.shape[1] == intermediate_size:
                names = ";".join(subgraph.tensors[i].name.decode() for i in operator.outputs)
                scopes.append("^" + re.escape(names) + ";$")
    return scopes


class Runner:
    """The ai-edge-litert interpreter over one artifact, through its serving signature."""

    def __init__(self, path: Path, threads: int | None = None, options: dict | None = None):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if (options or {}).get("xnnpack", "on") == "on" else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with quiet():
                # LiteRT's own default is one thread; two matches a phone's pair of big cores.
                self.interpreter = Interpreter(model_path=str(path), num_threads=threads or 2,
                                               experimental_op_resolver_type=resolver)
                self.signature = self.interpreter.get_signature_runner(_SIGNATURE)
        except Exception as e:  # the interpreter raises ValueError/RuntimeError with its own text
            raise InvalidArtifact(f"{path} is not a loadable LiteRT model: {reason(e)}") from e
        inputs = self.signature.get_input_details()
        self._outputs = self.signature.get_output_details()
        # litert-torch names outputs output_0, output_1, ... in the graph's order.
        self._order = sorted(self._outputs, key=lambda n: int(n.rsplit("_", 1)[-1]) if n.rsplit("_", 1)[-1].isdigit() else n)
        self.inputs = tuple(TensorSpec(n, np.dtype(d["dtype"]).name, tuple(int(x) for x in d["shape"])) for n, d in inputs.items())
        self.outputs = tuple(TensorSpec(n, np.dtype(self._outputs[n]["dtype"]).name, tuple(int(x) for x in self._outputs[n]["shape"])) for n in self._order)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.signature(**{spec.name: feeds[spec.name] for spec in self.inputs})
        out = []
        for name in self._order:
            value = np.asarray(results[name])
            scale, zero = self._outputs[name]["quantization"]
            if np.issubdtype(value.dtype, np.integer) and scale:  # a static recipe quantizes outputs too
                value = (value.astype(np.float32) - zero) * scale
            out.append(value)
        return out


def open(path: Path, threads: int | None = None, options: dict | None = None) -> Runner:  # noqa: A001 - the backend verb
    return Runner(path, threads, check_options(OPTIONS, options))


def runtime_version() -> str:
    from importlib.metadata import version

    import ai_edge_litert.interpreter  # noqa: F401 - the measurement's baseline includes it

    return f"ai-edge-litert {version('ai-edge-litert')}"


def inspect(path: Path) -> Inspection:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.read_model(str(path))
    except Exception as e:  # a damaged flatbuffer fails in many ways
        raise InvalidArtifact(f"{path} is not a LiteRT model: {reason(e)}") from e
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    operators: dict[str, int] = {}
    tensors, seen = [], set()
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            code = model.operatorCodes[operator.opcodeIndex]
            name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
            operators[name] = operators.get(name, 0) + 1
        for t in subgraph.tensors:
            buffer = model.buffers[t.buffer] if t.buffer else None
            size = (len(buffer.data) if buffer is not None and buffer.data is not None else int(getattr(buffer, "size", 0) or 0)) if buffer else 0
            if size and t.buffer not in seen:
                seen.add(t.buffer)
                tensors.append(Tensor(t.name.decode(), type_names.get(t.type, str(t.type)), tuple(int(x) for x in (t.shape if t.shape is not None else ())), size))
    signatures = "; ".join(
        f"{s.signatureKey.decode()}({', '.join(i.name.decode() for i in s.inputs)})" for s in (model.signatureDefs or [])
    )
    return Inspection("tflite", path, path.stat().st_size, tuple(tensors), operators, {"signatures": signatures})


def layout(path: Path, options: dict | None = None) -> Layout:
    """Where each constant buffer lies in the .tflite (its inline `data` vector, or the
    offset/size a large model gives), and the order the signature's operators read them."""
    from ai_edge_litert import schema_py_generated as schema

    options = check_options(OPTIONS, options)
    data = path.read_bytes()
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    try:
        if not schema.Model.ModelBufferHasIdentifier(data, 0):
            raise ValueError("no TFLite flatbuffer identifier")
        model = schema.Model.GetRootAs(data, 0)
        where = {}
        for i in range(1, model.BuffersLength()):  # buffer 0 is the empty sentinel
            buffer = model.Buffers(i)
            vector = buffer._tab.Offset(4)  # Buffer.data: the accessors hide where the bytes are
            if vector and buffer.DataLength():
                where[i] = (buffer._tab.Vector(vector), buffer.DataLength())
            elif buffer.Offset() > 1:  # a model over 2 GB keeps its buffers after the flatbuffer
                where[i] = (buffer.Offset(), buffer.Size())
        index = next((model.SignatureDefs(i).SubgraphIndex() for i in range(model.SignatureDefsLength())
                      if model.SignatureDefs(i).SignatureKey().decode() == _SIGNATURE), 0)
        graph = model.Subgraphs(index)
        tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
        ops = []
        for i in range(graph.OperatorsLength()):
            operator = graph.Operators(i)
            code = model.OperatorCodes(operator.OpcodeIndex())
            ops.append((op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?"),
                        [int(t) for t in (operator.InputsAsNumpy() if operator.InputsLength() else ()) if t >= 0],
                        [int(t) for t in (operator.OutputsAsNumpy() if operator.OutputsLength() else ())]))
        inputs = {int(t) for t in (graph.InputsAsNumpy() if graph.InputsLength() else ())}
        buffer_of = {i: t.Buffer() for i, t in enumerate(tensors) if t.Buffer() in where}
        names = {b: tensors[i].Name().decode() for i, b in sorted(buffer_of.items(), reverse=True)}  # a shared buffer: its first tensor's name
        shapes = {b: (tensors[i].Shape(0) if tensors[i].ShapeLength() else 0) for i, b in buffer_of.items()}
        # The output channels (rows, out x in row-major) of each FULLY_CONNECTED's constant weight (input 1).
        fc_rows = {}
        for op, ins, _ in ops:
            if (op == "FULLY_CONNECTED" and len(ins) > 1 and ins[1] in buffer_of and tensors[ins[1]].ShapeLength() == 2
                    and tensors[ins[1]].Type() == _FLOAT32):
                fc_rows.setdefault(buffer_of[ins[1]], int(tensors[ins[1]].Shape(0)))
    except Exception as e:  # a damaged flatbuffer fails in many ways
        raise InvalidArtifact(f"{path}: cannot read the LiteRT model's weight layout: {reason(e)}") from e
    producer = {out: (op, ins[0] if ins else -1) for op, ins, outs in ops for out in outs}
    lookups = [(ins[_GATHERS[op][0]], ins[_GATHERS[op][1]]) for op, ins, _ in ops if op in _GATHERS and len(ins) > 1]
    tables = {buffer_of[t] for t, ids in lookups if t in buffer_of and _layout.token_table(ids, inputs, producer)}
    xnnpack = options.get("xnnpack", "on") == "on"
    # A constant stays in the file unless every read of it is one that happens once, at load:
    # XNNPACK packing its matrix ops' weights, or a kernel preparing with a shape or an axis.
    once = {op: _PREPARED.get(op, ()) + (_PACKED.get(op, ()) if xnnpack else ()) for op, _, _ in ops}
    per_inference = {buffer_of[t] for op, ins, _ in ops for i, t in enumerate(ins) if t in buffer_of and i not in once[op]}
    read_once = {buffer_of[t] for op, ins, _ in ops for i, t in enumerate(ins) if t in buffer_of and i in once[op]}
    in_place = set(where) - (read_once - per_inference)
    # Without XNNPACK each FULLY_CONNECTED weight is read in tiles of RUY_ROWS rows (see RUY_ROWS).
    tiles = {} if xnnpack else {b: (where[b][1] // rows, RUY_ROWS) for b, rows in fc_rows.items()
                                 if b in in_place and b not in tables and rows > 0 and where[b][1] % rows == 0}
    placed = [Weight(names[b], path.name, offset, length, MAPPED if b in in_place else COPIED, shapes[b] if b in tables else 0,
                     tile=tiles.get(b, ()))
              for b, (offset, length) in where.items() if b in names]
    reads = [names[buffer_of[t]] for _, ins, _ in ops for t in ins if t in buffer_of]
    notes = ["order: the operators of the serving signature's subgraph in stored order (LiteRT runs them in that order), "
             "each operator's constant inputs in input order.",
             _HELD_XNNPACK if xnnpack else _HELD_BUILTIN, _HELD_PREPARED,
             "Tables read by GATHER/EMBEDDING_LOOKUP of the token ids (through CAST/RESHAPE) have rows set: one inference "
             "reads only the rows of its ids. Other gathers (position tables) count as read whole."]
    if tiles:
        notes.append(_TILED_BUILTIN)
    return _layout.build("tflite", path, placed, reads, options=options, notes=notes)


# LiteRT's builtin FULLY_CONNECTED (xnnpack=off) multiplies with ruy, which packs the weight
# matrix (out x in, row-major in the file) in tiles of 8 rows read side by side, column after
# column. 8 is the row count of ruy's float kernels on x86 AVX2 and arm64 NEON (the paths a phone
# and this machine take); other ruy paths (AVX-512: 16) would differ. A tile spanning several
# pages is first touched out of order: MiniLM's FFN output matrix (6 KiB rows, 12 pages a tile)
# in the order 0,2,3,5,6,8,9,11,1,4,7,10 (kernel traces, MiniLM fp32). With XNNPACK the weights
# are repacked at load (copied), so no tile is set. Float32 weights only: they are what the kernel
# traces showed; ruy packs int8 differently (arm64 without dot-product instructions: 4 rows), and
# those weights keep the front-to-back model.
_FLOAT32 = 0  # TensorType.FLOAT32 in LiteRT's schema
RUY_ROWS = 8  # ruy's float kernel rows on x86 AVX2 and arm64 NEON (its LHS packing block)
_TILED_BUILTIN = (f"tile (xnnpack=off): the builtin FULLY_CONNECTED multiplies with ruy, which reads its float32 weight (input 1) "
                  f"{RUY_ROWS} rows side by side, column after column (ruy's float kernels on x86 AVX2 and arm64 NEON; "
                  "AVX-512 would take 16): a tile spanning several pages is first touched out of order.")

# Inputs XNNPACK packs at load: weights and biases of its matrix ops.
_PACKED = {"FULLY_CONNECTED": (1, 2), "CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "TRANSPOSE_CONV": (1, 3),
           "BATCH_MATMUL": (1,)}
# Inputs read once: shapes, axes and permutations when a kernel prepares; a DEQUANTIZE of a
# constant (fp16 weights) is computed once, into memory of the interpreter's (or XNNPACK's).
_PREPARED = {"DEQUANTIZE": (0,), "RESHAPE": (1,), "TRANSPOSE": (1,), "MEAN": (1,), "SUM": (1,), "REDUCE_MAX": (1,), "REDUCE_MIN": (1,),
             "REDUCE_PROD": (1,), "EXPAND_DIMS": (1,), "BROADCAST_TO": (1,), "TILE": (1,), "PAD": (1,), "PADV2": (1,),
             "SLICE": (1, 2), "STRIDED_SLICE": (1, 2, 3), "SPLIT": (0,), "SPLIT_V": (1, 2)}
_GATHERS = {"GATHER": (0, 1), "EMBEDDING_LOOKUP": (1, 0)}  # op -> (table input, index input)
_HELD_XNNPACK = ("held (xnnpack=on): the XNNPACK delegate repacks the weights and biases of the matrix operators it takes "
                 "(FULLY_CONNECTED, BATCH_MATMUL, convolutions) into its own "
                 "memory at load; every other constant (embedding tables on the builtin GATHER/EMBEDDING_LOOKUP, the "
                 "operands of elementwise ops such as a folded position table) is read where the file is mapped, on every "
                 "inference. Measured (tests/layout_probe.py): one inference faults in exactly those pages.")
_HELD_PREPARED = ("Shapes, axes and permutations (RESHAPE, TRANSPOSE, MEAN, SLICE ... parameters) and the fp16 weights a "
                  "DEQUANTIZE widens count as copied: they are read once, when the kernels prepare (or at the first run); widened fp16 "
                  "weights take twice their file bytes of anonymous memory (measured: an fp16 BERT's fp32 table in anonymous memory).")
_HELD_BUILTIN = ("held (xnnpack=off): LiteRT maps the file and its builtin kernels read every constant from the mapping on "
                 "every inference. Measured (tests/layout_probe.py): one inference faults in the pages of every weight.")


_TFL_MOVEMENT = {"TRANSPOSE", "SLICE", "STRIDED_SLICE", "CONCATENATION", "BROADCAST_TO", "STABLEHLO_SCATTER",
                 "PACK", "UNPACK", "SPLIT", "SPLIT_V", "GATHER_ND", "CAST", "SELECT",
                 "SELECT_V2", "TILE", "PAD", "PADV2", "SCATTER_ND", "DYNAMIC_UPDATE_SLICE", "STABLEHLO_DYNAMIC_UPDATE_SLICE"}
_TFL_ELEMENTWISE = {"ADD", "MUL", "SUB", "DIV", "RSQRT", "SQRT", "SQUARED_DIFFERENCE", "GELU", "LOGISTIC", "TANH",
                    "COS", "SIN", "MAXIMUM", "MINIMUM", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL",
                    "NOT_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT", "POW", "EXP", "NEG", "ABS", "RELU",
                    "HARD_SWISH", "FLOOR", "CEIL", "ROUND", "LOG", "SQUARE", "DEQUANTIZE", "QUANTIZE", "SIGN", "FLOOR_MOD"}
_TFL_REDUCE = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "ARG_MAX"}
_TFL_ITEMSIZE = {"float32": 4, "float16": 2, "int32": 4, "int64": 8, "int8": 1, "uint8": 1, "int16": 2, "bool": 1,
                 "int4": 0.5, "float64": 8}


def ops(path: Path, seq_len: int = 128, context: int | None = None):
    """The work of one call, op by op, from the file: LiteRT graphs have static shapes (the
    sequence length fixed at export; a decoder's step attends its whole static cache)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from ..work import Operand, Work, no_rule, price

    try:
        model = flatbuffer_utils.read_model(str(path))
    except Exception as e:  # a damaged flatbuffer fails in many ways
        raise InvalidArtifact(f"{path} is not a LiteRT model: {reason(e)}") from e
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    signature = (model.signatureDefs or [None])[0]
    graph = model.subgraphs[signature.subgraphIndex if signature else 0]
    constant = set()
    for i, t in enumerate(graph.tensors):
        buffer = model.buffers[t.buffer] if t.buffer else None
        if buffer is not None and ((buffer.data is not None and len(buffer.data)) or int(getattr(buffer, "size", 0) or 0)):
            constant.add(i)

    def operand(i: int) -> Operand:
        t = graph.tensors[i]
        shape = tuple(int(x) for x in (t.shape if t.shape is not None else ()))
        return Operand(shape, _TFL_ITEMSIZE.get(type_names.get(t.type, ""), 4), i in constant)

    inputs_named = {graph.tensors[i].name.decode(): graph.tensors[i] for i in graph.inputs}
    decoder = any("position" in n for n in inputs_named)
    fixed = None if decoder else next((int(t.shape[1]) for t in inputs_named.values() if t.shape is not None and len(t.shape) == 2), None)
    caches = [t for n, t in inputs_named.items() if "cache" in n and t.shape is not None and len(t.shape) == 5]
    if decoder and caches and (context or seq_len) > int(caches[0].shape[3]):
        from pocketfit.errors import BadInput

        raise BadInput(f"context {context or seq_len} exceeds the {int(caches[0].shape[3])} positions of {path}'s KV cache")
    priced = []
    for index, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        kind_name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
        ins = [operand(i) for i in op.inputs if i >= 0]
        outs = [operand(i) for i in op.outputs if i >= 0]
        # A DEQUANTIZE of a stored constant makes a constant: its consumer reads weights
        if kind_name == "DEQUANTIZE" and ins and ins[0].constant:
            constant.update(i for i in op.outputs if i >= 0)
        name = f"{index}:{graph.tensors[op.outputs[0]].name.decode()}" if len(op.outputs) else str(index)
        floats = [o for o in ins if not o.constant] or ins
        precision = "fp16" if floats and floats[0].itemsize == 2 else "fp32"
        if kind_name in ("FULLY_CONNECTED", "BATCH_MATMUL"):
            weight = ins[1] if len(ins) > 1 else None
            if weight is not None and weight.constant and weight.itemsize == 1 or ins[0].itemsize == 1:
                precision = "int8"
            elif weight is not None and weight.itemsize == 0.5:
                precision = "int4"
            priced.append(price(name, kind_name, "matmul", precision, ins, outs))
        elif kind_name == "SOFTMAX":
            priced.append(price(name, kind_name, "softmax", precision, ins, outs))
        elif kind_name in _TFL_REDUCE:
            priced.append(price(name, kind_name, "elementwise", precision, ins, [Operand(ins[0].shape, outs[0].itemsize)]))
        elif kind_name in _TFL_ELEMENTWISE:
            priced.append(price(name, kind_name, "elementwise", precision, ins, outs))
        elif kind_name in ("EMBEDDING_LOOKUP", "GATHER"):
            table = next((o for o in ins if o.constant), None)
            indices = next((o for o in ins if not o.constant), Operand((1,), 4))
            priced.append(price(name, kind_name, "gather" if table else "movement", precision, ins, outs,
                                rows_read=indices.elements))
        elif kind_name in _TFL_MOVEMENT:
            priced.append(price(name, kind_name, "movement", precision, ins, outs))
        elif kind_name in ("SHAPE", "RANGE", "FILL", "RESHAPE", "SQUEEZE", "EXPAND_DIMS"):  # views move no data
            priced.append(price(name, kind_name, "metadata", "fp32", ins, outs))
        else:
            raise no_rule("tflite", kind_name, name)
    notes = []
    if fixed and fixed != seq_len:
        notes.append(f"the graph's sequence length is fixed at {fixed}: every call computes {fixed} tokens, not {seq_len}")
    if decoder:
        notes.append("the step attends over the whole static KV cache at every position, whatever the context")
    tokens = 1 if decoder else (fixed or seq_len)
    return Work(path, "tflite", "decode" if decoder else "inference", tokens, (context or seq_len) if decoder else None,
                tuple(priced), "the .tflite file's operators and their static tensor shapes", tuple(notes))
