"""The latency model checked against published on-device results: each source's results
predicted by the model fitted on every other source (leave one source out).

    .venv/bin/python benchmarks/calibration.py [--markdown]

Reads runtime/calibration/published.toml; prints the fitted efficiencies, the results that
cannot be used and why, a row per result and a summary per source. Takes a few seconds.
"""

import argparse
import datetime
import statistics

import numpy as np

from pocketfit.runtime.cost import calibrate
from pocketfit.table import render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="tables as Markdown, for docs/latency.md")
    args = parser.parse_args()
    table = _markdown if args.markdown else lambda rows: render(rows, right={4, 5, 6})
    results = calibrate.load_results()
    usable, skipped = calibrate.cases(results)
    checks = calibrate.leave_one_source_out(usable)
    params = calibrate.calibrated()
    print(f"latency model vs published results, {datetime.date.today()}: {len(results)} results, {len(usable)} usable, "
          f"{len({c.result.source for c in usable})} sources, {len({c.result.soc for c in usable})} SoCs\n")
    rows = [["result", "source", "profile", "metric", "published", "predicted", "error"]]
    for ch in checks:
        r = ch.case.result
        length = f"{r.length}{'' if r.tokens > 0 else ' (assumed)'}"
        metric = ("ms" if r.metric == "latency_ms" else f"{r.phase} tok/s") + f" @{length}"
        rows.append([r.id, r.source, ch.case.profile, metric, f"{r.value:g}", f"{ch.predicted:.3g}", f"{ch.error:+.0%}"])
    print(table(rows) + "\n")
    summary = [["source", "results", "median |error|", "worst"]]
    for source in sorted({ch.case.result.source for ch in checks}):
        errors = [abs(ch.error) for ch in checks if ch.case.result.source == source]
        summary.append([source, str(len(errors)), f"{statistics.median(errors):.0%}", f"{max(errors):.0%}"])
    errors = [abs(ch.error) for ch in checks]
    summary.append(["all", str(len(errors)), f"{statistics.median(errors):.0%}", f"{max(errors):.0%}"])
    print(table(summary) + "\n")
    print(f"band (10th-90th percentile of held-out time errors): {params.band[0]:+.0%} to {params.band[1]:+.0%}; "
          f"90th percentile |error| {np.percentile(errors, 90):.0%}")
    print("fitted on all: compute efficiency " + ", ".join(f"{rt}/{p} {e:.2f}" for (rt, p), e in sorted(params.compute.items()))
          + "; memory " + ", ".join(f"{rt} {e:.2f}" for rt, e in sorted(params.memory.items()))
          + f"; per-op {params.overhead_cycles:.0f} cycles\n")
    print("not usable:")
    for r, why in skipped:
        print(f"  {r.id}: {why}")


def _markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])


if __name__ == "__main__":
    main()
