"""What a fit search leaves in its output folder: the table (fit.txt), every candidate's figures
(fit.json), the plot (fit.png), the chosen artifact with its manifest (chosen/), and a budget
file (pocketfit.toml) that `pocketfit check --config` runs to pin what was found."""

import json
import shutil
from pathlib import Path

from pocketfit.files import staged, write_text_atomic
from pocketfit.table import render
from pocketfit.units import mib

from .frontier import Knobs
from .quality import MEASURES


def status(outcome, k: Knobs) -> str:
    s = outcome.search
    if k == outcome.chosen:
        return "chosen"
    if k in s.passed:
        return "pareto" if k in s.pareto() else "fits, beaten"
    if k in s.over:
        return "over budget"
    if k in s.failed:
        return "below floor"
    return "not exported"


def rows(outcome) -> list[list[str]]:
    measure = MEASURES[outcome.task]
    table = [["candidate", "bytes", "model RSS", "needs (with runtime)", f"p50 {outcome.device.id} (predicted)", measure.name, ""]]
    exported = [k for k, r in outcome.results.items() if "bytes" in r]
    for k in sorted(exported, key=lambda k: (outcome.results[k]["bytes"], k.describe())):
        r = outcome.results[k]
        latency = f"{r['latency_ms']:.1f} ms" if r.get("latency_ms") else "-"
        table.append([k.describe(), mib(r["bytes"]), mib(r["model_rss"]), mib(r["model_rss"] + r["footprint"]), latency,
                      measure.show(r["quality"]), status(outcome, k)])
    judged = [k for k, r in outcome.results.items() if "torch_quality" in r]
    for k in sorted(judged, key=lambda k: (outcome.search.estimates[k].bytes, k.describe())):
        table.append([k.describe(), "-", "-", "-", "-", measure.show(outcome.results[k]["torch_quality"]) + " (torch)", "below floor, not exported"])
    return table


def summary(outcome) -> str:
    c = outcome.counts
    measure = MEASURES[outcome.task]
    sign = ">=" if measure.higher_is_better else "<="
    goal = outcome.search.goal
    latency = f" and {goal.max_latency_ms:g} ms" if goal.max_latency_ms else ""
    return (f"{outcome.device.id}: {mib(outcome.memory)} for the model and its runtime{latency}, {measure.name} {sign} "
            f"{measure.show(outcome.floor.value).lstrip('+')} on {outcome.held_out_lines} held-out lines. {c['considered']} candidates considered, "
            f"{c['skipped_by_prediction']} skipped by prediction, {c['ruled_out']} ruled out by earlier results, "
            f"{c['below_in_torch']} below the floor in torch before export, {c['exported']} exported"
            + (f"; {c['from_cache']} results reused from an earlier run's cache" if c["from_cache"] else "")
            + (f", {c['failed_to_export']} could not be exported" if c["failed_to_export"] else ""))


def closest(outcome) -> str:
    """When nothing fits: the candidate that came nearest, and what it missed by."""
    s, measure = outcome.search, MEASURES[outcome.task]
    over = list(s.over)
    if over:
        k = min(over, key=lambda k: s.figures(k).memory)
        needs = s.figures(k).memory
        return f"closest: {k.describe()}, {measure.name} {measure.show(outcome.results[k]['quality'])}, needs {mib(needs)} as measured, {mib(needs - outcome.memory)} over"
    low = [k for k in s.failed if k in outcome.results and "quality" in outcome.results[k]
           and outcome.search.goal.misses(s.figures(k)) is None]
    if low:
        k = max(low, key=lambda k: s.failed[k] if measure.higher_is_better else -s.failed[k])
        return (f"closest: {k.describe()}, which fits, but its {measure.name} is {measure.show(s.failed[k])} against the floor's "
                f"{measure.show(outcome.floor.value).lstrip('+')}")
    goal = outcome.search.goal
    latency = lambda k: s.estimates[k].latency_ms if s.estimates[k].latency_ms is not None else 0.0  # noqa: E731
    k = min(s.estimates, key=lambda k: (max(0, s.estimates[k].memory - outcome.memory), latency(k)))
    e = s.estimates[k]
    if e.memory > outcome.memory:
        return f"closest: {k.describe()}, which needs at least {mib(e.memory)} by prediction, {mib(e.memory - outcome.memory)} over"
    if e.latency_ms is not None and goal.max_latency_ms is not None and e.latency_ms > goal.max_latency_ms:
        return f"closest: {k.describe()}, {e.latency_ms:.1f} ms predicted, over the {goal.max_latency_ms:g} ms target"
    return f"closest: {k.describe()}: {s.skipped.get(k, 'not evaluated')}"


