"""The search's order and its early stop: which candidate to export next, and which never to.

A candidate is a point in the space of shrink and quantization settings (`Knobs`). Before any
export, each has an `Estimate` (bytes, memory, phone latency: arithmetic and the latency
model); a candidate whose estimate misses the goal is never exported. The rest are evaluated
simplest first (fewest shape knobs turned, then fewest knobs; among those, the biggest), and
three rules stop the search early:

- **a failure rules out everything harsher**: if a candidate misses the quality floor, so will
  any candidate of the same format and heal that removes at least as much on every knob (fewer
  tokens, layers, neurons, heads; no more bits). Quality is assumed monotone in each knob: true
  of every row in docs/benchmarks.md, and the one assumption the search makes. Simplest first
  is what makes this rule pay: one knob turned too far alone rules out every combination that
  turns it as far;
- **a shape that fails in torch rules out every format's candidates of that shape, or harsher**:
  before exporting a candidate that cuts weights, its shrunk model is judged in torch; below
  the floor there, it is not exported, and no format's rounding can lift it back;
- **a pass rules out everything it beats**: once a candidate meets the floor and, as measured,
  the goal, a candidate whose estimate (a floor under its real figures) is no better on any of
  bytes, memory and latency cannot join the Pareto set.

A candidate that meets the floor but, measured, needs more memory than its estimate promised
rules out nothing: estimates are floors, and a floor says nothing about its neighbours' figures.
"""

from dataclasses import dataclass, field

TORCH = "torch"  # the pseudo-format of a structure(): the shrunk model before export

# bits a weight keeps, by recipe: fewer bits remove more
BITS = {"none": 32, "fp16": 16, "int8": 8, "int8-static": 8, "int4": 4, "int4-emb4": 4}


@dataclass(frozen=True)
class Knobs:
    """How much a candidate keeps: vocabulary tokens, layers, FFN and head fractions, positions,
    and the recipe; the format and the heal's budget are not ordered (a harsher candidate is
    only compared within the same format and heal)."""

    format: str
    recipe: str = "none"
    vocab: int | None = None  # tokens kept; None: the whole vocabulary
    layers: int | None = None  # None: all of them
    ffn: float = 1.0
    heads: float = 1.0
    seq: int | None = None
    heal_seconds: float = 0.0

    def harsher_or_equal(self, other: "Knobs") -> bool:
        """Removes at least as much as `other` on every knob (same format, same heal). A
        `structure()` (the shrunk model in torch, before any format rounds it) is the mildest
        of every format's candidates of that shape."""
        if other.format != TORCH and self.format != other.format or self.heal_seconds != other.heal_seconds:
            return False
        def at_most(a, b):  # None is "everything kept"
            return b is None or (a is not None and a <= b)
        return (BITS[self.recipe] <= BITS[other.recipe] and at_most(self.vocab, other.vocab)
                and at_most(self.layers, other.layers) and self.ffn <= other.ffn and self.heads <= other.heads
                and at_most(self.seq, other.seq))

    def structure(self) -> "Knobs":
        """The shape alone: what shrinking leaves in torch, unrounded, in no format."""
        return Knobs(TORCH, "none", self.vocab, self.layers, self.ffn, self.heads, self.seq, self.heal_seconds)

    def cuts(self) -> bool:
        return self.vocab is not None or self.layers is not None or self.ffn < 1 or self.heads < 1 or self.seq is not None

    def turned(self) -> int:
        """How many knobs move away from the teacher (a heal counts: it is the dearest to try)."""
        return sum((self.recipe != "none", self.vocab is not None, self.layers is not None, self.ffn < 1, self.heads < 1,
                    self.seq is not None, self.heal_seconds > 0))

    def describe(self) -> str:
        parts = [f"vocab:{self.vocab}" if self.vocab else "", f"layers={self.layers}" if self.layers else "",
                 f"ffn={self.ffn:g}" if self.ffn < 1 else "", f"heads={self.heads:g}" if self.heads < 1 else "",
                 f"seq={self.seq}" if self.seq else "", f"heal {self.heal_seconds:g}s" if self.heal_seconds else "",
                 self.recipe if self.recipe != "none" else "fp32"]
        return " + ".join(p for p in parts if p) + f" ({self.format})"


@dataclass(frozen=True)
class Estimate:
    """Before export: what the candidate's artifact would weigh and cost on the phone."""

    bytes: int
    memory: int  # the model's RSS on the phone, with the runtime's footprint
    latency_ms: float | None  # predicted on the phone; None: the latency model cannot say
    table: int = 0  # bytes of the token table left out of `memory`: a runtime that maps its file may leave them on flash

    def dominated_by(self, other: "Estimate") -> bool:
        """`other` is at least as good on every axis (unknown latency counts as no better)."""
        mine = self.latency_ms if self.latency_ms is not None else float("inf")
        theirs = other.latency_ms if other.latency_ms is not None else float("inf")
        return other.bytes <= self.bytes and other.memory <= self.memory and theirs <= mine

    def holding_the_table(self) -> "Estimate":
        return Estimate(self.bytes, self.memory + self.table, self.latency_ms)


