"""simulate: faults, flash traffic and latency of an artifact on a phone when its mapped weights
page from flash — at the phone's memory budget and along the whole latency-vs-memory curve.

Every figure here is simulated from a device profile (runtime/devices/) and labelled so; the
compute part of each latency is the caller's stated figure (a measurement on this machine, or
a number given), never a guess made here.
"""

from dataclasses import dataclass, field

import numpy as np

from pocketfit.converter.layout import COPIED, MAPPED, Layout
from pocketfit.errors import BadInput
from pocketfit.units import human

from . import policies
from .flash import Flash
from .folios import replay
from .readahead import Cost, Readahead, cost, run_cost
from .readahead import load as load_cost
from .trace import build

GRID = 48  # budgets on the curve: enough to see its knees; the LRU curve is exact between them anyway
RUNS = 3  # an inference repeated: the first is cold, the last is the steady state (two-list settles in two)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@dataclass(frozen=True)
class Run:
    resident_bytes: int
    major_faults: int
    flash_bytes: int
    latency_s: float

    def to_dict(self) -> dict:
        return {"resident_bytes": self.resident_bytes, "major_faults": self.major_faults,
                "flash_bytes": self.flash_bytes, "latency_s": self.latency_s}


@dataclass(frozen=True)
class Point:
    budget: int
    latency_s: float  # warm: per inference, or per decoded token
    major_faults: int
    flash_bytes: int
    cold_latency_s: float

    def to_dict(self) -> dict:
        return {"budget": self.budget, "latency_s": self.latency_s, "major_faults": self.major_faults,
                "flash_bytes": self.flash_bytes, "cold_latency_s": self.cold_latency_s}


@dataclass(frozen=True)
class Simulation:
    device: str
    policy: str
    readahead: Readahead
    readahead_pages: int
    page_size: int
    budget: int
    arena: int
    kv_cache: int
    copied_weights: int
    mapped_weights: int  # mapped and pageable
    compute_seconds: float
    compute_source: str
    fits: bool
    reason: str
    tokens: int = 0
    overlap: bool = False  # read-ahead credited as running behind compute
    locked_weights: int = 0  # mapped, but mlocked by the runtime at load: resident for good
    footprint: int = 0
    budget_source: str = ""
    load: Run | None = None
    cold: Run | None = None
    warm: Run | None = None
    curve: tuple[Point, ...] = ()
    recommendation: str = ""
    latency_target_s: float | None = None
    smallest_budget: int | None = None  # the smallest budget whose warm latency meets the target
    notes: tuple[str, ...] = field(default=())
    heap: int = 0  # the runtime's own anonymous memory beyond arena and copies, as measured

    @property
    def anonymous(self) -> int:
        return self.copied_weights + self.arena + self.kv_cache + self.heap

    @property
    def meets_target(self) -> bool | None:
        if self.latency_target_s is None or self.warm is None:
            return None
        return self.warm.latency_s <= self.latency_target_s

    def to_dict(self) -> dict:
        run = lambda r: r.to_dict() if r else None  # noqa: E731
        return {
            "simulated": True, "device": self.device, "policy": self.policy, "readahead": self.readahead.label,
            "readahead_pages": self.readahead_pages, "page_size": self.page_size, "tokens": self.tokens,
            "budget": self.budget, "budget_source": self.budget_source, "footprint": self.footprint, "anonymous": self.anonymous, "arena": self.arena, "heap": self.heap,
            "kv_cache": self.kv_cache, "copied_weights": self.copied_weights, "locked_weights": self.locked_weights, "mapped_weights": self.mapped_weights,
            "fits": self.fits, "reason": self.reason, "compute_seconds": self.compute_seconds,
            "compute_source": self.compute_source, "overlap": self.overlap, "load": run(self.load), "cold": run(self.cold), "warm": run(self.warm),
            "curve": [p.to_dict() for p in self.curve], "latency_target_s": self.latency_target_s,
            "smallest_budget": self.smallest_budget, "recommendation": self.recommendation, "notes": list(self.notes),
        }

    def render(self) -> str:
        per = "per decoded token" if self.tokens else "per inference"
        lines = [
            f"simulated on {self.device}: {self.policy} page cache, {self.readahead.label}, {human(self.page_size)} pages",
            f"budget {human(self.budget)} ({self.budget_source})",
            f"anonymous {human(self.anonymous)}: copied weights {human(self.copied_weights)}, arena {human(self.arena)}, "
            f"KV cache {human(self.kv_cache)}, runtime heap {human(self.heap)}; mapped weights {human(self.mapped_weights)}"
            + (f", and {human(self.locked_weights)} mapped but mlocked by the runtime" if self.locked_weights else ""),
            f"compute {self.compute_seconds * 1e3:.2f} ms per run: {self.compute_source}",
        ]
        if self.warm is not None:
            lines.append(f"{'run':<6}{'resident':>12}{'major faults':>14}{'flash read':>12}{'latency':>12}")
            for name, r in (("load", self.load), ("cold", self.cold), ("warm", self.warm)):
                lines.append(f"{name:<6}{human(r.resident_bytes):>12}{r.major_faults:>14}{human(r.flash_bytes):>12}"
                             f"{r.latency_s * 1e3:>9.2f} ms")
            lines.append(f"(warm: {per}; latencies are simulated for {self.device}, compute as stated above)")
        lines.append(f"verdict: {self.reason}")
        if self.latency_target_s is not None:
            smallest = human(self.smallest_budget) if self.smallest_budget is not None else "no budget on the curve"
            lines.append(f"smallest budget for {self.latency_target_s * 1e3:.1f} ms {per}: {smallest}")
        if self.recommendation:
            lines.append(f"recommendation: {self.recommendation}")
        return "\n".join(lines)