def to_dict(outcome) -> dict:
    s = outcome.search

    def entry(k: Knobs) -> dict:
        e = s.estimates[k]
        d = {"candidate": k.describe(), "knobs": k.__dict__.copy(), "status": status(outcome, k),
             "estimate": {"bytes": e.bytes, "memory": e.memory, "latency_ms": e.latency_ms}}
        if k in outcome.results:
            d["measured"] = outcome.results[k] | {"from_cache": k in outcome.cached}
        if k in s.skipped:
            d["why_not_exported"] = s.skipped[k]
        return d

    return {"device": outcome.device.id, "task": outcome.task.value, "memory": outcome.memory,
            "max_latency_ms": s.goal.max_latency_ms, "floor": {"measure": MEASURES[outcome.task].name, "value": outcome.floor.value},
            "held_out_lines": outcome.held_out_lines, "counts": outcome.counts,
            "chosen": outcome.chosen.describe() if outcome.chosen else None, "pareto": [k.describe() for k in s.pareto()],
            "candidates": [entry(k) for k in sorted(s.estimates, key=lambda k: (s.estimates[k].bytes, k.describe()))]}


def plot(outcome, path: Path) -> None:
    """Memory needed against quality, every exported candidate; the Pareto set joined, the
    budget and the floor drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = outcome.search
    colors = {"chosen": "tab:green", "pareto": "tab:green", "fits, beaten": "tab:blue", "over budget": "tab:orange", "below floor": "tab:gray"}
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    seen = set()
    for k, r in outcome.results.items():
        if "bytes" not in r:
            continue
        st = status(outcome, k)
        label = st if st not in seen else None
        seen.add(st)
        ax.scatter(s.figures(k).memory / 2**20, r["quality"], c=colors.get(st, "black"), s=60 if st == "chosen" else 25,
                   marker="*" if st == "chosen" else "o", label=label, zorder=3)
    front = s.pareto()
    if front:
        ax.plot([s.figures(k).memory / 2**20 for k in front], [s.passed[k] for k in front], c="tab:green", lw=1, zorder=2)
        for k in front:
            ax.annotate(k.describe(), (s.figures(k).memory / 2**20, s.passed[k]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.axvline(outcome.memory / 2**20, c="tab:red", ls="--", lw=1, label=f"budget {mib(outcome.memory)}")
    ax.axhline(outcome.floor.value, c="tab:purple", ls=":", lw=1, label=f"floor {outcome.floor.value:g}")
    ax.set_xlabel("memory on the phone: model RSS + runtime (MiB)")
    ax.set_ylabel(f"{MEASURES[outcome.task].name} on held-out text")
    ax.set_title(f"pocketfit fit: {outcome.device.id}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with staged(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def budget_file(outcome, artifact: str) -> str:
    """A budget file pinning the chosen artifact: its size as found, and the memory goal on the phone."""
    r = outcome.results[outcome.chosen]
    size = (r["bytes"] + 2**20 // 10 - 1) // (2**20 // 10) / 10  # up to the next 0.1 MiB
    measure = MEASURES[outcome.task]
    lines = ["# Written by pocketfit fit: the artifact it chose, pinned to what was found.",
             f"# Run: pocketfit check --config {{this file}}   ({outcome.chosen.describe()}; {measure.name} "
             f"{measure.show(r['quality'])} on held-out text)", "",
             "[limits]", "parity = true", f'size = "{size:.1f} MiB"', "",
             "[models.fit]", f'artifact = "{artifact}"', "",
             "[tiers.target]", f'devices = ["{outcome.device.id}"]', "[tiers.target.limits]",
             f'memory = "{outcome.memory / 2**20:.1f} MiB"   # the model and its runtime on the phone']
    return "\n".join(lines) + "\n"


def write(outcome, output: Path) -> dict[str, Path]:
    """Every output, each written whole or not at all; returns what was written."""
    written = {"table": output / "fit.txt", "json": output / "fit.json", "plot": output / "fit.png"}
    write_text_atomic(written["table"], summary(outcome) + "\n\n" + render(rows(outcome)) + "\n")
    write_text_atomic(written["json"], json.dumps(to_dict(outcome), indent=2) + "\n")
    plot(outcome, written["plot"])
    if outcome.chosen is not None:
        source = Path(outcome.results[outcome.chosen]["artifact"])
        chosen = output / "chosen"
        staging = output / ".chosen.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source.parent, staging, ignore=shutil.ignore_patterns(".*"))
        shutil.rmtree(chosen, ignore_errors=True)
        staging.rename(chosen)
        written["artifact"] = chosen / source.name
        written["budget"] = output / "pocketfit.toml"
        write_text_atomic(written["budget"], budget_file(outcome, f"chosen/{source.name}"))
    return written
