"""The budget file: pocketfit.toml, or [tool.pocketfit] in a pyproject.toml.

Validated against pocketfit/schemas/budget.schema.json; the first error (by line) is reported
with its key path and line, e.g. ``pocketfit.toml:14: models.minilm.limits.sise: unknown key;
did you mean 'size'?``. Then every figure is parsed with its unit and every device looked up.
"""

import difflib
import json
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path

from pocketfit.errors import BadInput, UnknownDevice
from pocketfit.units import parse_bytes, parse_duration

from .. import devices as catalog
from ..devices import Device

FILE_NAME = "pocketfit.toml"


class BudgetFileError(BadInput):
    """The budget file is wrong at one place: the message starts with FILE:LINE: key.path."""


@dataclass(frozen=True)
class Share:
    """A share of the phone's app budget ("60%")."""

    fraction: float

    def of(self, device: Device) -> int:
        return round(self.fraction * device.app_budget)


@dataclass(frozen=True)
class Limits:
    size: int | None = None  # bytes
    memory: int | Share | None = None
    emulated_memory: int | Share | None = None
    latency_p50: float | None = None  # seconds
    latency_p90: float | None = None
    max_latency_ms: float | None = None  # the latency model's phone p50, milliseconds
    tokens_per_second: float | None = None
    context: int | None = None
    parity: bool | None = None
    parity_floors: dict | None = None
    size_growth: float | None = None  # fractions: 0.05 is 5%
    memory_growth: float | None = None
    latency_growth: float | None = None

    def merged(self, over: "Limits") -> "Limits":
        """These limits with every limit `over` sets replacing ours."""
        return replace(self, **{f.name: getattr(over, f.name) for f in fields(over) if getattr(over, f.name) is not None})

    def set(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Export:
    model: str
    format: str
    quant: str = "none"
    task: str = "feature-extraction"
    max_context: int | None = None


@dataclass(frozen=True)
class Model:
    name: str
    artifact: Path
    export: Export | None
    options: dict
    where: str  # FILE:LINE of its table, for messages


@dataclass(frozen=True)
class Tier:
    name: str
    devices: tuple[Device, ...]


@dataclass(frozen=True)
class Measure:
    iterations: int = 10  # enough for a p90 that is not the maximum, few enough for CI
    warmup: int = 2
    seq_len: int = 128  # the sequence length the demo and README figures use
    threads: int | None = None
    timeout: float = 600.0


@dataclass(frozen=True)
class Budget:
    path: Path
    models: tuple[Model, ...]
    tiers: tuple[Tier, ...]
    limits: dict[tuple[str, str], Limits]  # (model, tier) -> the merged limits
    measure: Measure = field(default_factory=Measure)
    baseline: Path | None = None

    def limits_for(self, model: str, tier: str) -> Limits:
        return self.limits[(model, tier)]


def schema() -> dict:
    return json.loads(resources.files("pocketfit").joinpath("schemas/budget.schema.json").read_text(encoding="utf-8"))


def find(start: Path | None = None) -> Path:
    """pocketfit.toml in this folder, else a pyproject.toml here with a [tool.pocketfit] table."""
    folder = Path(start or ".")
    if (folder / FILE_NAME).is_file():
        return folder / FILE_NAME
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file() and "pocketfit" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}):
        return pyproject
    raise BadInput(f"no budget file: neither {folder / FILE_NAME} nor a [tool.pocketfit] table in {pyproject}; pass --config FILE")


