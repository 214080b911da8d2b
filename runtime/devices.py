"""The phone catalog: one TOML file per phone, every figure with its source.

Built-in profiles live in runtime/devices/; a user passes their own as a path to a .toml file.
A profile with a missing, unknown or nonsensical field is refused with the field's name.
"""

import enum
import functools
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pocketfit.errors import BadInput, InvalidDeviceProfile, UnknownDevice
from pocketfit.units import parse_bytes, parse_duration, parse_rate

GB = 10**9


class OS(enum.Enum):
    ANDROID = "android"
    IOS = "ios"


class Tier(enum.Enum):
    LOW_END = "low-end"
    MID_RANGE = "mid-range"
    FLAGSHIP = "flagship"


@dataclass(frozen=True)
class Device:
    id: str  # the file's stem: what `--device` takes
    name: str
    os: OS
    tier: Tier
    ram: int  # bytes, as marketed
    app_budget: int  # bytes one foreground app can hold before lmkd / jetsam kills it
    page_size: int  # bytes: 4 KiB, or 16 KiB (iOS; Android 15+ devices built for it)
    storage: str  # "UFS 3.1", "eMMC 5.1", "Apple NVMe"
    flash_read_bandwidth: int  # bytes/s, large sequential reads
    flash_read_latency: float  # seconds for one small (4 KiB) random read, queue depth 1
    flash_read_iops: int  # small (4 KiB) random reads per second at depth
    dram: str  # "LPDDR5X"
    dram_bandwidth: int  # bytes/s, peak
    big_cores: int  # performance cores an inference thread pool should use
    sources: dict[str, str]
    app_budget_extended: int | None = None  # iOS, with the increased-memory-limit entitlement
    compute: "Compute | None" = None  # the CPU: what the latency model needs ([compute] table)
    path: Path | None = field(default=None, compare=False)

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"device {self.id!r}"

    def to_toml(self) -> str:
        lines = [f"{name} = {_toml_value(spec.write(getattr(self, name)))}"
                 for name, spec in _FIELDS.items() if getattr(self, name) is not None]
        if self.compute is not None:
            lines.append("\n[compute]")
            lines.append(f"soc = {_toml_value(self.compute.soc)}")
            clusters = ", ".join(f'{{ cores = {c.cores}, core = "{c.core.id}", ghz = {c.ghz} }}' for c in self.compute.clusters)
            lines.append(f"clusters = [{clusters}]")
        lines.append("\n[sources]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in self.sources.items()]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Field:
    read: Callable  # TOML value -> Python value (raises BadInput, ValueError)
    write: Callable  # Python value -> TOML value that reads back the same
    check: Callable = lambda v: True  # a sane range: a figure outside it is a typo or a wrong unit
    rule: str = ""
    required: bool = True


def _text(v):
    if not isinstance(v, str) or not v.strip():
        raise BadInput("must be a non-empty string")
    return v


def _int(v):
    if not isinstance(v, int) or isinstance(v, bool):
        raise BadInput(f"must be a whole number, not {v!r}")
    return v


_FIELDS: dict[str, _Field] = {
    "name": _Field(_text, str),
    "os": _Field(OS, lambda v: v.value),
    "tier": _Field(Tier, lambda v: v.value),
    "ram": _Field(parse_bytes, lambda v: f"{v} B", lambda v: 2**30 <= v <= 64 * 2**30, "between 1 GiB and 64 GiB"),
    "app_budget": _Field(parse_bytes, lambda v: f"{v} B", lambda v: 64 * 2**20 <= v, "at least 64 MiB"),
    "app_budget_extended": _Field(parse_bytes, lambda v: f"{v} B", required=False),
    "page_size": _Field(parse_bytes, lambda v: f"{v} B", lambda v: v in (4096, 16384), "4 KiB or 16 KiB"),
    "storage": _Field(_text, str),
    "flash_read_bandwidth": _Field(parse_rate, lambda v: f"{v} B/s", lambda v: 50 * 10**6 <= v <= 20 * GB, "between 50 MB/s and 20 GB/s"),
    "flash_read_latency": _Field(parse_duration, lambda v: f"{v * 1e9:.0f} ns", lambda v: 5e-6 <= v <= 10e-3, "between 5 us and 10 ms"),
    "flash_read_iops": _Field(_int, int, lambda v: 1000 <= v <= 5_000_000, "between 1,000 and 5,000,000"),
    "dram": _Field(_text, str),
    "dram_bandwidth": _Field(parse_rate, lambda v: f"{v} B/s", lambda v: GB <= v <= 500 * GB, "between 1 GB/s and 500 GB/s"),
    "big_cores": _Field(_int, int, lambda v: 1 <= v <= 16, "between 1 and 16"),
}
_UNSOURCED = ("name", "os", "tier")  # every other field is a figure about the phone: it needs a source


def parse(text: str, id: str, path: Path | None = None) -> Device:
    """Build a Device from a profile's TOML text, naming the first field that is wrong."""
    where = str(path) if path else f"device {id!r}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidDeviceProfile(f"{where}: not valid TOML: {e}") from e
    for key in data:
        if key not in _FIELDS and key not in ("sources", "compute"):
            raise InvalidDeviceProfile(f"{where}: unknown field {key!r}; a profile has {', '.join(_FIELDS)}, [compute] and [sources]")
    values: dict = {"id": id, "path": path}
    for key, spec in _FIELDS.items():
        if key not in data:
            if spec.required:
                raise InvalidDeviceProfile(f"{where}: missing field {key!r}")
            continue
        try:
            value = spec.read(data[key])
        except (BadInput, ValueError) as e:
            allowed = f"; use one of {', '.join(m.value for m in spec.read)}" if isinstance(spec.read, type) else ""
            raise InvalidDeviceProfile(f"{where}: field {key!r} is {data[key]!r}: {e}{allowed}") from None
        if not spec.check(value):
            raise InvalidDeviceProfile(f"{where}: field {key!r} is {data[key]!r}, which is not {spec.rule}")
        values[key] = value
    sources = data.get("sources")
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise InvalidDeviceProfile(f"{where}: [sources] must map each field to a string saying where its figure comes from")
    for key in values.keys() & _FIELDS.keys():
        if key not in _UNSOURCED and not sources.get(key, "").strip():
            raise InvalidDeviceProfile(f"{where}: field {key!r} has no entry in [sources]; every figure needs one")
    values["sources"] = dict(sources)
    if "compute" in data:
        values["compute"] = _compute(data["compute"], sources, where)
    _check_together(values, where)
    return Device(**values)


@dataclass(frozen=True)
class Core:
    """One CPU core design: its arithmetic per cycle by precision (runtime/cores.toml)."""

    id: str
    name: str
    fp32_flops_per_cycle: float
    fp16_flops_per_cycle: float  # 0: no FP16 arithmetic
    int8_ops_per_cycle: float  # with SDOT where the core has dotprod
    i8mm_ops_per_cycle: float  # with SMMLA; 0 without i8mm
    features: tuple[str, ...]
    in_order: bool
    source: str

    def per_cycle(self, precision: str) -> float:
        """What a kernel of this precision can reach per cycle: int8 and int4 kernels (int4 is
        unpacked to int8) take SMMLA where there is i8mm, else SDOT; fp16 falls back to fp32."""
        if precision in ("int8", "int4"):
            return self.i8mm_ops_per_cycle or self.int8_ops_per_cycle
        if precision == "fp16":
            return self.fp16_flops_per_cycle or self.fp32_flops_per_cycle
        return self.fp32_flops_per_cycle


@dataclass(frozen=True)
class Cluster:
    cores: int
    core: Core
    ghz: float


@dataclass(frozen=True)
class Compute:
    soc: str
    clusters: tuple[Cluster, ...]

    def fastest(self, threads: int) -> list[tuple[Core, float]]:
        """The `threads` cores a thread pool lands on, fastest first: (core, GHz)."""
        cores = [(c.core, c.ghz) for c in self.clusters for _ in range(c.cores)]
        cores.sort(key=lambda x: x[0].fp32_flops_per_cycle * x[1], reverse=True)
        return cores[:threads]

    @property
    def count(self) -> int:
        return sum(c.cores for c in self.clusters)

    def peak(self, precision: str, threads: int) -> float:
        """Operations per second of `threads` threads at this precision, at the cores' peak."""
        return sum(core.per_cycle(precision) * ghz * 1e9 for core, ghz in self.fastest(threads))

    def derivation(self, precision: str, threads: int) -> str:
        parts = [f"{core.name} {core.per_cycle(precision):g} ops/cycle x {ghz:g} GHz" for core, ghz in self.fastest(threads)]
        return f"{self.peak(precision, threads) / 1e9:.0f} G{precision} ops/s = " + " + ".join(parts)


@functools.cache
def cores() -> dict[str, Core]:
    """The core designs pocketfit knows, by id (runtime/cores.toml), every figure sourced."""
    text = resources.files("pocketfit.runtime").joinpath("cores.toml").read_text(encoding="utf-8")
    found = {}
    for key, t in tomllib.loads(text).items():
        found[key] = Core(key, t["name"], float(t["fp32_flops_per_cycle"]), float(t.get("fp16_flops_per_cycle", 0)),
                          float(t["int8_ops_per_cycle"]), float(t.get("i8mm_ops_per_cycle", 0)), tuple(t.get("features", ())),
                          bool(t.get("in_order", False)), t["source"])
    return found


def _compute(table, sources: dict, where: str) -> Compute:
    if not isinstance(table, dict) or not isinstance(table.get("clusters"), list) or not table["clusters"]:
        raise InvalidDeviceProfile(f"{where}: [compute] needs clusters = [{{ cores = N, core = \"cortex-a78\", ghz = 2.4 }}, ...]")
    for key in ("clusters", "soc"):
        if key not in table:
            raise InvalidDeviceProfile(f"{where}: [compute] is missing {key!r}")
        if not str(sources.get(f"compute.{key}", "")).strip():
            raise InvalidDeviceProfile(f"{where}: field 'compute.{key}' has no entry in [sources]; every figure needs one")
    known = cores()
    clusters = []
    for c in table["clusters"]:
        if not isinstance(c, dict) or set(c) != {"cores", "core", "ghz"}:
            raise InvalidDeviceProfile(f"{where}: each [compute] cluster is {{ cores = N, core = ID, ghz = X }}, not {c!r}")
        if c["core"] not in known:
            raise InvalidDeviceProfile(f"{where}: [compute] core {c['core']!r} is not in pocketfit's core table; known: {', '.join(known)}")
        if not isinstance(c["cores"], int) or not 1 <= c["cores"] <= 16 or not isinstance(c["ghz"], (int, float)) or not 0.3 <= c["ghz"] <= 6:
            raise InvalidDeviceProfile(f"{where}: [compute] cluster {c!r}: cores must be 1-16 and ghz 0.3-6")
        clusters.append(Cluster(c["cores"], known[c["core"]], float(c["ghz"])))
    return Compute(_text(table["soc"]), tuple(clusters))


def _check_together(v: dict, where: str) -> None:
    if v["app_budget"] > v["ram"]:
        raise InvalidDeviceProfile(f"{where}: field 'app_budget' exceeds 'ram'")
    extended = v.get("app_budget_extended")
    if extended is not None:
        if v["os"] is not OS.IOS:
            raise InvalidDeviceProfile(f"{where}: field 'app_budget_extended' is an iOS entitlement; remove it for {v['os'].value}")
        if not v["app_budget"] <= extended <= v["ram"]:
            raise InvalidDeviceProfile(f"{where}: field 'app_budget_extended' must lie between app_budget and ram")


def builtin() -> dict[str, Device]:
    """The profiles that ship with pocketfit, by id."""
    folder = resources.files("pocketfit.runtime").joinpath("devices")
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".toml")), key=lambda e: e.name)
    return {e.name[:-5]: parse(e.read_text(encoding="utf-8"), e.name[:-5]) for e in entries}


def load(ref: str) -> Device:
    """A built-in profile by id (`pixel-7a`), or a user's profile by path (`my-phone.toml`)."""
    if ref.endswith(".toml") or "/" in ref:
        path = Path(ref)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise UnknownDevice(f"device profile {ref}: {e.strerror}") from e
        return parse(text, path.stem, path)
    catalog = builtin()
    if ref not in catalog:
        raise UnknownDevice(f"unknown device {ref!r}; known: {', '.join(catalog)} (or give a path to a .toml profile)")
    return catalog[ref]


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def _toml_value(value) -> str:
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


