"""measure: run an artifact in its own runtime, in a child process, and read what it cost —
optionally inside an emulated handset's limits (runtime/handset.py)."""

import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketfit.errors import BadInput, InvalidArtifact

from pocketfit.units import human

from . import child, handset, procfs
from .machine_load import Watch
from .procfs import Snapshot


@dataclass(frozen=True)
class Measurement:
    artifact: Path
    bytes: int
    runtime: str
    options: dict
    seq_len: int
    iterations: int
    warmup: int
    threads: int | None
    outcome: str  # "ok", "oom-killed", "killed by SIGSEGV", "exited with code 1", "hung"
    detail: str  # why, in the runtime's words, when the outcome is not "ok"
    load_seconds: float | None
    first_seconds: float | None
    latencies_ms: tuple[float, ...]
    phases: dict[str, Snapshot]  # baseline, loaded, first, warm, end: as far as the child got
    peak_anon: int  # sampled from outside every `sample_interval` seconds
    peak_file: int
    peak_rss: int  # the kernel's high-water mark when the child reported, else the sampled peak
    emulation: object = None  # handset.Emulation when the run was emulated
    weights_advice: str = ""
    sampled: int = 0  # how many samples the parent took
    advice: str | None = None  # madvise'd on the artifact's mappings after load
    machine_load: object = None  # machine_load.MachineLoad: what other processes took meanwhile
    rollup: dict | None = None  # Pss and Private_Dirty after the timed runs (smaps_rollup), when it got there

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else None

    @property
    def p50_ms(self) -> float | None:
        return self.percentile(50)

    @property
    def p90_ms(self) -> float | None:
        return self.percentile(90)

    @property
    def p99_ms(self) -> float | None:
        return self.percentile(99)

    @property
    def baseline_rss(self) -> int:
        b = self.phases["baseline"]
        return b.rss_anon + b.rss_file

    @property
    def model_anon(self) -> int:
        """Anonymous memory the model added: arena, KV cache, copies or repacks of weights."""
        return max(0, self.peak_anon - self.phases["baseline"].rss_anon)

    @property
    def model_mapped(self) -> int:
        """The artifact file's resident pages: mapped weights, which the kernel can drop and re-read."""
        return max((p.artifact for p in self.phases.values()), default=0)

    @property
    def model_rss(self) -> int:
        """What the model costs apart from the process measuring it."""
        return self.model_anon + self.model_mapped

    @property
    def weights(self) -> str:
        """How the runtime holds the weights: mapped from the file, copied into memory, or both."""
        mapped = self.model_mapped > 0.05 * self.bytes
        copied = self.model_anon >= 0.8 * self.bytes
        if mapped and copied:
            return "mapped, and repacked or copied into anonymous memory"
        return "mapped" if mapped else ("copied" if copied else "mostly not resident")

    def faults(self, start: str, end: str) -> dict[str, int]:
        a, b = self.phases.get(start), self.phases.get(end)
        if a is None or b is None:
            return {}
        return {"majflt": b.majflt - a.majflt, "minflt": b.minflt - a.minflt, "read_bytes": b.read_bytes - a.read_bytes}

    def to_dict(self) -> dict:
        return {
            "artifact": str(self.artifact), "bytes": self.bytes, "runtime": self.runtime, "options": self.options,
            "seq_len": self.seq_len, "iterations": self.iterations, "warmup": self.warmup, "threads": self.threads,
            "advice": self.advice, "outcome": self.outcome, "detail": self.detail,
            "load_seconds": self.load_seconds, "first_seconds": self.first_seconds,
            "latency_ms": {"p50": self.p50_ms, "p90": self.p90_ms, "p99": self.p99_ms},
            "memory": {
                "peak_rss": self.peak_rss, "peak_anon": self.peak_anon, "peak_file": self.peak_file,
                "baseline_rss": self.baseline_rss, "model_anon": self.model_anon, "model_mapped": self.model_mapped,
                "model_rss": self.model_rss, "weights": self.weights, "weights_advice": self.weights_advice,
            },
            "faults": {"load": self.faults("baseline", "loaded"), "first_inference": self.faults("loaded", "first"),
                       "timed_inferences": self.faults("warm", "end")},
            "phases": {k: v.to_dict() for k, v in self.phases.items()},
            "emulation": self.emulation.to_dict() if self.emulation else None,
            "samples": self.sampled,
            "machine_load": self.machine_load.to_dict() if self.machine_load else None,
        }


