"""measure: run an artifact in its own runtime, in a child process, and read what it cost."""

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketfit import errors
from pocketfit.errors import InvalidArtifact, MeasurementFailed


@dataclass(frozen=True)
class Measurement:
    artifact: Path
    bytes: int
    runtime: str
    seq_len: int
    iterations: int
    load_seconds: float
    first_seconds: float
    p50_ms: float
    p90_ms: float
    baseline_rss: int  # the child before the model was loaded: interpreter, numpy, the runtime library
    peak_rss: int  # the kernel's high-water mark of the child (VmHWM), model loaded and run

    @property
    def model_rss(self) -> int:
        """Peak growth over the baseline: what loading and running the model added."""
        return self.peak_rss - self.baseline_rss


def measure(
    artifact: Path, *, iterations: int = 20, seq_len: int = 128, threads: int | None = None, timeout: float = 600
) -> Measurement:
    """Load `artifact` in a fresh child process, run it `iterations` times at batch 1 and
    `seq_len` tokens, and return its timings and resident memory.

    Raises InvalidArtifact when the runtime cannot load the file, MeasurementFailed when the
    child crashes, is killed or hangs past `timeout` seconds.
    """
    artifact = Path(artifact)
    if not artifact.is_file():
        raise InvalidArtifact(f"artifact {artifact} does not exist")
    if iterations < 1 or seq_len < 1:
        raise errors.BadInput("iterations and seq_len must be at least 1")
    request = {"artifact": str(artifact.resolve()), "iterations": iterations, "seq_len": seq_len, "threads": threads}
    command = [sys.executable, "-m", "pocketfit.runtime._child", json.dumps(request)]
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MeasurementFailed(f"{artifact}: the runtime hung: no result after {timeout:.0f} s (child killed)") from None
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        raise MeasurementFailed(f"{artifact}: the runtime was killed by {name}{_tail(child.stderr)}")
    lines = child.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise MeasurementFailed(f"{artifact}: the runtime exited with code {child.returncode} and no result{_tail(child.stderr)}") from None
    if "error" in result:
        raise getattr(errors, result["error"], MeasurementFailed)(result["message"])
    latencies = np.array(result["latencies"]) * 1000
    return Measurement(
        artifact=artifact,
        bytes=artifact.stat().st_size,
        runtime=result["runtime"],
        seq_len=seq_len,
        iterations=iterations,
        load_seconds=result["load_seconds"],
        first_seconds=result["first_seconds"],
        p50_ms=float(np.percentile(latencies, 50)),
        p90_ms=float(np.percentile(latencies, 90)),
        baseline_rss=result["baseline_rss"],
        peak_rss=result["peak_rss"],
    )


def _tail(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f" ({lines[-1].strip()})" if lines else ""
