"""The measuring child: load one artifact in its runtime, run it, report what it cost.

Run as `python -m pocketfit.runtime._child '<json request>'`; prints one JSON line. It runs in
its own process so that a crash, a hang or an OOM kill here is a verdict in the parent, and so
that its memory figures are those of the runtime alone (no torch is imported unless the runtime
itself needs it: ExecuTorch's Python bindings do).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from pocketfit.errors import PocketfitError
from pocketfit.runtime.procfs import advise, rollup, snapshot


def feeds(inputs, seq_len: int, max_context: int | None = None) -> dict[str, np.ndarray]:
    """Inputs of batch 1 and `seq_len` tokens. Token id 1 exists in every vocabulary, and a mask
    of ones attends to every token: latency does not depend on which ids are fed. A decoder's
    step runs at position seq_len - 1, so that it attends `seq_len` positions (within its cache)."""
    arrays = {}
    for spec in inputs:
        shape = [d if isinstance(d, int) else (1 if i == 0 else seq_len) for i, d in enumerate(spec.shape)]
        if spec.name == "position":
            arrays[spec.name] = np.full(shape, min(seq_len, max_context or seq_len) - 1, dtype=spec.dtype)
            continue
        arrays[spec.name] = np.ones(shape, dtype=spec.dtype) if "int" in spec.dtype else np.zeros(shape, dtype=spec.dtype)
    return arrays


def _max_context(path: Path) -> int | None:
    """A decoder's KV cache positions, from its manifest (None without one)."""
    try:
        return json.loads((path.parent / "manifest.json").read_text())["details"]["kv_cache"]["max_context"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def measure(request: dict) -> dict:
    from pocketfit.converter import backends

    path = Path(request["artifact"])
    backend = backends.for_path(path)
    runtime = backend.runtime_version()
    phases = {"baseline": snapshot(path)}
    if request.get("probe"):  # only the process's own cost: interpreter, numpy, runtime bindings
        return {"runtime": runtime, "phases": {k: v.to_dict() for k, v in phases.items()}}
    start = time.perf_counter()
    runner = backend.open(path, threads=request["threads"], options=request["options"])
    load_s = time.perf_counter() - start
    if request.get("advice"):  # as an app would, on the mapping the runtime made
        advise(path, request["advice"])
    phases["loaded"] = snapshot(path)
    arrays = feeds(runner.inputs, request["seq_len"], _max_context(path))
    start = time.perf_counter()
    runner.run(arrays)
    first_s = time.perf_counter() - start
    phases["first"] = snapshot(path)
    for _ in range(request["warmup"]):
        runner.run(arrays)
    phases["warm"] = snapshot(path)
    latencies = []
    for _ in range(request["iterations"]):
        start = time.perf_counter()
        runner.run(arrays)
        latencies.append(time.perf_counter() - start)
    phases["end"] = snapshot(path)
    return {
        "rollup": rollup(),
        "runtime": runtime,
        "load_seconds": load_s,
        "first_seconds": first_s,
        "latencies": latencies,
        "phases": {k: v.to_dict() for k, v in phases.items()},
    }


def _die_with_parent(parent: int | None) -> None:
    """SIGKILL this process when the harness dies, however it dies (even between fork and the
    harness holding the child's handle): an orphan would run on, holding the harness's pipes."""
    import ctypes
    import os
    import signal

    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})  # blocked by the harness around its fork
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:  # it died before the call above
        os._exit(1)


def main() -> None:
    request = json.loads(sys.argv[1])
    if sys.platform == "linux":
        _die_with_parent(request.get("parent"))
    try:
        result = measure(request)
    except PocketfitError as e:
        result = {"error": type(e).__name__, "message": str(e)}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