def simulate(layout: Layout, device, *, compute_seconds: float, compute_source: str = "given by the caller",
             policy="lru", readahead: Readahead = Readahead(), budget: int | None = None, tokens: int = 0,
             kv_cache: int = 0, ids=None, footprint: int | None = None, latency_target: float | None = None,
             grid: int = GRID, overlap: bool = False, heap: int = 0) -> Simulation:
    """Simulate `layout` on `device` at `budget` (default: the app budget less the runtime's
    footprint) and along the curve of budgets from the anonymous memory alone to everything
    resident. `compute_seconds` is the time of one run with every weight in memory; `tokens` > 0
    simulates a prefill over `ids` and that many decode steps. `overlap`: asynchronous read-ahead
    runs while the model computes (latency = the faults' reads + max(compute, read-ahead)),
    instead of the default, every read and compute one after another (an upper bound). `heap`:
    anonymous memory the runtime holds beyond the arena and the copied weights (activations it
    plans itself, its own structures), which no file states: take it from a measurement
    (`profile`: the model's anonymous memory less the copied weights and the arena). Where the
    layout says a kernel reads a weight in tiles of rows, not front to back (Weight.tile), and
    read-around is on, the trace is replayed page by page (folios.py) instead of costed in
    closed form."""
    if compute_seconds < 0:
        raise BadInput(f"compute time {compute_seconds} s is negative")
    if kv_cache < 0 or heap < 0:
        raise BadInput(f"KV cache {kv_cache} and heap {heap} bytes must not be negative")
    pol = policies.get(policy)
    if footprint is None:
        from pocketfit.converter.backends import FORMATS
        from pocketfit.runtime.runtimes import footprint_of

        footprint = footprint_of(FORMATS[layout.format].runtime).footprint
    if budget is None:
        budget = device.app_budget - footprint
        budget_source = f"the app budget of {human(device.app_budget)} less the runtime's footprint of {human(footprint)}"
    else:
        budget_source = "given"
    ps = device.page_size
    ra = readahead.pages(ps)
    copied, arena = layout.held_bytes(COPIED), layout.arena + heap
    locked = sum(w.length for w in layout.weights if w.held == MAPPED and w.locked)
    base = dict(device=device.id, policy=pol.name, readahead=readahead, readahead_pages=ra, page_size=ps,
                budget=budget, arena=layout.arena, heap=heap, kv_cache=kv_cache, copied_weights=copied, locked_weights=locked,
                mapped_weights=layout.held_bytes(MAPPED) - locked, compute_seconds=compute_seconds,
                compute_source=compute_source, tokens=tokens, overlap=overlap, footprint=footprint, budget_source=budget_source, latency_target_s=latency_target,
                notes=tuple(layout.notes))
    need = copied + locked + arena + kv_cache  # what never leaves memory: the page cache gets the rest
    if budget < need:
        if layout.arena > budget:
            what = f"the arena alone needs {_mb(layout.arena)}"
        elif copied + locked + arena > budget:
            held = "copied and mlocked weights" if locked else "copied weights"
            what = f"the {held}{', arena and runtime heap' if heap else ' and arena'} need {_mb(copied + locked + arena)}"
        else:
            what = f"the weights held in memory, arena and KV cache need {_mb(need)}"
        return Simulation(fits=False, reason=f"does not fit: {what}, over the budget of {_mb(budget)} on {device.id}", **base)

    model = _Model(build(layout, ps, ids=ids, runs=RUNS, tokens=tokens, kv_cache=kv_cache), Flash.of(device), ra,
                   compute_seconds, copied + locked, arena, tokens, overlap)
    prepared = model.prepare(pol)
    load, cold, warm = model.runs(pol, prepared, budget)
    full = need + model.trace.file_pages * ps
    cache_pages = np.unique(np.linspace(0, model.trace.file_pages, max(2, grid)).round().astype(np.int64))
    budgets = np.unique(np.append(need + cache_pages * ps, [budget] if budget < full else []))
    curve = tuple(model.point(pol, prepared, int(b)) for b in budgets)
    smallest = model.smallest(pol, prepared, curve, latency_target) if latency_target is not None else None
    resident = warm.resident_bytes - need
    where = f"simulated on {device.id}"
    if budget >= full:
        reason = f"fits: every mapped page stays resident; warm {warm.latency_s * 1e3:.2f} ms ({where})"
    else:
        reason = (f"fits with paging: {human(max(0, resident))} of the {human(model.trace.file_pages * ps)} of weights it reads "
                  f"stay resident; warm {warm.latency_s * 1e3:.2f} ms with {warm.major_faults} major faults and "
                  f"{human(warm.flash_bytes)} read from flash ({where})")
    return Simulation(fits=True, reason=reason, load=load, cold=cold, warm=warm, curve=curve,
                      recommendation=model.recommend(budget, full, where, (pol, prepared)), smallest_budget=smallest, **base)


