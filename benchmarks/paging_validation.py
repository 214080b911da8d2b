"""Predicted against measured paging: the simulator (runtime/paging/) against the emulated handset
(runtime/handset.py: the kernel enforcing a memory cgroup and a flash throttle; needs root).

For MiniLM fp32 in three formats — LiteRT with its builtin kernels (weights read from the mapped
file: they page), ExecuTorch (XNNPACK repacks the linear weights; the embedding table stays
mapped) and onnxruntime (copies everything) — at three memory budgets for the model: everything
resident, the runtime's anonymous memory plus half of the weights one inference reads, and plus
a quarter. Each budget is run twice: with MADV_RANDOM on the mapping (one page per fault) and
with the kernel's read-around at this disk's read_ahead_kb.

    .venv/bin/python benchmarks/paging_validation.py [--artifacts build/bench-convert] [--device galaxy-a15] [--read-ahead-kb 128]

--read-ahead-kb sets the disk's read_ahead_kb for the run (this VM's disk has 8192; the kernel's
default, and a phone's typical setting, is 128) and restores it afterwards: it changes a setting of
the whole machine for the run's duration, which is why it is not the default.

The simulated flash is the phone's, but the emulated handset cannot be faster than this
machine's disk: the simulation uses the slower of the two for each figure (measured here, before
the runs, with O_DIRECT reads of the artifact) and says so. Compute time is this machine's warm
p50 with every weight in memory; the runtime's own anonymous memory (its heap) comes from the
same measurement. Everything else is predicted from the artifact's layout and the device profile.
"""

import argparse
import dataclasses
import datetime
import mmap
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from pocketfit.converter import FORMATS, RECIPES, backends, export, load
from pocketfit.runtime import devices, measure
from pocketfit.runtime.handset import block_device
from pocketfit.runtime.paging import Readahead, simulate
from pocketfit.table import render
from pocketfit.units import human

CASES = (("tflite", {"xnnpack": "off"}), ("pte", {}), ("onnx", {}))
RUNS, WARMUP = 5, 2


def artifact(root: Path, fmt: str) -> Path:
    path = root / f"{fmt}-none" / f"model{FORMATS[fmt].suffix}"
    if not path.exists():
        export(load("minilm"), path.parent, FORMATS[fmt](), RECIPES["none"]())
    return path


