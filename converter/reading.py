"""Reading an artifact: what it holds, where its weights lie, the work of one call — each read by
the backend its suffix names. Above the backends (which build these records) and the record
modules (layout, inspection, work), so that neither reaches up to the other."""

from pathlib import Path

from pocketfit.errors import BadInput, InvalidArtifact

from . import backends
from .inspection import Inspection
from .layout import Layout
from .work import Work


def _artifact(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InvalidArtifact(f"artifact {path} does not exist")
    return path


def inspect(path: Path) -> Inspection:
    """Read what the artifact at `path` holds, with the backend its suffix names."""
    path = _artifact(path)
    return backends.for_path(path).inspect(path)


def weight_layout(path, options: dict | None = None) -> Layout:
    """Read where the artifact at `path` keeps its weights, with the backend its suffix names."""
    path = _artifact(path)
    return backends.for_path(path).layout(path, options)


def work(path: Path, seq_len: int = 128, context: int | None = None) -> Work:
    """The work of one call of the artifact at `path`, read by the backend its suffix names.
    `seq_len` is an encoder's tokens; `context` the positions a decoder's step attends
    (default: `seq_len`)."""
    path = _artifact(path)
    if seq_len < 1 or (context is not None and context < 1):
        raise BadInput("the sequence length and the context must be at least 1")
    return backends.for_path(path).ops(path, seq_len=seq_len, context=context)
