"""Run a budget: build what the file asks for, measure each model, judge every model x device x
limit. A check that cannot run is an ERROR (with the exit code its cause maps to), never a pass.

Per model, one measurement on this machine (in a child process) serves every device; an
emulated-memory limit runs one more per model x device inside the phone's cgroups; a latency
limit asks the flash-paging simulator (predict.py) at the phone's app budget.
"""

import datetime
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from pocketfit import manifest as manifests
from pocketfit.errors import BadInput, EnvironmentLimit, InvalidArtifact, MeasurementFailed, PocketfitError
from pocketfit.files import sha256
from pocketfit.progress import Progress, Silent
from pocketfit.units import human

from .. import runtimes
from ..devices import Device
from ..measure import Measurement, measure
from . import baseline as baselines
from . import predict
from .config import Budget, Limits, Model, Share
from .results import Cell, Check, Results, Status

_MEASURED = ("memory", "latency_p50", "latency_p90", "tokens_per_second", "memory_growth", "latency_growth")
_GROWTH = ("size_growth", "memory_growth", "latency_growth")


@dataclass(frozen=True)
class _Failure:
    """A step that could not run, kept to turn every check that needs it into an ERROR."""

    message: str
    exit_code: int


def _failure(e: PocketfitError) -> _Failure:
    code = 3 if isinstance(e, EnvironmentLimit) else 1 if isinstance(e, MeasurementFailed) else 2
    return _Failure(str(e), code)


def build(budget: Budget, progress: Progress = Silent()) -> list[str]:
    """Export every model that has a recipe and no matching artifact yet; say what was reused."""
    from pocketfit.converter import FORMATS, RECIPES, Task, export, load

    notes, loaded = [], {}
    for model in budget.models:
        if model.export is None:
            continue
        if _matches(model):
            notes.append(f"{model.name}: reused {model.artifact} (its manifest matches the recipe)")
            continue
        e = model.export
        source = e.model if e.model == "minilm" else str((budget.path.parent / e.model).resolve())
        key = (source, e.task)
        if key not in loaded:
            with progress.step(f"Loading {e.model} for {e.task}"):
                loaded[key] = load(source, Task(e.task))
        export(loaded[key], model.artifact.parent, FORMATS[e.format](), RECIPES[e.quant](), max_context=e.max_context, progress=progress)
        notes.append(f"{model.name}: built {model.artifact}")
    return notes


def _matches(model: Model) -> bool:
    """The artifact and its manifest exist, agree with each other, and were made by this recipe."""
    if not model.artifact.is_file():
        return False
    try:
        m = manifests.read(model.artifact)
    except InvalidArtifact:
        return False
    e = model.export
    return (m.format == e.format and m.quantization.get("scheme") == e.quant and m.task == e.task
            and (m.source.model == e.model or Path(m.source.model).name == Path(e.model).name)
            and m.bytes == model.artifact.stat().st_size and m.sha256 == sha256(model.artifact))


def run(budget: Budget, *, jobs: int = 1, baseline: Path | None = None, update_baseline: bool = False,
        progress: Progress = Silent(), config_name: str | None = None) -> Results:
    """Build, measure and judge everything in `budget`; write the baseline when asked."""
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()
    baseline = baseline or budget.baseline
    wants_growth = any(getattr(lim, k) is not None for lim in budget.limits.values() for k in _GROWTH)
    if (wants_growth or update_baseline) and baseline is None:
        raise BadInput("growth limits and --update-baseline need a baseline file: pass --baseline FILE or set baseline = \"...\" in the budget file")
    recorded = None
    if baseline is not None and (not update_baseline or Path(baseline).exists()):
        recorded = baselines.read(baseline)
    notes = build(budget, progress)

    needs_measure = {m.name for m in budget.models for t in budget.tiers
                     if any(k in budget.limits_for(m.name, t.name).set() for k in _MEASURED)}
    if update_baseline:
        needs_measure = {m.name for m in budget.models}

    def host(model: Model):
        try:
            with progress.step(f"Measuring {model.name} ({model.artifact}) in a child process"):
                return measure(model.artifact, iterations=budget.measure.iterations, warmup=budget.measure.warmup,
                               seq_len=budget.measure.seq_len, threads=budget.measure.threads, options=model.options,
                               timeout=budget.measure.timeout)
        except PocketfitError as e:
            return _failure(e)

    todo = [m for m in budget.models if m.name in needs_measure]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        hosts = dict(zip([m.name for m in todo], pool.map(host, todo)))
        units = [(m, t.name, d) for m in budget.models for t in budget.tiers for d in t.devices]
        cells = list(pool.map(lambda u: _judge(budget, *u, hosts.get(u[0].name), recorded, progress), units))

    updated = False
    if update_baseline:
        if any(c.status is Status.ERROR for c in cells):
            notes.append("baseline not updated: some checks could not run")
        else:
            baselines.write(baseline, {m.name: _baseline_values(m, hosts.get(m.name)) for m in budget.models})
            updated = True
            notes.append(f"baseline {baseline} updated")
    return Results(
        config=config_name or str(budget.path), cells=tuple(cells), started=started,
        seconds=round(time.perf_counter() - clock, 1), tool=f"pocketfit {version('pocketfit')}",
        baseline=str(baseline) if baseline else None, baseline_updated=updated, notes=tuple(notes),
    )


