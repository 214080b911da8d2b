"""A self-contained HTML report: no network, no scripts — inline CSS and SVG drawn here.

Two plots: the memory breakdown per model and device (weights resident / paged, arena, KV cache,
runtime) against the app budget, and per model and device the predicted latency against the
memory it is given, with the app budget marked.
"""

import math
from xml.sax.saxutils import escape, quoteattr

from pocketfit.units import human

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
    """Warm latency against the memory the app gives, on a log axis from the smallest point on
    the curve to beyond the app budget (curves span MiB, budgets GiB), the budget marked."""
    w, h, left, bottom, top, right = 460, 220, 60, 36, 24, 16
    points = sorted(cell.curve, key=lambda p: p["budget"])
    lo = max(1.0, min(p["budget"] for p in points) / 1.25)
    hi = max(max(p["budget"] for p in points), cell.app_budget) * 1.25
    y1 = max(p["latency_s"] for p in points) * 1.1 or 1.0

    def sx(v: float) -> float:
        return left + (w - left - right) * (math.log(max(v, lo)) - math.log(lo)) / (math.log(hi) - math.log(lo))

    def sy(v: float) -> float:
        return h - bottom - (h - top - bottom) * v / y1

    path = " ".join(f"{sx(p['budget']):.1f},{sy(p['latency_s']):.1f}" for p in points)
    out = [f"<svg class=\"latency-curve\" id=\"latency-curve-{index}\" data-model={quoteattr(cell.model)} data-device={quoteattr(cell.device)} "
           f"xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" "
           f"aria-label=\"predicted latency against memory for {escape(cell.model)} on {escape(cell.device)}\">",
           f"<text x=\"{left}\" y=\"14\">{escape(cell.model)} on {escape(cell.device)} (simulated)</text>",
           f"<line x1=\"{left}\" y1=\"{h - bottom}\" x2=\"{w - right}\" y2=\"{h - bottom}\" stroke=\"#57606a\"/>",
           f"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{h - bottom}\" stroke=\"#57606a\"/>",
           f"<text x=\"{left}\" y=\"{h - 20}\">{human(int(lo))}</text><text x=\"{w - right - 60}\" y=\"{h - 20}\">{human(int(hi))}</text>",
           f"<text x=\"{w / 2 - 80:.0f}\" y=\"{h - 4}\">memory the app gives (log scale)</text>",
           f"<text x=\"2\" y=\"{top + 10}\">{y1 * 1000:.0f} ms</text><text x=\"2\" y=\"{h - bottom}\">0 ms</text>",
           f"<polyline class=\"curve\" points=\"{path}\" fill=\"none\" stroke=\"#3b6ea8\" stroke-width=\"2\"/>"]
    for p in points:
        out.append(f"<circle class=\"point\" data-budget=\"{p['budget']}\" data-latency=\"{p['latency_s']}\" cx=\"{sx(p['budget']):.1f}\" "
                   f"cy=\"{sy(p['latency_s']):.1f}\" r=\"3\" fill=\"#3b6ea8\"><title>{human(p['budget'])}: {p['latency_s'] * 1000:.1f} ms</title></circle>")
    bx = sx(cell.app_budget)
    out.append(f"<line class=\"budget-mark\" data-bytes=\"{cell.app_budget}\" x1=\"{bx:.1f}\" x2=\"{bx:.1f}\" y1=\"{top}\" y2=\"{h - bottom}\" "
               f"stroke=\"#cf222e\" stroke-dasharray=\"4 3\" stroke-width=\"2\"/>")
    out.append(f"<text x=\"{bx - 4:.1f}\" y=\"{top + 12}\" text-anchor=\"end\" fill=\"#cf222e\">app budget {human(cell.app_budget)}</text>")
    return "".join(out) + "</svg>"
