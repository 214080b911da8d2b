"""text-classification: token ids in, one row of class logits out (a BERT-style classifier head)."""

import numpy as np
import torch

from ..recipes import Fp16, Int4Weight, Int8Dynamic, Int8Static, NoQuant
from . import CacheStyle, Graph, _encoder

AUTO_CLASS = "AutoModelForSequenceClassification"

# Label agreement with the torch model on the fixed sentences; 0.98 of 40 sentences allows none
# to flip. int4 moves logits by up to a few tenths, enough to flip a sentence whose top two
# classes lie that close.
FLOORS = {
    NoQuant: {"label_agreement": 1.0},
    Fp16: {"label_agreement": 1.0},
    Int8Dynamic: {"label_agreement": 0.98},
    Int8Static: {"label_agreement": 0.95},
    Int4Weight: {"label_agreement": 0.90},
}


class Classifier(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def graph(model, cache: CacheStyle = CacheStyle.IO, max_context: int | None = None) -> Graph:
    width = getattr(getattr(model.module, "config", None), "intermediate_size", None)
    return _encoder.graph(Classifier(model.module), model.tokenizer, "logits", width)


def evaluate(model, graph: Graph, open_runner) -> tuple[dict[str, float], int]:
    expected, got = _encoder.run_sentences(model.tokenizer, graph, open_runner())
    ref, out = np.stack(expected), np.stack(got)
    metrics = {
        "label_agreement": float((ref.argmax(1) == out.argmax(1)).mean()),
        "max_logit_error": float(np.abs(ref.astype(np.float64) - out).max()),
    }
    return metrics, len(expected)
