"""What the two encoder tasks share: token ids and a mask in, one row per sequence out."""

import numpy as np
import torch

from ..texts import sentences
from . import Graph, Input, conform, no_grad

INPUTS = {
    "input_ids": Input("int64", ("batch", "sequence")),
    "attention_mask": Input("int64", ("batch", "sequence")),
}

def graph(module: torch.nn.Module, tokenizer, output: str, intermediate_size: int | None) -> Graph:
    def sample(sizes: dict[str, int]) -> dict[str, torch.Tensor]:
        # Real sentences of unequal length, padded or cut to the size asked for.
        texts = (sentences() * sizes["batch"])[: sizes["batch"]]
        encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=sizes["sequence"], return_tensors="np")
        return {name: torch.from_numpy(encoded[name].astype(np.int64)) for name in INPUTS}

    def calibration(texts: list[str]) -> list[dict[str, torch.Tensor]]:
        return [_encode(tokenizer, text, torch_tensors=True) for text in texts]

    return Graph(
        module=no_grad(module),
        inputs=dict(INPUTS),
        outputs=(output,),
        sample=sample,
        calibration=calibration,
        intermediate_size=intermediate_size,
    )

def run_sentences(tokenizer, graph: Graph, runner) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The torch reference and the artifact, one fixed sentence at a time (batch 1, its own
    length), the way an app calls the model."""
    expected, got = [], []
    for text in sentences():
        feeds = _encode(tokenizer, text)
        with torch.no_grad():
            expected.append(graph.module(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy()[0])
        got.append(runner.run(conform(feeds, runner.inputs))[0][0])
    return expected, got

def _encode(tokenizer, text: str, torch_tensors: bool = False) -> dict:
    encoded = tokenizer(text, return_tensors="np")
    arrays = {name: encoded[name].astype(np.int64) for name in INPUTS}
    return {k: torch.from_numpy(v) for k, v in arrays.items()} if torch_tensors else arrays

