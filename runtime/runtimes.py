"""What each runtime itself costs on a phone before a model is loaded: stated, sourced figures
(runtime/runtimes.toml). A measurement on this machine subtracts its own process's baseline
(Python, numpy, the runtime's Python bindings — and libtorch for ExecuTorch's) and adds these."""

import tomllib
from dataclasses import dataclass
from importlib import resources

from pocketfit.errors import BadInput
from pocketfit.units import parse_bytes


@dataclass(frozen=True)
class Footprint:
    runtime: str
    footprint: int  # bytes: native code resident plus the runtime's own heap
    library: int
    heap: int
    sources: dict[str, str]


def footprints() -> dict[str, Footprint]:
    data = tomllib.loads(resources.files("pocketfit.runtime").joinpath("runtimes.toml").read_text(encoding="utf-8"))
    out = {}
    for name, entry in data.items():
        try:
            values = {k: parse_bytes(entry[k]) for k in ("footprint", "library", "heap")}
        except (KeyError, BadInput) as e:
            raise BadInput(f"runtimes.toml [{name}]: {e}") from e
        out[name] = Footprint(name, sources=dict(entry.get("sources", {})), **values)
    return out


def footprint_of(runtime: str) -> Footprint:
    """The footprint of a runtime named as a runner names it ("onnxruntime 1.32.0")."""
    name = runtime.split()[0]
    known = footprints()
    if name not in known:
        raise BadInput(f"no on-device footprint recorded for runtime {name!r} (runtime/runtimes.toml has {', '.join(known)})")
    return known[name]
