"""Where an artifact's constant tensors lie in its file(s), and the order one inference reads them.

The same record for every format (each backend's ``layout(path, options)`` builds it); the
flash-paging simulator (runtime/paging/) turns it into a page-level access trace.

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
