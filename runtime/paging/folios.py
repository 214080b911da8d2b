"""A page-by-page replay of Linux 6.18's mmap read-around over a page cache of folios, for traces
that read some tensor out of order (trace.Tiles); readahead.py's docstring says what it models
and why the closed form does not hold there.

Residency follows the simulated policy, at folio granularity (read-around brings whole folios in,
and the kernel evicts whole folios): `lru` exact LRU over folios; `two-list` the kernel's
active/inactive lists with referenced bits, reclaiming 32 pages at a time (SWAP_CLUSTER_MAX);
`pinned` the pinned segments resident for good and LRU for the rest. Pages read ahead take room
as soon as they are read, before they are touched.
"""

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

NODE = 64  # slots of an xarray node (XA_CHUNK_SHIFT 6)
BATCH = 32  # pages reclaimed per pass (SWAP_CLUSTER_MAX)


@dataclass(frozen=True)
class Replay:
    """Per step of the trace: major faults, pages read, read requests, file pages resident at its end;
    and `lost`: async read-aheads that read nothing (the skewed next-miss, readahead.py)."""

    faults: np.ndarray
    pages: np.ndarray
    requests: np.ndarray
    resident: np.ndarray
    lost: int = 0


def next_miss(present, index: int, limit: int, folio_start) -> int:
    """page_cache_next_miss(index, limit) as 6.18's xarray walk returns it: the first index from
    `index` whose slot holds no folio, or index + limit. xas_load() of a page inside a large folio
    lands on the folio's first slot (a sibling entry resolves to its canonical slot), and xas_next()
    then advances index and slot together: the slots probed lag the index by (index - folio start)
    until the walk leaves its 64-slot node, where __xas_next re-syncs the slot to the index. So
    the index returned is the real hole plus that skew. `present(i)`, `folio_start(i)` look pages up."""
    if not present(index):
        return index
    at, slot = index, folio_start(index)
    for _ in range(limit - 1):
        at += 1
        slot = at if (slot % NODE) == NODE - 1 else slot + 1
        if not present(slot):
            return at
    return index + limit


def _next_size(size: int, ra: int) -> int:
    """get_next_ra_size: 4x while small, 2x up to half the maximum, then the maximum."""
    return 4 * size if size < ra // 16 else (2 * size if size <= ra // 2 else ra)


