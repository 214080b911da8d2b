"""export: the converter's one job — a loaded model in, a verified artifact and its manifest out."""

import datetime
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from pocketfit.errors import UnsupportedCombination
from pocketfit.files import ensure_dir, sha256, staged
from pocketfit.manifest import Manifest
from pocketfit.progress import Progress, Silent

from . import backends, tasks
from .backends.onnx import Onnx
from .models import Model
from .recipes import NoQuant
from .tasks import Task
from .verify import sentences, verify


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: Manifest


def export(
    model: Model,
    out: Path,
    fmt: object = Onnx(),
    recipe: object = NoQuant(),
    task: Task = Task.FEATURE_EXTRACTION,
    progress: Progress = Silent(),
) -> Artifact:
    """Export `model` to `out/model<suffix>` in `fmt`, shrunk by `recipe`, verified, with `out/manifest.json`.

    The artifact appears under its final name only once it has been written and verified.
    A parity below the recipe's floors is recorded in the manifest (`parity.passed`), not raised:
    the caller decides whether that fails the job.
    """
    backend = backends.backend(fmt)
    if type(recipe) not in backend.RECIPES:
        offered = ", ".join(r.name for r in backend.RECIPES)
        raise UnsupportedCombination(f"format {fmt.name} has no recipe {recipe.name!r}; it offers: {offered}")
    out = ensure_dir(Path(out))
    final = out / f"model{fmt.suffix}"
    reference = tasks.wrap(task, model.module)
    start = time.perf_counter()
    with staged(final) as tmp:
        with progress.step(f"Exporting {model.source.architecture} to {fmt.name} ({recipe.name})"):
            backend.export(reference, tasks.signature(task), _sample(model, task), fmt, recipe, tmp)
        with progress.step(f"Verifying in {fmt.runtime} on {len(sentences())} sentences"):
            runner = backend.open(tmp)
            parity = verify(model, task, reference, runner, fmt.runtime, tasks.FLOORS[type(recipe)])
        manifest = Manifest(
            format=fmt.name,
            file=final.name,
            bytes=tmp.stat().st_size,
            sha256=sha256(tmp),
            task=task.value,
            parameters=model.parameters,
            quantization=recipe.describe(),
            inputs=runner.inputs,
            outputs=runner.outputs,
            source=model.source,
            parity=parity,
            pocketfit_version=version("pocketfit"),
            toolchain={lib: version(lib) for lib in ("torch", "transformers", "onnx", "onnxruntime")},
            export_seconds=round(time.perf_counter() - start, 2),
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
        del runner  # release the session's hold on the file before it is renamed
    manifest.write(out)
    return Artifact(final, manifest)


def _sample(model: Model, task: Task) -> dict[str, torch.Tensor]:
    """Example inputs for tracing. Two sentences of unequal length, padded: a batch or sequence
    axis traced at size 1 would be fixed to 1 by torch.export."""
    texts = sentences()[:2]
    encoded = model.tokenizer(texts, padding=True, return_tensors="np")
    return {name: torch.from_numpy(encoded[name].astype(np.int64)) for name in tasks.signature(task).inputs}
