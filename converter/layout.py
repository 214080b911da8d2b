"""Where an artifact's constant tensors lie in its file(s), and the order one inference reads them.

The same record for every format (each backend's ``layout(path, options)`` builds it); the
flash-paging simulator (runtime/paging/) turns it into a page-level access trace.

A weight is read front to back unless its ``tile`` says its kernel reads it a few rows side by
side (a GEMM packing its weight operand): the pages of such a matrix are first touched out of order.

Only mapped weights page: a weight the runtime copies or repacks into anonymous memory at load
(``held="copied"``) is read from the file once, at load, and then never again; a weight it reads
where the file is mapped (``held="mapped"``) can be dropped by the kernel and re-read from flash.
"""

from dataclasses import dataclass, field

MAPPED = "mapped"
COPIED = "copied"


@dataclass(frozen=True)
class Weight:
    name: str
    file: str  # the file that holds it, relative to the artifact's folder (model.onnx.data for external data)
    offset: int  # of its first byte in that file
    length: int  # bytes
    held: str  # MAPPED or COPIED, under the runtime options the layout was read for
    rows: int = 0  # > 0: an embedding table, read only at the rows of the input's token ids (row = length // rows)
    locked: bool = False  # mapped, but the runtime mlock()s it at load: read whole then, resident for good, never dropped
    tile: tuple[int, int] = ()  # (row_bytes, height): its kernel reads it `height` rows side by side, column after column; (): front to back


@dataclass(frozen=True)
class Layout:
    format: str
    files: dict[str, int]  # every file the runtime opens -> its size in bytes
    weights: tuple[Weight, ...]  # in file order
    order: tuple[int, ...]  # indices into `weights` in the order one inference reads them (may repeat)
    options: dict = field(default_factory=dict)  # the runtime options this layout assumes (e.g. xnnpack=off)
    arena: int = 0  # bytes of working memory the runtime plans, where the file says (the .pte memory plan); else 0
    notes: tuple[str, ...] = ()  # how `held` and `order` were decided, in a sentence each

    def held_bytes(self, held: str) -> int:
        return sum(w.length for w in self.weights if w.held == held)

    def render(self) -> str:
        """A table of the weights in the order one inference first reads them (those it never
        reads last), then the totals and how `held` and `order` were decided."""
        from pocketfit.table import render as table
        from pocketfit.units import human

        first: dict[int, int] = {}
        for position, index in enumerate(self.order):
            first.setdefault(index, position)
        ranked = sorted(range(len(self.weights)), key=lambda i: (i not in first, first.get(i, 0), i))
        tiled = any(w.tile for w in self.weights)  # a column only where some kernel reads in tiles
        rows = [["order", "name", "file", "offset", "length", "held", "rows"] + ["tile"] * tiled]
        for i in ranked:
            w = self.weights[i]
            held = w.held + (", locked" if w.locked else "")
            name = w.name if len(w.name) <= 60 else "…" + w.name[-59:]
            tile = [f"{w.tile[1]} x {w.tile[0]} B" if w.tile else ""] * tiled  # rows side by side x bytes a row
            rows.append([str(first[i]) if i in first else "-", name, w.file, str(w.offset), str(w.length), held, str(w.rows or "")] + tile)
        options = ", ".join(f"{k}={v}" for k, v in self.options.items()) or "defaults"
        lines = [f"{self.format} weight layout (runtime options: {options})", table(rows, right={0, 3, 4, 6, 7}), ""]
        mapped, copied = self.held_bytes(MAPPED), self.held_bytes(COPIED)
        locked = sum(w.length for w in self.weights if w.locked)
        lines.append(f"mapped: {human(mapped)} ({mapped} bytes)" + (f", of which locked {human(locked)}" if locked else "")
                     + f"; copied: {human(copied)} ({copied} bytes)")
        lines.append("files: " + ", ".join(f"{name} {human(size)} ({size} bytes)" for name, size in self.files.items()))
        if self.arena:
            lines.append(f"arena (planned working memory): {human(self.arena)} ({self.arena} bytes)")
        return "\n".join(lines + [f"- {note}" for note in self.notes])