@dataclass
class _Model:
    trace: object
    flash: Flash
    ra: int
    compute: float
    held: int  # weights in memory for good: copied (anonymous) and mlocked, both read at load
    arena: int
    tokens: int
    overlap: bool

    def __post_init__(self):
        self.at_load = load_cost(self.trace, self.ra)
        self.replays = {}

    def replayed(self, pol, prepared, capacity: int, preread) -> tuple[Cost, np.ndarray]:
        """Cost and file pages resident per step, replayed page by page (folios.py) with the
        policy's residency at folio granularity; memoized, as the curve and advice ask again."""
        key = (pol, capacity, preread is not None)
        if key not in self.replays:
            t, pinned = self.trace, None
            if isinstance(pol, policies.Pinned):
                pinned = np.zeros(int(t.edges[-1]), dtype=bool)
                for s in pol.pinned_segments(t, prepared, capacity).tolist():
                    pinned[t.start[s]:t.start[s] + t.pages[s]] = True
            two_list = isinstance(pol, policies.TwoList)
            r = replay(t, capacity, self.ra, two_list=two_list, active_fraction=pol.active_fraction if two_list else 0.5,
                       pinned=pinned, preread=preread.ranges if preread is not None else ())
            self.replays[key] = (Cost(r.faults, r.pages, r.requests), r.resident)
        return self.replays[key]

    def prepare(self, pol):
        return pol.prepare(self.trace)

    def steps(self, pol, prepared, budget: int):
        """Per step: resident bytes, major faults, flash bytes, latency; and the pages pinned at load."""
        t, ps = self.trace, self.trace.page_size
        capacity = (budget - self.held - self.arena) // ps
        out = pol.run(t, prepared, capacity)
        kv_end = np.zeros(t.steps, dtype=np.int64)
        kv_end[t.step] = t.kv_pages
        preread = self.at_load[3]  # what the load read serves the first run, if the cache can hold it
        preread = preread if len(preread) <= capacity - kv_end[0] else None
        if self.ra > 1 and t.tiled:  # out of order: the closed form does not hold (readahead.py)
            c, file_resident = self.replayed(pol, prepared, capacity, preread)
        else:
            c, file_resident = cost(t, out.missing, self.ra, preread), out.resident
        flash = self.flash.seconds(c.requests, c.pages * ps)
        if self.overlap:  # only the faults' own reads stall; the read-ahead windows hide behind compute
            sync = flash * np.divide(c.faults, c.requests, out=np.zeros(len(flash)), where=c.requests > 0)
            seconds = sync + np.maximum(self.compute, flash - sync)
        else:
            seconds = self.compute + flash
        resident = self.held + self.arena + (kv_end + file_resident) * ps
        return resident, c.faults, c.pages * ps, seconds, out.pinned

    def runs(self, pol, prepared, budget: int) -> tuple[Run, Run, Run]:
        resident, faults, nbytes, seconds, pinned = self.steps(pol, prepared, budget)
        ps = self.trace.page_size
        # Load: the header through the mapping, held weights by read() (readahead.load); pinned
        # pages by mlock's faults, as one sequential run.
        faults0, pages0, requests0, _ = self.at_load
        pin_faults, pin_requests = run_cost(np.array([pinned]), self.ra) if pinned else (np.zeros(1, int), np.zeros(1, int))
        load_bytes = (pages0 + pinned) * ps
        load = Run(self.held + self.arena + pinned * ps, faults0 + int(pin_faults[0]), load_bytes,
                   float(self.flash.seconds(requests0 + int(pin_requests[0]), load_bytes)))
        cold = Run(int(resident[0]), int(faults[0]), int(nbytes[0]), float(seconds[0]))
        warm_steps = slice(1, None) if self.tokens else slice(-1, None)  # every decode step, or the last inference
        warm = Run(int(resident[-1]), round(float(faults[warm_steps].mean())), round(float(nbytes[warm_steps].mean())),
                   float(seconds[warm_steps].mean()))
        return load, cold, warm

    def point(self, pol, prepared, budget: int) -> Point:
        _, cold, warm = self.runs(pol, prepared, budget)
        return Point(budget, warm.latency_s, warm.major_faults, warm.flash_bytes, cold.latency_s)

    def smallest(self, pol, prepared, curve, target: float) -> int | None:
        """The smallest budget on the curve meeting `target`, refined by bisection (to a page)
        between it and the curve point below it."""
        ok = [i for i, p in enumerate(curve) if p.latency_s <= target]
        if not ok:
            return None
        i = ok[0]
        if i == 0:
            return curve[0].budget
        ps = self.trace.page_size
        lo, hi = curve[i - 1].budget // ps, curve[i].budget // ps  # lo misses the target, hi meets it
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.point(pol, prepared, mid * ps).latency_s <= target:
                hi = mid
            else:
                lo = mid
        return hi * ps

    def recommend(self, budget: int, full: int, where: str, done) -> str:
        if budget >= full:
            return "plain mmap: everything it reads stays resident at this budget, nothing to pin"
        lru = done[0] if isinstance(done[0], policies.Lru) else policies.Lru()
        plain = self.runs(lru, done[1] if lru is done[0] else self.prepare(lru), budget)[2].latency_s
        capacity = budget - self.held - self.arena - self.trace.kv_pages.max() * self.trace.page_size
        best = (plain, None)
        for fraction in (0.25, 0.5, 0.75, None):
            pin = policies.Pinned(pin=None if fraction is None else int(capacity * fraction))
            prepared = pin.prepare(self.trace)
            load, _, warm = self.runs(pin, prepared, budget)
            latency, pinned = warm.latency_s, load.flash_bytes - self.at_load[1] * self.trace.page_size  # what mlock read
            if pinned and latency < best[0] * 0.99:  # a 1% gain is not worth an mlock
                best = (latency, pinned)
        if best[1] is None:
            return f"plain mmap: warm {plain * 1e3:.2f} ms; pinning does not help at this budget ({where})"
        return (f"pin the hottest {_mb(best[1])} with mlock and stream the rest: warm {best[0] * 1e3:.2f} ms "
                f"against {plain * 1e3:.2f} ms with plain mmap ({where})")