@dataclass(frozen=True)
class Goal:
    memory: int  # bytes the model may hold on the phone (its share of the app budget)
    max_latency_ms: float | None = None

    def misses(self, e: Estimate) -> str | None:
        """Why an estimate cannot meet the goal, or None."""
        if e.memory > self.memory:
            return f"needs {e.memory / 2**20:.1f} MiB, over the {self.memory / 2**20:.1f} MiB it may use"
        if self.max_latency_ms is not None and e.latency_ms is not None and e.latency_ms > self.max_latency_ms:
            return f"{e.latency_ms:.1f} ms predicted, over the {self.max_latency_ms:g} ms target"
        return None


@dataclass
class Search:
    """The state of one search: every candidate's estimate, and what happened to each."""

    goal: Goal
    estimates: dict[Knobs, Estimate]
    passed: dict[Knobs, float] = field(default_factory=dict)  # met the floor and, measured, the goal: its quality
    failed: dict[Knobs, float] = field(default_factory=dict)  # evaluated, missed the floor
    over: dict[Knobs, str] = field(default_factory=dict)  # met the floor, missed the goal as measured: why
    measured: dict[Knobs, Estimate] = field(default_factory=dict)  # the artifact's real figures
    skipped: dict[Knobs, str] = field(default_factory=dict)  # never exported, and why
    pending: set[Knobs] = field(default_factory=set)  # handed out by next(), not yet recorded

    def __post_init__(self) -> None:
        for knobs, estimate in self.estimates.items():
            why = self.goal.misses(estimate)
            if why is not None:
                self.skipped[knobs] = f"predicted: {why}"

    def record(self, knobs: Knobs, quality: float, met: bool, measured: Estimate | None = None) -> None:
        """What the export measured: its quality, whether that meets the floor, and its figures
        (without them, the estimate stands in)."""
        self.pending.discard(knobs)
        self.skipped.pop(knobs, None)
        if measured is not None:
            self.measured[knobs] = measured
        if not met:
            self.failed[knobs] = quality
            return
        why = self.goal.misses(self.figures(knobs))
        if why is not None:
            self.over[knobs] = f"measured: {why}"
        else:
            self.passed[knobs] = quality

    def record_structure(self, knobs: Knobs, quality: float) -> None:
        """The candidate's shrunk model missed the floor in torch, before any export: so does
        the candidate, and every candidate of any format and recipe at least as harsh in shape
        (a format's rounding only loses quality: the same assumption as fewer bits)."""
        self.pending.discard(knobs)
        self.failed[knobs] = quality
        self.failed[knobs.structure()] = quality

    def holds_its_file(self, measured: Knobs) -> None:
        """`measured` needed at least its whole file in memory: its runtime, under its recipe,
        holds the token table too (it copies the file, or repacks the weights), so every
        candidate of that format and recipe still to come needs its table counted."""
        same = [k for k, e in self.estimates.items() if (k.format, k.recipe) == (measured.format, measured.recipe) and e.table
                and not (self.done(k) or k in self.pending or k in self.skipped)]
        for k in same:
            self.estimates[k] = self.estimates[k].holding_the_table()
            why = self.goal.misses(self.estimates[k])
            if why is not None:
                self.skipped[k] = f"predicted: {why} (the runtime holds its whole file, as {measured.describe()} measured)"

    def figures(self, knobs: Knobs) -> Estimate:
        return self.measured.get(knobs, self.estimates[knobs])

    def next(self) -> Knobs | None:
        """The simplest (then mildest) candidate still worth exporting, or None when the frontier is final (or
        every candidate left is pending)."""
        for knobs in sorted(self.estimates, key=self._order):
            if knobs in self.pending or self.done(knobs) or knobs in self.skipped:
                continue
            why = self._ruled_out(knobs)
            if why is None:
                self.pending.add(knobs)
                return knobs
            self.skipped[knobs] = why
        return None

    def done(self, knobs: Knobs) -> bool:
        return knobs in self.passed or knobs in self.failed or knobs in self.over

    def pareto(self) -> list[Knobs]:
        """The candidates that met the floor and the goal and that no other such candidate beats
        on bytes, memory and latency together; smallest first."""
        met = list(self.passed)
        f = self.figures
        return sorted((k for k in met if not any(o != k and f(k).dominated_by(f(o)) and f(k) != f(o) for o in met)),
                      key=lambda k: (f(k).bytes, f(k).memory, k.describe()))

    def _order(self, knobs: Knobs):
        e = self.estimates[knobs]
        # within a level, mildest first: its failure rules out the harsher settings of its knobs
        # shapes before recipes: one judged in torch rules out every format and recipe of it
        cuts = sum((knobs.vocab is not None, knobs.layers is not None, knobs.ffn < 1, knobs.heads < 1, knobs.seq is not None))
        return (cuts, knobs.turned(), -e.bytes, -e.memory, e.latency_ms if e.latency_ms is not None else float("inf"), knobs.describe())

    def _ruled_out(self, knobs: Knobs) -> str | None:
        for bad in self.failed:
            if knobs.harsher_or_equal(bad):
                return f"harsher than {bad.describe()}, which missed the floor"
        for good in self.passed:
            if self.estimates[knobs].dominated_by(self.figures(good)):
                return f"no better than {good.describe()}, which met the floor"
        return None
