"""ONNX: exported with torch's exporter, shrunk with onnxruntime's quantizers, run in onnxruntime."""

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pocketfit.errors import ExportFailed, InvalidArtifact
from pocketfit.manifest import TensorSpec
from pocketfit.progress import Progress, Silent

from ..inspection import Inspection, Tensor
from ..layout import COPIED, MAPPED, Layout, Weight
from ..recipes import Fp16, Int4Weight, Int8Dynamic, Int8Static, NoQuant
from ..tasks import CacheStyle
from . import _layout, _rounding
from ._onnx_fusions import fusable_rms_norms, fuse_encoder
from ._util import check_options, quiet, reason


@dataclass(frozen=True)
class Onnx:
    name: ClassVar[str] = "onnx"
    suffix: ClassVar[str] = ".onnx"
    runtime: ClassVar[str] = "onnxruntime"
    # 18: every op of these graphs has int8 kernels in onnxruntime's quantizers at this opset.
    opset: int = 18


FORMAT = Onnx
RECIPES = (NoQuant, Fp16, Int8Dynamic, Int8Static, Int4Weight)
CACHE = CacheStyle.IO
UNSUPPORTED_TASKS: dict = {}
OPTIONS: dict = {}  # runtime options `open` takes: name -> allowed values
WEIGHTS = ("onnxruntime reads an .onnx file into its own memory and builds its initializers from that copy, so the "
           "weights are anonymous memory that cannot be paged out. An .ort file with the session options "
           "session.use_ort_model_bytes_directly=1 and session.use_ort_model_bytes_for_initializers=1 runs from the "
           "model's bytes without another copy; handed a memory-mapped buffer through the C, C++ or Java API, those "
           "bytes are the file's own, pageable pages.")

# Sizes the dynamic axes are traced at. Not 1: torch.export would fix an axis traced at size 1.
_TRACE_SIZES = {"batch": 2, "sequence": 16}
_DTYPES = {"tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(float)": "float32", "tensor(float16)": "float16"}


def export(graph, fmt: Onnx, recipe, path: Path, progress: Progress = Silent()) -> dict:
    """Export `graph` to `path` as ONNX, shrunk by `recipe`. Returns facts for the manifest."""
    work = path.with_name(path.name + ".fp32")
    try:
        to_onnx(graph, fmt, work, progress)
        with progress.step(_SHRINK_STAGE[type(recipe)]) if type(recipe) in _SHRINK_STAGE else contextlib.nullcontext(), quiet():
            facts = _SHRINK[type(recipe)](graph, recipe, work, path) or {}
    finally:
        work.unlink(missing_ok=True)
    return {"opset": fmt.opset} | facts


def to_onnx(graph, fmt: Onnx, path: Path, progress: Progress = Silent()) -> None:
    """The fp32 graph, with its named axes dynamic, in one file (traced once per graph).

    Graphs go through torch's TorchScript exporter (optimum's too): it exports MiniLM in about
    2 s and the tiny Llama's decode step in 3, where the dynamo exporter (torch.export,
    decompositions, then translation) takes 10-15. A trace that fails, or one that warns it froze
    a Python value computed in the model's own code (not transformers' shape checks), goes
    through the dynamo exporter, which captures data-dependent control flow or says why it cannot."""
    key = ("onnx", fmt.opset)
    if key not in graph.derived:
        with progress.step("torch.onnx.export (TorchScript)"), _one_torch_thread():
            data = _trace(graph, fmt)  # small traced calls: a second thread only spins at each op's barrier
        if data is None:
            with progress.step("torch.onnx.export (dynamo, the trace could not be trusted)"):
                data = _dynamo(graph, fmt, path)
        graph.derived[key] = data
    path.write_bytes(graph.derived[key])


