"""The access trace of one inference (or of a prefill and T decode steps), built from a Layout.

A weight tensor is one contiguous byte range read front to back, so the trace is kept as a
sequence of *extents* (page ranges read sequentially), never as single pages: a 3.5 GB model
read 257 times would be 230 M page accesses. The file's page space is cut at every extent
boundary into *segments*, so every access touches whole segments in order. For a page inside a
segment, its LRU stack distance is exactly (distinct pages of other segments touched since the
segment's last access) + (the segment's page count - 1): every page of a segment hits or misses
together, and LRU on segments weighted by their page counts is exact at page level
(tests/test_paging.py checks it against a page-level LRU).

Only mapped weights page. Copied weights are read once at load and are anonymous memory after
that; weights the runtime mlock()s (Weight.locked) are read whole at load and stay resident;
neither is in the trace. Embedding tables (Weight.rows > 0) are read only at the rows of
the input's token ids.

Not every kernel reads a matrix front to back: a weight's `tile` (Weight.tile, set by its
backend's layout: LiteRT's builtin FULLY_CONNECTED) says its kernel reads it a few rows side by
side (`Tiles`), and the trace then holds the pages of every tile in the order they are first
touched, as many short extents (Trace.tile marks them).
"""

from dataclasses import dataclass

import numpy as np

from pocketfit.converter.layout import MAPPED, Layout
from pocketfit.errors import BadInput

# What `pocketfit profile` feeds (runtime/_child.py): token id 1 at every position, 128 tokens.
DEFAULT_IDS = (1,) * 128


