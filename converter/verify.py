"""Parity: run the artifact in its own runtime and the torch reference on the same real sentences."""

from importlib import resources

import numpy as np
import torch

from pocketfit.manifest import Parity

from . import tasks
from .models import Model
from .tasks import Task


def sentences() -> list[str]:
    """The fixed English sentences every artifact is verified on (converter/data/sentences.txt)."""
    text = resources.files("pocketfit.converter").joinpath("data/sentences.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def verify(model: Model, task: Task, reference: torch.nn.Module, runner, runtime: str, floors: dict[str, float]) -> Parity:
    """Compare `runner` (the artifact in `runtime`) with `reference` (torch, fp32 eager), one sentence at a time.

    One sentence per call, each at its own length, so the dynamic sequence axis is exercised
    the way an app calls the model.
    """
    signature = tasks.signature(task)
    expected, got = [], []
    for text in sentences():
        encoded = model.tokenizer(text, return_tensors="np")
        feeds = {name: encoded[name].astype(np.int64) for name in signature.inputs}
        with torch.no_grad():
            expected.append(reference(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy())
        got.append(runner.run(feeds)[0])
    metrics = tasks.compare(task, expected, got)
    passed = all(metrics[name] >= floor for name, floor in floors.items())
    return Parity(
        reference="torch fp32 eager",
        runtime=runtime,
        inputs=len(expected),
        metrics=metrics,
        floors=dict(floors),
        passed=passed,
    )
