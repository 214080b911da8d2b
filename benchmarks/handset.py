"""MiniLM fp32 and int8 in every format, run inside three emulated phones (memory, flash and CPU
limits enforced with cgroups; needs root): outcome, the model's memory split into anonymous and
mapped, faults and bytes read, and latency. Then the cost of measuring: p50 latency with the
memory sampler on and off.

    .venv/bin/python benchmarks/handset.py [--artifacts build/bench-convert] [--devices galaxy-a04e,galaxy-a15,pixel-7a]

Artifacts come from --artifacts (benchmarks/convert.py --output writes them as FORMAT-RECIPE/model.*)
or are exported here.
"""

import argparse
import datetime
import statistics
import sys
import tempfile
from pathlib import Path

from pocketfit.converter import FORMATS, RECIPES, export, load
from pocketfit.runtime import devices, fit, measure
from pocketfit.table import render
from pocketfit.units import human


def artifacts(folder: Path | None) -> dict[tuple[str, str], Path]:
    root = folder or Path(tempfile.mkdtemp(prefix="pocketfit-handset-"))
    found = {}
    for fmt in FORMATS:
        for recipe in ("none", "int8"):
            path = root / f"{fmt}-{recipe}" / f"model{FORMATS[fmt].suffix}"
            if not path.exists():
                export(load("minilm"), path.parent, FORMATS[fmt](), RECIPES[recipe]())
            found[(fmt, recipe)] = path
    return found


def emulated(paths, phones) -> str:
    rows = [["format", "recipe", "phone", "outcome", "model anon", "model mapped", "cgroup peak", "load read",
             "majflt/inf", "read/inf", "p50 ms", "verdict"]]
    for (fmt, recipe), path in paths.items():
        for phone in phones:
            m = measure(path, iterations=10, warmup=2, seq_len=128, emulate=phone)
            warm, load_ = m.faults("warm", "end"), m.faults("baseline", "loaded")
            rows.append([
                fmt, recipe, phone.id, m.outcome, human(m.model_anon), human(m.model_mapped), human(m.emulation.memory_peak),
                human(load_.get("read_bytes", 0)) if load_ else "-",
                f"{warm['majflt'] / m.iterations:.1f}" if warm else "-",
                human(warm["read_bytes"] // m.iterations) if warm else "-",
                f"{m.p50_ms:.1f}" if m.p50_ms else "-",
                "fits" if fit(m, phone).fits else "no",
            ])
            print(f"done: {fmt} {recipe} {phone.id}", file=sys.stderr, flush=True)
    return render(rows, right=set(range(4, 11)))


def overhead(paths, rounds: int = 7, iterations: int = 200) -> str:
    """p50 with the parent sampling the child's /proc/PID/status (as `measure` does by default)
    against no sampling at all, alternated round by round so that load from elsewhere hits both."""
    rows = [["artifact", "p50 sampled ms", "p50 unsampled ms", "difference"]]
    for key in (("onnx", "int8"), ("tflite", "int8"), ("pte", "int8")):
        on, off = [], []
        for _ in range(rounds):
            on.append(measure(paths[key], iterations=iterations, seq_len=128, threads=2).p50_ms)
            off.append(measure(paths[key], iterations=iterations, seq_len=128, threads=2, sample_interval=None).p50_ms)
        a, b = statistics.median(on), statistics.median(off)
        rows.append([f"{key[0]} {key[1]}", f"{a:.2f}", f"{b:.2f}", f"{(a - b) / b:+.1%}"])
    return render(rows, right={1, 2, 3})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--devices", default="galaxy-a04e,galaxy-a15,pixel-7a")
    parser.add_argument("--overhead-only", action="store_true")
    args = parser.parse_args()
    paths = artifacts(args.artifacts)
    phones = [devices.load(d) for d in args.devices.split(",")]
    if not args.overhead_only:
        print(f"MiniLM under emulated phones, {datetime.date.today()}, batch 1 x 128 tokens, 10 runs after 2 warm-up, "
              f"cold page cache at start\n")
        print(emulated(paths, phones))
    print("\nMeasurement overhead: median over 7 alternated rounds of the p50 of 200 runs, 2 threads, not emulated\n")
    print(overhead(paths))


if __name__ == "__main__":
    main()
