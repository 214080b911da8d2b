"""ORT format: onnxruntime's mobile format — the ONNX export, optimized and saved as a flatbuffer
that reduced-size (mobile) onnxruntime builds load, and that a full build can use in place."""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pocketfit.errors import ExportFailed, InvalidArtifact

from ..inspection import Inspection, Tensor
from . import onnx
from ._util import reason


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


def export(graph, fmt: Ort, recipe, path: Path) -> dict:
    import onnxruntime as ort

    source = path.with_name(path.name + ".onnx")
    try:
        facts = onnx.export(graph, onnx.Onnx(opset=fmt.opset), recipe, source)
        options = ort.SessionOptions()
        # "extended" fusions are portable; "all" adds layout transforms chosen for this machine's
        # CPU, which a phone's is not.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(path)
        options.add_session_config_entry("session.save_model_format", "ORT")
        try:
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
