"""Healing: after pruning, the student learns to match the unshrunk teacher on the user's
unlabeled text, as DistilBERT and Minitron recover. For encoders the target is the teacher's
mean-pooled sentence embedding, matched by cosine and mean squared error, and (with
Heal(layers=True)) each student layer's mean-pooled output matched to the teacher layer it came
from: pooled per sentence, so a trimmed vocabulary that splits a word differently still lines up.

Deterministic for a seed: step s draws its batch from Random(seed, s), so a run resumed from its
checkpoint draws what an uninterrupted run would have drawn.
"""

import os
import random
import time
from pathlib import Path

import torch

from pocketfit.errors import BadInput
from pocketfit.progress import Progress

from .objectives import Embedding, pooled  # noqa: F401 - pooled: the benchmark's too
from .steps import Heal
from .vocab import teacher_ids


def _pooled_layers(module, batch: dict) -> torch.Tensor:
    """Every layer's output, mean-pooled: (batch, layers + 1, hidden), the embeddings first."""
    hidden = torch.stack(module(**batch, output_hidden_states=True).hidden_states, dim=1)
    mask = batch["attention_mask"][:, None, :, None].to(hidden.dtype)
    return (hidden * mask).sum(2) / mask.sum(2).clamp(min=1e-9)


def heal(student, teacher, student_tokenizer, teacher_tokenizer, texts: list[str], step: Heal, progress: Progress,
         layer_map: list[int] | None = None, objective=Embedding()) -> dict:
    """`layer_map[i]`: the teacher layer student layer i was kept from (all of them, by default).
    Encoders match pooled embeddings; decoders (objective NextToken) the teacher's next-token
    distribution (KL) and, with `step.layers`, each kept layer's hidden states token by token."""
    if len(texts) < step.batch:
        raise BadInput(f"healing needs at least {step.batch} lines of text (one batch); the text has {len(texts)}")
    torch.manual_seed(step.seed)
    targets: dict[int, torch.Tensor] = {}  # the teacher's pooled layers of each line, computed when first drawn

    def target(picked: list[int]) -> torch.Tensor:
        missing = [i for i in picked if i not in targets]
        if missing:
            with torch.no_grad():
                batch = teacher_tokenizer([texts[i] for i in missing], padding=True, truncation=True,
                                          max_length=step.max_tokens, return_tensors="pt")
                targets.update(zip(missing, _pooled_layers(teacher, batch)))
        return torch.stack([targets[i] for i in picked])

    # A trimmed vocabulary: the teacher reads the student's tokens by its own ids, and its
    # next-token distribution is taken over the tokens the student kept.
    mapping = None if isinstance(objective, Embedding) else teacher_ids(student_tokenizer, teacher_tokenizer)
    layer_map = list(range(student.config.num_hidden_layers)) if layer_map is None else layer_map
    chosen = torch.tensor([0] + [t + 1 for t in layer_map])  # hidden_states[0] is the embeddings
    # Dropout off: a short heal on little text converges better without it, and stays deterministic.
    student.eval()
    optimizer = torch.optim.AdamW(student.parameters(), lr=step.learning_rate, weight_decay=0.0)
    start_step, losses = _resume(step.checkpoint, student, optimizer)
    start = time.perf_counter()
    done = start_step
    for s in range(start_step, step.steps):
        if step.seconds is not None and time.perf_counter() - start > step.seconds:
            break
        picked = random.Random(step.seed * 1_000_003 + s).sample(range(len(texts)), step.batch)
        if isinstance(objective, Embedding):
            batch = student_tokenizer([texts[i] for i in picked], padding=True, truncation=True, max_length=step.max_tokens,
                                      return_tensors="pt")
            want = target(picked)[:, chosen]
            got_layers = _pooled_layers(student, batch)
            got, final = got_layers[:, -1], want[:, -1]
            loss = (1 - torch.nn.functional.cosine_similarity(got, final)).mean() + torch.nn.functional.mse_loss(got, final)
            if step.layers and got_layers.shape[1] > 2:  # the embeddings and the layers below the last
                loss = loss + torch.nn.functional.mse_loss(got_layers[:, :-1], want[:, :-1])
        else:
            loss = _next_token_loss(student, teacher, objective.encode(student_tokenizer, [texts[i] for i in picked],
                                                                       step.max_tokens), chosen, step.layers, mapping)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        done = s + 1
        if step.seconds is None:
            progress.advance(done, step.steps, f"loss {losses[-1]:.4f}", unit="steps")
        else:  # the time budget, not the step count, ends it
            left = max(0.0, step.seconds - (time.perf_counter() - start))
            progress.advance(done, 0, f"loss {losses[-1]:.4f}, {left:.0f} of {step.seconds:.0f} s left", unit="steps")
        if step.checkpoint is not None and (done % 50 == 0 or done == step.steps):
            _save(step.checkpoint, done, student, optimizer, losses)
    for p in student.parameters():
        p.grad = None
    return {"step": step.name, "steps": done, "resumed_at": start_step, "seconds": round(time.perf_counter() - start, 1),
            "texts": len(texts), "batch": step.batch, "learning_rate": step.learning_rate, "seed": step.seed,
            "loss_first": round(losses[0], 5) if losses else None, "loss_last": round(losses[-1], 5) if losses else None}


def _next_token_loss(student, teacher, batch: dict, chosen: torch.Tensor, layers: bool,
                     mapping: torch.Tensor | None = None) -> torch.Tensor:
    """KL from the teacher's next-token distribution at every real token (as Minitron heals),
    plus the kept layers' hidden states against the teacher layers they came from. The teacher
    runs every step: a cache of its logits would be vocabulary-sized per token. `mapping`: the
    teacher's id of each student token, when the vocabulary was trimmed."""
    with torch.no_grad():
        if mapping is None:
            out = teacher(**batch, output_hidden_states=layers)
            want = out.logits
        else:
            out = teacher(**(batch | {"input_ids": mapping[batch["input_ids"]]}), output_hidden_states=layers)
            want = out.logits[..., mapping]
    got = student(**batch, output_hidden_states=layers)
    mask = batch["attention_mask"].to(got.logits.dtype)
    kl = torch.nn.functional.kl_div(torch.log_softmax(got.logits, -1), torch.log_softmax(want, -1),
                                    log_target=True, reduction="none").sum(-1)
    loss = (kl * mask).sum() / mask.sum().clamp(min=1)
    if layers and len(got.hidden_states) > 2:
        want = torch.stack(out.hidden_states)[chosen[:-1]]  # the embeddings and the layers below the last
        have = torch.stack(got.hidden_states[:-1])
        err = ((have - want) ** 2).mean(-1) / (want ** 2).mean(-1).clamp(min=1e-6)  # relative: decoder norms grow by layer
        loss = loss + (err * mask).sum() / (mask.sum().clamp(min=1) * err.shape[0])
    return loss


def _resume(path: Path | None, student, optimizer) -> tuple[int, list[float]]:
    if path is None or not path.exists():
        return 0, []
    try:
        state = torch.load(path, weights_only=True)
        student.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise BadInput(f"heal checkpoint {path} does not belong to this shrunk model ({str(e).splitlines()[0]}): "
                       "delete it to start over") from e
    return int(state["step"]), list(state["losses"])


def _save(path: Path, done: int, student, optimizer, losses: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"step": done, "model": student.state_dict(), "optimizer": optimizer.state_dict(), "losses": losses}, partial)
    os.replace(partial, path)  # a kill mid-save leaves the last whole checkpoint
