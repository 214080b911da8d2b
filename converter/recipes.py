"""Shrink recipes: one typed config per technique. Each backend declares which it implements
and carries it out with its own runtime's tools, so the result runs on that runtime's kernels.

Every quantized recipe also stores the embedding tables as int8 (one scale per row): the
word-embedding table is half of a small encoder's weights, and left in fp32 it would keep the
artifact above half its fp32 size whatever the linear layers become.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pocketfit.errors import BadInput


@dataclass(frozen=True)
class NoQuant:
    """fp32 weights and compute: the reference every other recipe is measured against."""

    name: ClassVar[str] = "none"

    def describe(self) -> dict:
        return {"scheme": self.name, "weights": "float32", "activations": "float32"}


@dataclass(frozen=True)
class Fp16:
    """Weights stored as float16: half the bytes, near-lossless."""

    name: ClassVar[str] = "fp16"

    def describe(self) -> dict:
        return {"scheme": self.name, "weights": "float16", "activations": "float16 or float32, as the runtime computes"}


@dataclass(frozen=True)
class Int8Dynamic:
    """int8 weights; activations quantized to int8 at run time from their observed range."""

    name: ClassVar[str] = "int8"
    # Per-channel scales keep all-MiniLM-L6-v2 at cosine 0.993; one scale per tensor
    # drops it to 0.958 (../shared/STACK.md).
    per_channel: bool = True

    def __post_init__(self) -> None:
        _check_bool(self, "per_channel")

    def describe(self) -> dict:
        return {
            "scheme": self.name,
            "weights": "int8",
            "activations": "int8, quantized at run time",
            "per_channel": self.per_channel,
            "embeddings": "int8 per row",
        }


@dataclass(frozen=True)
class Int8Static:
    """int8 weights and activations, activation scales fixed ahead of time by calibration."""

    name: ClassVar[str] = "int8-static"
    # One text per line; None uses the built-in calibration set (converter/data/calibration.txt),
    # which shares no sentence with the verification set.
    calibration: Path | None = None
    per_channel: bool = True

    def __post_init__(self) -> None:
        _check_bool(self, "per_channel")
        if self.calibration is not None and not isinstance(self.calibration, Path):
            object.__setattr__(self, "calibration", Path(self.calibration))

    def describe(self) -> dict:
        return {
            "scheme": self.name,
            "weights": "int8",
            "activations": "int8 with calibrated static scales",
            "per_channel": self.per_channel,
            "embeddings": "int8 per row",
            "calibration": str(self.calibration) if self.calibration else "built-in calibration.txt",
        }


@dataclass(frozen=True)
class Int4Weight:
    """Linear-layer weights in 4 bits, one scale per group of `group_size` input channels; the
    embedding tables in int8 per row, or with `embeddings=4` in 4-bit groups of the same size
    along each row (ONNX and ORT only: onnxruntime's GatherBlockQuantized)."""

    name: ClassVar[str] = "int4"
    group_size: int = 32  # 32 keeps MiniLM near 0.97 cosine; 128 halves the scales' bytes but loses more
    embeddings: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.group_size, int) or self.group_size < 8 or self.group_size & (self.group_size - 1):
            raise BadInput(f"int4 group_size must be a power of two of at least 8, not {self.group_size!r}")
        if self.embeddings not in (4, 8) or isinstance(self.embeddings, bool):
            raise BadInput(f"int4 embeddings: 8 (int8 per row) or 4 (4-bit groups), not {self.embeddings!r}")

    def describe(self) -> dict:
        return {
            "scheme": self.name,
            "weights": f"int4, groups of {self.group_size}",
            "activations": "float32, or int8 at run time where the runtime's 4-bit kernels need it",
            "group_size": self.group_size,
            "embeddings": "int8 per row" if self.embeddings == 8 else f"int4, groups of {self.group_size} along each row",
        }


Recipe = NoQuant | Fp16 | Int8Dynamic | Int8Static | Int4Weight
RECIPES: dict[str, type] = {r.name: r for r in (NoQuant, Fp16, Int8Dynamic, Int8Static, Int4Weight)}


def _check_bool(recipe: object, field: str) -> None:
    if not isinstance(getattr(recipe, field), bool):
        raise BadInput(f"{type(recipe).__name__}.{field} must be true or false, not {getattr(recipe, field)!r}")
