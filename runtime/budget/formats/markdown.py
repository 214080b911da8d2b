"""Markdown for a CI job summary ($GITHUB_STEP_SUMMARY): the verdict, a model x device grid,
then every limit with its margin."""

from ..results import Results, Status
from . import register

_MARK = {Status.PASS: "✅ pass", Status.FAIL: "❌ fail", Status.ERROR: "⚠️ error"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@register("markdown")
def render(results: Results) -> str:
    p, f, e = (results.count(s) for s in Status)
    verdict = {0: "all limits hold", 1: "a limit is broken", 2: "bad input", 3: "the environment lacks what a check needs"}
    lines = [f"## pocketfit check: {_MARK[Status.PASS] if results.exit_code == 0 else _MARK[Status.FAIL] if results.exit_code == 1 else _MARK[Status.ERROR]}"
             f" — {verdict.get(results.exit_code, 'error')}", "",
             f"{p} passed, {f} failed, {e} could not run · `{results.config}`", ""]
    models = list(dict.fromkeys(c.model for c in results.cells))
    devices = list(dict.fromkeys((c.tier, c.device) for c in results.cells))
    status = {(c.model, c.device): c.status for c in results.cells}
    lines.append("| model | " + " | ".join(f"{d} ({t})" for t, d in devices) + " |")
    lines.append("|---|" + "---|" * len(devices))
    for m in models:
        lines.append(f"| {m} | " + " | ".join(_MARK[status[(m, d)]] if (m, d) in status else "" for _, d in devices) + " |")
    lines += ["", "| model | device | limit | verdict | margin | why |", "|---|---|---|---|---|---|"]
    for cell, c in results.checks:
        lines.append(f"| {cell.model} | {cell.device} | {c.limit} | {_MARK[c.status]} | {_cell(c.margin)} | {_cell(c.message)} |")
    if results.notes:
        lines += [""] + [f"- {_cell(n)}" for n in results.notes]
    return "\n".join(lines) + "\n"
