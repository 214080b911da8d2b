"""Read-ahead: how the kernel turns missing pages of a mapped file into major faults and reads.

The model follows Linux 6.x mm/filemap.c and mm/readahead.c for a read fault on a file mapping:

- A fault on a page that is not in the page cache at all is a *major fault* (filemap_fault counts
  PGMAJFAULT only there). A page found in the cache, even one still under I/O, is not.
- Default (no madvise): do_sync_mmap_readahead does "read-around": it reads ra pages from
  lo = max(p - ra/2, the file's start) (shifted, not shortened, near the start; cut at the end),
  with ra = the device's read_ahead_kb / page size (128 KiB by default), and marks the page at
  ra/4 before the window's end PG_readahead.
- When the faulting thread then touches a marked page, do_async_mmap_readahead →
  page_cache_async_ra reads the next window of ra pages asynchronously and marks its first
  page, so a sequential scan keeps one window ahead: a run of m missing pages from p costs one
  major fault and 1 + K reads, K = [off + m > 3ra/4] + max(0, ceil((off + m) / ra) - 1) with
  off = p - lo (ra/2 away from the file's start).
- A run whose first pages an earlier read brought in continues that read's chain: its marked
  page triggers the next window, so it costs reads but no major fault.
- Pages already in the cache are skipped by the read (page_cache_ra_unbounded), so read-around
  costs extra bytes only where the neighbours are missing too: before a run that starts a new
  stream, and after a run that ends one (both assumed missing: they belong to other tensors).
  Pages one run's read brought in serve later runs of the same inference or decode step: a
  run over them is no fault and no read (weights stored in another order than they are read).
- MADV_RANDOM (VM_RAND_READ): no read-around and no async read-ahead: every missing page is one
  major fault and one read of one page.

That closed form (`cost`) holds for tensors read front to back. A trace that reads some tensor
out of order (trace.Tiles: LiteRT's builtin fully-connected kernel, 8 rows side by side) is
replayed page by page instead (folios.py), following Linux 6.18's read-around at folio level:
the fault reads ra order-0 folios from p - ra/2 and marks the one ra/4 before the end; touching
a marked folio (fault-around never maps one, so any of its pages does) runs page_cache_async_ra,
which clears the mark and, if the page is round_down(ra.start + ra.size - ra.async_size, folio
size), continues the chain: the next window after the last, its first folio marked, ra.order
+= 2 so folios grow 4 -> 16 -> 32 pages. Otherwise it takes the "interleaved" path: start at
page_cache_next_miss(p + 1, ra), reading nothing if that is more than ra past p. One ra state
is shared by every stream of the file, so streams reset each other's windows.

The kernel quirk it reproduces (6.18; traced on this machine's kernel, every one of 2893
page_cache_async_ra outcomes predicted): page_cache_next_miss walks the xarray with xas_next()
from the folio's first slot, without xas_advance(), so inside a large folio the index it returns
is the real hole plus (p + 1 - the folio's first page), until the walk crosses a 64-slot node.
A touch of a marked 32-page folio anywhere but its first page then reads nothing (the "hole" is
over ra away), the chain ends, and the next missing page is a major fault; a smaller folio reads
from the wrong place. Tiled reads touch folios off their first page all the time: MiniLM fp32
on LiteRT (xnnpack=off) measured 54-56 major faults per inference at half its weights and
58-79 at a quarter, where the documented semantics (a fixed kernel) predict about 7 and 27: a
kernel without the skew would give fewer faults than this predicts.

Not modelled, and why it is safe to leave out for weights read front to back: the mmap_miss
heuristic (read-around stops after 100 faults without hits; sequential scans keep it at 0), the
growth of the window for read() (only mmap faults page here), the pages read ahead taking
cache room before they are touched (the scan touches them moments later; the replay does
count it), and pages read ahead in one step serving the next (the policy's demand trace decides
what is resident across steps; the replay carries its cache across steps).
"""

from dataclasses import dataclass

import numpy as np

from pocketfit.errors import BadInput

DEFAULT_KB = 128  # the kernel's VM_READAHEAD_PAGES (128 KiB), what read_ahead_kb is unless a vendor changed it