class Cache:
    """File pages in the page cache as folios (first page -> pages), PG_readahead marks, one
    read-ahead state per file (ra.start, size, async_size, order: file-relative pages, shared by
    every stream of the file, as the kernel keeps one file_ra_state per open file), and the order
    of eviction."""

    def __init__(self, pages: int, capacity: int, ra: int, *, two_list: bool = False,
                 active_fraction: float = 0.5, pinned: np.ndarray | None = None):
        self.folio = [-1] * pages  # page -> first page of its folio, -1: not in the cache
        self.size: dict[int, int] = {}
        self.mark: set[int] = set()
        self.young: set[int] = set()  # touched since the reclaim scan last saw it (the accessed bit)
        self.referenced: set[int] = set()  # PG_referenced
        self.inactive: OrderedDict = OrderedDict()  # first = least recent; LRU uses this list alone
        self.active: OrderedDict = OrderedDict()
        self.active_pages = self.cached = self.pinned = 0
        self.capacity, self.ra, self.two_list, self.active_fraction = capacity, ra, two_list, active_fraction
        self.state: dict[int, list[int]] = {}  # file start -> [start, size, async_size, order]
        self.faults = self.read = self.requests = self.lost = 0
        if pinned is not None:
            for p in np.flatnonzero(pinned).tolist():
                self.folio[p] = p
                self.pinned += 1

    def touch(self, p: int, lo: int, hi: int) -> None:
        """Page p of the file whose pages are [lo, hi) is read through the mapping."""
        f = self.folio[p]
        if f < 0:  # not in the cache: a major fault and a synchronous read-around
            self.faults += 1
            start = max(lo, p - self.ra // 2)
            self.state[lo] = [start - lo, self.ra, self.ra // 4, 0]
            self._read(lo, hi, start - lo, self.ra, self.ra // 4, 0)
        elif f in self.mark:  # fault-around never maps a marked folio: any touch of it runs page_cache_async_ra
            self.mark.discard(f)
            if not self._async(p - lo, f - lo, lo, hi):
                self.young.add(f)
                self.lost += 1
                return
        f = self.folio[p]
        if f >= 0:
            self.used(f)

    def _async(self, index: int, first: int, lo: int, hi: int) -> bool:
        start, size, async_size, order = self.state.get(lo, [0, 0, 0, 0])
        n = self.size[first + lo]
        if index == (start + size - async_size) // n * n:  # the marked folio where the window put it: next window
            start += size
            size = max(size, _next_size(size, self.ra))
        else:  # "interleaved" path: read from the next missing page, unless it is more than ra away
            folio = self.folio
            gap = next_miss(lambda i: lo + i < hi and folio[lo + i] >= 0, index + 1, self.ra, lambda i: folio[lo + i] - lo)
            if gap - index > self.ra:
                return False
            start, size = gap, _next_size(gap - index + self.ra, self.ra)
        order += 2
        align = 1 << min(order, (self.ra & -self.ra).bit_length() - 1)
        end = start + size
        if end // align * align > start:
            size -= end - end // align * align
        self.state[lo] = [start, size, size, order]
        self._read(lo, hi, start, size, size, order)
        return True

    def _read(self, lo: int, hi: int, start: int, size: int, async_size: int, order: int) -> None:
        """page_cache_ra_order: folios of min(order, log2 size) pages, aligned, over the window
        (file-relative), the one holding its page start + size - async_size marked PG_readahead; at a
        page already cached it falls back to order-0 pages for the rest, skipping cached ones."""
        limit = min(hi - lo - 1, start + size - 1)
        order = min(order, max(0, size.bit_length() - 1))
        self.state[lo][3] = order  # ra->order keeps the order it read with
        mark, folio = start + size - async_size, self.folio
        read, i = self.read, start
        while i <= limit and order > 0:
            o = order
            if i & ((1 << o) - 1):
                o = min(o, (i & -i).bit_length() - 1)
            while o > 0 and i + (1 << o) - 1 > limit:
                o -= 1
            if max(folio[lo + i:lo + i + (1 << o)]) >= 0:
                break
            self._add(lo + i, 1 << o, i <= mark < i + (1 << o))
            i += 1 << o
        for q in range(i, limit + 1):  # order 0, or the fallback
            if folio[lo + q] < 0:
                self._add(lo + q, 1, q == mark)
        self.requests += self.read > read

    def _add(self, first: int, n: int, mark: bool) -> None:
        self.folio[first:first + n] = [first] * n
        self.size[first] = n
        self.inactive[first] = None
        if mark:
            self.mark.add(first)
        self.cached += n
        self.read += n
        while self.cached > max(0, self.capacity - self.pinned) and (self.inactive or self.active):
            self._reclaim()

    def used(self, f: int) -> None:
        """Folio f was touched (pinned pages are in no list)."""
        if self.two_list:
            self.young.add(f)
        elif f in self.inactive:
            self.inactive.move_to_end(f)

    def _evict(self, f: int) -> int:
        n = self.size.pop(f)
        self.folio[f:f + n] = [-1] * n
        self.mark.discard(f)
        self.young.discard(f)
        self.referenced.discard(f)
        self.cached -= n
        return n

    def _reclaim(self) -> None:
        if not self.two_list:
            self._evict(self.inactive.popitem(last=False)[0])
            return
        freed = 0
        while freed < BATCH and (self.inactive or self.active):
            while self.active and self.active_pages > self.active_fraction * self.cached:  # shrink_active_list
                f, _ = self.active.popitem(last=False)
                self.young.discard(f)
                self.active_pages -= self.size[f]
                self.inactive[f] = None
            if not self.inactive:
                f, _ = self.active.popitem(last=False)
                self.active_pages -= self.size[f]
                self.inactive[f] = None
            f, _ = self.inactive.popitem(last=False)
            if f in self.young:  # folio_check_references: used since the last scan
                self.young.discard(f)
                if f in self.referenced:  # and before it: promote
                    self.referenced.discard(f)
                    self.active[f] = None
                    self.active_pages += self.size[f]
                else:
                    self.referenced.add(f)
                    self.inactive[f] = None
                continue
            freed += self._evict(f)


def replay(trace, capacity: int, ra: int, *, two_list: bool = False, active_fraction: float = 0.5,
           pinned: np.ndarray | None = None, preread=()) -> Replay:
    """Replay `trace` page by page through a page cache of `capacity` pages (less the KV cache
    at each access) with `ra`-page read-around. `pinned`: per page of the page space, locked at
    load (resident, outside the lists). `preread`: page ranges the load read, in the cache first."""
    total = int(trace.edges[-1])
    cache = Cache(total, capacity, ra, two_list=two_list, active_fraction=active_fraction, pinned=pinned)
    for a, b in preread:
        for p in range(a, b):
            if cache.folio[p] < 0:
                cache._add(p, 1, False)
    cache.read = 0
    steps = trace.steps
    out = {k: np.zeros(steps, dtype=np.int64) for k in ("faults", "pages", "requests", "resident")}
    start, pages, lo, hi = (a.tolist() for a in (trace.start, trace.pages, trace.file_start, trace.file_end))
    step, kv = trace.step.tolist(), trace.kv_pages.tolist()
    before = (0, 0, 0)
    folio, mark, used = cache.folio, cache.mark, cache.used
    for i, s in enumerate(trace.seg.tolist()):
        cache.capacity = capacity - kv[i]
        for p in range(start[s], start[s] + pages[s]):
            f = folio[p]
            if f >= 0 and f not in mark:  # cached, no read-ahead to start: the common case, inline
                used(f)
            else:
                cache.touch(p, lo[s], hi[s])
        if i + 1 == len(step) or step[i + 1] != step[i]:
            now = (cache.faults, cache.read, cache.requests)
            for key, a, b in zip(("faults", "pages", "requests"), now, before):
                out[key][step[i]] = a - b
            out["resident"][step[i]] = cache.cached + cache.pinned
            before = now
    return Replay(**out, lost=cache.lost)
