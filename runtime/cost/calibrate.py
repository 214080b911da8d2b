"""Fit the latency model's efficiencies on published on-device results, and check it by
predicting each source from the others (leave one source out).

The data (runtime/calibration/published.toml) is a list of results as their sources printed
them — a model, its shape, the runtime and version, the precision, the phone, the threads, the
prompt or sequence length, the figure — each with the exact quote. A result's phone is matched
to a catalog profile by its SoC, whose [compute] table gives the peaks.

The fit is in log space, so that a 2x miss counts the same on a 5 ms encoder and a 5 s prefill:
pooled efficiencies per precision (and one for memory), each runtime's own factor on top,
pulled towards 1 (ridge) so that a runtime seen in one result cannot swallow that result.
"""

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np

from pocketfit.converter.work import PRECISIONS
from pocketfit.errors import BadInput

from . import shapes
from .model import Params, Peaks, fast_seconds, pack, phone_peaks

_RIDGE = 0.5  # weight of log(runtime factor)^2 against the squared log errors
_MIN_EFF, _MAX_EFF = 0.005, 1.0


@dataclass(frozen=True)
class Result:
    id: str
    source: str
    url: str
    quote: str
    model: str
    runtime: str
    runtime_version: str
    weights: str
    activations: str
    device: str
    soc: str
    threads: int
    phase: str
    tokens: int
    metric: str
    value: float
    shape: shapes.Shape
    assumed_tokens: int = -1  # a length the data file assumes for this result, with its reason there

    @property
    def length(self) -> int:
        if self.tokens > 0:
            return self.tokens
        return self.assumed_tokens if self.assumed_tokens > 0 else ASSUMED_LENGTH[self.shape.architecture]

    @property
    def precision(self) -> str:
        return shapes.kernel_precision(self.weights, self.activations)


@dataclass(frozen=True)
class Case:
    """A result with what the model needs to predict it."""

    result: Result
    peaks: Peaks
    arrays: tuple
    profile: str

    def figure(self, seconds: float) -> float:
        """The result's own metric from a predicted time per call."""
        r = self.result
        if r.metric == "latency_ms":
            return seconds * 1e3
        return (r.length if r.phase == "prefill" else 1) / seconds


def load_results(text: str | None = None) -> list[Result]:
    if text is None:
        text = resources.files("pocketfit.runtime").joinpath("calibration/published.toml").read_text(encoding="utf-8")
    rows = tomllib.loads(text).get("result", [])
    found = []
    for r in rows:
        shape = shapes.Shape(r["architecture"], int(r["layers"]), int(r["hidden"]), int(r["intermediate"]), int(r["heads"]),
                             int(r.get("kv_heads") or r["heads"]), int(r["vocab"]), bool(r.get("tied_embeddings", False)),
                             r.get("head_dim"))
        found.append(Result(r["id"], r["source"], r["url"], r["quote"], r["model"], r["runtime"], str(r.get("runtime_version", "")),
                            r["weights"], r["activations"], r["device"], r["soc"], int(r.get("threads", -1)), r["phase"],
                            int(r.get("tokens", -1)), r["metric"], float(r["value"]), shape,
                            int(r.get("assumed_tokens", -1))))
    return found


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum()).replace("qualcomm", "").replace("samsung", "")


def _profile_for(result: Result, catalog: list):
    """The catalog profile of the phone a result names, else one with its SoC."""
    for device in catalog:
        if _key(device.name).startswith(_key(result.device)) or _key(result.device).startswith(_key(device.name.split("(")[0])):
            return device
    for device in catalog:
        if _key(device.compute.soc).startswith(_key(result.soc)) and _key(result.soc):
            return device
    return None


# Where a source does not state a length, the length the model runs at: its fixed input for
# MobileBERT-SQuAD (384 tokens), else 128 (a chat turn; a decode step's cost barely moves with
# it at these sizes). Marked as assumed wherever the table prints it.
ASSUMED_LENGTH = {"mobilebert": 384, "encoder": 128, "decoder": 128}


def cases(results: list[Result]) -> tuple[list[Case], list[tuple[Result, str]]]:
    """The results the model can predict, and the others with the reason."""
    from pocketfit.runtime import devices

    catalog = [d for d in devices.builtin().values() if d.compute is not None]
    usable, skipped = [], []
    for r in results:
        device = _profile_for(r, catalog)
        if device is None:
            skipped.append((r, f"no profile with compute facts for {r.device} ({r.soc})"))
            continue
        if r.phase not in ("prefill", "decode", "inference"):
            skipped.append((r, f"phase {r.phase!r} not modelled"))
            continue
        if r.shape.architecture not in ("decoder", "encoder", "mobilebert"):
            skipped.append((r, f"architecture {r.shape.architecture!r} not modelled"))
            continue
        if r.weights not in PRECISIONS or r.activations not in PRECISIONS:
            skipped.append((r, f"precision {r.weights}/{r.activations} not modelled"))
            continue
        threads = r.threads if r.threads > 0 else None
        peaks = phone_peaks(device, threads)
        work = shapes.work(r.shape, r.phase, r.length, r.weights, r.activations, r.id)
        case = Case(r, peaks, pack(work), device.id)
        share = _share_of_peak(case)
        if share > 1.0:
            # faster than the cores can compute: the recorded shape, length or precision is not what ran
            skipped.append((r, f"the figure implies {share:.0%} of {device.id}'s {threads or peaks.threads}-thread "
                               f"{r.precision} peak at {r.length} tokens: what ran must differ from what is recorded"))
            continue
        usable.append(case)
    return usable, skipped


