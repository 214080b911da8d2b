"""Shrink recipes: one typed config per technique. Backends declare which ones they implement.

A recipe says *what* to do to the weights; each backend does it with its own runtime's tools,
so the result runs on that runtime's fast kernels.
"""

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class NoQuant:
    """Keep the fp32 weights: the reference every other recipe is measured against."""

    name: ClassVar[str] = "none"

    def describe(self) -> dict:
        return {"scheme": self.name, "weights": "float32", "activations": "float32"}


@dataclass(frozen=True)
class Int8Dynamic:
    """int8 weights; activations quantized to int8 at run time from their observed range."""

    name: ClassVar[str] = "int8"
    # Per-channel scales keep all-MiniLM-L6-v2 at cosine 0.994; one scale per tensor
    # drops it to 0.958 (../shared/STACK.md).
    per_channel: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.per_channel, bool):
            raise TypeError(f"Int8Dynamic.per_channel must be a bool, not {self.per_channel!r}")

    def describe(self) -> dict:
        return {
            "scheme": self.name,
            "weights": "int8",
            "activations": "int8, quantized at run time",
            "per_channel": self.per_channel,
        }


Recipe = NoQuant | Int8Dynamic
RECIPES: dict[str, type] = {r.name: r for r in (NoQuant, Int8Dynamic)}