@dataclass(frozen=True)
class Readahead:
    """The read-ahead window in KiB; None means MADV_RANDOM (one page per fault)."""

    kb: int | None = DEFAULT_KB

    def __post_init__(self):
        if self.kb is not None and self.kb < 1:
            raise BadInput(f"read-ahead window {self.kb} KiB: give at least 1 KiB, or 'random' for MADV_RANDOM")

    @classmethod
    def parse(cls, text: str) -> "Readahead":
        """`"128"` (KiB) or `"random"`."""
        if str(text).strip().lower() == "random":
            return cls(None)
        try:
            return cls(int(text))
        except ValueError:
            raise BadInput(f"--readahead {text!r}: give a window in KiB (e.g. 128) or 'random'") from None

    def pages(self, page_size: int) -> int:
        return 1 if self.kb is None else max(1, self.kb * 1024 // page_size)

    @property
    def label(self) -> str:
        return "MADV_RANDOM" if self.kb is None else f"{self.kb} KiB read-around"


@dataclass(frozen=True)
class Cost:
    """Per step of the trace."""

    faults: np.ndarray
    pages: np.ndarray  # pages read from flash
    requests: np.ndarray  # read requests sent to the flash


def run_cost(m: np.ndarray, ra: int, off=None) -> tuple[np.ndarray, np.ndarray]:
    """Major faults and reads for sequential runs of m missing pages (arrays), each starting
    `off` pages into its read-around window (ra // 2 unless the file starts closer)."""
    m = np.asarray(m, dtype=np.int64)
    if ra == 1:
        return m.copy(), m.copy()
    off = np.full_like(m, ra // 2) if off is None else np.asarray(off, dtype=np.int64)
    reach = off + m
    windows = (reach > ra - ra // 4).astype(np.int64) + np.maximum(0, -(-reach // ra) - 1)
    return np.ones_like(m), 1 + windows


def load(trace, ra: int) -> tuple[int, int, int, "_Covered"]:
    """Major faults, pages read and requests at load, and the page ranges then in the cache.
    The header is touched through the mapping (faults, read-around); held weights come in by
    read() (no faults; requests of the window's size, at least 128 KiB as the kernel's
    read() read-ahead ramps up to)."""
    covered, faults, pages, requests = _Covered(), 0, 0, 0
    for a, b in sorted(trace.header):
        if covered.first_gap(a, b) is None:
            continue
        file = int(np.searchsorted(trace.edges, a, side="right")) - 1
        lo = max(a - ra // 2, int(trace.edges[file])) if ra > 1 else a
        f, r = run_cost(np.array([b - a]), ra, np.array([a - lo]))
        hi = min(lo + int(r[0]) * ra, int(trace.edges[file + 1])) if ra > 1 else b
        faults, requests, pages = faults + int(f[0]), requests + int(r[0]), pages + covered.add(lo, max(hi, b))
    window = max(ra, -(-128 * 1024 // trace.page_size))
    for a, b in sorted(trace.held):
        new = covered.add(a, b)
        pages, requests = pages + new, requests + -(-new // window)
    return faults, pages, requests, covered


def cost(trace, missing: np.ndarray, ra: int, preread: "_Covered | None" = None) -> Cost:
    """Faults, pages read and requests per step, for `missing` pages per access (the first
    pages of the access's segment are the missing ones: a partly evicted segment lost its
    least recently used, i.e. first, pages)."""
    steps = trace.steps
    w = trace.weight
    m = np.asarray(missing, dtype=np.int64)
    miss = m > 0  # this access has pages to read
    if not miss.any():
        zero = np.zeros(steps, dtype=np.int64)
        return Cost(zero, zero.copy(), zero.copy())
    full = miss & (m == w)
    joins = np.zeros(len(m), dtype=bool)
    joins[1:] = trace.contiguous[1:] & full[:-1] & miss[1:]  # continues the previous access's run
    starts = miss & ~joins
    idx = np.flatnonzero(miss)
    run_of = np.cumsum(starts)[idx] - 1
    length = np.bincount(run_of, weights=m[idx]).astype(np.int64)
    first = idx[starts[idx]]
    last = _last(idx, run_of)
    step = trace.step[first]
    segment = trace.seg[first]
    p0, file_lo, file_hi = trace.start[segment], trace.file_start[segment], trace.file_end[segment]
    window = np.maximum(p0 - ra // 2, file_lo)  # where each run's read-around starts
    faults, requests = run_cost(length, ra, p0 - window)
    pages = length.copy()
    if ra > 1:
        nxt = last + 1
        ends_stream = full[last] & ((nxt >= len(m)) | ~trace.contiguous[np.minimum(nxt, len(m) - 1)])
        # What each run reads: read-around before it when it starts a stream (the pages before
        # belong to another tensor, assumed missing), the windows past it when it ends one.
        lo = np.where(~trace.contiguous[first], np.maximum(p0 - ra // 2, file_lo), p0)
        hi = np.where(ends_stream, np.minimum(window + requests * ra, file_hi), p0 + length)
        pages = hi - lo
        _already_read(step, p0, length, lo, hi, ends_stream, file_hi, ra, faults, requests, pages, preread)
    return Cost(np.bincount(step, faults, steps).astype(np.int64), np.bincount(step, pages, steps).astype(np.int64),
                np.bincount(step, requests, steps).astype(np.int64))


def _already_read(step, p0, length, lo, hi, ends_stream, file_hi, ra, faults, requests, pages, preread=None) -> None:
    """Within one run of the model, pages an earlier read-around or read-ahead brought in are in
    the cache: a later run over them is no fault and no read, and a read skips them. The first
    run also finds what the load read (`preread`). Only the
    steps where read ranges overlap need the walk (weights stored in another order than they
    are read: tflite's reversed buffers, onnx initializers); the arrays are corrected in place."""
    big = int(hi.max()) + 1
    order = np.lexsort((lo, step))
    reach = np.maximum.accumulate(hi[order] + step[order] * big)
    overlap = np.zeros(len(order), dtype=bool)
    overlap[1:] = lo[order][1:] + step[order][1:] * big < reach[:-1]
    walk = set(np.unique(step[order][overlap]).tolist()) | ({0} if preread else set())
    for s in sorted(walk):
        covered = _Covered(preread.ranges if s == 0 and preread else ())
        for r in np.flatnonzero(step == s).tolist():
            a, b = int(p0[r]), int(p0[r] + length[r])
            c = covered.first_gap(a, b)
            if c is None:
                faults[r] = requests[r] = pages[r] = 0
                continue
            start, end = int(lo[r]), int(hi[r])
            if c > a:  # the run's head is in: its mark carries the read-ahead on, window after window
                faults[r] = 0
                requests[r] = -(-(b - c) // ra)
                start = c
                end = min(c + int(requests[r]) * ra, int(file_hi[r])) if ends_stream[r] else b
            pages[r] = covered.add(start, end)


class _Covered:
    """Disjoint page ranges read so far, sorted."""

    def __init__(self, ranges=()):
        self.ranges: list[list[int]] = [list(r) for r in ranges]

    def __len__(self) -> int:
        return sum(hi - lo for lo, hi in self.ranges)

    def first_gap(self, a: int, b: int) -> int | None:
        """The first page in [a, b) not covered, or None."""
        for lo, hi in self.ranges:
            if lo <= a < hi:
                a = hi
            elif lo > a:
                break
        return a if a < b else None

    def add(self, a: int, b: int) -> int:
        """Cover [a, b); return how many of its pages were not covered before."""
        new, kept = b - a, []
        for lo, hi in self.ranges:
            if hi < a or lo > b:
                kept.append([lo, hi])
            else:
                new -= max(0, min(hi, b) - max(lo, a))
                a, b = min(a, lo), max(b, hi)
        kept.append([a, b])
        self.ranges = sorted(kept)
        return max(0, new)


def _last(idx: np.ndarray, run_of: np.ndarray) -> np.ndarray:
    """The last access of each run: where the run number changes next."""
    change = np.flatnonzero(np.diff(run_of)) if len(run_of) > 1 else np.array([], dtype=np.int64)
    return idx[np.append(change, len(run_of) - 1)]