def _trace(graph, fmt: Onnx) -> bytes | None:
    """The TorchScript export, or None when it fails or cannot be trusted (see `to_onnx`)."""
    import io
    import warnings

    import torch

    dynamic = {name: {i: a for i, a in enumerate(spec.axes) if isinstance(a, str)} for name, spec in graph.inputs.items()}
    buffer = io.BytesIO()
    try:
        dynamic |= _output_axes(graph)
        with quiet(), torch.no_grad(), warnings.catch_warnings(record=True) as caught, fusable_rms_norms(graph.module):
            warnings.simplefilter("always", torch.jit.TracerWarning)
            torch.onnx.export(
                graph.module,
                args=(),
                kwargs=graph.sample(_TRACE_SIZES),
                f=buffer,
                dynamo=False,
                input_names=list(graph.inputs),
                output_names=list(graph.outputs),
                dynamic_axes={name: axes for name, axes in dynamic.items() if axes},
                opset_version=fmt.opset,
            )
    except Exception:  # noqa: BLE001 - the dynamo exporter tries next and reports its own reason
        return None
    if any(issubclass(w.category, torch.jit.TracerWarning) and not _library_code(w.filename) for w in caught):
        return None
    return buffer.getvalue()


@contextlib.contextmanager
def _one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _library_code(filename: str) -> bool:
    """Whether a traced line lies in torch or transformers: their tracer warnings on this path
    are checks of shapes (traced at sizes that keep the general branch), not of values."""
    parts = Path(filename).parts
    return "torch" in parts or "transformers" in parts


def _output_axes(graph) -> dict[str, dict[int, str]]:
    """Which output axes follow which named input axis, found by running the module at two
    sizes: the TorchScript exporter would otherwise name them after the op that made them
    ("Divsentence_embedding_dim_0")."""
    import torch

    shapes = []
    for sizes in (_TRACE_SIZES, {axis: size + 1 for axis, size in _TRACE_SIZES.items()}):
        with torch.no_grad():
            result = graph.module(**graph.sample(sizes))
        shapes.append((sizes, [tuple(t.shape) for t in (result if isinstance(result, (tuple, list)) else (result,))]))
    (sizes_a, a), (sizes_b, b) = shapes
    axes = {}
    for name, shape_a, shape_b in zip(graph.outputs, a, b):
        axes[name] = {i: axis for i, (x, y) in enumerate(zip(shape_a, shape_b)) for axis in _TRACE_SIZES
                      if x != y and (x, y) == (sizes_a[axis], sizes_b[axis])}
    return axes


def _dynamo(graph, fmt: Onnx, path: Path) -> bytes:
    import torch

    dims = {axis: torch.export.Dim(axis) for spec in graph.inputs.values() for axis in spec.axes if isinstance(axis, str)}
    dynamic = {name: {i: dims[a] for i, a in enumerate(spec.axes) if isinstance(a, str)} or None for name, spec in graph.inputs.items()}
    try:
        with quiet(), torch.no_grad(), fusable_rms_norms(graph.module):
            torch.onnx.export(
                graph.module,
                kwargs=graph.sample(_TRACE_SIZES),
                f=str(path),
                dynamo=True,
                input_names=list(graph.inputs),
                output_names=list(graph.outputs),
                dynamic_shapes=dynamic,
                opset_version=fmt.opset,
                external_data=False,
                verbose=False,
            )
    except Exception as e:  # the exporter raises many types; the reason is in the text
        raise ExportFailed(f"torch.onnx.export failed: {reason(e)}") from e
    return _strip_node_metadata(path)