def _baseline_values(model: Model, host) -> dict:
    values = {"size": model.artifact.stat().st_size}
    if isinstance(host, Measurement) and host.ok:
        values["memory"] = host.model_rss + runtimes.footprint_of(host.runtime).footprint
        values["latency_p50"] = round(host.p50_ms / 1000, 6)
    return values


def _judge(budget: Budget, model: Model, tier: str, device: Device, host, recorded: dict | None, progress: Progress) -> Cell:
    limits = budget.limits_for(model.name, tier)
    size = model.artifact.stat().st_size
    try:
        manifest = manifests.read(model.artifact)
    except InvalidArtifact as e:
        manifest = _Failure(str(e), 2)
    checks: list[Check] = []
    footprint = runtimes.footprint_of(host.runtime).footprint if isinstance(host, Measurement) else 0
    breakdown, curve, sims = {}, (), {}

    if limits.size is not None:
        checks.append(_at_most("size", size, limits.size, "bytes", "manifest"))

    if limits.memory is not None:
        cap = _cap(limits.memory, device)
        checks.append(_measured(host, lambda m: _at_most("memory", m.model_rss + footprint, cap, "bytes", "measured"), "memory", cap, "bytes"))

    if limits.emulated_memory is not None:
        checks.append(_emulated(budget, model, device, _cap(limits.emulated_memory, device), progress))

    for key, quantile in (("latency_p50", 50), ("latency_p90", 90)):
        cap = getattr(limits, key)
        if cap is None:
            continue
        checks.append(_predicted(key, cap, host, lambda m, q=quantile: _sim(sims, model, device, m, m.percentile(q) / 1000, 0)))
    if limits.max_latency_ms is not None:
        checks.append(_phone_latency(model, device, limits, budget.measure.seq_len))
    if limits.tokens_per_second is not None:
        context = limits.context or 128  # a chat turn's worth of context
        checks.append(_throughput(limits.tokens_per_second, context, host,
                                  lambda m: _sim(sims, model, device, m, m.p50_ms / 1000, context)))

    if limits.parity or limits.parity_floors:
        checks.append(_parity(manifest, limits))

    for key in _GROWTH:
        allowed = getattr(limits, key)
        if allowed is None or recorded is None:
            continue
        checks.append(_growth(key, allowed, model, size, host, recorded))

    if isinstance(host, Measurement) and host.ok:
        breakdown = _measured_breakdown(host, footprint, manifest)
        sim = next(iter(sims.values()), None)
        if isinstance(sim, dict):  # at the phone's budget, part of the mapped weights stays on flash
            paged = predict.breakdown(sim, footprint)["weights_paged"]
            moved = min(paged, breakdown["weights_resident"])
            breakdown |= {"weights_resident": breakdown["weights_resident"] - moved, "weights_paged": moved,
                          "source": "measured on this machine; paged weights simulated at the app budget"}
            curve = predict.curve(sim)
    return Cell(model=model.name, tier=tier, device=device.id, device_name=device.name, artifact=str(model.artifact),
                format=model.artifact.suffix.lstrip("."), app_budget=device.app_budget, checks=tuple(checks),
                breakdown=breakdown, curve=curve)


def _cap(limit, device: Device) -> int:
    return limit.of(device) if isinstance(limit, Share) else limit


def _percent(value: float, cap: float) -> str:
    return f"{value / cap:.0%}" if cap else "-"


def _at_most(limit: str, value: int, cap: int, unit: str, source: str) -> Check:
    margin = f"{human(value)} of {human(cap)}, {_percent(value, cap)}"
    ok = value <= cap
    message = "" if ok else f"{limit} {human(value)} exceeds the limit of {human(cap)} by {human(value - cap)}"
    return Check(limit, Status.PASS if ok else Status.FAIL, value, cap, unit, margin, message, source)