def _share_of_peak(case: Case) -> float:
    """The arithmetic of one call over the measured time, as a share of the peaks."""
    flops, _, _, index, _ = case.arrays
    peak = np.array([case.peaks.compute[p] for p in PRECISIONS])
    return float((flops / peak[index]).sum()) / _measured_seconds(case)


def _layout(cases: list[Case]):
    precisions = sorted({p for c in cases for p in _precisions(c)})
    runtimes = sorted({c.result.runtime for c in cases})
    names = [("c", "*", p) for p in precisions] + [("m", "*", "")] + [("o", "", "")]
    names += [("c", rt, p) for rt in runtimes for p in precisions if any(c.result.runtime == rt and p in _precisions(c) for c in cases)]
    names += [("m", rt, "") for rt in runtimes]
    return names


def _precisions(case: Case) -> set[str]:
    flops, _, _, _, share = case.arrays
    return {PRECISIONS[i] for i in set(share[flops > 0].tolist())}


def _params(names, x) -> Params:
    compute, memory, overhead = {}, {}, 0.0
    for (kind, rt, p), v in zip(names, x):
        if kind == "c" and rt == "*":
            compute[("*", p)] = float(np.exp(v))
        elif kind == "m" and rt == "*":
            memory["*"] = float(np.exp(v))
        elif kind == "o":
            overhead = float(np.exp(v))
    for (kind, rt, p), v in zip(names, x):
        if kind == "c" and rt != "*":
            compute[(rt, p)] = float(np.clip(compute[("*", p)] * np.exp(v), _MIN_EFF, _MAX_EFF))
        elif kind == "m" and rt != "*":
            memory[rt] = float(np.clip(memory["*"] * np.exp(v), _MIN_EFF, _MAX_EFF))
    compute.setdefault(("*", "fp32"), 0.3)
    for p in PRECISIONS:
        compute.setdefault(("*", p), compute[("*", "fp32")])
    memory.setdefault("*", 0.5)
    return Params(compute, memory, overhead)


def fit(cases: list[Case]) -> Params:
    """Efficiencies that best predict `cases`, in the least-squares sense on log time."""
    from scipy.optimize import minimize

    if not cases:
        raise BadInput("no calibration results to fit the latency model on")
    names = _layout(cases)
    measured = np.array([np.log(_measured_seconds(c)) for c in cases])
    pooled = [i for i, n in enumerate(names) if n[1] in ("*", "")]

    def loss(x):
        params = _params(names, x)
        predicted = np.array([np.log(fast_seconds(c.arrays, c.peaks, c.result.runtime, params)) for c in cases])
        ridge = sum(x[i] ** 2 for i in range(len(names)) if i not in pooled)
        return float(((predicted - measured) ** 2).sum() + _RIDGE * ridge)

    x0 = np.array([np.log(0.3) if n[0] == "c" else np.log(0.5) if n[0] == "m" else np.log(2000.0) for n in names])
    x0 = np.array([0.0 if n[1] not in ("*", "") else v for n, v in zip(names, x0)])
    bounds = [(np.log(_MIN_EFF), np.log(_MAX_EFF)) if n[1] == "*" else (np.log(100.0), np.log(50_000.0)) if n[0] == "o"
              else (-3.0, 3.0) for n in names]
    best = minimize(loss, x0, method="L-BFGS-B", bounds=bounds)
    params = _params(names, best.x)
    params.fitted_on = len(cases)
    params.sources = tuple(sorted({c.result.source for c in cases}))
    return params


def _measured_seconds(case: Case) -> float:
    r = case.result
    if r.metric == "latency_ms":
        return r.value / 1e3
    return (r.length if r.phase == "prefill" else 1) / r.value


@dataclass(frozen=True)
class Check:
    case: Case
    predicted: float  # in the result's own metric

    @property
    def error(self) -> float:
        """Relative error of the predicted figure against the published one."""
        return (self.predicted - self.case.result.value) / self.case.result.value


def leave_one_source_out(cases: list[Case]) -> list[Check]:
    """Each source's results predicted by a model fitted on every other source."""
    checks = []
    for source in sorted({c.result.source for c in cases}):
        rest = [c for c in cases if c.result.source != source]
        params = fit(rest)
        for c in cases:
            if c.result.source == source:
                checks.append(Check(c, c.figure(fast_seconds(c.arrays, c.peaks, c.result.runtime, params))))
    return checks


def band(checks: list[Check]) -> tuple[float, float]:
    """Where the measured time fell around the predicted one, 10th to 90th percentile, from
    held-out predictions (a time error, whatever the metric)."""
    ratios = []
    for ch in checks:
        r = ch.case.result
        predicted_time = 1 / ch.predicted if r.metric == "tokens_per_second" else ch.predicted
        measured_time = 1 / r.value if r.metric == "tokens_per_second" else r.value
        ratios.append(measured_time / predicted_time - 1)
    if not ratios:
        return (-0.5, 1.0)
    return (float(np.percentile(ratios, 10)), float(np.percentile(ratios, 90)))


@functools.cache
def calibrated() -> Params:
    """The model fitted on every published result, with its band from leave-one-source-out."""
    usable, _ = cases(load_results())
    params = fit(usable)
    params.band = band(leave_one_source_out(usable))
    return params
