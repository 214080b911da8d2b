"""The recorded baseline growth limits compare against: per model, its size, measured memory and
measured p50 on the machine that recorded it. Written atomically (pocketfit.files)."""

import json
from pathlib import Path

from pocketfit.errors import BadInput
from pocketfit.files import write_text_atomic

VERSION = 1
KEYS = ("size", "memory", "latency_p50")  # bytes, bytes (model + runtime footprint), seconds


def read(path: Path) -> dict[str, dict]:
    """{model name: {"size": bytes, "memory": bytes, "latency_p50": seconds}}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"baseline {path} does not exist; record one with --update-baseline") from None
    except (OSError, ValueError) as e:
        raise BadInput(f"baseline {path} is not readable JSON: {e}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("models"), dict):
        raise BadInput(f"baseline {path} is not a pocketfit baseline (version {VERSION} with a 'models' table)")
    return data["models"]


def write(path: Path, models: dict[str, dict]) -> None:
    document = {"version": VERSION, "models": {name: {k: v for k, v in sorted(values.items()) if v is not None}
                                               for name, values in sorted(models.items())}}
    write_text_atomic(Path(path), json.dumps(document, indent=2) + "\n")
