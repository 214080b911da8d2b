"""A candidate's quality: its exported artifact, run in its own runtime one text at a time as an
app runs it, against the unshrunk teacher in torch, on held-out text nothing was trimmed or
trained on. One measure per task, each with its floor's direction:

- feature-extraction: the mean cosine of the artifact's embeddings to the teacher's (higher);
- text-classification: how often the artifact's top class is the teacher's (higher);
- text-generation: the artifact's perplexity over the teacher's, less one, per *teacher* token,
  fed token by token with its KV cache carried (lower). A trimmed vocabulary splits words into
  more pieces, so the student's loss is divided by the teacher's token count, never its own.
"""

import math
from dataclasses import dataclass

import numpy as np

from pocketfit.converter.backends import for_path
from pocketfit.converter.tasks import Task, conform, spec

_MAX_TOKENS = 128  # a held-out text is cut here, as the shrink steps cut what they measure on


@dataclass(frozen=True)
class Measure:
    task: Task
    name: str  # as the floor's option says it
    higher_is_better: bool

    def meets(self, value: float, floor: float) -> bool:
        return value >= floor if self.higher_is_better else value <= floor

    def show(self, value: float) -> str:
        if self.task is Task.TEXT_GENERATION:
            return f"{value:+.2%}"
        return f"{value:.1%}" if self.task is Task.TEXT_CLASSIFICATION else f"{value:.4f}"


MEASURES = {
    Task.FEATURE_EXTRACTION: Measure(Task.FEATURE_EXTRACTION, "cosine", True),
    Task.TEXT_CLASSIFICATION: Measure(Task.TEXT_CLASSIFICATION, "label agreement", True),
    Task.TEXT_GENERATION: Measure(Task.TEXT_GENERATION, "perplexity increase", False),
}


def reference(teacher, lines: list[str]):
    """What the teacher gives on the held-out lines: an encoder's output rows, or a decoder's
    summed loss and token count."""
    import torch

    if teacher.task is Task.TEXT_GENERATION:
        from pocketfit.converter.shrinking.objectives import OBJECTIVES

        judge = OBJECTIVES[Task.TEXT_GENERATION]
        total = count = 0.0
        with torch.no_grad():
            for i in range(0, len(lines), 16):
                t, c = judge.token_loss(teacher.module, judge.encode(teacher.tokenizer, lines[i:i + 16], _MAX_TOKENS))
                total, count = total + float(t), count + float(c)
        return total, count
    graph = spec(teacher.task).graph(teacher)
    rows = []
    with torch.no_grad():
        for line in lines:
            feeds = _encode(teacher.tokenizer, line, _MAX_TOKENS)
            rows.append(graph.module(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy().reshape(-1))
    return np.stack(rows).astype(np.float64)


def torch_score(student, lines: list[str], ref) -> float:
    """The shrunk model in torch, before any export rounds it: the same measure as `score`,
    batched (padding is masked, so a batch gives each line's own result)."""
    import torch

    if student.task is Task.TEXT_GENERATION:
        teacher_loss, tokens = ref
        loss, _ = reference(student, lines)
        return math.exp(loss / tokens) / math.exp(teacher_loss / tokens) - 1
    graph = spec(student.task).graph(student)
    rows = []
    with torch.no_grad():
        for i in range(0, len(lines), 32):
            batch = student.tokenizer(lines[i:i + 32], padding=True, truncation=True,
                                      max_length=min(_MAX_TOKENS, student.tokenizer.model_max_length), return_tensors="pt")
            rows.append(graph.module(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).numpy())
    got = np.concatenate(rows).reshape(len(lines), -1).astype(np.float64)
    return _compare(student.task, ref, got)


def score(task: Task, path, tokenizer, lines: list[str], ref) -> float:
    """The artifact at `path`, with the student's tokenizer, judged against `reference`."""
    runner = for_path(path).open(path)
    if task is Task.TEXT_GENERATION:
        teacher_loss, tokens = ref
        loss = _artifact_loss(runner, tokenizer, lines)
        return math.exp(loss / tokens) / math.exp(teacher_loss / tokens) - 1
    limit = _fixed_length(runner) or _MAX_TOKENS
    got = np.stack([np.asarray(runner.run(conform(_encode(tokenizer, line, limit), runner.inputs))[0]).reshape(-1)
                    for line in lines]).astype(np.float64)
    return _compare(task, ref, got)


def _compare(task: Task, ref, got) -> float:
    if task is Task.TEXT_CLASSIFICATION:
        return float((got.argmax(1) == ref.argmax(1)).mean())
    cosine = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    return float(cosine.mean())


def _encode(tokenizer, line: str, limit: int) -> dict:
    encoded = tokenizer(line, truncation=True, max_length=min(limit, tokenizer.model_max_length), return_tensors="np")
    return {name: encoded[name].astype(np.int64) for name in ("input_ids", "attention_mask")}


def _fixed_length(runner) -> int | None:
    """A sequence axis the artifact fixes (a LiteRT or ExecuTorch encoder may): texts are cut to it."""
    sizes = [s.shape[1] for s in runner.inputs if len(s.shape) > 1 and isinstance(s.shape[1], int)]
    return min(sizes) if sizes else None


def _artifact_loss(runner, tokenizer, lines: list[str]) -> float:
    """The summed next-token cross-entropy over `lines`, one token per step as an app feeds it.
    Where the cache is the artifact's input and output (ONNX, ORT), it starts empty for each
    line; where it is the program's own state (ExecuTorch), each line starts at position 0 and
    attends no further than its own position, so what an earlier line left is never read."""
    names = [s.name for s in runner.inputs]
    shapes = {s.name: s.shape for s in runner.inputs}
    total = 0.0
    for line in lines:
        ids = tokenizer(line, truncation=True, max_length=_MAX_TOKENS)["input_ids"]
        cache = {n: np.zeros(shapes[n], np.float32) for n in ("key_cache", "value_cache") if n in names}
        for position, (token, target) in enumerate(zip(ids[:-1], ids[1:])):
            feeds = {"input_ids": np.array([[token]], np.int64), "position": np.array([position], np.int64)} | cache
            logits, *rest = runner.run(conform(feeds, runner.inputs))
            cache = dict(zip(cache, rest))
            z = np.asarray(logits).reshape(-1).astype(np.float64)
            total += float(np.log(np.exp(z - z.max()).sum()) + z.max() - z[target])
    return total