def _error(limit: str, cap, unit: str, failure: _Failure, source: str = "") -> Check:
    return Check(limit, Status.ERROR, None, cap, unit, "could not run", failure.message, source, failure.exit_code)


def _measured(host, judge, limit: str, cap, unit: str) -> Check:
    """Judge a host measurement; no measurement is an ERROR, a crashed or hung run a FAIL."""
    if isinstance(host, _Failure):
        return _error(limit, cap, unit, host, "measured")
    if not host.ok:
        return Check(limit, Status.FAIL, None, cap, unit, host.outcome, f"the run {host.outcome}: {host.detail}".rstrip(": "), "measured")
    return judge(host)


def _emulated(budget: Budget, model: Model, device: Device, cap: int, progress: Progress) -> Check:
    try:
        with progress.step(f"Measuring {model.name} inside an emulated {device.id}"):
            m = measure(model.artifact, iterations=budget.measure.iterations, warmup=budget.measure.warmup,
                        seq_len=budget.measure.seq_len, threads=budget.measure.threads, options=model.options,
                        timeout=budget.measure.timeout, emulate=device)
    except PocketfitError as e:
        return _error("emulated_memory", cap, "bytes", _failure(e), "emulated")
    e = m.emulation
    if m.outcome == "oom-killed":
        return Check("emulated_memory", Status.FAIL, None, cap, "bytes", f"OOM-killed at {human(e.memory_limit)}",
                     f"the kernel killed the run at {device.id}'s emulated limit of {human(e.memory_limit)}", "emulated")
    if not m.ok:
        return Check("emulated_memory", Status.FAIL, None, cap, "bytes", m.outcome, f"the run {m.outcome}: {m.detail}", "emulated")
    used = max(0, e.memory_peak - e.host_baseline) + e.footprint
    return _at_most("emulated_memory", used, cap, "bytes", "emulated")


def _sim(cache: dict, model: Model, device: Device, m: Measurement, compute: float, tokens: int) -> dict:
    key = (round(compute, 9), tokens)
    if key not in cache:
        cache[key] = predict.simulate(model.artifact, device, compute, tokens, model.options)
    return cache[key]


def _predicted(limit: str, cap: float, host, simulate) -> Check:
    def judge(m: Measurement) -> Check:
        try:
            sim = simulate(m)
        except PocketfitError as e:
            return _error(limit, cap, "seconds", _failure(e), "simulated")
        if not sim["fits"]:
            return Check(limit, Status.FAIL, None, cap, "seconds", "does not fit",
                         f"the simulator finds it does not fit the app budget: {sim.get('reason', '')}".rstrip(": "), "simulated")
        value = sim["warm"]["latency_s"]
        ok = value <= cap
        margin = f"{value * 1000:.1f} ms of {cap * 1000:.1f} ms, {_percent(value, cap)}"
        message = "" if ok else f"{limit} predicted {value * 1000:.1f} ms exceeds the limit of {cap * 1000:.1f} ms"
        return Check(limit, Status.PASS if ok else Status.FAIL, round(value, 6), cap, "seconds", margin, message, "simulated")

    return _measured(host, judge, limit, cap, "seconds")


def _phone_latency(model: Model, device: Device, limits: Limits, seq_len: int) -> Check:
    """The latency model's p50 on the phone, judged against max_latency_ms: a prediction, with
    its band and the phone's peaks in the margin, never a measurement."""
    from .. import cost

    cap = limits.max_latency_ms / 1000
    context = limits.context or 128
    try:
        p = cost.predict_artifact(model.artifact, device, seq_len=seq_len, context=context)
    except PocketfitError as e:
        return _error("max_latency_ms", cap, "seconds", _failure(e), "predicted")
    what = f"a decode step at context {context}" if p.work.phase == "decode" else f"{p.work.tokens} tokens"
    margin = (f"{p.ms:.1f} ms (band {p.low * 1e3:.1f}-{p.high * 1e3:.1f}) of {cap * 1000:.1f} ms, {_percent(p.seconds, cap)}; "
              f"{what}, {p.peaks.label}")
    ok = p.seconds <= cap
    message = "" if ok else (f"max_latency_ms: predicted {p.ms:.1f} ms on {device.id} ({what}) exceeds the limit of "
                             f"{cap * 1000:.1f} ms (band {p.low * 1e3:.1f}-{p.high * 1e3:.1f} ms)")
    return Check("max_latency_ms", Status.PASS if ok else Status.FAIL, round(p.seconds, 6), cap, "seconds", margin, message,
                 "predicted (latency model)")


