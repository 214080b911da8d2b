"""The phone catalog: one TOML file per phone, every figure with its source.

Built-in profiles live in runtime/devices/; a user passes their own as a path to a .toml file.
A profile with a missing, unknown or nonsensical field is refused with the field's name.
"""

import enum
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
    path: Path | None = field(default=None, compare=False)

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"device {self.id!r}"

    def to_toml(self) -> str:
        lines = [f"{name} = {_toml_value(spec.write(getattr(self, name)))}"
                 for name, spec in _FIELDS.items() if getattr(self, name) is not None]
        lines.append("\n[sources]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in self.sources.items()]
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
        if key not in _FIELDS and key != "sources":
            raise InvalidDeviceProfile(f"{where}: unknown field {key!r}; a profile has {', '.join(_FIELDS)} and [sources]")
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
    _check_together(values, where)
    return Device(**values)


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


def _toml_value(value) -> str:
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


