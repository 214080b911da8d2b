"""ondevice: an artifact benchmarked on a device, printed beside pocketfit's prediction for it.

    from pocketfit.runtime import devices, ondevice
    doc = ondevice.bench_local("out/model.onnx", iterations=20)     # this machine, the app's loop
    print(ondevice.beside(doc, devices.load("galaxy-a15"), "out/model.onnx").render())

On a handset (adb.py) the android-demo app runs the same loop and writes the same JSON
(result.py: one contract, pocketfit/schemas/device-bench.schema.json). Every result appends to
a local results file (RESULTS) that the latency model's calibration can read.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from pocketfit.units import human

from . import facts, result  # noqa: F401 - part of the package's interface


def results_file() -> Path:
    """Where results accumulate: $POCKETFIT_RESULTS, else $XDG_DATA_HOME/pocketfit/device-bench.jsonl."""
    if os.environ.get("POCKETFIT_RESULTS"):
        return Path(os.environ["POCKETFIT_RESULTS"])
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "pocketfit" / "device-bench.jsonl"


def bench_local(artifact, iterations: int = 20, warmup: int = 3, threads: int | None = None, seq_len: int = 128,
                emulate=None, timeout: float = 600) -> dict:
    """The app's runner loop (load, first run, warm-up, timed runs) in a child process on this
    machine, optionally inside an emulated handset; the result in the app's contract."""
    from pocketfit.errors import MeasurementFailed

    from ..measure import measure

    m = measure(Path(artifact), iterations=iterations, warmup=warmup, seq_len=seq_len, threads=threads,
                timeout=timeout, emulate=emulate)
    if not m.ok:
        raise MeasurementFailed(f"{artifact}: {m.outcome}" + (f" ({m.detail})" if m.detail else ""))
    return result.of_measurement(m, facts.local(emulated=emulate.id if emulate is not None else None), "local")


@dataclass(frozen=True)
class Beside:
    doc: dict
    device: object  # devices.Device the prediction is for
    predicted: dict  # cost.phone_figures
    footprint: int  # the runtime's own memory on the phone (runtime/runtimes.toml)

    @property
    def model_memory(self) -> int | None:
        m = self.doc["memory"]
        if m.get("baseline_rss") is None:
            return None
        return max(0, m["rss_anon"] + m["rss_file"] - m["baseline_rss"])

    @property
    def fits(self) -> bool | None:
        model = self.model_memory
        return None if model is None else model + self.footprint <= self.device.app_budget

    def to_dict(self) -> dict:
        return {"result": self.doc, "device": self.device.id, "predicted": self.predicted, "runtime_footprint": self.footprint,
                "model_memory": self.model_memory, "fits": self.fits}

    def render(self) -> str:
        d, t, s = self.doc, self.doc["timing"], self.doc["settings"]
        where = (f"this machine ({d['device']['model']}, {d['device']['abi']}"
                 + (f", inside the emulated {d['device']['emulated']}" if d["device"].get("emulated") else "") + ")"
                 if d["source"] == "local" else f"{d['device']['manufacturer'] or ''} {d['device']['model']} (android-demo)".strip())
        p = self.predicted
        pred = (f"{p['p50_ms']:.3g} ms (band {p['low_ms']:.3g}-{p['high_ms']:.3g}), {p['runtime']}, {p['threads']} threads"
                if p.get("predicted") else f"none: {p.get('missing', '?')}")
        model = self.model_memory
        memory = (f"model {human(model)} (resident growth since before load) + {d['runtime']['name']} on the phone {human(self.footprint)} = {human(model + self.footprint)} "
                  f"of the {human(self.device.app_budget)} app budget: {'fits' if self.fits else 'DOES NOT FIT'}"
                  if model is not None else "not measured")
        lines = [
            f"artifact  {d['artifact']['file']} ({human(d['artifact']['bytes'])}), {d['runtime']['name']} {d['runtime']['version']}, "
            f"{s['threads'] or 'default'} threads, {s['iterations']} runs after {s['warmup']} warm-up at {s['seq_len']} tokens",
            f"measured  on {where}: load {t['load_ms']:.0f} ms, first run {t['first_run_ms']:.1f} ms, "
            f"p50 {t['p50_ms']:.3g} / p90 {t['p90_ms']:.3g} / p99 {t['p99_ms']:.3g} ms",
            f"memory    {memory}" + (f"; PSS {human(d['memory']['pss'])}" if d["memory"].get("pss") else ""),
            f"predicted for {self.device.id} by the latency model (not measured): p50 {pred}",
        ]
        if d["source"] == "local":
            lines.append(f"note      measured on this machine, predicted for {self.device.id}: the two are different CPUs, "
                         "so they are shown side by side, not compared; on a handset the same lines compare like with like")
        elif p.get("predicted"):
            error = t["p50_ms"] / p["p50_ms"] - 1
            lines.append(f"error     the prediction is {abs(error):.0%} {'under' if error > 0 else 'over'} what the handset measured")
        return "\n".join(lines)


def beside(doc: dict, device, artifact) -> Beside:
    from .. import cost
    from ..runtimes import footprint_of

    predicted = cost.phone_figures(Path(artifact), device, seq_len=doc["settings"]["seq_len"], threads=doc["settings"]["threads"])
    return Beside(doc, device, predicted, footprint_of(doc["runtime"]["name"]).footprint)


def match(f: facts.Facts):
    """The catalog profile of this handset, by its marketed name, or None."""
    from .. import devices

    wanted = " ".join(x for x in (f.manufacturer, f.model) if x).lower()
    for device in devices.builtin().values():
        name = device.name.lower().split(" (")[0]
        if device.page_size == f.page_size and (name == wanted or name.endswith(" " + f.model.lower())):
            return device
    return None