def disk(path: Path) -> tuple[float, float]:
    """This disk's 4 KiB random-read latency at queue depth 1 and its sequential read bandwidth,
    read with O_DIRECT (no page cache) from `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        size, buf, rng = os.fstat(fd).st_size, mmap.mmap(-1, 8 << 20), random.Random(0)
        start = time.perf_counter()
        for _ in range(1000):
            os.preadv(fd, [memoryview(buf)[:4096]], rng.randrange(size // 4096) * 4096)
        latency = (time.perf_counter() - start) / 1000
        start, done = time.perf_counter(), 0
        for offset in range(0, size - (8 << 20), 8 << 20):
            done += os.preadv(fd, [buf], offset)
        return latency, done / (time.perf_counter() - start)
    finally:
        os.close(fd)


def read_ahead_kb(path: Path) -> int:
    return int(Path(f"/sys/dev/block/{block_device(path)}/queue/read_ahead_kb").read_text())


def err(predicted: float, measured: float) -> str:
    if measured == 0:
        return "exact" if predicted == 0 else "n/a"
    return f"{(predicted - measured) / measured * 100:+.0f}%"


def validate(path: Path, options: dict, phone, policy: str, rows: list) -> None:
    layout = backends.for_path(path).layout(path, options)
    free = measure(path, iterations=20, warmup=3, options=options)
    compute, heap = free.p50_ms / 1e3, max(0, free.model_anon - layout.held_bytes("copied") - layout.arena)
    full = simulate(layout, phone, compute_seconds=compute, heap=heap, budget=10 * free.bytes, readahead=Readahead(None))
    anonymous, reads = full.anonymous, full.warm.resident_bytes - full.anonymous  # weights one inference reads
    budgets = (("all", anonymous + free.bytes + (16 << 20)), ("half", anonymous + reads // 2), ("quarter", anonymous + reads // 4))
    if full.copied_weights:  # "half of the weights" for a copying runtime: of all it holds
        budgets = budgets[:1] + (("half", (anonymous + reads) // 2), ("quarter", (anonymous + reads) // 4))
    for ahead in (Readahead(None), Readahead(read_ahead_kb(path))):
        advice = "random" if ahead.kb is None else None
        for label, budget in budgets:
            sim = simulate(layout, phone, compute_seconds=compute, compute_source="this machine", heap=heap, budget=budget,
                           readahead=ahead, policy=policy)
            m = measure(path, iterations=RUNS, warmup=WARMUP, options=options, emulate=phone, budget=budget, advice=advice)
            name = f"{layout.format}" + (" xnnpack=off" if options else "")
            if not sim.fits or not m.ok:
                rows.append([name, ahead.label, label, human(budget), "does not fit" if not sim.fits else "fits", m.outcome]
                            + ["-"] * 12)
                continue
            cold = m.faults("baseline", "first")["read_bytes"]  # load and the first inference, from a cold page cache
            cold_sim = sim.load.flash_bytes + sim.cold.flash_bytes
            warm = m.faults("warm", "end")
            faults, nbytes = warm["majflt"] / RUNS, warm["read_bytes"] / RUNS
            rows.append([
                name, ahead.label, label, human(budget), "fits", m.outcome,
                human(cold_sim), human(cold), err(cold_sim, cold),
                f"{sim.warm.major_faults}", f"{faults:.0f}", err(sim.warm.major_faults, faults),
                human(sim.warm.flash_bytes), human(int(nbytes)), err(sim.warm.flash_bytes, nbytes),
                f"{sim.warm.latency_s * 1e3:.0f}", f"{m.p50_ms:.0f}", err(sim.warm.latency_s * 1e3, m.p50_ms),
            ])
            print(f"done: {name} {ahead.label} {label}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, help="a folder of FORMAT-none/model.* (benchmarks/convert.py --output)")
    parser.add_argument("--device", default="galaxy-a15")
    parser.add_argument("--policy", default="two-list")
    parser.add_argument("--read-ahead-kb", type=int, help="set the disk's read_ahead_kb for the run (restored after)")
    args = parser.parse_args()
    root = args.artifacts or Path(tempfile.mkdtemp(prefix="pocketfit-paging-", dir="build"))
    paths = {fmt: artifact(root, fmt) for fmt, _ in CASES}
    phone = devices.load(args.device)
    latency, bandwidth = disk(paths["tflite"])
    emulated = dataclasses.replace(phone, flash_read_latency=max(phone.flash_read_latency, latency),
                                   flash_read_bandwidth=int(min(phone.flash_read_bandwidth, bandwidth)))
    setting = Path(f"/sys/dev/block/{block_device(paths['tflite'])}/queue/read_ahead_kb")
    before = setting.read_text().strip()
    try:
        if args.read_ahead_kb:
            setting.write_text(str(args.read_ahead_kb))
        table = run(paths, emulated, args.policy)
    finally:
        setting.write_text(before)
    print(f"Paging: predicted (simulated, {args.policy} page cache) against measured on the emulated {phone.id}, "
          f"{datetime.date.today()}, MiniLM fp32, batch 1 x 128 tokens; per inference in the steady state "
          f"({RUNS} runs after {WARMUP} warm-up). Flash as simulated: {emulated.flash_read_latency * 1e6:.0f} us per request, "
          f"{emulated.flash_read_bandwidth / 1e9:.2f} GB/s (this disk: {latency * 1e6:.0f} us, {bandwidth / 1e9:.2f} GB/s; "
          f"{phone.id}: {phone.flash_read_latency * 1e6:.0f} us, {phone.flash_read_bandwidth / 1e9:.2f} GB/s); "
          f"disk read_ahead_kb {args.read_ahead_kb or before}\n")
    print(table)


def run(paths, emulated, policy) -> str:
    rows = [["artifact", "read-ahead", "budget", "bytes", "predicted", "measured", "cold read sim", "cold read real", "err",
             "majflt sim", "majflt real", "err", "read sim", "read real", "err", "p50 sim ms", "p50 real ms", "err"]]
    for fmt, options in CASES:
        validate(paths[fmt], options, emulated, policy, rows)
    return render(rows, right=set(range(3, 18)))


if __name__ == "__main__":
    main()
