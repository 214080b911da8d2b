"""The phone catalog: one TOML file per phone, every number with its source.

Built-in profiles live in runtime/devices/; a user passes their own as a path to a .toml file.
"""

import enum
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

from pocketfit.errors import BadInput, InvalidDeviceProfile, UnknownDevice
from pocketfit.units import parse_bytes


class OS(enum.Enum):
    ANDROID = "android"
    IOS = "ios"


class Tier(enum.Enum):
    LOW_END = "low-end"
    MID_RANGE = "mid-range"
    FLAGSHIP = "flagship"


# Fields that hold a figure about the phone, and so need a source.
_SOURCED = ("ram", "app_budget", "app_budget_extended")


@dataclass(frozen=True)
class Device:
    id: str  # the file's stem: what `--device` takes
    name: str
    os: OS
    tier: Tier
    ram: int  # bytes
    app_budget: int  # bytes one foreground app can hold before lmkd / jetsam kills it
    sources: dict[str, str]
    app_budget_extended: int | None = None  # iOS, with the increased-memory-limit entitlement
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.app_budget <= self.ram:
            raise InvalidDeviceProfile(f"{self._where}: app_budget must be more than 0 and at most ram")
        if self.app_budget_extended is not None:
            if self.os is not OS.IOS:
                raise InvalidDeviceProfile(f"{self._where}: app_budget_extended is an iOS entitlement; remove it for {self.os.value}")
            if not self.app_budget <= self.app_budget_extended <= self.ram:
                raise InvalidDeviceProfile(f"{self._where}: app_budget_extended must lie between app_budget and ram")
        for name in _SOURCED:
            if getattr(self, name) is not None and not self.sources.get(name, "").strip():
                raise InvalidDeviceProfile(f"{self._where}: field {name!r} has no entry in [sources]; every figure needs one")

    @property
    def _where(self) -> str:
        return str(self.path) if self.path else f"device {self.id!r}"

    def to_toml(self) -> str:
        def size(n: int) -> str:
            return f'"{n} B"'

        lines = [f'name = "{self.name}"', f'os = "{self.os.value}"', f'tier = "{self.tier.value}"']
        lines += [f"ram = {size(self.ram)}", f"app_budget = {size(self.app_budget)}"]
        if self.app_budget_extended is not None:
            lines.append(f"app_budget_extended = {size(self.app_budget_extended)}")
        lines.append("\n[sources]")
        lines += [f"{k} = {_toml_string(v)}" for k, v in self.sources.items()]
        return "\n".join(lines) + "\n"


def parse(text: str, id: str, path: Path | None = None) -> Device:
    """Build a Device from a profile's TOML text, naming the first field that is wrong."""
    where = str(path) if path else f"device {id!r}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidDeviceProfile(f"{where}: not valid TOML: {e}") from e
    known = {f.name for f in fields(Device)} - {"id", "path"}
    for key in data:
        if key not in known:
            raise InvalidDeviceProfile(f"{where}: unknown field {key!r}; a profile has {', '.join(sorted(known))}")
    for key in ("name", "os", "tier", "ram", "app_budget", "sources"):
        if key not in data:
            raise InvalidDeviceProfile(f"{where}: missing field {key!r}")
    if not isinstance(data["name"], str) or not data["name"].strip():
        raise InvalidDeviceProfile(f"{where}: field 'name' must be a non-empty string")
    values: dict = {"id": id, "path": path, "name": data["name"]}
    for key, kind in (("os", OS), ("tier", Tier)):
        try:
            values[key] = kind(data[key])
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise InvalidDeviceProfile(f"{where}: field {key!r} is {data[key]!r}; use one of {allowed}") from None
    for key in ("ram", "app_budget", "app_budget_extended"):
        if key in data:
            try:
                values[key] = parse_bytes(data[key])
            except BadInput as e:
                raise InvalidDeviceProfile(f"{where}: field {key!r}: {e}") from None
    if not isinstance(data["sources"], dict) or not all(isinstance(v, str) for v in data["sources"].values()):
        raise InvalidDeviceProfile(f"{where}: [sources] must map each field to a string")
    values["sources"] = dict(data["sources"])
    return Device(**values)


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


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