def _strip_node_metadata(path: Path) -> bytes:
    """Drop what the dynamo exporter records on every node for debugging (its torch module path
    and Python stack trace, with this machine's file paths): 0.65 MB of MiniLM's int8 file."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    data = model.SerializeToString()
    path.write_bytes(data)
    return data


def _keep(graph, recipe, src: Path, dst: Path) -> None:
    src.replace(dst)


def _fp16(graph, recipe, src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # Inputs and outputs stay float32 so the app's code does not change with the recipe.
    onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))


def _int8_dynamic(graph, recipe: Int8Dynamic, src: Path, dst: Path) -> dict:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    facts = {}
    fused = src.with_name(src.name + ".fused")
    try:
        config = _encoder_config(graph)
        if config is not None:
            # Fused first: the quantizer then converts the same MatMuls, and attention, norms
            # and GELU run as single fp32 kernels (MiniLM, 32 tokens: about a third faster).
            # A head-pruned encoder's config still says the teacher's count (its head size is
            # derived from hidden_size); fused with that, each head would attend over the wrong
            # slice, which random test weights (near-uniform attention) cannot show.
            heads = getattr(config, "pocketfit_attention_heads", None) or config.num_attention_heads
            facts["fusions"] = fuse_encoder(src, fused, heads, config.hidden_size)
            src = fused
        # MatMul and Gather: linear layers and embedding tables. ONNX's shape inference cannot
        # type the fused contrib ops' outputs (the TorchScript exporter records no types of its
        # own); every activation here is float32.
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=recipe.per_channel,
                         op_types_to_quantize=["MatMul", "Gather"], extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        fused.unlink(missing_ok=True)
    return facts


def _encoder_config(graph):
    """The transformers config of an encoder (no KV cache) with multi-head attention, or None:
    onnxruntime's fusions here are the BERT family's."""
    if graph.kv_cache is not None:
        return None
    for module in graph.module.modules():
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "num_attention_heads", None) and getattr(config, "hidden_size", None):
            return config if not getattr(config, "is_decoder", False) else None
    return None


def _int8_static(graph, recipe: Int8Static, src: Path, dst: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    from ..texts import calibration

    samples = iter([{k: v.numpy() for k, v in feeds.items()} for feeds in graph.calibration(calibration(recipe.calibration))])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(samples, None)

    # A fixed scale cannot cover the outliers after the FFN's activation (MiniLM: cosine 0.94
    # with them static, 0.99 without): those inputs are quantized at run time instead.
    down = _ffn_down_nodes(src, graph.intermediate_size)
    staged = src.with_name(src.name + ".static")
    try:
        quantize_static(
            src, staged, Reader(), quant_format=QuantFormat.QOperator, per_channel=recipe.per_channel,
            op_types_to_quantize=["MatMul", "Gather"], activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=down, extra_options={"MatMulConstBOnly": True},
        )
        if down:
            quantize_dynamic(staged, dst, weight_type=QuantType.QInt8, per_channel=recipe.per_channel, nodes_to_quantize=down)
        else:
            staged.replace(dst)
    finally:
        staged.unlink(missing_ok=True)


def _int4(graph, recipe: Int4Weight, src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    # Asymmetric groups keep MiniLM at 0.971 cosine against 0.965 symmetric, for 1% more bytes.
    ops = ("MatMul", "Gather") if recipe.embeddings == 4 else ("MatMul",)  # Gather -> GatherBlockQuantized
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), block_size=recipe.group_size, is_symmetric=False, op_types_to_quantize=ops)
    quantizer.process()
    if recipe.embeddings == 4:
        quantizer.model.save_model_to_file(str(dst))
        return
    staged = src.with_name(src.name + ".int4")
    try:
        quantizer.model.save_model_to_file(str(staged))
        quantize_dynamic(staged, dst, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["Gather"])
    finally:
        staged.unlink(missing_ok=True)


def train_as(module, recipe):
    """Emulate the rounding `recipe` gets here, for a quantization-aware heal (_rounding.py)."""
    if isinstance(recipe, Int4Weight):  # the asymmetric groups _int4 asks MatMulNBits for
        return _rounding.asymmetric_groups(module, 4, recipe.group_size, embeddings=recipe.embeddings == 4)
    return None  # int8's activations are rounded at run time, per tensor: not emulated


def refuse(recipe) -> str | None:
    if isinstance(recipe, Int4Weight) and recipe.group_size < 16:
        return f"onnxruntime's MatMulNBits takes groups of 16 or more, not {recipe.group_size}"
    return None


_SHRINK_STAGE = {Fp16: "converting to fp16", Int8Dynamic: "quantizing to int8 with onnxruntime",
                 Int8Static: "calibrating and quantizing with onnxruntime", Int4Weight: "quantizing to 4-bit with onnxruntime"}
_SHRINK = {NoQuant: _keep, Fp16: _fp16, Int8Dynamic: _int8_dynamic, Int8Static: _int8_static, Int4Weight: _int4}


def _ffn_down_nodes(path: Path, intermediate_size: int | None) -> list[str]:
    """MatMuls whose constant weight reads the FFN's inner width: the down-projections."""
    import onnx

    if not intermediate_size:
        return []
    model = onnx.load(str(path))
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    return [
        node.name for node in model.graph.node
        if node.op_type == "MatMul" and len(shapes.get(node.input[1], ())) == 2 and shapes[node.input[1]][0] == intermediate_size
    ]


