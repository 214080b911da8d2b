"""MiniLM fp32 and int8 in all four formats, verified on arm64 under qemu (`pocketfit verify
--arch arm64`) on each qemu CPU given, printed as one markdown table: parity against torch on
x86 and on arm64, how far the arm64 outputs are from the x86 ones, and the seconds each took.

    .venv/bin/python benchmarks/arm64_verify.py [--cpus a64fx,max] [--formats pte,onnx,ort,tflite] [--output DIR]

Needs root and the arm64 root (`make arm64-root`). arm64 seconds are emulated time, about 400x a
native core: they say what the check costs here, not how fast a phone is. About 15 minutes.
"""

import argparse
import datetime
import platform
import sys
import tempfile
from pathlib import Path

from pocketfit.converter import FORMATS, Int8Dynamic, NoQuant, export, load
from pocketfit.runtime import arm64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", default="a64fx,max", help="comma-separated qemu CPUs")
    parser.add_argument("--formats", default="pte,onnx,ort,tflite", help="comma-separated formats")
    parser.add_argument("--output", type=Path, help="keep the artifacts here (default: a temporary folder)")
    args = parser.parse_args()
    why = arm64.ready()
    if why:
        sys.exit(f"arm64_verify: {why}")
    root = args.output or Path(tempfile.mkdtemp(prefix="pocketfit-arm64-"))
    rows = []
    for name in args.formats.split(","):
        for recipe in (NoQuant(), Int8Dynamic()):
            artifact = export(load("minilm"), root / f"{name}-{recipe.name}", FORMATS[name](), recipe).path
            for cpu in args.cpus.split(","):
                doc = arm64.verify(artifact, cpu)
                x86, arm = doc["torch_parity"]["x86_64"], doc["torch_parity"]["arm64"]
                low = any(arm[k] < floor for k, floor in doc["floors"].items())
                parity = f"{arm['cosine_mean']:.4f} / {arm['cosine_min']:.4f}"
                rows.append([f"{name} {recipe.name}", cpu, f"{x86['cosine_mean']:.4f} / {x86['cosine_min']:.4f}",
                             f"**{parity}**" if low else parity,
                             f"{doc['arm64_vs_x86']['max_abs']:.3g}, {doc['arm64_vs_x86']['cosine_min']:.4f}",
                             f"{doc['seconds']['x86_64']:.1f} / {doc['seconds']['arm64']:.1f}", doc["arm64_runtime"]])
                print(f"done: {name} {recipe.name} on {cpu}", file=sys.stderr, flush=True)
    print(f"MiniLM, {datetime.date.today()}, qemu-aarch64 on {platform.machine()} ({_cpu()}); 40 inputs each; "
          "bold: below the recipe's floors on arm64\n")
    print("| artifact | qemu CPU | x86_64 cosine mean / min | arm64 cosine mean / min | arm64 vs x86: max \\|diff\\|, lowest cosine "
          "| seconds x86 / arm64 | arm64 runtime |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _cpu() -> str:
    import os

    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {len(os.sched_getaffinity(0))} cores"
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