def load(path: Path) -> Budget:
    """Read, validate and resolve a budget file (pocketfit.toml or a pyproject.toml)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"budget file {path}: {e.strerror}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BudgetFileError(f"{path}: not valid TOML: {e}") from e
    prefix: tuple[str, ...] = ()
    if path.name == "pyproject.toml":
        if "pocketfit" not in data.get("tool", {}):
            raise BudgetFileError(f"{path}: no [tool.pocketfit] table")
        data, prefix = data["tool"]["pocketfit"], ("tool", "pocketfit")
    lines = _KeyLines(text, prefix)
    _validate(data, path, lines)
    return _resolve(data, path, lines)


def _validate(data: dict, path: Path, lines: "_KeyLines") -> None:
    import jsonschema

    the_schema = schema()
    problems = []
    for error in jsonschema.Draft202012Validator(the_schema).iter_errors(data):
        for keys, message in _explain(error, the_schema):
            problems.append((lines.line(keys), keys, message))
    if problems:
        line, keys, message = min(problems, key=lambda p: (p[0], len(p[1])))
        raise BudgetFileError(f"{path}:{line}: {'.'.join(keys) or '(top level)'}: {message}")


def _explain(error, the_schema) -> list[tuple[tuple[str, ...], str]]:
    """A jsonschema error as (key path, message) pairs, in the words of the budget file."""
    keys = tuple(str(k) for k in error.absolute_path)
    value = error.instance
    if error.validator == "additionalProperties" and isinstance(value, dict):
        known = sorted(error.schema.get("properties", {}))
        out = []
        for key in value:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append((keys + (key,), f"unknown key {key!r}{hint} (known here: {', '.join(known)})"))
        return out
    if error.validator == "required":
        return [(keys, f"missing key: {error.message.split(' ')[0]}")]
    if error.validator == "oneOf" and isinstance(value, dict):
        has = [k for k in ("artifact", "export") if k in value]
        if len(has) == 2:
            return [(keys + ("export",), "give either 'artifact' (an existing file) or [export] (a recipe to build), not both")]
        return [(keys, "needs 'artifact' (an existing file) or an [export] table (a recipe to build it)")]
    if error.validator == "enum":
        return [(keys, f"{value!r} is not one of {', '.join(map(str, error.validator_value))}")]
    if error.validator == "type":
        return [(keys, f"must be {_TYPE_WORDS.get(error.validator_value, error.validator_value)}, not {value!r}")]
    if error.validator == "pattern" and keys and keys[-1].endswith("_growth"):
        return [(keys, f"{value!r} is not a percentage: write e.g. \"5%\"")]
    if error.validator == "pattern":  # a model or tier name
        return [(keys, f"name {value!r} must start with a letter or digit and hold only letters, digits, '_', '.', '-'")]
    return [(keys, error.message)]


_TYPE_WORDS = {"string": "a string in quotes", "integer": "a whole number", "number": "a number",
               "boolean": "true or false", "object": "a table", "array": "a list"}


def _resolve(data: dict, path: Path, lines: "_KeyLines") -> Budget:
    base = path.parent
    build_dir = base / data.get("build_dir", "build/pocketfit")
    m = data.get("measure", {})
    timeout = _parse(parse_duration, m["timeout"], path, lines, ("measure", "timeout")) if "timeout" in m else 600.0
    measure = Measure(m.get("iterations", 10), m.get("warmup", 2), m.get("seq_len", 128), m.get("threads"), timeout)

    tiers = []
    for name, t in data["tiers"].items():
        found = []
        for i, ref in enumerate(t["devices"]):
            ref_path = ref if not (ref.endswith(".toml") or "/" in ref) else str(base / ref)
            try:
                found.append(catalog.load(ref_path))
            except UnknownDevice as e:
                raise BudgetFileError(f"{path}:{lines.line(('tiers', name, 'devices'))}: tiers.{name}.devices[{i}]: {e}") from None
            except BadInput as e:
                raise BudgetFileError(f"{path}:{lines.line(('tiers', name, 'devices'))}: tiers.{name}.devices[{i}]: {e}") from None
        tiers.append(Tier(name, tuple(found)))

    models = []
    for name, spec in data["models"].items():
        where = f"{path}:{lines.line(('models', name))}"
        if "artifact" in spec:
            artifact, export = base / spec["artifact"], None
            if not artifact.is_file():
                at = lines.line(("models", name, "artifact"))
                raise BudgetFileError(f"{path}:{at}: models.{name}.artifact: {spec['artifact']} does not exist "
                                      f"(looked for {artifact}); build it first or give an [models.{name}.export] recipe")
        else:
            e = spec["export"]
            export = Export(e["model"], e["format"], e.get("quant", "none"), e.get("task", "feature-extraction"), e.get("max_context"))
            from pocketfit.converter import FORMATS

            suffix = FORMATS[export.format].suffix
            artifact = (base / e["output"] if "output" in e else build_dir / name) / f"model{suffix}"
        models.append(Model(name, artifact, export, dict(spec.get("options", {})), where))

    common = _limits(data.get("limits", {}), ("limits",), path, lines)
    limits = {}
    for model in models:
        spec = data["models"][model.name]
        per_model = _limits(spec.get("limits", {}), ("models", model.name, "limits"), path, lines)
        for tier_name in spec.get("tiers", {}):
            if tier_name not in data["tiers"]:
                close = difflib.get_close_matches(tier_name, list(data["tiers"]), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise BudgetFileError(f"{path}:{lines.line(('models', model.name, 'tiers', tier_name))}: models.{model.name}.tiers.{tier_name}: "
                                      f"no tier {tier_name!r}{hint} (tiers: {', '.join(data['tiers'])})")
        for tier in tiers:
            per_tier = _limits(data["tiers"][tier.name].get("limits", {}), ("tiers", tier.name, "limits"), path, lines)
            per_cell = _limits(spec.get("tiers", {}).get(tier.name, {}), ("models", model.name, "tiers", tier.name), path, lines)
            limits[(model.name, tier.name)] = common.merged(per_tier).merged(per_model).merged(per_cell)
    baseline = base / data["baseline"] if "baseline" in data else None
    return Budget(path, tuple(models), tuple(tiers), limits, measure, baseline)


def _limits(spec: dict, keys: tuple[str, ...], path: Path, lines: "_KeyLines") -> Limits:
    values = {}
    for key, value in spec.items():
        at = keys + (key,)
        if key == "size":
            values[key] = _parse(parse_bytes, value, path, lines, at)
        elif key in ("memory", "emulated_memory"):
            values[key] = _parse(_memory, value, path, lines, at)
        elif key in ("latency_p50", "latency_p90"):
            values[key] = _parse(parse_duration, value, path, lines, at)
        elif key.endswith("_growth"):
            values[key] = _percent(value)
        else:
            values[key] = value
    return Limits(**values)


def _memory(text: str) -> int | Share:
    """A size, or "60%": that share of the phone's app budget."""
    if str(text).strip().endswith("%"):
        share = _percent(text)
        if not 0 < share <= 1:
            raise BadInput(f"share {text!r} of the app budget must lie between 0% and 100%")
        return Share(share)
    return parse_bytes(text)


