"""Page-cache policies, one registry: what stays resident when the mapped weights do not all fit.

Every policy answers the same question for a page-cache capacity C (pages left for the file's
pages once the anonymous memory is held): how many pages each access of the trace misses, how
many file pages are resident after each step, and how many it locks at load. `prepare` does the
work shared by every capacity, so the latency-vs-memory curve costs one pass over the trace.

- `lru`: exact LRU. One pass computes every access's stack distance d (segment-level, exact at
  page level, trace.py); an access misses at capacity C iff d >= C. The KV cache grows while
  decoding and shrinks the cache: an access misses iff d + kv_pages >= C, still exact, since a
  shrinking LRU cache always holds the top of the same stack.
- `two-list`: Linux-like active/inactive lists, simulated per capacity at segment granularity.
- `pinned`: mlock the hottest bytes (by access count, ties by first access), stream the rest
  through the remaining cache with LRU.
"""

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from pocketfit.errors import BadInput

COLD = np.iinfo(np.int64).max // 4  # the stack distance of a first access: it misses at every capacity


@dataclass(frozen=True)
class Outcome:
    missing: np.ndarray  # pages missed per access
    resident: np.ndarray  # file pages resident after each step
    pinned: int = 0  # pages locked at load (read then, resident for good)


POLICIES: dict[str, type] = {}


def register(name: str):
    def add(cls):
        cls.name = name
        POLICIES[name] = cls
        return cls
    return add


def get(policy) -> object:
    """A policy by name (`"lru"`) or as given (`Pinned(pin=...)`)."""
    if isinstance(policy, str):
        if policy not in POLICIES:
            raise BadInput(f"unknown page-cache policy {policy!r}; known: {', '.join(POLICIES)}")
        return POLICIES[policy]()
    return policy


def stack_distances(seg: np.ndarray, pages: np.ndarray) -> np.ndarray:
    """Per access i of segment s: the pages of other segments touched since s's last access p,
    plus s's own pages - 1 (COLD for a first access).

    Vectorized, O(n log^2 n): the distinct pages seen before i (F) less those whose latest access
    before i is at or before p (H) are exactly the other segments touched in (p, i). H counts the
    accesses k <= p whose next access comes at or after i: a 2-D dominance count, done level by
    level of a merge sort (points in a left half, queries in the right half of each block)."""
    seg = np.asarray(seg, dtype=np.int64)
    n = len(seg)
    w = pages[seg].astype(np.int64)
    order = np.argsort(seg, kind="stable")
    same = seg[order][1:] == seg[order][:-1]
    prev, nxt = np.full(n, -1, dtype=np.int64), np.full(n, n, dtype=np.int64)
    prev[order[1:][same]] = order[:-1][same]
    nxt[order[:-1][same]] = order[1:][same]
    first = prev < 0
    seen = np.concatenate([[0], np.cumsum(np.where(first, w, 0))])[:-1]  # F: distinct pages before i
    q = np.flatnonzero(~first)
    x, y = prev[q], q
    held = w[x].copy()  # H starts with k = p itself, whose next access is i
    k = np.arange(n, dtype=np.int64)
    span = n + 1  # keys: block * span + next access, so one sorted array serves every block
    level = 0
    while (1 << level) < n:
        left = k[((k >> level) & 1) == 0]
        key = (left >> (level + 1)) * span + nxt[left]
        by = np.argsort(key, kind="stable")
        key = key[by]
        total = np.concatenate([[0], np.cumsum(w[left][by])])
        right = ((x >> level) & 1) == 1
        block = x[right] >> (level + 1)
        lo = np.searchsorted(key, block * span + y[right])
        hi = np.searchsorted(key, (block + 1) * span)
        held[right] += total[hi] - total[lo]
        level += 1
    out = np.full(n, COLD, dtype=np.int64)
    out[q] = seen[q] - held + w[q] - 1
    return out


def _first_touch(trace) -> np.ndarray:
    first = np.zeros(len(trace.seg), dtype=bool)
    first[np.unique(trace.seg, return_index=True)[1]] = True
    return first


def _distinct_per_step(trace, mask=None) -> np.ndarray:
    """Distinct pages touched by the end of each step (of the accesses in `mask`)."""
    first = _first_touch(trace) if mask is None else _first_touch_masked(trace, mask)
    return np.cumsum(np.bincount(trace.step, np.where(first, trace.weight, 0), trace.steps)).astype(np.int64)


def _first_touch_masked(trace, mask):
    first = np.zeros(len(trace.seg), dtype=bool)
    idx = np.flatnonzero(mask)
    first[idx[np.unique(trace.seg[idx], return_index=True)[1]]] = True
    return first


def _kv_at_end(trace) -> np.ndarray:
    ends = np.zeros(trace.steps, dtype=np.int64)
    ends[trace.step] = trace.kv_pages  # the last write per step wins: the KV cache after that step
    return ends


@register("lru")
@dataclass(frozen=True)
class Lru:
    def prepare(self, trace):
        d = stack_distances(trace.seg, trace.pages)
        return np.where(d == COLD, COLD, d + trace.kv_pages), _distinct_per_step(trace)

    def run(self, trace, prepared, capacity: int) -> Outcome:
        threshold, distinct = prepared
        missing = np.where(threshold >= capacity, trace.weight, 0)
        return Outcome(missing, np.minimum(distinct, np.maximum(0, capacity - _kv_at_end(trace))))