def _throughput(floor: float, context: int, host, simulate) -> Check:
    def judge(m: Measurement) -> Check:
        try:
            sim = simulate(m)
        except PocketfitError as e:
            return _error("tokens_per_second", floor, "tokens/s", _failure(e), "simulated")
        value = 1 / sim["warm"]["latency_s"]
        ok = value >= floor
        margin = f"{value:.1f} tokens/s at {context} context, at least {floor:g}"
        message = "" if ok else f"tokens_per_second predicted {value:.1f} is below the floor of {floor:g}"
        return Check("tokens_per_second", Status.PASS if ok else Status.FAIL, round(value, 3), floor, "tokens/s", margin, message, "simulated")

    return _measured(host, judge, "tokens_per_second", floor, "tokens/s")


def _parity(manifest, limits: Limits) -> Check:
    if isinstance(manifest, _Failure):
        return _error("parity", None, "ratio", manifest, "manifest")
    floors = dict(manifest.parity.floors) if limits.parity else {}
    floors |= limits.parity_floors or {}
    if not floors:
        return _error("parity", None, "ratio", _Failure("the manifest records no parity floors; set parity_floors", 2), "manifest")
    unknown = [k for k in floors if k not in manifest.parity.metrics]
    if unknown:
        return _error("parity", None, "ratio", _Failure(
            f"parity_floors names {', '.join(unknown)}, which the manifest does not have (it has {', '.join(manifest.parity.metrics)})", 2), "manifest")
    below = {k: f for k, f in floors.items() if manifest.parity.metrics[k] < f}
    worst = min(floors, key=lambda k: manifest.parity.metrics[k] - floors[k])
    margin = ", ".join(f"{k} {manifest.parity.metrics[k]:.4f} >= {f:g}" for k, f in floors.items())
    message = "; ".join(f"{k} {manifest.parity.metrics[k]:.4f} is below the floor of {f:g}" for k, f in below.items())
    return Check("parity", Status.FAIL if below else Status.PASS, round(manifest.parity.metrics[worst], 6), floors[worst], "ratio",
                 margin, message, "manifest")


def _growth(limit: str, allowed: float, model: Model, size: int, host, recorded: dict) -> Check:
    kind = limit.removesuffix("_growth")
    key = {"size": "size", "memory": "memory", "latency": "latency_p50"}[kind]
    unit = "seconds" if kind == "latency" else "bytes"
    before = recorded.get(model.name, {}).get(key)
    if before is None:
        return _error(limit, None, unit, _Failure(f"{model.name} has no recorded {key} in the baseline; record it with --update-baseline", 2), "baseline")
    if kind == "size":
        now = size
    elif isinstance(host, _Failure):
        return _error(limit, None, unit, host, "measured")
    elif not host.ok:
        return Check(limit, Status.FAIL, None, None, unit, host.outcome, f"the run {host.outcome}", "measured")
    elif kind == "memory":
        now = host.model_rss + runtimes.footprint_of(host.runtime).footprint
    else:
        now = round(host.p50_ms / 1000, 6)
    cap = before * (1 + allowed)
    show = (lambda v: f"{v * 1000:.2f} ms") if unit == "seconds" else human
    growth = now / before - 1 if before else 0.0
    margin = f"{show(now)} vs {show(before)} in the baseline: {growth:+.1%}, at most +{allowed:.0%}"
    ok = now <= cap
    message = "" if ok else f"{kind} grew {growth:+.1%} over the baseline ({show(before)} -> {show(now)}), more than the allowed +{allowed:.0%}"
    return Check(limit, Status.PASS if ok else Status.FAIL, now, round(cap, 6), unit, margin, message, "baseline")


def _measured_breakdown(m: Measurement, footprint: int, manifest) -> dict:
    """Where the memory went on this machine: copied or repacked weights (anonymous, up to the
    artifact's size) and mapped weights are resident; the rest of the anonymous growth is the
    arena and heap, less the KV cache the manifest declares."""
    copied = min(m.model_anon, m.bytes)
    kv = 0
    if not isinstance(manifest, _Failure):
        kv = int((manifest.details.get("kv_cache") or {}).get("bytes", 0) or 0)
    arena = max(0, m.model_anon - copied - kv)
    return {"weights_resident": copied + m.model_mapped, "weights_paged": 0, "arena": arena, "kv_cache": kv,
            "runtime": footprint, "source": "measured"}
