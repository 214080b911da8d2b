"""ONNX: exported with torch's exporter, shrunk with onnxruntime's quantizer, run in onnxruntime."""

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pocketfit.errors import ExportFailed, InvalidArtifact
from pocketfit.manifest import TensorSpec

from ..recipes import Int8Dynamic, NoQuant


@dataclass(frozen=True)
class Onnx:
    name: ClassVar[str] = "onnx"
    suffix: ClassVar[str] = ".onnx"
    runtime: ClassVar[str] = "onnxruntime"
    # 18 is the newest opset whose every op onnxruntime's int8 quantizer handles.
    opset: int = 18


FORMAT = Onnx
RECIPES = (NoQuant, Int8Dynamic)

_ORT_DTYPES = {"tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(float)": "float32", "tensor(float16)": "float16"}


def export(module, signature, sample: dict, fmt: Onnx, recipe, path: Path) -> None:
    """Export `module` (called with the `sample` tensors) to `path`, shrunk by `recipe`."""
    import torch

    fp32_path = path if isinstance(recipe, NoQuant) else path.with_name(path.name + ".fp32")
    dims = {axis: torch.export.Dim(axis) for axes in signature.inputs.values() for axis in axes}
    dynamic_shapes = {name: {i: dims[axis] for i, axis in enumerate(axes)} for name, axes in signature.inputs.items()}
    try:
        with _quiet():
            torch.onnx.export(
                module,
                kwargs=sample,
                f=str(fp32_path),
                dynamo=True,
                input_names=list(signature.inputs),
                output_names=list(signature.outputs),
                dynamic_shapes=dynamic_shapes,
                opset_version=fmt.opset,
                external_data=False,
                verbose=False,
            )
        if isinstance(recipe, Int8Dynamic):
            _quantize_int8(fp32_path, path, recipe)
    except Exception as e:  # the exporters raise many types; the reason is in the text
        raise ExportFailed(f"torch.onnx.export failed: {_reason(e)}") from e
    finally:
        if fp32_path != path:
            fp32_path.unlink(missing_ok=True)


def _quantize_int8(src: Path, dst: Path, recipe: Int8Dynamic) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=recipe.per_channel)


class Runner:
    """An onnxruntime session over one artifact."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise InvalidArtifact(f"{path} is not a loadable ONNX model: {_reason(e)}") from e
        self.inputs = tuple(_spec(i) for i in self.session.get_inputs())
        self.outputs = tuple(_spec(o) for o in self.session.get_outputs())

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {spec.name: feeds[spec.name] for spec in self.inputs})


def open(path: Path, threads: int | None = None) -> Runner:  # noqa: A001 - the backend verb
    return Runner(path, threads)


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else str(d) for d in arg.shape)
    return TensorSpec(arg.name, _ORT_DTYPES.get(arg.type, arg.type), shape)


def _reason(e: BaseException) -> str:
    """The useful lines of an exporter or runtime error: its first line and that of its root
    cause (torch.onnx wraps the torch.export error that says what could not be traced)."""
    def first_line(err: BaseException) -> str:
        lines = [line.strip() for line in _ANSI.sub("", str(err)).splitlines() if line.strip()]
        return lines[0] if lines else type(err).__name__

    root = e
    while root.__cause__ is not None:
        root = root.__cause__
    if root is e:
        return first_line(e)
    stage = first_line(e).split(". ")[0].rstrip(".")  # torch.onnx's sentence naming the failed step
    return f"{stage}: {type(root).__name__}: {first_line(root)}"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def _quiet():
    """torch.onnx and the quantizer print progress and advice meant for their own users."""
    sink = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch", "root")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def runtime_version() -> str:
    """Import the runtime (so a measurement's baseline includes it) and name its version."""
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"
