"""shrink: remove weights from a loaded model, before it is exported. Weights really go: layers,
FFN neurons, attention heads, vocabulary rows and positions are cut out and the config is
rewritten, so every backend exports the smaller model unchanged.

    from pocketfit.converter import load, export, shrink, Onnx, Int8Dynamic, DropLayers, TrimVocab, Heal
    small = shrink(load("minilm"), DropLayers(keep=3), TrimVocab(Path("app.txt")), Heal(steps=300), text=Path("app.txt"))
    export(small, "out/", Onnx(), Int8Dynamic())

The original model is left as it was: it is the teacher a Heal step distils from, and the
reference quality is judged against. Every step leaves a record in `model.shrunk`, which the
manifest keeps.
"""

import copy
import hashlib
from pathlib import Path

from pocketfit.errors import BadInput
from pocketfit.progress import Progress, Silent

from .. import texts as _texts
from ..models import Model
from ..tasks import Task
from . import families, heal as _heal, prune, vocab
from .steps import STEPS, CapSequence, DropLayers, Heal, PruneFfn, PruneHeads, TrimVocab, parse

__all__ = ["shrink", "parse", "DropLayers", "PruneFfn", "PruneHeads", "TrimVocab", "CapSequence", "Heal", "STEPS"]

_BATCH = 16
_IMPORTANCE_TEXTS = 256  # enough tokens to rank neurons and heads; more only costs time


def shrink(model: Model, *steps, text: Path | None = None, progress: Progress = Silent()) -> Model:
    """A new Model with `steps` applied in order. `text` (one passage per line, the app's own)
    is what importance is measured on and what Heal trains on; TrimVocab reads its own corpus."""
    if model.task is not Task.FEATURE_EXTRACTION:
        raise BadInput(f"shrinking supports feature-extraction encoders for now, not {model.task.value}")
    unknown = [s for s in steps if type(s) not in STEPS]
    if unknown:
        raise BadInput(f"not a shrink step: {unknown[0]!r} (the steps are {', '.join(s.__name__ for s in STEPS)})")
    if any(isinstance(s, Heal) for s in steps[:-1]):
        raise BadInput("Heal must be the last step: it trains the model the other steps made")
    family = families.of(model.module)
    lines = _texts.lines(text, "text file") if text is not None else None
    if lines is None and any(getattr(s, "needs_text", False) for s in steps):
        needing = next(s for s in steps if getattr(s, "needs_text", False))
        raise BadInput(f"the {needing.name} step measures or trains on the app's text: give it with text= (--text FILE)")
    student = copy.deepcopy(model.module).eval()
    for p in student.parameters():  # exporting a model turns its gradients off; heads and heal need them
        p.requires_grad_(True)
    tokenizer = copy.deepcopy(model.tokenizer)
    records = list(model.shrunk)
    for step in steps:
        with progress.step(_label(step)):
            if isinstance(step, DropLayers):
                records.append(prune.drop_layers(student, family, step))
            elif isinstance(step, PruneFfn):
                records.append(prune.prune_ffn(student, family, step, _batches(tokenizer, lines)))
            elif isinstance(step, PruneHeads):
                records.append(prune.prune_heads(student, family, step, _batches(tokenizer, lines)))
            elif isinstance(step, CapSequence):
                records.append(prune.cap_sequence(student, family, step, tokenizer))
            elif isinstance(step, TrimVocab):
                corpus = _texts.lines(step.corpus, "vocabulary corpus")
                tokenizer, record = vocab.trim(student, family, step, tokenizer, corpus)
                records.append(record | {"corpus": str(step.corpus), "corpus_sha256": _sha256(step.corpus), "corpus_lines": len(corpus)})
            else:
                record = _heal.heal(student, model.module, tokenizer, model.tokenizer, lines, step, progress,
                                    _layer_map(records[len(model.shrunk):]))
                records.append(record | {"text_sha256": _sha256(text)})
    for p in student.parameters():
        p.requires_grad_(False)
    return Model(module=student, tokenizer=tokenizer, source=model.source, task=model.task, shrunk=tuple(records))


def _layer_map(records: list[dict]) -> list[int] | None:
    """Which of the original layers each remaining one is, through every DropLayers so far."""
    kept = None
    for record in records:
        if record["step"] == "layers":
            kept = record["kept_layers"] if kept is None else [kept[i] for i in record["kept_layers"]]
    return kept


def _batches(tokenizer, lines: list[str]) -> list[dict]:
    picked = lines[:_IMPORTANCE_TEXTS]
    return [tokenizer(picked[i:i + _BATCH], padding=True, truncation=True, max_length=128, return_tensors="pt")
            for i in range(0, len(picked), _BATCH)]


def _label(step) -> str:
    return {DropLayers: "dropping layers", PruneFfn: "pruning FFN neurons", PruneHeads: "pruning attention heads",
            CapSequence: "capping the sequence", TrimVocab: "trimming the vocabulary", Heal: "healing by distillation"}[type(step)]


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
