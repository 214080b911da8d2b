"""One candidate, for real: shrink the teacher, export, verify, measure the artifact's memory,
predict its phone latency, and judge its quality on the held-out text.

`evaluate(job)` is the unit every executor runs: a `Job` is plain data (it pickles into a worker
process and into a Ray task), and the result is a JSON-ready dict, which the search's cache
keeps. A worker loads the teacher and its reference outputs once and reuses them for every
candidate it is given.
"""

import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path

from .frontier import Knobs

_MEASURE_ITERATIONS = 3  # the memory is what counts here; latency comes from the phone's model


@dataclass(frozen=True)
class Job:
    model: str  # what converter.load takes: a folder, or "minilm"
    task: str
    knobs: Knobs
    device: str  # a phone id or a profile's path
    folder: str  # where the candidate's artifact goes
    held_out: tuple[str, ...]  # the lines quality is judged on
    text: str | None = None  # the app's text (a file, minus the held-out lines) the steps measure and train on
    seq_len: int = 128
    floor: float | None = None  # with it, a shape that misses it in torch is not exported


def evaluate(job: Job) -> dict:
    """The candidate's figures: bytes, model RSS, the runtime's footprint, predicted latency,
    quality; or, when the export itself fails, why."""
    from pocketfit import errors
    from pocketfit.converter import export, shrink
    from pocketfit.converter.backends import FORMATS
    from pocketfit.converter.tasks import Task
    from pocketfit.runtime import devices, runtimes
    from pocketfit.runtime.cost import phone_figures
    from pocketfit.runtime.measure import measure

    from . import quality
    from .space import RECIPES

    start = time.monotonic()
    k = job.knobs
    teacher = _teacher(job.model, job.task)
    fmt, recipe = FORMATS[k.format](), RECIPES[k.recipe]
    reference = _reference(job.model, job.task, job.held_out)
    measure_of = quality.MEASURES[Task(job.task)]
    try:
        steps = _steps(job)
        student = shrink(teacher, *steps, text=Path(job.text) if job.text else None, export_as=(fmt, recipe)) if steps else teacher
        if job.floor is not None and k.cuts() and not k.heal_seconds:  # a heal trains under this format's rounding: not a shape alone
            before = _torch_quality(job, student, reference)
            if not measure_of.meets(before, job.floor):
                return {"torch_quality": before, "seconds": round(time.monotonic() - start, 1)}
        artifact = export(student, Path(job.folder), fmt, recipe)
    except (errors.ExportFailed, errors.UnsupportedCombination) as e:
        return {"error": str(e), "seconds": round(time.monotonic() - start, 1)}
    m = measure(artifact.path, iterations=_MEASURE_ITERATIONS, warmup=1, seq_len=job.seq_len)
    if not m.ok:
        return {"error": f"measuring failed: {m.outcome}: {m.detail}", "seconds": round(time.monotonic() - start, 1)}
    footprint = runtimes.footprint_of(m.runtime).footprint
    predicted = phone_figures(artifact.path, devices.load(job.device), seq_len=job.seq_len)
    value = quality.score(Task(job.task), artifact.path, student.tokenizer, list(job.held_out), reference)
    return {"artifact": str(artifact.path), "bytes": artifact.manifest.bytes, "model_rss": m.model_rss, "footprint": footprint,
            "latency_ms": predicted.get("p50_ms"), "quality": value, "parity_passed": artifact.manifest.parity.passed,
            "parameters": student.parameters, "runtime": m.runtime, "seconds": round(time.monotonic() - start, 1)}


_SHAPES: dict = {}  # a worker's torch results by shape: every format and recipe of a shape shares one


def _torch_quality(job: Job, student, reference) -> float:
    shape = (job.model, job.task, job.held_out, job.knobs.structure())
    if shape not in _SHAPES:
        from . import quality

        _SHAPES[shape] = quality.torch_score(student, list(job.held_out), reference)
    return _SHAPES[shape]


def _steps(job: Job) -> list:
    from pocketfit.converter import DropLayers, Heal, PruneFfn, PruneHeads, TrimVocab, CapSequence

    k = job.knobs
    steps = []
    if k.vocab is not None:
        steps.append(TrimVocab(Path(job.text), max_tokens=k.vocab))
    if k.layers is not None:
        steps.append(DropLayers(keep=k.layers))
    if k.ffn < 1:
        steps.append(PruneFfn(keep=k.ffn))
    if k.heads < 1:
        steps.append(PruneHeads(keep=k.heads))
    if k.seq is not None:
        steps.append(CapSequence(k.seq))
    if k.heal_seconds:
        checkpoint = Path(job.folder) / ".heal-checkpoint.pt"  # a killed search resumes a heal from here
        steps.append(dataclasses.replace(Heal(steps=1_000_000, seconds=k.heal_seconds, batch=16, learning_rate=1e-4),
                                         checkpoint=checkpoint))
    return steps


@functools.lru_cache(maxsize=2)
def _teacher(model: str, task: str):
    from pocketfit.converter import load
    from pocketfit.converter.tasks import Task

    return load(model, Task(task))


@functools.lru_cache(maxsize=2)
def _reference(model: str, task: str, held_out: tuple[str, ...]):
    from . import quality

    return quality.reference(_teacher(model, task), list(held_out))
