"""The terminal table: one row per model x device x limit, with its verdict and margin."""

from pocketfit.table import render as grid

from ..results import Results, Status
from . import register

_VERDICT = {Status.PASS: "pass", Status.FAIL: "FAIL", Status.ERROR: "ERROR"}


@register("table")
def render(results: Results) -> str:
    rows = [["model", "tier", "device", "limit", "verdict", "margin"]]
    for cell, check in results.checks:
        rows.append([cell.model, cell.tier, cell.device, check.limit, _VERDICT[check.status], check.margin])
    lines = [grid(rows)] if len(rows) > 1 else ["(no limits to check)"]
    problems = [(cell, c) for cell, c in results.checks if c.status is not Status.PASS]
    if problems:
        lines.append("")
        lines += [f"{_VERDICT[c.status]:5}  {cell.model} on {cell.device}: {c.message}" for cell, c in problems]
    lines += [""] + [f"note: {n}" for n in results.notes]
    p, f, e = (results.count(s) for s in Status)
    lines.append(f"{p} passed, {f} failed, {e} could not run ({len(results.cells)} model x device cells, {results.seconds:.1f} s)")
    return "\n".join(lines) + "\n"