def measure(
    artifact: Path, *, iterations: int = 20, warmup: int = 3, seq_len: int = 128, threads: int | None = None,
    options: dict | None = None, timeout: float = 600, emulate=None, cold: bool = False, sample_interval: float | None = 0.01,
    budget: int | None = None, advice: str | None = None,
) -> Measurement:
    """Load `artifact` in a fresh child process and run it `warmup` + `iterations` times at batch 1
    and `seq_len` tokens; return its timings, memory, faults and I/O.

    `emulate` (a devices.Device) runs it inside that phone's limits, enforced by cgroups, from a
    cold page cache; `budget` then replaces what the model may hold (by default the phone's app
    budget less the runtime's footprint). `advice` ("random", "sequential", "normal") is
    madvise'd on the runtime's mappings of the artifact after load, as an app can. A crash, a kill, an OOM kill or a hang is the measurement's `outcome`, not
    an exception; bad input (a file the runtime cannot load, an unknown option) raises.
    """
    from pocketfit.converter import backends

    artifact = Path(artifact)
    if not artifact.is_file():
        raise InvalidArtifact(f"artifact {artifact} does not exist")
    if iterations < 1 or seq_len < 1 or warmup < 0:
        raise BadInput("iterations and seq-len must be at least 1, warmup at least 0")
    backend = backends.for_path(artifact)
    options = backends.check_options(backend.OPTIONS, options)
    if advice is not None and advice not in procfs.ADVICE:
        raise BadInput(f"advice {advice!r}: use one of {', '.join(procfs.ADVICE)}")
    request = {"artifact": str(artifact.resolve()), "iterations": iterations, "warmup": warmup, "seq_len": seq_len,
               "threads": threads, "options": options, "advice": advice}
    if budget is not None and emulate is None:
        raise BadInput("a memory budget is enforced only on an emulated handset: add --emulate DEVICE")
    if emulate is not None:
        with handset.Handset(emulate, artifact, budget) as box, Watch() as watch:
            code, out, err, hung, sampler = child.run(request, timeout, box.wrap, sample_interval)
            emulation = box.result()
            probed = {"runtime": box.runtime, "phases": {"baseline": box.baseline.to_dict()}}
    else:
        if cold:
            procfs.evict(artifact)
        with Watch() as watch:
            code, out, err, hung, sampler = child.run(request, timeout, None, sample_interval)
        emulation, probed = None, {}
    result = child.parse_result(out)
    child.raise_error(result)
    if hung:
        outcome, detail = "hung", f"no result after {timeout:.0f} s; the child was killed"
    elif emulation is not None and emulation.oom_killed:
        outcome, detail = "oom-killed", f"the kernel killed it at the emulated limit of {human(emulation.memory_limit)}"
    elif code < 0:
        outcome, detail = f"killed by {signal.Signals(-code).name}", child.tail(err)
    elif code != 0 or result is None:
        outcome, detail = f"exited with code {code}", child.tail(err)
    else:
        outcome, detail = "ok", ""
    result = result or probed  # it died before reporting: the probe's baseline, and the sampler's peaks
    phases = {k: Snapshot(**v) for k, v in result.get("phases", {}).items()}
    phases.setdefault("baseline", Snapshot(0, 0, 0, 0, 0, 0, 0))
    end = phases.get("end")
    return Measurement(
        artifact=artifact, bytes=artifact.stat().st_size, runtime=result.get("runtime", backend.FORMAT.runtime),
        options=options, seq_len=seq_len, iterations=iterations, warmup=warmup, threads=threads,
        outcome=outcome, detail=detail,
        load_seconds=result.get("load_seconds"), first_seconds=result.get("first_seconds"),
        latencies_ms=tuple(x * 1000 for x in result.get("latencies", ())),
        phases=phases,
        peak_anon=max(sampler.peak_anon if sampler else 0, max((p.rss_anon for p in phases.values()), default=0)),
        peak_file=max(sampler.peak_file if sampler else 0, max((p.rss_file for p in phases.values()), default=0)),
        peak_rss=end.hwm if end else (sampler.peak_rss if sampler else 0),
        emulation=emulation,
        weights_advice=backend.WEIGHTS,
        sampled=sampler.samples if sampler else 0,
        advice=advice,
        machine_load=watch.result,
        rollup=result.get("rollup"),
    )
