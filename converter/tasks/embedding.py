"""feature-extraction: token ids in, one mean-pooled sentence embedding out."""

import numpy as np
import torch

from ..recipes import Fp16, Int4Weight, Int8Dynamic, Int8Static, NoQuant
from . import CacheStyle, Graph, _encoder

AUTO_CLASS = "AutoModel"

# Floors on the fixed sentences. fp32 differs from torch only by kernel rounding. int8 keeps
# MiniLM's mean at 0.993 with per-channel weights; its worst sentences are the one- and
# two-token ones ("Ok.": 0.967), whose run-time activation scale rests on very few values.
# int4 (groups of 32) keeps MiniLM's mean at 0.971 in onnxruntime (asymmetric groups), 0.961
# in LiteRT and 0.957 in ExecuTorch (symmetric groups, which their 4-bit kernels require).
FLOORS = {
    NoQuant: {"cosine_mean": 0.9999, "cosine_min": 0.9999},
    Fp16: {"cosine_mean": 0.999, "cosine_min": 0.998},
    Int8Dynamic: {"cosine_mean": 0.99, "cosine_min": 0.95},
    Int8Static: {"cosine_mean": 0.98, "cosine_min": 0.90},
    Int4Weight: {"cosine_mean": 0.95, "cosine_min": 0.80},
}


class SentenceEmbedding(torch.nn.Module):
    """Encoder + masked mean pooling, as sentence-transformers computes all-MiniLM-L6-v2's
    embedding. Pooling is inside the graph so an app gets the embedding in one call."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def graph(model, cache: CacheStyle = CacheStyle.IO, max_context: int | None = None) -> Graph:
    width = getattr(getattr(model.module, "config", None), "intermediate_size", None)
    return _encoder.graph(SentenceEmbedding(model.module), model.tokenizer, "sentence_embedding", width)


def evaluate(model, graph: Graph, open_runner) -> tuple[dict[str, float], int]:
    expected, got = _encoder.run_sentences(model.tokenizer, graph, open_runner())
    ref, out = np.stack(expected).astype(np.float64), np.stack(got).astype(np.float64)
    cosine = (ref * out).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1))
    metrics = {
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
        "max_abs_error": float(np.abs(ref - out).max()),
    }
    return metrics, len(expected)
