"""Tasks: what the exported graph computes from token ids, and how parity is judged for it."""

import enum
from dataclasses import dataclass

import numpy as np
import torch

from .recipes import Int8Dynamic, NoQuant


class Task(enum.Enum):
    FEATURE_EXTRACTION = "feature-extraction"


class SentenceEmbedding(torch.nn.Module):
    """Encoder + masked mean pooling: token ids in, one embedding per sequence out.

    Pooling is inside the graph so an app gets the embedding in one call, as
    sentence-transformers computes it (all-MiniLM-L6-v2 pools by mean).
    """

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


@dataclass(frozen=True)
class Signature:
    """Names and dynamic axes of the exported graph's inputs and outputs."""

    inputs: dict[str, tuple[str, ...]]  # name -> axis names; every input is int64
    outputs: dict[str, tuple[str | None, ...]]  # name -> axis names, None for a fixed axis


FEATURE_EXTRACTION = Signature(
    inputs={"input_ids": ("batch", "sequence"), "attention_mask": ("batch", "sequence")},
    outputs={"sentence_embedding": ("batch", None)},
)

# Floors a fresh export must meet on the fixed sentences. fp32 differs from torch only by
# kernel rounding. int8 with per-channel weights keeps MiniLM's mean at 0.993; its worst
# sentences are the one- and two-token ones ("Ok.": 0.967), where the run-time activation
# scale is set by very few values — hence the lower floor on the minimum.
FLOORS = {
    NoQuant: {"cosine_mean": 0.9999, "cosine_min": 0.9999},
    Int8Dynamic: {"cosine_mean": 0.99, "cosine_min": 0.95},
}


def wrap(task: Task, module: torch.nn.Module) -> torch.nn.Module:
    if task is Task.FEATURE_EXTRACTION:
        return SentenceEmbedding(module).eval()
    raise ValueError(task)


def signature(task: Task) -> Signature:
    return {Task.FEATURE_EXTRACTION: FEATURE_EXTRACTION}[task]


def compare(task: Task, reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict[str, float]:
    """Parity metrics of one output per input, artifact (candidate) against torch (reference)."""
    ref = np.concatenate([r.reshape(1, -1) for r in reference]).astype(np.float64)
    got = np.concatenate([c.reshape(1, -1) for c in candidate]).astype(np.float64)
    cosine = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    return {
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
        "max_abs_error": float(np.abs(ref - got).max()),
    }
