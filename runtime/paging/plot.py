"""The latency-vs-memory curve as a PNG (Pillow, no plotting library) and as JSON."""

import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from pocketfit.files import staged, write_text_atomic

WIDTH, HEIGHT, MARGIN = 900, 560, 80


def write_json(sim, path: Path) -> None:
    write_text_atomic(Path(path), json.dumps(sim.to_dict(), indent=2) + "\n")


def write_png(sim, path: Path) -> None:
    """Warm latency (per inference or per decoded token) against the memory budget, the device's
    budget as a vertical line, the latency target as a horizontal one."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    per = "ms per decoded token" if sim.tokens else "ms per inference"
    draw.text((MARGIN, 20), f"SIMULATED on {sim.device}: {sim.policy}, {sim.readahead.label}: warm latency vs memory budget",
              fill="black", font=font)
    draw.text((MARGIN, 36), f"compute: {sim.compute_source}", fill="gray", font=font)
    left, top, right, bottom = MARGIN, 60, WIDTH - 30, HEIGHT - MARGIN
    draw.rectangle((left, top, right, bottom), outline="black")
    points = [(p.budget, p.latency_s * 1e3) for p in sim.curve]
    if not points:
        draw.text((left + 10, top + 10), sim.reason, fill="red", font=font)
        return _save(image, path)
    xs = [x for x, _ in points] + [sim.budget]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = max([y for _, y in points] + [sim.latency_target_s * 1e3 if sim.latency_target_s else 0]) * 1.05 or 1.0

    def at(x, y):
        return left + (x - x0) / (x1 - x0) * (right - left), bottom - y / y1 * (bottom - top)

    for i in range(5):  # axis ticks: budgets in MB, latency in ms
        x = x0 + (x1 - x0) * i / 4
        px, _ = at(x, 0)
        draw.line((px, bottom, px, bottom + 5), fill="black")
        draw.text((px - 25, bottom + 8), f"{x / 1e6:.0f} MB", fill="black", font=font)
        y = y1 * i / 4
        _, py = at(x0, y)
        draw.line((left - 5, py, left, py), fill="black")
        draw.text((5, py - 6), f"{y:.1f}", fill="black", font=font)
    draw.text((left + (right - left) // 2 - 60, bottom + 28), "memory budget (MB)", fill="black", font=font)
    draw.text((5, top - 14), per, fill="black", font=font)
    if len(points) > 1:
        draw.line([at(x, y) for x, y in points], fill="navy", width=2)
    for x, y in points:
        px, py = at(x, y)
        draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill="navy")
    bx, _ = at(sim.budget, 0)
    draw.line((bx, top, bx, bottom), fill="red", width=2)
    label = f"{sim.device} budget {sim.budget / 1e6:.0f} MB"
    draw.text((bx + 4 if bx < right - 200 else bx - 190, top + 4), label, fill="red", font=font)
    if sim.latency_target_s:
        _, ty = at(x0, sim.latency_target_s * 1e3)
        draw.line((left, ty, right, ty), fill="green")
        draw.text((left + 4, ty - 14), f"target {sim.latency_target_s * 1e3:.1f} ms", fill="green", font=font)
    _save(image, path)


def _save(image, path: Path) -> None:
    with staged(Path(path)) as tmp:
        image.save(tmp, format="PNG")
