"""What a budget run found: one Cell per model x device, one Check per limit in it.

The report formats (formats/) are pure functions of a Results: the same Results gives the same
bytes. Everything is plain data, so a Results round-trips through its JSON form.
"""

import enum
from dataclasses import asdict, dataclass, field


class Status(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # the check could not run: never a pass


@dataclass(frozen=True)
class Check:
    limit: str  # the budget file's key: "size", "memory", "latency_p50", ...
    status: Status
    value: float | None  # what was found, in `unit`
    limit_value: float | None  # the limit, in `unit`
    unit: str  # "bytes", "seconds", "tokens/s", "ratio"
    margin: str  # "22.4 MiB of 25.0 MiB, 90%": the figure a reviewer reads
    message: str = ""  # why it failed or could not run; empty on a pass
    source: str = ""  # where the value came from: "manifest", "measured", "emulated", "simulated", "baseline"
    exit_code: int = 0  # for an ERROR: 2 bad input, 3 the environment lacks what the check needs

    def to_dict(self) -> dict:
        return asdict(self) | {"status": self.status.value}


@dataclass(frozen=True)
class Cell:
    model: str
    tier: str
    device: str  # the device id
    device_name: str
    artifact: str
    format: str
    app_budget: int
    checks: tuple[Check, ...]
    # Where the memory goes on the phone, in bytes: weights_resident, weights_paged, arena,
    # kv_cache, runtime; and "source": measured (this machine) or simulated (at the app budget).
    breakdown: dict = field(default_factory=dict)
    # Predicted latency against memory: [{"budget": bytes, "latency_s": s}, ...] (simulator), or [].
    curve: tuple = ()

    @property
    def status(self) -> Status:
        found = {c.status for c in self.checks}
        return Status.ERROR if Status.ERROR in found else Status.FAIL if Status.FAIL in found else Status.PASS

    def to_dict(self) -> dict:
        return {
            "model": self.model, "tier": self.tier, "device": self.device, "device_name": self.device_name,
            "artifact": self.artifact, "format": self.format, "app_budget": self.app_budget, "status": self.status.value,
            "checks": [c.to_dict() for c in self.checks], "breakdown": dict(self.breakdown), "curve": [dict(p) for p in self.curve],
        }


@dataclass(frozen=True)
class Results:
    config: str  # the budget file, as given
    cells: tuple[Cell, ...]
    started: str  # ISO 8601, UTC
    seconds: float
    tool: str  # "pocketfit 0.1.0"
    baseline: str | None = None
    baseline_updated: bool = False
    notes: tuple[str, ...] = ()

    @property
    def checks(self) -> list[tuple[Cell, Check]]:
        return [(cell, check) for cell in self.cells for check in cell.checks]

    def count(self, status: Status) -> int:
        return sum(1 for _, c in self.checks if c.status is status)

    @property
    def exit_code(self) -> int:
        """0 all pass, 1 a limit broken, else the highest error code (2 bad input, 3 environment)."""
        errors = [c.exit_code for _, c in self.checks if c.status is Status.ERROR]
        if errors:
            return max(errors)
        return 1 if self.count(Status.FAIL) else 0

    def to_dict(self) -> dict:
        return {
            "schema_version": 1,
            "tool": self.tool,
            "config": self.config,
            "started": self.started,
            "seconds": self.seconds,
            "baseline": {"path": self.baseline, "updated": self.baseline_updated} if self.baseline else None,
            "summary": {"pass": self.count(Status.PASS), "fail": self.count(Status.FAIL), "error": self.count(Status.ERROR),
                        "exit_code": self.exit_code},
            "cells": [c.to_dict() for c in self.cells],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Results":
        cells = tuple(
            Cell(**{k: v for k, v in c.items() if k not in ("status", "checks", "curve")},
                 checks=tuple(Check(**(ch | {"status": Status(ch["status"])})) for ch in c["checks"]),
                 curve=tuple(c["curve"]))
            for c in data["cells"]
        )
        baseline = data.get("baseline") or {}
        return cls(config=data["config"], cells=cells, started=data["started"], seconds=data["seconds"], tool=data["tool"],
                   baseline=baseline.get("path"), baseline_updated=baseline.get("updated", False), notes=tuple(data.get("notes", ())))
