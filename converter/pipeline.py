"""export: the converter's one job — a loaded model in, a verified artifact and its manifest out."""

import datetime
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from pocketfit.errors import BadInput, UnsupportedCombination
from pocketfit.files import ensure_dir, sha256, staged
from pocketfit.manifest import Manifest, Parity
from pocketfit.progress import Progress, Silent

from . import backends, tasks, texts
from .backends.onnx import Onnx
from .models import Model
from .recipes import Int4Weight, Int8Static, NoQuant
from .tasks import Task

_TOOLCHAIN = ("torch", "transformers", "onnx", "onnxruntime", "executorch", "torchao", "litert-torch", "ai-edge-litert", "ai-edge-quantizer")


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: Manifest


def check_supported(fmt: object, recipe: object, task: Task) -> None:
    """Refuse a format × recipe × task that the backend does not offer, naming what it does offer."""
    backend = backends.backend(fmt)
    if type(recipe) not in backend.RECIPES:
        offered = ", ".join(r.name for r in backend.RECIPES)
        raise UnsupportedCombination(f"format {fmt.name} has no recipe {recipe.name!r}; it offers: {offered}")
    refusal = backend.refuse(recipe)
    if refusal:
        raise UnsupportedCombination(f"format {fmt.name} cannot apply {recipe.name} as configured: {refusal}")
    if task in backend.UNSUPPORTED_TASKS:
        raise UnsupportedCombination(f"format {fmt.name} cannot export {task.value}: {backend.UNSUPPORTED_TASKS[task]}")
    if isinstance(recipe, Int8Static):
        texts.calibration(recipe.calibration)  # a bad calibration file fails now, not after the export


def export(
    model: Model,
    out: Path,
    fmt: object = Onnx(),
    recipe: object = NoQuant(),
    max_context: int | None = None,
    progress: Progress = Silent(),
) -> Artifact:
    """Export `model` to `out/model<suffix>` in `fmt`, shrunk by `recipe`, verified in the format's
    runtime against the torch model, with `out/manifest.json` beside it.

    The artifact appears under its final name only once it has been written and verified. A
    parity below the recipe's floors is recorded in the manifest (`parity.passed`), not raised:
    the caller decides whether that fails the job. `max_context` sizes a decoder's KV cache.
    """
    check_supported(fmt, recipe, model.task)
    backend = backends.backend(fmt)
    task = tasks.spec(model.task)
    key = (backend.CACHE, max_context)
    if key not in model.graphs:
        model.graphs[key] = task.graph(model, *key)
    graph = model.graphs[key]
    if isinstance(recipe, Int4Weight) and not _has_linear_layers(graph.module):
        raise BadInput(f"int4 quantizes linear layers, and {model.source.architecture} has none: use int8 or fp16")
    out = ensure_dir(Path(out))
    final = out / f"model{fmt.suffix}"
    start = time.perf_counter()
    with staged(final) as tmp:
        with progress.step(f"Exporting {model.source.architecture} ({model.task.value}) to {fmt.name}, {recipe.name}"):
            facts = backend.export(graph, fmt, recipe, tmp, progress)
        with progress.step(f"Verifying in {fmt.runtime} against torch"):
            runner = backend.open(tmp)
            fresh = iter([runner])  # not run yet: the first evaluation takes it instead of opening another
            metrics, inputs = task.evaluate(model, graph, lambda: next(fresh, None) or backend.open(tmp))
        floors = task.FLOORS[type(recipe)]
        manifest = Manifest(
            format=fmt.name,
            file=final.name,
            bytes=tmp.stat().st_size,
            sha256=sha256(tmp),
            task=model.task.value,
            parameters=model.parameters,
            quantization=recipe.describe(),
            inputs=runner.inputs,
            outputs=runner.outputs,
            source=model.source,
            parity=Parity(
                reference="torch fp32 eager",
                runtime=fmt.runtime,
                inputs=inputs,
                metrics=metrics,
                floors=dict(floors),
                passed=all(metrics[name] >= floor for name, floor in floors.items()),
            ),
            pocketfit_version=version("pocketfit"),
            toolchain={lib: version(lib) for lib in _TOOLCHAIN},
            export_seconds=round(time.perf_counter() - start, 2),
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            details=graph.details | facts,
            shrink=list(model.shrunk),
        )
        del runner  # release the runtime's hold on the file before it is renamed
    if any(r.get("step") == "vocab" for r in model.shrunk):
        _write_tokenizer(model.tokenizer, out / "tokenizer")
    manifest.write(out)
    return Artifact(final, manifest)


def _write_tokenizer(tokenizer, folder: Path) -> None:
    """A trimmed vocabulary gives new token ids: the app must tokenize with this tokenizer, so it
    goes beside the artifact (written aside and renamed, like the artifact)."""
    import shutil
    import tempfile

    partial = Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=folder.parent))
    try:
        tokenizer.save_pretrained(partial)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _has_linear_layers(module) -> bool:
    import torch
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear layer, weights transposed

    return any(isinstance(m, (torch.nn.Linear, Conv1D)) for m in module.modules())