@register("pinned")
@dataclass(frozen=True)
class Pinned:
    """mlock the hottest `pin` bytes (at most what the cache holds), whole segments in rank
    order; None: as much as the cache holds while keeping `reserve_kb` for the rest to stream
    through (two read-ahead windows: the one being read and the one being consumed)."""

    pin: int | None = None
    reserve_kb: int = 256

    def prepare(self, trace):
        counts = np.bincount(trace.seg, minlength=len(trace.pages))
        first = np.full(len(trace.pages), len(trace.seg))
        np.minimum.at(first, trace.seg, np.arange(len(trace.seg)))
        touched = np.flatnonzero(counts)
        rank = touched[np.lexsort((first[touched], -counts[touched]))]
        return rank, np.cumsum(trace.pages[rank]), {}

    def pinned_segments(self, trace, prepared, capacity: int) -> np.ndarray:
        rank, cum, _ = prepared
        want = (self.pin // trace.page_size if self.pin is not None
                else capacity - max(1, self.reserve_kb * 1024 // trace.page_size))
        want = min(want, capacity - int(trace.kv_pages.max()))  # the KV cache at its largest needs its room too
        return rank[: int(np.searchsorted(cum, want, side="right"))]

    def run(self, trace, prepared, capacity: int) -> Outcome:
        pinned = self.pinned_segments(trace, prepared, capacity)
        n = int(trace.pages[pinned].sum())
        is_pinned = np.zeros(len(trace.pages), dtype=bool)
        is_pinned[pinned] = True
        rest = ~is_pinned[trace.seg]
        memo = prepared[2]
        key = len(pinned)
        if key not in memo:  # distances among the unpinned accesses only: pinned pages take no room in the stream
            idx = np.flatnonzero(rest)
            d = np.full(len(trace.seg), -1, dtype=np.int64)
            d[idx] = stack_distances(trace.seg[idx], trace.pages)
            memo[key] = (d, _distinct_per_step(trace, rest))
        d, distinct = memo[key]
        stream = capacity - n
        threshold = np.where(d == COLD, COLD, d + trace.kv_pages)
        missing = np.where(rest & (threshold >= stream), trace.weight, 0)
        resident = n + np.minimum(distinct, np.maximum(0, stream - _kv_at_end(trace)))
        return Outcome(missing, resident, n)


@register("two-list")
@dataclass(frozen=True)
class TwoList:
    """Linux's active/inactive file lists, simplified: a page enters the inactive list; touched
    again there, it moves to the active list; the active list keeps at most `active_fraction` of
    the cache (the rest demotes to the inactive list's head); eviction takes the inactive list's
    tail. A segment moves as a unit; eviction may take part of one (its first pages)."""

    active_fraction: float = 0.5  # Linux balances file active:inactive near 1:1 below ~1 GB (inactive_ratio 1)

    def __post_init__(self):
        if not 0 < self.active_fraction < 1:
            raise BadInput(f"two-list active_fraction {self.active_fraction}: give a fraction between 0 and 1")

    def prepare(self, trace):
        return None

    def run(self, trace, prepared, capacity: int) -> Outcome:
        pages = trace.pages.tolist()
        inactive, active = OrderedDict(), OrderedDict()  # segment -> resident pages; last = most recent
        sizes = [0, 0]  # inactive, active
        missing = np.zeros(len(trace.seg), dtype=np.int64)
        resident = np.zeros(trace.steps, dtype=np.int64)
        steps, kv = trace.step.tolist(), trace.kv_pages.tolist()
        for i, s in enumerate(trace.seg.tolist()):
            w, cap = pages[s], max(0, capacity - kv[i])
            if s in active:
                missing[i] = w - active[s]
                sizes[1] += w - active.pop(s)
                active[s] = w
            elif s in inactive:
                missing[i] = w - inactive[s]
                sizes[0] -= inactive.pop(s)
                active[s] = w
                sizes[1] += w
            else:
                missing[i] = w
                inactive[s] = w
                sizes[0] += w
            while active and sizes[1] > self.active_fraction * cap:  # demote the oldest active
                t, r = active.popitem(last=False)
                sizes[1] -= r
                inactive[t] = r  # to the inactive list's head, as shrink_active_list does
                sizes[0] += r
            _evict(inactive, sizes, 0, sizes[0] + sizes[1] - cap)
            _evict(active, sizes, 1, sizes[0] + sizes[1] - cap)
            resident[steps[i]] = sizes[0] + sizes[1]
        return Outcome(missing, resident)


def _evict(lst: OrderedDict, sizes: list, which: int, excess: int) -> None:
    """Take `excess` pages from the list's least recent end, the first pages of a segment first."""
    while excess > 0 and lst:
        s, r = next(iter(lst.items()))
        take = min(r, excess)
        if take == r:
            del lst[s]
        else:
            lst[s] = r - take
        sizes[which] -= take
        excess -= take