def _percent(text: str) -> float:
    return float(str(text).strip().rstrip("%")) / 100


def _parse(parser, value, path: Path, lines: "_KeyLines", keys: tuple[str, ...]):
    try:
        return parser(value)
    except BadInput as e:
        raise BudgetFileError(f"{path}:{lines.line(keys)}: {'.'.join(keys)}: {e}") from None


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")
_PART = re.compile(r"[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'")


class _KeyLines:
    """Where each key path is written in a TOML text (tomllib keeps no positions). Covers
    tables, dotted keys and one level of inline tables on one line; a key path not written
    anywhere (a missing key) gets the line of its nearest written parent."""

    def __init__(self, text: str, prefix: tuple[str, ...] = ()):
        self.at: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                table = self._parts(header.group(1))
                self.at.setdefault(table, number)
                continue
            assign = _ASSIGN.match(line)
            if assign:
                key = table + self._parts(assign.group(1))
                self.at.setdefault(key, number)
                inline = line[assign.end():].strip()
                if inline.startswith("{"):
                    for inner in re.finditer(r"([A-Za-z0-9_-]+)\s*=", inline):
                        self.at.setdefault(key + (inner.group(1),), number)
        self.prefix = prefix

    @staticmethod
    def _parts(dotted: str) -> tuple[str, ...]:
        return tuple(p.strip("\"'") for p in _PART.findall(dotted))

    def line(self, keys: tuple[str, ...]) -> int:
        keys = self.prefix + tuple(keys)
        while keys:
            if keys in self.at:
                return self.at[keys]
            # a table's first key written under a deeper header: [models.x.limits] for ("models", "x")
            deeper = [n for k, n in self.at.items() if k[: len(keys)] == keys]
            if deeper:
                return min(deeper)
            keys = keys[:-1]
        return 1
