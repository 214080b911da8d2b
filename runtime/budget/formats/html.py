"""A self-contained HTML report: no network, no scripts — inline CSS and SVG.

Two plots: the memory breakdown per model and device (weights resident / paged, arena, KV cache,
runtime) against the app budget, drawn here as plain SVG bars; and per model and device the
predicted latency against the memory it is given, with the app budget marked, drawn by
matplotlib as the paging simulator's `--plot` is (runtime/paging/plot.py).
"""

from xml.sax.saxutils import escape

from pocketfit.units import human

from ...paging.plot import Chart, svg
from ..results import Cell, Results, Status
from . import register

PARTS = (("weights_resident", "weights resident", "#3b6ea8"), ("weights_paged", "weights paged from flash", "#9cc3e6"),
         ("arena", "arena / heap", "#e8a33d"), ("kv_cache", "KV cache", "#b5651d"), ("runtime", "runtime", "#7a7a7a"))
_COLOR = {Status.PASS: "#1a7f37", Status.FAIL: "#cf222e", Status.ERROR: "#9a6700"}
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1f2328}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:bold}.error{color:#9a6700;font-weight:bold}
svg{background:#fff;border:1px solid #d0d7de;margin:0.5em 0}text{font:11px system-ui,sans-serif}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
"""


@register("html")
def render(results: Results) -> str:
    p, f, e = (results.count(s) for s in Status)
    body = [f"<h1>pocketfit check</h1><p>{escape(results.config)} · {p} passed, {f} failed, {e} could not run · "
            f"exit code {results.exit_code}</p>", "<h2>Memory on the phone</h2>", _legend(), _breakdown(results),
            "<h2>Predicted latency against memory</h2>", _curves(results), "<h2>Every check</h2>", _table(results)]
    if results.notes:
        body.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in results.notes) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pocketfit check</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _table(results: Results) -> str:
    rows = ["<table id=\"checks\"><tr><th>model</th><th>tier</th><th>device</th><th>limit</th><th>verdict</th><th>margin</th><th>why</th></tr>"]
    for cell, c in results.checks:
        rows.append(f"<tr class=\"{c.status.value}\"><td>{escape(cell.model)}</td><td>{escape(cell.tier)}</td><td>{escape(cell.device)}</td>"
                    f"<td>{escape(c.limit)}</td><td>{c.status.value}</td><td>{escape(c.margin)}</td><td>{escape(c.message)}</td></tr>")
    return "".join(rows) + "</table>"


def _legend() -> str:
    items = "".join(f"<span><i style=\"background:{color}\"></i>{label}</span>" for _, label, color in PARTS)
    return (f"<p class=\"legend\">{items}<span><i style=\"background:#000\"></i>app budget</span>"
            "<span><i style=\"background:#cf222e\"></i>memory limit</span></p>")


def _breakdown(results: Results) -> str:
    """One bar per model and device, drawn against that phone's app budget (each row its own
    scale: the share of the budget is what a reader compares), with the memory limit marked."""
    cells = [c for c in results.cells if c.breakdown]
    if not cells:
        return "<p>No memory was measured (no memory or latency limit is set).</p>"
    label_w, bar_w, row_h = 260, 480, 26
    height = row_h * len(cells) + 16
    out = [f"<svg id=\"memory-breakdown\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{label_w + bar_w + 190}\" height=\"{height}\" "
           f"role=\"img\" aria-label=\"memory breakdown per model and device, against each app budget\">"]
    for i, cell in enumerate(cells):
        y = 10 + i * row_h
        total = sum(cell.breakdown.get(k, 0) for k, _, _ in PARTS)
        scale = max(cell.app_budget, total)
        out.append(f"<text x=\"4\" y=\"{y + 14}\">{escape(cell.model)} · {escape(cell.device)}</text>")
        x = label_w
        for key, label, color in PARTS:
            n = cell.breakdown.get(key, 0)
            w = bar_w * n / scale
            if n > 0:
                out.append(f"<rect class=\"segment\" data-part=\"{key}\" data-bytes=\"{n}\" x=\"{x:.1f}\" y=\"{y}\" width=\"{w:.1f}\" "
                           f"height=\"18\" fill=\"{color}\"><title>{escape(label)}: {human(n)}</title></rect>")
            x += w
        bx = label_w + bar_w * cell.app_budget / scale
        out.append(f"<line class=\"budget-mark\" data-bytes=\"{cell.app_budget}\" x1=\"{bx:.1f}\" x2=\"{bx:.1f}\" y1=\"{y - 3}\" "
                   f"y2=\"{y + 21}\" stroke=\"#000\" stroke-width=\"2\"/>")
        limit = next((c.limit_value for c in cell.checks if c.limit == "memory" and c.limit_value), None)
        if limit:
            lx = label_w + bar_w * min(limit, scale) / scale
            out.append(f"<line class=\"limit-mark\" data-bytes=\"{int(limit)}\" x1=\"{lx:.1f}\" x2=\"{lx:.1f}\" y1=\"{y - 3}\" y2=\"{y + 21}\" "
                       f"stroke=\"#cf222e\" stroke-dasharray=\"3 2\" stroke-width=\"2\"><title>memory limit {human(int(limit))}</title></line>")
        out.append(f"<text x=\"{label_w + bar_w + 8}\" y=\"{y + 14}\" fill=\"{_COLOR[cell.status]}\">{human(total)} of {human(cell.app_budget)} "
                   f"({total / cell.app_budget:.0%})</text>")
    return "".join(out) + "</svg>"


def _curves(results: Results) -> str:
    cells = [c for c in results.cells if c.curve]
    if not cells:
        return "<p>No prediction: no latency limit is set, so the flash-paging simulator was not asked.</p>"
    return "\n".join(_curve(i, c) for i, c in enumerate(cells))


def _curve(index: int, cell: Cell) -> str:
    """Warm latency against the memory the app gives, drawn by the paging simulator's own chart
    (matplotlib, inline SVG), the app budget marked."""
    points = tuple(sorted((int(p["budget"]), float(p["latency_s"])) for p in cell.curve))
    alone = ("one point: nothing pages. The runtime holds its weights in memory, so every budget that fits them "
             "gives this latency") if len(points) == 1 else ""
    chart = Chart(points, cell.app_budget, f"app budget {human(cell.app_budget)}", f"{cell.model} on {cell.device} (simulated)",
                  alone=alone)
    return svg(chart, **{"class": "latency-curve", "id": f"latency-curve-{index}", "data-model": cell.model,
                         "data-device": cell.device, "role": "img",
                         "aria-label": f"predicted latency against memory for {cell.model} on {cell.device}"})