def session_options_for(threads: int | None):
    """The session options an app on a phone wants, applied to every session pocketfit opens."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # One graph, run node after node: a second (inter-op) pool only adds threads a phone's few
    # big cores cannot run at once.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # No arena: onnxruntime's CPU arena grows in doubling chunks to the largest input seen and
    # never gives memory back, so one long input would keep the app's footprint high for good;
    # without it, activations are freed after each run. (Memory patterns plan per input shape
    # and are recomputed for every new sequence length, so they go too.)
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    return options


class Runner:
    """An onnxruntime session over one artifact (.onnx or .ort)."""

    def __init__(self, path: Path, threads: int | None = None, options: dict | None = None):
        import onnxruntime as ort

        session_options = session_options_for(threads)
        try:
            self.session = ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise InvalidArtifact(f"{path} is not a loadable {path.suffix[1:].upper()} model: {reason(e)}") from e
        self.inputs = tuple(_spec(i) for i in self.session.get_inputs())
        self.outputs = tuple(_spec(o) for o in self.session.get_outputs())

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {spec.name: feeds[spec.name] for spec in self.inputs})


def open(path: Path, threads: int | None = None, options: dict | None = None) -> Runner:  # noqa: A001 - the backend verb
    return Runner(path, threads, check_options(OPTIONS, options))


def runtime_version() -> str:
    """Import the runtime (so a measurement's baseline includes it) and name its version."""
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def inspect(path: Path) -> Inspection:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise InvalidArtifact(f"{path} is not an ONNX model: {reason(e)}") from e
    tensors = []
    for init in model.graph.initializer:
        array_dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
        count = int(np.prod(init.dims)) if init.dims else 1
        nbytes = len(init.raw_data) if init.raw_data else count * np.dtype(array_dtype).itemsize
        tensors.append(Tensor(init.name, onnx.TensorProto.DataType.Name(init.data_type).lower(), tuple(init.dims), nbytes))
    operators: dict[str, int] = {}
    for node in model.graph.node:
        key = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        operators[key] = operators.get(key, 0) + 1
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    io = "; ".join(f"{s.name} {s.dtype} {list(s.shape)}" for s in (_value_spec(v) for v in model.graph.input))
    return Inspection("onnx", path, path.stat().st_size, tuple(tensors), operators, {"opsets": opsets, "inputs": io})


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else str(d) for d in arg.shape)
    return TensorSpec(arg.name, _DTYPES.get(arg.type, arg.type), shape)


