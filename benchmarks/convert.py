"""Export MiniLM in every format × recipe pocketfit offers and print one table: export wall
time (verification included), file size, ratio to the format's fp32 artifact, parity with the
torch model, and the median latency of one inference in the format's own runtime on this
machine (batch 1, 128 tokens, 2 threads, in a child process).

    .venv/bin/python benchmarks/convert.py [--output build/bench-convert] [--formats onnx,pte]

Each row loads the model afresh, so its export time is what one `pocketfit export` costs.
"""

import argparse
import datetime
import os
import platform
import sys
import tempfile
from pathlib import Path

from pocketfit.converter import FORMATS, export, load
from pocketfit.converter.backends import backend
from pocketfit.runtime import measure
from pocketfit.table import render
from pocketfit.units import human


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="keep the artifacts here (default: a temporary folder)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats")
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args()
    root = args.output or Path(tempfile.mkdtemp(prefix="pocketfit-bench-"))
    rows = [["format", "recipe", "export s", "size", "vs fp32", "cosine mean", "cosine min", "p50 ms", "floors"]]
    for name in args.formats.split(","):
        fmt = FORMATS[name]()
        fp32 = None
        for recipe_type in backend(fmt).RECIPES:
            recipe = recipe_type()
            artifact = export(load("minilm"), root / f"{fmt.name}-{recipe.name}", fmt, recipe)
            m = measure(artifact.path, iterations=args.iterations, seq_len=128, threads=2)
            fp32 = fp32 or m.bytes
            parity = artifact.manifest.parity
            rows.append([
                fmt.name, recipe.name, f"{artifact.manifest.export_seconds:.1f}", human(m.bytes), f"{m.bytes / fp32:.3f}",
                f"{parity.metrics['cosine_mean']:.4f}", f"{parity.metrics['cosine_min']:.4f}", f"{m.p50_ms:.2f}",
                "pass" if parity.passed else "FAIL",
            ])
            print(f"done: {fmt.name} {recipe.name}", file=sys.stderr, flush=True)
    print(f"MiniLM (all-MiniLM-L6-v2, feature-extraction), {datetime.date.today()}, {platform.machine()}, "
          f"Python {platform.python_version()}, {_cpu()}; latency: batch 1 x 128 tokens, 2 threads, {args.iterations} runs\n")
    print(render(rows, right={2, 3, 4, 5, 6, 7}))


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({len(os.sched_getaffinity(0))} cores)"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
