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
    """The artifact, one fixed sentence at a time (batch 1, its own length), the way an app calls
    the model; the torch reference on the same unpadded rows, sentences of equal length batched
    together (the same inputs, a third of the calls). All of torch's runs first, on one thread,
    then all of the artifact's: torch's thread pool spins at every op's barrier, so on busy cores
    (or interleaved with onnxruntime's spinning pool) its 40 small runs took 20 s on two threads
    against 0.6 s on one."""
    feeds = [_encode(tokenizer, text) for text in sentences()]
    same_length: dict[tuple, list[int]] = {}
    for i, f in enumerate(feeds):
        same_length.setdefault(f["input_ids"].shape, []).append(i)
    expected: list = [None] * len(feeds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for rows in same_length.values():
                batch = {k: torch.from_numpy(np.concatenate([feeds[i][k] for i in rows])) for k in INPUTS}
                for i, out in zip(rows, graph.module(**batch).numpy()):
                    expected[i] = out
    finally:
        torch.set_num_threads(threads)
    got = [runner.run(conform(f, runner.inputs))[0][0] for f in feeds]
    return expected, got

def _encode(tokenizer, text: str, torch_tensors: bool = False) -> dict:
    # Truncated at the tokenizer's limit, which a sequence cap (--shrink seq=) lowers.
    encoded = tokenizer(text, truncation=True, max_length=min(tokenizer.model_max_length, 1 << 20), return_tensors="np")
    arrays = {name: encoded[name].astype(np.int64) for name in INPUTS}
    return {k: torch.from_numpy(v) for k, v in arrays.items()} if torch_tensors else arrays

