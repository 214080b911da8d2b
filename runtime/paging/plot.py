"""The latency-vs-memory curve, drawn with matplotlib: a PNG for `simulate --plot`, an SVG for
the HTML report (inline: no fonts, scripts or links to fetch), and the same numbers as JSON.

One drawing serves both: warm latency against the memory budget, the phone's budget as a
vertical line, the latency target as a horizontal one. The x axis turns logarithmic when the
budget lies far beyond the curve (curves span MiB, phones' budgets GiB). A curve of one point
says why it has only one (nothing pages), rather than leaving a lone dot on an empty axis.
"""

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pocketfit.files import staged, write_text_atomic
from pocketfit.units import human

CURVE, BUDGET, TARGET = "#3b6ea8", "#cf222e", "#1a7f37"


@dataclass(frozen=True)
class Chart:
    points: tuple[tuple[int, float], ...]  # (budget bytes, warm seconds), by budget
    budget: int  # the phone's budget for the model, marked
    budget_label: str
    title: str
    subtitle: str = ""
    per: str = "ms per inference"
    target_s: float | None = None
    alone: str = ""  # why the curve has a single point, written beside it


def write_json(sim, path: Path) -> None:
    write_text_atomic(Path(path), json.dumps(sim.to_dict(), indent=2) + "\n")


def of_simulation(sim) -> Chart:
    points = tuple(sorted((p.budget, p.latency_s) for p in sim.curve))
    held = sim.copied_weights + sim.locked_weights
    alone = ""
    if len(points) == 1:
        alone = (f"one point: nothing pages. The runtime holds its {human(held)} of weights in memory "
                 f"({'copied' if sim.copied_weights else 'mlocked'} at load), so every budget "
                 f"that fits them gives this latency") if held else "one point: the artifact reads no weights from its file"
    return Chart(points, sim.budget, f"{sim.device} budget {human(sim.budget)}",
                 f"SIMULATED on {sim.device}: {sim.policy}, {sim.readahead.label}",
                 f"compute: {sim.compute_source}", "ms per decoded token" if sim.tokens else "ms per inference",
                 sim.latency_target_s, alone if sim.curve else sim.reason)


def write_png(sim, path: Path) -> None:
    figure = draw(of_simulation(sim), size=(9, 5.6))
    with staged(Path(path)) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def svg(chart: Chart, size=(6.4, 3.0), **root_attributes: str) -> str:
    """The chart as an <svg> element to inline in HTML; `root_attributes` go on it (class, id,
    data-*), with `_` in a name written as `-`."""
    import matplotlib

    buffer = io.StringIO()
    # Text stays text (searchable, small); the salt makes the clip-path ids the same on every run
    # and distinct between the charts of one page. No metadata block: its RDF namespaces would
    # be links in a page that must link nowhere.
    salt = root_attributes.get("id", chart.title)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        draw(chart, size=size).savefig(buffer, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # the XML prolog and DOCTYPE belong to a file, not to inline SVG
    extra = "".join(f' {name.replace("_", "-")}="{_attr(value)}"' for name, value in root_attributes.items())
    return re.sub(r"^<svg", "<svg" + extra, text, count=1).strip()


def draw(chart: Chart, size=(9, 5.6)):
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    figure = Figure(figsize=size, layout="constrained")
    ax = figure.add_subplot()
    figure.suptitle(chart.title, fontsize=11, x=0.02, ha="left")
    if chart.subtitle:
        ax.set_title(_wrap(chart.subtitle, 130 if size[0] > 7 else 90), fontsize=8, color="#57606a", loc="left")
    ax.set_xlabel("memory budget for the model")
    ax.set_ylabel(chart.per)
    ax.grid(True, color="#d0d7de", linewidth=0.6)
    if not chart.points:
        ax.text(0.5, 0.5, _wrap(chart.alone, 70), transform=ax.transAxes, ha="center", va="center", color=BUDGET)
        ax.set_xticks([]), ax.set_yticks([])
        return figure
    xs = [x for x, _ in chart.points]
    ys = [y * 1e3 for _, y in chart.points]
    lo, hi = min(xs + [chart.budget]), max(xs + [chart.budget])
    if hi > 4 * max(1, lo):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(_binary_ticks(lo / 2, hi * 1.3)))
        ax.xaxis.set_minor_locator(NullLocator())
    # The anonymous-memory-only end of a paging curve can be 20x the resident end: a linear
    # axis would flatten everything a user chooses between.
    log_y = min(ys) > 0 and max(ys) > 10 * min(ys)
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.plot(xs, ys, color=CURVE, linewidth=2, gid="curve")
    for x, y in chart.points:  # an id per point carries its figures into the SVG
        ax.plot([x], [y * 1e3], linestyle="none", marker="o", markersize=3, color=CURVE, gid=f"point-{x}-{y!r}")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human(int(v)).replace(".0 ", " ") if v > 0 else "0"))
    ax.axvline(chart.budget, color=BUDGET, linestyle="--", linewidth=1.5, gid=f"budget-{chart.budget}")
    ax.annotate(chart.budget_label, (chart.budget, 1), xycoords=("data", "axes fraction"), xytext=(-4, -12),
                textcoords="offset points", ha="right", color=BUDGET, fontsize=9)
    if chart.target_s:
        ax.axhline(chart.target_s * 1e3, color=TARGET, linewidth=1.2, gid="target")
        ax.annotate(f"target {chart.target_s * 1e3:.1f} ms", (0, chart.target_s * 1e3), xycoords=("axes fraction", "data"),
                    xytext=(4, 3), textcoords="offset points", color=TARGET, fontsize=9)
    if len(chart.points) == 1:
        # A lone dot on an axis: centre it with room either side, and say why it is alone.
        x = chart.points[0][0]
        left = min(x, chart.budget) / 2 if ax.get_xscale() == "log" else 0
        ax.set_xlim(left, max(x, chart.budget) * 1.3)
        ax.hlines(ys[0], x, ax.get_xlim()[1], colors=CURVE, linestyles=":", linewidth=1.5)  # the same at every larger budget
        ax.annotate(_wrap(chart.alone, 60), (x, ys[0]), xytext=(8, -8), textcoords="offset points", va="top", fontsize=9)
    top = max(ys + [chart.target_s * 1e3 if chart.target_s else 0])
    if log_y:
        ax.set_ylim(min(ys + [chart.target_s * 1e3 if chart.target_s else min(ys)]) / 1.5, top * 1.5)
    else:
        ax.set_ylim(0, top * 1.15 or 1.0)
    return figure


def _binary_ticks(lo: float, hi: float) -> list[int]:
    """Powers of two in bytes between lo and hi, thinned to at most seven: 16 MiB, 64 MiB, 256 MiB, 1 GiB."""
    ticks = [2**k for k in range(10, 45) if lo <= 2**k <= hi]
    step = 1
    while len(ticks[::step]) > 7:
        step += 1
    return ticks[::step]


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _attr(value: str) -> str:
    return str(value).replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