@dataclass(frozen=True)
class Tiles:
    """A matrix its kernel reads `height` rows side by side, column after column (a GEMM's
    packing of the weight operand), one tile of rows after the other. Where a tile spans
    several pages its pages are first touched out of order: each row starts in its own page."""

    row_bytes: int
    height: int = 8

    def __post_init__(self):
        if self.row_bytes < 1 or self.height < 1:
            raise BadInput(f"tiles of {self.height} rows of {self.row_bytes} bytes: both must be positive")

    def pages(self, offset: int, length: int, page_size: int) -> list[int]:
        """The pages of the matrix at byte `offset`, `length` bytes long, in first-touch order.
        Inside a tile a page is first touched at the least column (bytes into its row) at which
        one of the tile's rows reaches it, the upper row first when two reach pages together."""
        if length % self.row_bytes:
            raise BadInput(f"a matrix of {length} bytes is not made of rows of {self.row_bytes} bytes")
        rows, out, seen = length // self.row_bytes, [], set()
        for top in range(0, rows, self.height):
            starts = offset + np.arange(top, min(top + self.height, rows), dtype=np.int64) * self.row_bytes
            page = np.arange(starts[0] // page_size, (starts[-1] + self.row_bytes - 1) // page_size + 1)
            lo, hi = page[:, None] * page_size, (page[:, None] + 1) * page_size  # each page's bytes, against each row's
            column = np.maximum(lo - starts, 0)  # bytes into a row where it reaches the page
            reaches = (lo < starts + self.row_bytes) & (hi > starts)
            key = np.where(reaches, column * self.height + np.arange(len(starts)), np.iinfo(np.int64).max)
            for p in page[np.argsort(key.min(axis=1), kind="stable")].tolist():
                if p not in seen:
                    seen.add(p)
                    out.append(p)
        return out


@dataclass(frozen=True)
class Trace:
    """Segments of the file page space, and the order one run after another touches them."""

    page_size: int
    start: np.ndarray  # per segment: first page, in a page space where the layout's files lie end to end
    pages: np.ndarray  # per segment: page count
    file_start: np.ndarray  # per segment: first page of its file (read-around is clipped to the file)
    file_end: np.ndarray  # per segment: one past the last page of its file
    seg: np.ndarray  # per access: the segment touched, in access order
    step: np.ndarray  # per access: the run it belongs to (0 = the cold first run or the prefill)
    contiguous: np.ndarray  # per access: it starts where the previous access ended (a sequential stream)
    kv_pages: np.ndarray  # per access: KV-cache pages resident then (anonymous; it grows while decoding)
    steps: int
    copied: int  # bytes of copied weights, read once at load
    mapped: int  # bytes of mapped weights that page (not locked)
    file_pages: int  # every page the trace touches (what "everything resident" holds)
    edges: np.ndarray = None  # page where each file starts, and one past the last file's end
    header: tuple = ()  # page ranges the runtime parses at load: each file's bytes before its first weight and after its last
    held: tuple = ()  # page ranges of the weights read into memory at load: copied and locked
    tile: np.ndarray = None  # per access: rows its kernel reads side by side (Tiles.height); 0: front to back

    @property
    def tiled(self) -> bool:
        """Some access reads its tensor's pages out of order (readahead.replay models those)."""
        return self.tile is not None and bool(self.tile.any())

    @property
    def weight(self) -> np.ndarray:
        """Pages per access."""
        return self.pages[self.seg]


def extents(layout: Layout, page_size: int, ids) -> list[tuple[int, int]]:
    """The page ranges [first, end) one run reads, in order, in the page space of all files."""
    return [(a, b) for a, b, _ in reads(layout, page_size, ids)]


def reads(layout: Layout, page_size: int, ids) -> list[tuple[int, int, int]]:
    """extents(), each with the height of the tiles its kernel reads (0: front to back; a
    weight's `tile` says which are not)."""
    base, at = {}, 0
    for name, size in layout.files.items():
        base[name] = at
        at += -(-size // page_size)
    out = []
    for index in layout.order:
        w = layout.weights[index]
        if w.held != MAPPED or w.length == 0 or w.locked:
            continue  # copied: anonymous after load; locked: read whole at load, resident for good
        if w.file not in base:
            raise BadInput(f"layout: weight {w.name!r} lies in {w.file!r}, which is not among the layout's files")
        at = base[w.file]
        if w.rows > 0:  # a gather: only the rows of the input's ids, in the order they come
            row = w.length // w.rows
            spans = [(at + (w.offset + (i % w.rows) * row) // page_size, at + -(-(w.offset + (i % w.rows + 1) * row) // page_size), 0)
                     for i in ids]
        elif w.tile:
            tiles = Tiles(*w.tile)
            spans = _runs([at + p for p in tiles.pages(w.offset, w.length, page_size)], tiles.height)
        else:
            spans = [(at + w.offset // page_size, at + -(-(w.offset + w.length) // page_size), 0)]
        for extent in spans:
            if not out or out[-1][:2] != extent[:2]:  # the same page range twice in a row is one access
                out.append(extent)
    return out


def _runs(pages: list[int], height: int) -> list[tuple[int, int, int]]:
    """Pages in touch order as extents: runs of consecutive pages (one extent if all are in order)."""
    out = []
    for p in pages:
        if out and out[-1][1] == p:
            out[-1][1] = p + 1
        else:
            out.append([p, p + 1])
    return [(a, b, height if len(out) > 1 else 0) for a, b in out]


def at_load(layout: Layout, page_size: int) -> tuple[list, list]:
    """What the runtime reads at load, as page ranges: each file's head and tail around its
    weights (the format's header, flatbuffer or protobuf tables: every runtime parses them),
    and the weights it copies or locks. Gaps between weights are left out: padding, mostly."""
    header, held, at = [], [], 0
    for name, size in layout.files.items():
        mine = sorted((w.offset, w.offset + w.length) for w in layout.weights if w.file == name and w.length)
        if not mine:
            header.append((at, at + -(-size // page_size)))
        else:
            if mine[0][0] > 0:
                header.append((at, at + -(-mine[0][0] // page_size)))
            end = max(b for _, b in mine)
            if end < size:
                header.append((at + end // page_size, at + -(-size // page_size)))
        held += [(at + w.offset // page_size, at + -(-(w.offset + w.length) // page_size)) for w in layout.weights
                 if w.file == name and w.length and (w.held != MAPPED or w.locked)]
        at += -(-size // page_size)
    return header, held


def build(layout: Layout, page_size: int, *, ids=None, runs: int = 3, tokens: int = 0, kv_cache: int = 0) -> Trace:
    """The trace of `runs` identical inferences (tokens == 0; the first is the cold one), or of a
    prefill over `ids` followed by `tokens` decode steps, decode step t reading the row of
    ids[t % len(ids)]. `kv_cache` is the KV cache's size at its largest: constant for an
    inference, growing linearly with the context while decoding. Weights with a `tile` are read
    in tiles of rows, their pages out of order (Tiles)."""
    ids = tuple(DEFAULT_IDS if ids is None else ids)
    if not ids:
        raise BadInput("no token ids: an inference reads at least one token")
    if tokens < 0 or runs < 1:
        raise BadInput("tokens must be at least 0 and runs at least 1")
    if tokens:
        passes = [reads(layout, page_size, ids)] + [reads(layout, page_size, (ids[t % len(ids)],)) for t in range(tokens)]
        context = len(ids) + np.arange(tokens + 1)  # positions in the cache after each step
        kv = np.ceil(kv_cache * context / context[-1] / page_size).astype(np.int64)
    else:
        one = reads(layout, page_size, ids)
        passes = [one] * runs
        kv = np.full(runs, -(-kv_cache // page_size), dtype=np.int64)
    flat = np.array([e for p in passes for e in p], dtype=np.int64).reshape(-1, 3)
    flat, height = flat[:, :2], flat[:, 2]
    step_of_extent = np.repeat(np.arange(len(passes)), [len(p) for p in passes])

    # Segments: cut the page space at every extent boundary and at every file boundary.
    file_edges, at = [0], 0
    for size in layout.files.values():
        at += -(-size // page_size)
        file_edges.append(at)
    cuts = np.unique(np.concatenate([flat.ravel(), file_edges]))
    first = np.searchsorted(cuts, flat[:, 0])
    count = np.searchsorted(cuts, flat[:, 1]) - first  # segments per extent
    # Expand every extent into its segments: first, first + 1, ..., first + count - 1.
    offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    seg = np.repeat(first, count) + offsets
    step = np.repeat(step_of_extent, count)
    tile = np.repeat(height, count)
    start, pages = cuts[:-1], np.diff(cuts)
    edges = np.asarray(file_edges)
    which = np.searchsorted(edges, start, side="right") - 1
    end_of = start + pages
    contiguous = np.zeros(len(seg), dtype=bool)
    contiguous[1:] = (start[seg[1:]] == end_of[seg[:-1]]) & (which[seg[1:]] == which[seg[:-1]]) & (step[1:] == step[:-1])
    touched = np.unique(seg)
    mapped = sum(w.length for w in layout.weights if w.held == MAPPED and not w.locked)
    header, held = at_load(layout, page_size)
    return Trace(
        page_size=page_size, start=start, pages=pages, file_start=edges[which], file_end=edges[which + 1],
        seg=seg, step=step, contiguous=contiguous, kv_pages=kv[step], steps=len(passes),
        copied=layout.held_bytes("copied"), mapped=mapped, file_pages=int(pages[touched].sum()),
        edges=edges, header=tuple(header), held=tuple(held), tile=tile,
    )
