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
from ..backends import backend
from ..models import Model
from . import families, fresh, heal as _heal, prune, vocab
from .objectives import OBJECTIVES
from .steps import STEPS, CapSequence, DropLayers, FreshShape, Heal, PruneFfn, PruneHeads, TrimVocab, parse

__all__ = ["shrink", "parse", "DropLayers", "PruneFfn", "PruneHeads", "TrimVocab", "CapSequence", "Heal", "FreshShape", "STEPS"]

_BATCH = 16
_IMPORTANCE_TEXTS = 256  # enough tokens to rank neurons and heads; more only costs time
_CHECK_LINES = 200


def shrink(model: Model, *steps, text: Path | None = None, progress: Progress = Silent(),
           export_as: tuple[object, object] | None = None) -> Model:
    """A new Model with `steps` applied in order. `text` (one passage per line, the app's own)
    is what importance is measured on and what Heal trains on; TrimVocab reads its own corpus.
    `export_as=(format, recipe)`: the export to come, which a Heal trains for (its rounding)."""
    if model.task not in OBJECTIVES:
        raise BadInput(f"shrinking supports feature-extraction encoders and text-generation decoders, not {model.task.value}")
    objective = OBJECTIVES[model.task]
    unknown = [s for s in steps if type(s) not in STEPS]
    if unknown:
        raise BadInput(f"not a shrink step: {unknown[0]!r} (the steps are {', '.join(s.__name__ for s in STEPS)})")
    if any(isinstance(s, Heal) for s in steps[:-1]):
        raise BadInput("Heal must be the last step: it trains the model the other steps made")
    if any(isinstance(s, FreshShape) for s in steps[1:]):
        raise BadInput("FreshShape must be the first step: it builds the model the other steps cut")
    if steps and isinstance(steps[0], FreshShape) and not isinstance(steps[-1], Heal):
        raise BadInput("a FreshShape student has random layers: end the steps with a Heal (e.g. --shrink heal=600s)")
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
    checks, lines = _hold_out(lines)
    reference = objective.reference(model.module, model.tokenizer, checks) if checks else None
    quality = objective.best if objective.best is not None else reference  # where the scale starts: the teacher
    for step in steps:
        with progress.step(_label(step)):
            if isinstance(step, FreshShape):
                student, record = fresh.build(student, family, step)
                for p in student.parameters():
                    p.requires_grad_(True)
            elif isinstance(step, DropLayers):
                record = prune.drop_layers(student, family, step)
            elif isinstance(step, PruneFfn):
                record = prune.prune_ffn(student, family, step, _batches(objective, tokenizer, lines))
            elif isinstance(step, PruneHeads):
                record = prune.prune_heads(student, family, step, _batches(objective, tokenizer, lines), objective.importance)
            elif isinstance(step, CapSequence):
                record = prune.cap_sequence(student, family, step, tokenizer)
            elif isinstance(step, TrimVocab):
                corpus, unseen = _vocab_corpus(_texts.lines(step.corpus, "vocabulary corpus"), checks)
                before = tokenizer
                tokenizer, record = vocab.trim(student, family, step, tokenizer, corpus)
                record |= {"corpus": str(step.corpus), "corpus_sha256": _sha256(step.corpus), "corpus_lines": len(corpus)}
                if unseen:
                    record["held_out"] = {k: round(v, 5) if isinstance(v, float) else v
                                          for k, v in vocab.coverage(before, tokenizer, unseen).items()} | {"lines": len(unseen)}
            else:
                restore, rounding = _train_as(student, step, export_as)
                try:
                    record = _heal.heal(student, model.module, tokenizer, model.tokenizer, lines, step, progress,
                                        _layer_map(records[len(model.shrunk):]), objective)
                    record |= {"rounding": rounding, "text_sha256": _sha256(text)}
                    if reference is not None:  # judged as it will be exported: under the rounding it trained for
                        record |= _quality(objective, quality, reference, student, tokenizer, checks)
                finally:
                    if restore is not None:
                        restore()
            after = f"{objective.metric}_after"
            if reference is not None and after not in record:
                record |= _quality(objective, quality, reference, student, tokenizer, checks)
            quality = record.get(after, quality)
            records.append(record)
    for p in student.parameters():
        p.requires_grad_(False)
    return Model(module=student, tokenizer=tokenizer, source=model.source, task=model.task, shrunk=tuple(records))


def _train_as(student, step: Heal, export_as) -> tuple:
    """The backend's emulation of its rounding, applied; and what the record says about it."""
    if export_as is None or not step.rounded:
        return None, None
    fmt, recipe = export_as
    restore = backend(fmt).train_as(student, recipe)
    return restore, f"{fmt.name}: {recipe.describe()['weights']}" if restore is not None else None


def _layer_map(records: list[dict]) -> list[int] | None:
    """Which of the original layers each remaining one is, through every DropLayers so far."""
    kept = None
    for record in records:
        if record["step"] in ("layers", "shape"):  # a fresh shape's layers are matched to teacher layers as if kept
            chosen = record.get("kept_layers", record.get("teacher_layers"))
            kept = chosen if kept is None else [kept[i] for i in chosen]
    return kept


def _hold_out(lines: list[str] | None) -> tuple[list[str], list[str] | None]:
    """Lines kept back from the app's text to say what each step cost; nothing trains on them.
    Every tenth, up to _CHECK_LINES, when there are at least 20."""
    if not lines or len(lines) < 20:
        return [], lines
    picked = set(range(0, len(lines), 10)[:_CHECK_LINES])
    return [lines[i] for i in sorted(picked)], [line for i, line in enumerate(lines) if i not in picked]


def _vocab_corpus(corpus: list[str], checks: list[str]) -> tuple[list[str], list[str]]:
    """The lines a vocabulary is trimmed to, and the held-out lines its out-of-vocabulary rate is
    measured on: those kept back from the app's text, left out of the corpus too where it holds
    them (the same file, often). Without text, nothing is held out: the corpus is all there is."""
    held = set(checks)
    return [line for line in corpus if line not in held], checks


def _quality(objective, before: float, reference, student, tokenizer, checks: list[str]) -> dict:
    """The objective's measure against the teacher on the held-back lines, before and after a step."""
    after = objective.judge(reference, student, tokenizer, checks)
    name = objective.metric
    return {f"{name}_before": round(before, 5), f"{name}_after": round(after, 5), "checked_on_lines": len(checks)}


def _batches(objective, tokenizer, lines: list[str]) -> list[dict]:
    picked = lines[:_IMPORTANCE_TEXTS]
    return [objective.encode(tokenizer, picked[i:i + _BATCH]) for i in range(0, len(picked), _BATCH)]


def _label(step) -> str:
    return {DropLayers: "dropping layers", PruneFfn: "pruning FFN neurons", PruneHeads: "pruning attention heads",
            CapSequence: "capping the sequence", FreshShape: "building a fresh smaller model", TrimVocab: "trimming the vocabulary", Heal: "healing by distillation"}[type(step)]


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
