"""The measuring child process: started, sampled for its peak memory, and read back.

Below both `handset` (which probes a runtime before sizing its cgroups) and `measure` (which runs
the measurement, optionally inside a handset): neither imports the other's machinery."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pocketfit import errors

from . import procfs
from .procfs import Snapshot


@dataclass
class Sampler:
    """Polls the child's /proc/PID/status (cheap: no walk of its mappings) for peak memory:
    every `interval` seconds for the first second — loading and the first inference, where the
    peaks are — then every 0.2 s. On two cores each wake-up of this thread can stall the child's
    thread pool; sampling steady-state runs at 10 ms moved p50 by up to 20% here. The kernel's
    own high-water mark (VmHWM, reported by the child) bounds the total exactly either way."""

    pid: int
    interval: float
    peak_anon: int = 0
    peak_file: int = 0
    peak_rss: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "Sampler":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            try:
                s = procfs.status(self.pid)
            except (OSError, ValueError, KeyError):
                return  # the child is gone
            self.peak_anon = max(self.peak_anon, s.get("RssAnon", 0))
            self.peak_file = max(self.peak_file, s.get("RssFile", 0))
            self.peak_rss = max(self.peak_rss, s.get("VmRSS", 0))
            self.samples += 1
            self._stop.wait(self.interval if time.monotonic() - start < 1.0 else max(self.interval, 0.2))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(request: dict, timeout: float, wrap=None, interval: float | None = 0.01):
    """Start the child (inside cgroups when `wrap` is given), sample it, and collect what it says."""
    command = [sys.executable, "-m", "pocketfit.runtime._child", json.dumps(request | {"parent": os.getpid()})]
    # Ctrl-C or SIGTERM while Popen forks would leave a child this function holds no handle to:
    # they wait, blocked, until `child` exists (the child unblocks them for itself at start).
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        child = subprocess.Popen(wrap(command) if wrap else command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    sampler = Sampler(child.pid, interval).start() if interval else None
    hung = False
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        hung = True
    except BaseException:  # Ctrl-C: the child must not outlive the harness
        child.kill()
        child.wait()
        raise
    finally:
        if sampler:
            sampler.stop()
    return child.returncode, out, err, hung, sampler


def probe(artifact: Path, timeout: float = 300) -> tuple[str, Snapshot]:
    """The runtime's name and the child process's own memory before any model is loaded."""
    code, out, err, hung, _ = run({"artifact": str(artifact), "probe": True}, timeout, interval=None)
    result = parse_result(out)
    if hung or code != 0 or result is None or "error" in result:
        raise_error(result)
        raise errors.MeasurementFailed(f"{artifact}: the runtime could not start ({tail(err) or f'exit code {code}'})")
    return result["runtime"], Snapshot(**result["phases"]["baseline"])


def parse_result(out: str) -> dict | None:
    lines = out.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else None
    except ValueError:
        return None


def raise_error(result: dict | None) -> None:
    if result and "error" in result:
        raise getattr(errors, result["error"], errors.MeasurementFailed)(result["message"])


def tail(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
