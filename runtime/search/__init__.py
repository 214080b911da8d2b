"""search: find the smallest, fastest artifact that fits a phone at a quality floor (`pocketfit fit`).

    from pocketfit.runtime.search import fit, Floor
    found = fit("minilm", "galaxy-a04e", task=Task.FEATURE_EXTRACTION, floor=Floor(0.95), budget="64 MiB",
                formats=["onnx", "tflite"], text=Path("app.txt"), output=Path("out/fit"))

The pieces: a candidate's estimate before export (estimate.py), the grid of candidates
(space.py), the search's order, skips, early stop and Pareto set (frontier.py), one candidate
for real (evaluate.py, quality.py), where candidates run (executors.py), the whole search with
its cache (run.py), and what it writes (report.py).
"""

from .frontier import BITS, Estimate, Goal, Knobs, Search
from .run import Floor, Outcome, fit

__all__ = ["BITS", "Estimate", "Goal", "Knobs", "Search", "Floor", "Outcome", "fit"]
