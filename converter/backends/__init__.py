"""Export backends, one module per format, each offering the same few names:

- ``FORMAT``: the format's config dataclass (its ``name``, file ``suffix`` and ``runtime``);
- ``RECIPES``: the shrink recipe types the backend implements;
- ``export(module, signature, sample, fmt, recipe, path)``: write the artifact to ``path``;
- ``open(path, threads=None)``: load the artifact in the format's own runtime, giving a
  runner with ``inputs``, ``outputs`` and ``run(feeds)``.

Core code looks a backend up here by its format config or by a file's suffix and never
branches on the format. Backend modules import their runtime lazily, so that the measuring
child process pays only for the runtime it needs.
"""

from pathlib import Path
from types import ModuleType

from pocketfit.errors import InvalidArtifact

from . import onnx

_BACKENDS: dict[type, ModuleType] = {m.FORMAT: m for m in (onnx,)}
FORMATS: dict[str, type] = {f.name: f for f in _BACKENDS}


def backend(fmt: object) -> ModuleType:
    return _BACKENDS[type(fmt)]


def for_path(path: Path) -> ModuleType:
    """The backend whose runtime reads this file, chosen by its suffix."""
    for fmt, module in _BACKENDS.items():
        if path.suffix == fmt.suffix:
            return module
    known = ", ".join(f.suffix for f in _BACKENDS)
    raise InvalidArtifact(f"{path}: unknown artifact type {path.suffix or '(no suffix)'!r}; pocketfit reads {known}")
