"""What an artifact holds, read from the file alone: the same record for every format."""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pocketfit.table import render
from pocketfit.units import human


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    bytes: int

    @property
    def elements(self) -> int:
        count = 1
        for d in self.shape:
            count *= d
        return count


@dataclass(frozen=True)
class Inspection:
    format: str
    path: Path
    bytes: int
    tensors: tuple[Tensor, ...]  # the constants stored in the file: weights, scales, tables
    operators: dict[str, int]  # operator (or kernel) name -> how many nodes call it
    details: dict = field(default_factory=dict)  # format-specific facts, printed as they are

    @property
    def parameters(self) -> int:
        """Elements of the stored constants (weights plus any quantization scales)."""
        return sum(t.elements for t in self.tensors)

    def bytes_by_dtype(self) -> dict[str, int]:
        totals: Counter = Counter()
        for t in self.tensors:
            totals[t.dtype] += t.bytes
        return dict(totals.most_common())

    def largest(self, n: int = 10) -> list[Tensor]:
        return sorted(self.tensors, key=lambda t: t.bytes, reverse=True)[:n]

    def render(self, top: int = 10) -> str:
        lines = [
            f"{self.path}: {self.format}, {human(self.bytes)} ({self.bytes} bytes)",
            f"parameters: {self.parameters:,} elements in {len(self.tensors)} stored tensors (weights and their scales)",
            "weight bytes by dtype: " + ", ".join(f"{dtype} {human(b)}" for dtype, b in self.bytes_by_dtype().items()),
        ]
        for key, value in self.details.items():
            lines.append(f"{key}: {value}")
        rows = [["largest tensors", "dtype", "shape", "bytes"]]
        rows += [[_short(t.name), t.dtype, "x".join(map(str, t.shape)) or "-", human(t.bytes)] for t in self.largest(top)]
        ops = [["operator", "nodes"]] + [[op, str(n)] for op, n in sorted(self.operators.items(), key=lambda kv: (-kv[1], kv[0]))]
        return "\n".join(lines) + "\n\n" + render(rows, right={3}) + "\n\n" + render(ops, right={1})


def _short(name: str, width: int = 60) -> str:
    """LiteRT names a tensor by its whole module path; the end says which layer it is."""
    return name if len(name) <= width else "…" + name[-(width - 1):]
