"""The latency model: each op takes the longer of its arithmetic at the kernel's share of the
cores' peak and its bytes at the memory's share of its bandwidth, plus a fixed cost per op.

    t = sum over ops of max(flops / (peak[precision] x e_compute),
                            weight bytes / (bandwidth x e_memory) + activation bytes / cache bandwidth) + ops x overhead

The peaks are facts about a machine (a phone profile's [compute] table, or this machine's own
micro-benchmark); the efficiencies e and the overhead are fitted per runtime and precision on
calibration data (calibrate.py). A decode step streams every weight once, so it is bound by
memory; an encoder or a prefill multiplies many tokens by each weight, so it is bound by compute.
"""

from dataclasses import dataclass, field

import numpy as np

from pocketfit.converter.work import PRECISIONS, Work
from pocketfit.errors import BadInput

# what a runtime named by an artifact's backend is called in calibration data
RUNTIMES = {"onnx": "onnxruntime", "ort": "onnxruntime", "pte": "executorch", "tflite": "litert"}


class NoComputeFacts(BadInput):
    """A device profile without the CPU facts a prediction needs."""


@dataclass(frozen=True)
class Peaks:
    """What `threads` threads of one machine can do at most."""

    label: str  # "oneplus-12 (Snapdragon 8 Gen 3), 4 threads"
    compute: dict[str, float]  # precision -> operations per second
    bandwidth: float  # bytes per second
    threads: int
    basis: str  # how the figures were found
    clock_ghz: float = 2.0  # of the fastest core: per-op overhead scales with it
    cache_bandwidth: float | None = None  # bytes/s for activations; None: fitted multiple of `bandwidth`


def phone_peaks(device, threads: int | None = None) -> Peaks:
    compute = device.compute
    if compute is None:
        raise NoComputeFacts(f"{device.where} has no [compute] table (its CPU clusters: core counts, core types, clocks), "
                             "so no latency can be predicted for it; add one as the built-in profiles do")
    threads = threads or default_threads(device)
    fastest = compute.fastest(threads)
    return Peaks(f"{device.id} ({compute.soc}), {threads} threads", {p: compute.peak(p, threads) for p in PRECISIONS},
                 float(device.dram_bandwidth), threads,
                 f"{compute.derivation('int8', threads)}; DRAM {device.dram_bandwidth / 1e9:.1f} GB/s ({device.dram})",
                 max(g for _, g in fastest))


def default_threads(device) -> int:
    """The thread pool pocketfit predicts for: the phone's big cores, at most 4 — what
    ExecuTorch's example runners and most apps set (a phone's little cores slow a pool down)."""
    return max(1, min(device.big_cores, 4))


@dataclass
class Params:
    """Fitted efficiencies: by (runtime, precision) and by runtime, with a pooled fallback ("*")
    for a runtime the calibration data never saw."""

    compute: dict[tuple[str, str], float]
    memory: dict[str, float]
    overhead_cycles: float  # per op, in cycles of the fastest core
    cache_factor: float = 4.0  # activations' bandwidth over DRAM's, where a machine does not state it
    band: tuple[float, float] = (-0.3, 0.3)  # relative error quantiles of held-out predictions
    fitted_on: int = 0
    sources: tuple[str, ...] = field(default=())

    def e_compute(self, runtime: str, precision: str) -> float:
        return self.compute.get((runtime, precision)) or self.compute.get(("*", precision)) or self.compute[("*", "fp32")]

    def e_memory(self, runtime: str) -> float:
        return self.memory.get(runtime) or self.memory["*"]


@dataclass(frozen=True)
class OpTime:
    name: str
    kind: str
    precision: str
    seconds: float
    bound: str  # "compute" | "memory" | "overhead"


@dataclass(frozen=True)
class Prediction:
    seconds: float
    low: float
    high: float
    peaks: Peaks
    runtime: str
    ops: tuple[OpTime, ...]
    work: Work

    @property
    def ms(self) -> float:
        return self.seconds * 1e3

    def bounds(self) -> dict[str, float]:
        """Share of the predicted time each bound accounts for."""
        share: dict[str, float] = {}
        for o in self.ops:
            share[o.bound] = share.get(o.bound, 0.0) + o.seconds
        return {k: v / self.seconds for k, v in sorted(share.items(), key=lambda kv: -kv[1])}

    def describe(self) -> str:
        bounds = ", ".join(f"{k} {v:.0%}" for k, v in self.bounds().items())
        return f"{self.ms:.3g} ms (band {self.low * 1e3:.3g}-{self.high * 1e3:.3g} ms); time by bound: {bounds}"


def seconds(work: Work, peaks: Peaks, runtime: str, params: Params) -> tuple[float, list[OpTime]]:
    mem = peaks.bandwidth * params.e_memory(runtime)
    cache = peaks.cache_bandwidth or peaks.bandwidth * params.cache_factor
    overhead = params.overhead_cycles / (peaks.clock_ghz * 1e9)
    total, timed = 0.0, []
    main = dominant(work)
    for op in work.ops:
        if op.flops and op.precision not in peaks.compute:
            raise BadInput(f"{peaks.label}: no {op.precision} peak")
        share = params.e_compute(runtime, op.precision if op.kind == "matmul" else main)
        c = op.flops / (peaks.compute[op.precision] * share) if op.flops else 0.0
        m = op.weight_bytes / mem + op.act_bytes / cache
        t = max(c, m) + overhead
        bound = "compute" if c >= m and c > overhead else "memory" if m > overhead else "overhead"
        timed.append(OpTime(op.name, op.kind, op.precision, t, bound))
        total += t
    return total, timed


def fast_seconds(arrays, peaks: Peaks, runtime: str, params: Params) -> float:
    """The same sum over pre-packed arrays (flops, weight bytes, activation bytes, precision
    index): for fitting."""
    flops, weights, acts, index, share = arrays
    peak = np.array([peaks.compute[p] for p in PRECISIONS])
    eff = np.array([params.e_compute(runtime, p) for p in PRECISIONS])
    c = flops / (peak[index] * eff[share])
    m = weights / (peaks.bandwidth * params.e_memory(runtime)) + acts / (peaks.cache_bandwidth or peaks.bandwidth * params.cache_factor)
    return float(np.maximum(c, m).sum() + len(flops) * params.overhead_cycles / (peaks.clock_ghz * 1e9))


def dominant(work: Work) -> str:
    """The precision of most of the matmul arithmetic. The other ops (attention, norms, the
    elementwise tail) run at the runtime's efficiency for it: how well a runtime's kernels use
    the cores is one property of the runtime and the model's precision, not one per op kind,
    which few published results could tell apart."""
    flops: dict[str, int] = {}
    for o in work.ops:
        if o.kind == "matmul":
            flops[o.precision] = flops.get(o.precision, 0) + o.flops
    return max(flops, key=flops.get) if flops else "fp32"


def pack(work: Work):
    main = PRECISIONS.index(dominant(work))
    return (np.array([o.flops for o in work.ops], float), np.array([o.weight_bytes for o in work.ops], float),
            np.array([o.act_bytes for o in work.ops], float), np.array([PRECISIONS.index(o.precision) for o in work.ops]),
            np.array([PRECISIONS.index(o.precision) if o.kind == "matmul" else main for o in work.ops]))


def predict(work: Work, peaks: Peaks, runtime: str, params: Params) -> Prediction:
    total, timed = seconds(work, peaks, runtime, params)
    low, high = params.band
    return Prediction(total, total * (1 + low), total * (1 + high), peaks, runtime, tuple(timed), work)