def _value_spec(value) -> TensorSpec:
    import onnx

    dims = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim)
    dtype = str(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
    return TensorSpec(value.name, dtype, dims)


def layout(path: Path, options: dict | None = None) -> Layout:
    """Where each initializer's bytes lie (in the .onnx, or in its external-data file) and the
    order the graph's nodes read them. Read from the file alone."""
    import onnx

    options = check_options(OPTIONS, options)
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
        inline = _inline_offsets(data)
    except Exception as e:  # protobuf's DecodeError, or the walk's ValueError
        raise InvalidArtifact(f"{path}: cannot read the ONNX model's weight layout: {reason(e)}") from e
    graph = model.graph
    weights, external = [], False
    for init in graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in init.external_data}
            file, offset = entries.get("location", ""), int(entries.get("offset", 0))
            if not (path.parent / file).is_file():
                raise InvalidArtifact(f"{path}: initializer {init.name!r} lies in {path.parent / file}, which does not exist")
            length = int(entries["length"]) if "length" in entries else (path.parent / file).stat().st_size - offset
            external = True
        elif init.name in inline:
            file, (offset, length) = path.name, inline[init.name]
        else:
            continue  # an empty tensor: no bytes to read
        weights.append((init, file, offset, length))
    producer = {out: (n.op_type, n.input[0] if n.input else "") for n in graph.node for out in n.output}
    lookups = [(n.input[LOOKUPS[n.op_type][0]], n.input[LOOKUPS[n.op_type][1]]) for n in graph.node
               if n.op_type in LOOKUPS and len(n.input) > max(LOOKUPS[n.op_type])]
    tables = {table for table, ids in lookups if _layout.token_table(ids, {i.name for i in graph.input}, producer)}
    packed = {n.input[i] for n in graph.node for i in _PREPACKED.get(n.op_type, ()) if i < len(n.input)}
    placed = [Weight(init.name, file, offset, length, MAPPED if file != path.name and init.name not in packed else COPIED,
                     int(init.dims[0]) if init.name in tables and init.dims else 0) for init, file, offset, length in weights]
    reads = [name for node in graph.node for name in node.input]
    notes = [ORDER_NOTE, _HELD_EXTERNAL if external else _HELD_INLINE,
             "Tables read by a Gather (or EmbedLayerNormalization) of the token ids (through Cast/Reshape) have rows set: one inference reads only "
             "the rows of its ids. Other gathers (position, token-type tables) count as read whole."]
    return _layout.build("onnx", path, placed, reads, options=options, notes=notes)


ORDER_NOTE = ("order: the graph's nodes in file order (the exporters write a topological order; onnxruntime runs its own "
              "topological order of the graph after its optimizations, which can fuse nodes but not reorder the layers), "
              "each node's initializer inputs in input order.")
_HELD_INLINE = ("held: onnxruntime reads an .onnx file with inline weights into memory and builds its initializers from "
                "that copy: every weight is copied (measured: anonymous growth about the model's size, no mapping of "
                "the file).")
_HELD_EXTERNAL = ("held: onnxruntime 1.32 maps each tensor of an external-data file (a private mapping, from the page "
                  "below its offset) and computes on it in place, except the weights its CPU kernels prepack (the B "
                  "input of MatMul, Gemm and the quantized matmuls), whose mapping it drops after copying; initializers "
                  "inline in the .onnx are copied. Measured (tests/layout_probe.py): one inference faults in only the "
                  "pages of the mapped weights.")
# Inputs that onnxruntime's CPU kernels prepack into their own buffers at session creation.
_PREPACKED = {"MatMul": (1,), "Gemm": (1,), "MatMulInteger": (1,), "DynamicQuantizeMatMul": (1,), "QLinearMatMul": (3,),
              "MatMulNBits": (1,), "FusedMatMul": (1,), "MatMulIntegerToFloat": (1,), "Attention": (1,), "QAttention": (1,),
              "Conv": (1,)}
# Embedding lookups: op -> (table input, token-id input).
LOOKUPS = {"Gather": (0, 1), "EmbedLayerNormalization": (2, 0)}


def _inline_offsets(data: bytes) -> dict[str, tuple[int, int]]:
    """name -> (offset, length) of each inline initializer's bytes in the serialized model:
    TensorProto.raw_data, or the packed typed field (float_data, int64_data, ...) holding them."""
    names: dict[str, tuple[int, int]] = {}
    for number, wire, start, end in _layout.fields(data, 0, len(data)):
        if number != 7 or wire != 2:  # ModelProto.graph
            continue
        for gnum, gwire, gstart, gend in _layout.fields(data, start, end):
            if gnum != 5 or gwire != 2:  # GraphProto.initializer
                continue
            name, where = None, None
            for tnum, twire, tstart, tend in _layout.fields(data, gstart, gend):
                if tnum == 8 and twire == 2:
                    name = data[tstart:tend].decode()
                elif tnum in (4, 5, 7, 9, 10, 11) and twire == 2:  # raw_data (9) or a packed typed field
                    where = (tstart, tend - tstart)
            if name is not None and where is not None:
                names[name] = where
    return names


def ops(path: Path, seq_len: int = 128, context: int | None = None):
    """The work of one call, node by node as onnxruntime runs it (_ort_ops.py)."""
    from . import _ort_ops

    return _ort_ops.ops(path, "onnx", seq_len, context)
