"""Tasks: what an exported graph computes, how to call it, and how its parity is judged.

Each task module offers the same names:

- ``AUTO_CLASS``: the transformers Auto class that loads its models;
- ``graph(model, cache, max_context) -> Graph``: the torch module to export, its inputs and outputs;
- ``evaluate(model, graph, open_runner) -> (metrics, inputs)``: run the artifact and the torch
  reference on the fixed sentences and compare;
- ``FLOORS``: per recipe type, the lowest acceptable value of each metric.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pocketfit.errors import BadInput
from pocketfit.manifest import TensorSpec


class Task(enum.Enum):
    FEATURE_EXTRACTION = "feature-extraction"
    TEXT_CLASSIFICATION = "text-classification"
    TEXT_GENERATION = "text-generation"


class CacheStyle(enum.Enum):
    """Where a decoder's KV cache lives in the artifact; each backend declares the one its runtime supports."""

    STATE = "state"  # mutable buffers inside the program: planned once in the runtime's arena
    IO = "io"  # an input and an output of every call: the app owns the buffers


@dataclass(frozen=True)
class Input:
    dtype: str  # numpy/torch name: "int64", "float32"
    axes: tuple[str | int, ...]  # a name is a dynamic axis ("batch", "sequence"); an int is fixed


@dataclass(frozen=True)
class KvCache:
    layers: int
    kv_heads: int
    head_dim: int
    max_context: int

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.layers, 1, self.kv_heads, self.max_context, self.head_dim)

    @property
    def bytes(self) -> int:
        return 2 * int(np.prod(self.shape)) * 4  # keys and values, float32

    def describe(self) -> dict:
        return {"layers": self.layers, "kv_heads": self.kv_heads, "head_dim": self.head_dim,
                "max_context": self.max_context, "dtype": "float32", "bytes": self.bytes}


@dataclass
class Graph:
    """What a backend exports: a torch module and how to call it."""

    module: Any  # a torch.nn.Module: fp32, eval mode, no gradients
    inputs: dict[str, Input]
    outputs: tuple[str, ...]
    # Example inputs with the given sizes for the named axes, e.g. {"batch": 1, "sequence": 128}.
    sample: Callable[[dict[str, int]], dict[str, Any]]  # name -> torch.Tensor
    # Representative inputs for static quantization, made from texts, in call order.
    calibration: Callable[[list[str]], list[dict[str, Any]]]
    # The FFN's inner width: int8-static quantizes the inputs of the down-projections (post-activation,
    # heavy outliers) at run time instead of with a fixed scale.
    intermediate_size: int | None = None
    kv_cache: KvCache | None = None
    details: dict = field(default_factory=dict)
    # What a backend derived from this graph and can reuse for the next recipe: the untouched
    # fp32 export, keyed by (format, settings). Exporting all recipes pays for one trace.
    derived: dict = field(default_factory=dict, repr=False)


def conform(feeds: dict[str, np.ndarray], specs: tuple[TensorSpec, ...]) -> dict[str, np.ndarray]:
    """Fit natural-length inputs to an artifact's inputs: cast to its dtypes, and pad with zeros
    (token 0, mask 0: ignored by attention and pooling) any axis the artifact fixes longer."""
    out = {}
    for spec in specs:
        array = feeds[spec.name].astype(spec.dtype)
        pads = []
        for axis, size in enumerate(spec.shape):
            have = array.shape[axis]
            if isinstance(size, int) and size != have:
                if size < have:
                    raise BadInput(f"input {spec.name} has {have} along axis {axis} but the artifact fixes it at {size}")
                pads.append((0, size - have))
            else:
                pads.append((0, 0))
        out[spec.name] = np.pad(array, pads) if any(p for _, p in pads) else array
    return out


def no_grad(module: Any) -> Any:
    """Exporters trace in-place cache updates; parameters that require grad forbid them."""
    module.requires_grad_(False)
    return module.eval()


def _registry() -> dict:
    from . import classification, embedding, generation

    return {
        Task.FEATURE_EXTRACTION: embedding,
        Task.TEXT_CLASSIFICATION: classification,
        Task.TEXT_GENERATION: generation,
    }


def spec(task: Task):
    """The module implementing `task`."""
    return _registry()[task]
