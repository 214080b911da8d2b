"""Shared by the backends' ``layout``: a protobuf wire-format walk (for .onnx, whose Python API
hides where each tensor's bytes lie), tracing an index back to the graph's inputs, and the
checks every layout passes before it is returned."""

from collections.abc import Iterable, Iterator
from pathlib import Path

from pocketfit.errors import InvalidArtifact

from ..layout import Layout, Weight

# Ops that only re-shape or re-type an index tensor: token ids stay token ids through them.
PASS_THROUGH = {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "CAST", "RESHAPE", "EXPAND_DIMS",
                "SQUEEZE", "_to_copy", "_to_dim_order_copy", "et_view", "view_copy", "unsqueeze_copy", "squeeze_copy", "expand_copy", "clone"}


def varint(data, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("a protobuf varint runs past the end of the file (truncated?)")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(data, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, first byte of the value, end of the value) of each field of the
    protobuf message in data[start:end]; for a length-delimited field the value is its payload."""
    pos = start
    while pos < end:
        key, pos = varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, after = varint(data, pos)
        elif wire == 1:
            after = pos + 8
        elif wire == 5:
            after = pos + 4
        elif wire == 2:
            size, pos = varint(data, pos)
            after = pos + size
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {pos} (not a model file, or a damaged one)")
        if after > end:
            raise ValueError(f"a protobuf field at byte {pos} runs past its message's end (truncated?)")
        yield number, wire, pos, after
        pos = after


def token_table(indices: str, graph_inputs: set[str], producer: dict[str, tuple[str, str]]) -> bool:
    """Whether a gather's `indices` are the graph's own integer inputs (the token ids), seen
    through ops that only re-shape or re-type them. `producer`: tensor -> (op, its first input)."""
    seen = set()
    while indices not in graph_inputs:
        if indices in seen or indices not in producer or producer[indices][0] not in PASS_THROUGH:
            return False
        seen.add(indices)
        indices = producer[indices][1]
    return True


def build(fmt: str, path: Path, weights: Iterable[Weight], reads: Iterable[str], *, options: dict | None = None,
          arena: int = 0, notes: Iterable[str] = ()) -> Layout:
    """The Layout of the artifact at `path` whose `weights` (named, any order) one inference reads
    in the order of `reads` (weight names). Refuses a weight outside its file or overlapping
    another: the file is damaged, or misread."""
    folder = path.parent
    placed = sorted(weights, key=lambda w: (w.file, w.offset, w.length))
    files: dict[str, int] = {path.name: path.stat().st_size}
    for w in placed:
        if w.file not in files:
            target = folder / w.file
            if not target.is_file():
                raise InvalidArtifact(f"{path}: {fmt} weight {w.name!r} lies in {target}, which does not exist")
            files[w.file] = target.stat().st_size
        if w.offset < 0 or w.length < 0 or w.offset + w.length > files[w.file]:
            raise InvalidArtifact(f"{folder / w.file}: {fmt} weight {w.name!r} at bytes {w.offset}..{w.offset + w.length} "
                                  f"lies outside the file's {files[w.file]} bytes (truncated?)")
    for a, b in zip(placed, placed[1:]):
        if a.file == b.file and b.offset < a.offset + a.length:
            raise InvalidArtifact(f"{folder / a.file}: {fmt} weights {a.name!r} and {b.name!r} overlap in the file")
    index = {w.name: i for i, w in enumerate(placed)}
    order = tuple(index[name] for name in reads if name in index)
    return Layout(fmt, files, tuple(placed), order, dict(options or {}), arena, tuple(notes))
