"""The one result contract of an on-device benchmark (pocketfit/schemas/device-bench.schema.json):
what the android-demo app writes on a handset and `bench-device --local` writes here, validated
the same way, and appended to a local results file the latency model's calibration can read.
"""

import datetime
import json
from importlib import resources
from pathlib import Path

from pocketfit.errors import InvalidResult, OutputNotWritable
from pocketfit.files import sha256, staged

SCHEMA_ID = "pocketfit/device-bench/1"
RUNTIME_NAMES = {"executorch", "onnxruntime", "ai-edge-litert"}


def schema() -> dict:
    return json.loads(resources.files("pocketfit").joinpath("schemas/device-bench.schema.json").read_text(encoding="utf-8"))


def validate(doc: dict, where: str = "result") -> dict:
    """The document, or InvalidResult naming the first field that breaks the contract."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        at = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise InvalidResult(f"{where}: {at}: {e.message} (pocketfit/schemas/device-bench.schema.json)")
    return doc


def load(path: Path) -> dict:
    """A result file as pulled from a handset: JSON, and valid."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise InvalidResult(f"cannot read result {path}: {e.strerror}") from e
    except ValueError as e:
        raise InvalidResult(f"result {path} is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise InvalidResult(f"result {path} is not a JSON object")
    return validate(doc, str(path))


def of_measurement(m, facts, source: str = "local") -> dict:
    """The contract filled from a pocketfit Measurement (the runner loop run in a child here)."""
    name, _, version = m.runtime.rpartition(" ")
    end, baseline = m.phases.get("end"), m.phases.get("baseline")
    rollup = m.rollup or {}
    doc = {
        "schema": SCHEMA_ID, "source": source,
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "artifact": {"file": m.artifact.name, "bytes": m.bytes, "sha256": sha256(m.artifact), "format": m.artifact.suffix.lstrip(".")},
        "runtime": {"name": name if name in RUNTIME_NAMES else m.runtime, "version": version},
        "settings": {"threads": m.threads, "iterations": m.iterations, "warmup": m.warmup, "seq_len": m.seq_len},
        "timing": {"load_ms": m.load_seconds * 1e3, "first_run_ms": m.first_seconds * 1e3, "p50_ms": m.p50_ms,
                   "p90_ms": m.p90_ms, "p99_ms": m.p99_ms, "latencies_ms": list(m.latencies_ms)},
        "memory": {"pss": rollup.get("pss"), "private_dirty": rollup.get("private_dirty"), "native_heap": None,
                   "vm_hwm": end.hwm, "rss_anon": end.rss_anon, "rss_file": end.rss_file,
                   "baseline_rss": baseline.rss_anon + baseline.rss_file if baseline else None},
        "faults": {"major": end.majflt - baseline.majflt, "minor": end.minflt - baseline.minflt,
                   "major_timed": m.faults("warm", "end").get("majflt")},
        "device": facts.to_dict(),
        "machine_load": m.machine_load.to_dict() if m.machine_load else None,
    }
    return validate(doc, f"the result of {m.artifact.name}")


def append(doc: dict, path: Path) -> Path:
    """Add one result to the JSON Lines file at `path` (made if missing), rewriting it whole under
    a temporary name so a crash never leaves half a line."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        before = path.read_bytes() if path.exists() else b""
        with staged(path) as tmp:
            tmp.write_bytes(before + json.dumps(doc, sort_keys=True).encode() + b"\n")
    except OSError as e:
        raise OutputNotWritable(f"cannot write the results file {path}: {e.strerror}") from e
    return path


def read_all(path: Path) -> list[dict]:
    """Every result in a results file, each validated (for the calibration to read)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines() if Path(path).exists() else []
    out = []
    for number, line in enumerate(lines, 1):
        try:
            doc = json.loads(line)
        except ValueError as e:
            raise InvalidResult(f"{path}:{number}: not JSON: {e}") from e
        out.append(validate(doc, f"{path}:{number}"))
    return out
