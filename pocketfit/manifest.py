"""manifest.json: what an artifact is, how it was made, and how close it stays to its source.

The fields are documented in schemas/manifest.schema.json; tests validate every manifest
pocketfit writes against it.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import InvalidArtifact
from .files import write_text_atomic

SCHEMA_VERSION = 1
FILE_NAME = "manifest.json"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    # An int is a fixed size; a string names a dynamic axis ("batch", "sequence").
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class Source:
    model: str  # what the user asked for: "minilm" or a folder path
    path: str  # the folder the weights were read from
    architecture: str  # the transformers class, e.g. "BertModel"
    weights_sha256: str  # hash of the weight files: the revision of a local folder
    revision: str | None = None  # a package or git revision when one is known


@dataclass(frozen=True)
class Parity:
    """How the artifact, run in its own runtime, compares with the torch reference."""

    reference: str
    runtime: str
    inputs: int
    metrics: dict[str, float]
    floors: dict[str, float]
    passed: bool


@dataclass(frozen=True)
class Manifest:
    format: str
    file: str
    bytes: int
    sha256: str
    task: str
    parameters: int
    quantization: dict[str, Any]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    source: Source
    parity: Parity
    pocketfit_version: str
    toolchain: dict[str, str]
    export_seconds: float
    created: str
    # Format- and task-specific facts: a decoder's KV cache, ExecuTorch's planned arena, opsets.
    details: dict[str, Any] = field(default_factory=dict)
    # Each shrink step the model went through before export: what it removed, on which text.
    shrink: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def write(self, folder: Path) -> Path:
        path = folder / FILE_NAME
        write_text_atomic(path, self.to_json())
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        data = dict(data)
        data["inputs"] = tuple(TensorSpec(d["name"], d["dtype"], tuple(d["shape"])) for d in data["inputs"])
        data["outputs"] = tuple(TensorSpec(d["name"], d["dtype"], tuple(d["shape"])) for d in data["outputs"])
        data["source"] = Source(**data["source"])
        data["parity"] = Parity(**data["parity"])
        return cls(**data)


def read(path: Path) -> Manifest:
    """Read a manifest file, or the manifest beside an artifact."""
    if path.is_dir() or path.name != FILE_NAME:
        path = (path if path.is_dir() else path.parent) / FILE_NAME
    try:
        return Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as e:
        raise InvalidArtifact(f"no manifest at {path}") from e
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArtifact(f"{path} is not a pocketfit manifest: {e}") from e


def schema() -> dict[str, Any]:
    return json.loads(resources.files("pocketfit").joinpath("schemas/manifest.schema.json").read_text())
