"""ORT format: onnxruntime's mobile format — the ONNX export, optimized and saved as a flatbuffer
that reduced-size (mobile) onnxruntime builds load, and that a full build can use in place."""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pocketfit.errors import ExportFailed, InvalidArtifact
from pocketfit.progress import Progress, Silent

from ..inspection import Inspection, Tensor
from ..layout import COPIED, Layout, Weight
from . import _layout, onnx
from ._util import check_options, reason


@dataclass(frozen=True)
class Ort:
    name: ClassVar[str] = "ort"
    suffix: ClassVar[str] = ".ort"
    runtime: ClassVar[str] = "onnxruntime"
    opset: int = 18


FORMAT = Ort
RECIPES = onnx.RECIPES
CACHE = onnx.CACHE
UNSUPPORTED_TASKS = onnx.UNSUPPORTED_TASKS
OPTIONS = onnx.OPTIONS
train_as = onnx.train_as  # the same quantizer rounds the weights
# The in-place options cannot be measured from Python: onnxruntime's bindings hand the session a
# temporary copy of the bytes, and the session then reads freed memory (SIGSEGV, seen here).
WEIGHTS = ("onnxruntime reads an .ort file into memory and copies its initializers again while loading (2.4x the "
           "file for MiniLM fp32, more than from .onnx). The session options session.use_ort_model_bytes_directly=1 "
           "and session.use_ort_model_bytes_for_initializers=1 run from the model's bytes without those copies; handed "
           "a memory-mapped buffer through the C, C++ or Java API, those bytes are the file's own, pageable pages. "
           "(Not measurable here: onnxruntime's Python API crashes with them.)")
open = onnx.open  # noqa: A001 - onnxruntime runs both formats
runtime_version = onnx.runtime_version
refuse = onnx.refuse


def export(graph, fmt: Ort, recipe, path: Path, progress: Progress = Silent()) -> dict:
    import onnxruntime as ort

    source = path.with_name(path.name + ".onnx")
    try:
        facts = onnx.export(graph, onnx.Onnx(opset=fmt.opset), recipe, source, progress)
        options = ort.SessionOptions()
        # "extended" fusions are portable; "all" adds layout transforms chosen for this machine's
        # CPU, which a phone's is not.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(path)
        options.add_session_config_entry("session.save_model_format", "ORT")
        try:
            with progress.step("optimizing and saving as ORT format"):
                ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ExportFailed(f"onnxruntime could not convert the ONNX model to ORT format: {reason(e)}") from e
    finally:
        source.unlink(missing_ok=True)
    return facts | {"optimization": "extended"}


def inspect(path: Path) -> Inspection:
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs import InferenceSession, TensorDataType

    names = {v: k.lower() for k, v in vars(TensorDataType.TensorDataType).items() if not k.startswith("_")}
    data = path.read_bytes()
    try:
        if not InferenceSession.InferenceSession.InferenceSessionBufferHasIdentifier(data, 0):
            raise ValueError("no ORT flatbuffer identifier")
        graph = InferenceSession.InferenceSession.GetRootAs(data, 0).Model().Graph()
        tensors = []
        for i in range(graph.InitializersLength()):
            t = graph.Initializers(i)
            shape = tuple(t.Dims(j) for j in range(t.DimsLength()))
            tensors.append(Tensor(t.Name().decode(), names.get(t.DataType(), str(t.DataType())), shape, t.RawDataLength()))
        operators: dict[str, int] = {}
        for i in range(graph.NodesLength()):
            node = graph.Nodes(i)
            domain = node.Domain().decode() if node.Domain() else ""
            key = f"{domain}.{node.OpType().decode()}" if domain not in ("", "ai.onnx") else node.OpType().decode()
            operators[key] = operators.get(key, 0) + 1
    except Exception as e:  # a damaged flatbuffer fails in many ways
        raise InvalidArtifact(f"{path} is not an ORT format model: {reason(e)}") from e
    return Inspection("ort", path, len(data), tuple(tensors), operators)


def layout(path: Path, options: dict | None = None) -> Layout:
    """Where each initializer's raw bytes lie in the .ort flatbuffer, and the order the graph's
    nodes (as stored) read them."""
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs import InferenceSession

    options = check_options(OPTIONS, options)
    data = path.read_bytes()
    try:
        if not InferenceSession.InferenceSession.InferenceSessionBufferHasIdentifier(data, 0):
            raise ValueError("no ORT flatbuffer identifier")
        graph = InferenceSession.InferenceSession.GetRootAs(data, 0).Model().Graph()
        weights, dims = [], {}
        for i in range(graph.InitializersLength()):
            t = graph.Initializers(i)
            if t.ExternalDataOffset() >= 0:
                raise ValueError(f"initializer {t.Name().decode()!r} is stored outside the file, which pocketfit does not read")
            vector = t._tab.Offset(12)  # Tensor.raw_data: the flatbuffer accessors hide where the bytes are
            if vector and t.RawDataLength():
                dims[t.Name().decode()] = t.Dims(0) if t.DimsLength() else 0
                weights.append((t.Name().decode(), t._tab.Vector(vector), t.RawDataLength()))
        nodes = []
        for i in range(graph.NodesLength()):
            node = graph.Nodes(i)
            nodes.append((node.OpType().decode(), [node.Inputs(j).decode() for j in range(node.InputsLength())],
                          [node.Outputs(j).decode() for j in range(node.OutputsLength())]))
        inputs = {graph.Inputs(i).decode() for i in range(graph.InputsLength())}
    except Exception as e:  # a damaged flatbuffer fails in many ways
        raise InvalidArtifact(f"{path}: cannot read the ORT format model's weight layout: {reason(e)}") from e
    producer = {out: (op, ins[0] if ins else "") for op, ins, outs in nodes for out in outs}
    lookups = [(ins[onnx.LOOKUPS[op][0]], ins[onnx.LOOKUPS[op][1]]) for op, ins, _ in nodes
               if op in onnx.LOOKUPS and len(ins) > max(onnx.LOOKUPS[op])]
    tables = {table for table, ids in lookups if _layout.token_table(ids, inputs, producer)}
    placed = [Weight(name, path.name, offset, length, COPIED, dims[name] if name in tables else 0) for name, offset, length in weights]
    notes = [onnx.ORDER_NOTE.replace("file order", "the order the .ort stores them"), _HELD]
    return _layout.build("ort", path, placed, [name for _, ins, _ in nodes for name in ins], options=options, notes=notes)


_HELD = ("held: onnxruntime's Python API reads the .ort file into memory and copies the initializers out of it: every "
         "weight is copied (measured: no mapping of the file, anonymous growth above the file's size). The in-place "
         "session options are not modelled (they crash the Python API; WEIGHTS says more).")


def ops(path: Path, seq_len: int = 128, context: int | None = None):
    """The work of one call, node by node as onnxruntime runs it (_ort_ops.py)."""
    from . import _ort_ops

    return _ort_ops.ops(path, "ort", seq_len, context)
