"""Predicted against measured paging: the simulator (runtime/paging/) against the emulated handset
(runtime/handset.py: the kernel enforcing a memory cgroup and a flash throttle; needs root).

For MiniLM fp32 in three formats — LiteRT with its builtin kernels (weights read from the mapped
file: they page), ExecuTorch (XNNPACK repacks the linear weights; the embedding table stays
mapped) and onnxruntime (copies everything) — at three memory budgets for the model: everything
resident, the runtime's anonymous memory plus half of the weights one inference reads, and plus
a quarter. Each budget is run twice: with MADV_RANDOM on the mapping (one page per fault) and
with the kernel's read-around at this disk's read_ahead_kb.

    .venv/bin/python benchmarks/paging_validation.py [--artifacts build/bench-convert] [--device galaxy-a15] [--read-ahead-kb 128]
        [--formats tflite,pte,onnx] [--readahead both|random|around]

--formats and --readahead run a part of the table (e.g. `--formats tflite --readahead around`).
During the emulated runs a thread reads the memory cgroups' memory.stat every 20 ms, which keeps
the kernel's reclaim working on fresh counters (see _StatReader); --stale-stats leaves it out.

--read-ahead-kb sets the disk's read_ahead_kb for the run (this VM's disk has 8192; the kernel's
default, and a phone's typical setting, is 128) and restores it afterwards: it changes a setting of
the whole machine for the run's duration, which is why it is not the default.

The simulated flash is what the emulated handset enforces: the phone's bandwidth and IOPS
where this machine's disk is faster (blkio throttling caps them), the disk's where it is slower,
and the disk's own latency per request (measured here, before the runs, with O_DIRECT reads of
the artifact): a throttle caps rates but cannot make one read take longer. The header says so. Compute time is this machine's warm
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


class _StatReader:
    """Reads the root memory cgroup's memory.stat every 20 ms while a run lasts. A read flushes
    the kernel's per-cgroup counters (the whole tree's); without a reader they are refreshed by a
    timer every 2 s, and reclaim (active/inactive balance, refault activation) decides on stale
    counts: at a quarter of LiteRT's weights the major faults of an inference then spread from
    58 to 121 across identical runs (60-69 with the reader; kernel traces: the stale runs
    demote nothing from the active list for their first 0.75-1 s). The simulator has no timer:
    its prediction is the fresh-counter case. Whether something on a phone reads the counters
    often (Android's memory daemons may) is not known here."""

    def __init__(self, on: bool, path: Path = Path("/sys/fs/cgroup/memory/memory.stat"), every: float = 0.02):
        import threading

        self.on, self.path, self.every, self.stop = on and path.exists(), path, every, threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        while not self.stop.wait(self.every):
            self.path.read_bytes()

    def __enter__(self):
        if self.on:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.on:
            self.thread.join()


def validate(path: Path, options: dict, phone, policy: str, rows: list, modes=("random", "around"), fresh: bool = True) -> None:
    layout = backends.for_path(path).layout(path, options)
    free = measure(path, iterations=20, warmup=3, options=options)
    compute, heap = free.p50_ms / 1e3, max(0, free.model_anon - layout.held_bytes("copied") - layout.arena)
    full = simulate(layout, phone, compute_seconds=compute, heap=heap, budget=10 * free.bytes, readahead=Readahead(None))
    anonymous, reads = full.anonymous, full.warm.resident_bytes - full.anonymous  # weights one inference reads
    budgets = (("all", anonymous + free.bytes + (16 << 20)), ("half", anonymous + reads // 2), ("quarter", anonymous + reads // 4))
    if full.copied_weights > reads:  # "half of the weights" for a copying runtime: of all it holds
        budgets = budgets[:1] + (("half", (anonymous + reads) // 2), ("quarter", (anonymous + reads) // 4))
    for ahead in [Readahead(None)] * ("random" in modes) + [Readahead(read_ahead_kb(path))] * ("around" in modes):
        advice = "random" if ahead.kb is None else None
        for label, budget in budgets:
            sim = simulate(layout, phone, compute_seconds=compute, compute_source="this machine", heap=heap, budget=budget,
                           readahead=ahead, policy=policy)
            with _StatReader(fresh):
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
    parser.add_argument("--formats", default=",".join(f for f, _ in CASES), help="comma-separated formats to run (default: all)")
    parser.add_argument("--readahead", choices=("both", "random", "around"), default="both",
                        help="MADV_RANDOM, the kernel's read-around, or both (default)")
    parser.add_argument("--stale-stats", action="store_true",
                        help="do not read memory.stat during the runs (the kernel's cgroup counters then lag up to 2 s)")
    args = parser.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - {f for f, _ in CASES})
    if unknown or not formats:
        parser.error(f"--formats: give some of {', '.join(f for f, _ in CASES)}" + (f", not {', '.join(unknown)}" if unknown else ""))
    modes = ("random", "around") if args.readahead == "both" else (args.readahead,)
    root = args.artifacts or Path(tempfile.mkdtemp(prefix="pocketfit-paging-", dir="build"))
    paths = {fmt: artifact(root, fmt) for fmt, _ in CASES if fmt in formats}
    phone = devices.load(args.device)
    first = next(iter(paths.values()))
    latency, bandwidth = disk(first)
    # What the emulated handset enforces: blkio throttling caps the phone's bandwidth and IOPS but
    # cannot add latency to a request, so one read at queue depth 1 takes this disk's time.
    emulated = dataclasses.replace(phone, flash_read_latency=latency,
                                   flash_read_bandwidth=int(min(phone.flash_read_bandwidth, bandwidth)))
    setting = Path(f"/sys/dev/block/{block_device(first)}/queue/read_ahead_kb")
    before = setting.read_text().strip()
    try:
        if args.read_ahead_kb:
            setting.write_text(str(args.read_ahead_kb))
        table = run(paths, emulated, args.policy, modes, fresh=not args.stale_stats)
    finally:
        setting.write_text(before)
    print(f"Paging: predicted (simulated, {args.policy} page cache) against measured on the emulated {phone.id}, "
          f"{datetime.date.today()}, MiniLM fp32, batch 1 x 128 tokens; per inference in the steady state "
          f"({RUNS} runs after {WARMUP} warm-up). Flash as simulated: {emulated.flash_read_latency * 1e6:.0f} us per request, "
          f"{emulated.flash_read_bandwidth / 1e9:.2f} GB/s (this disk: {latency * 1e6:.0f} us, {bandwidth / 1e9:.2f} GB/s; "
          f"{phone.id}: {phone.flash_read_latency * 1e6:.0f} us, {phone.flash_read_bandwidth / 1e9:.2f} GB/s); "
          f"disk read_ahead_kb {args.read_ahead_kb or before}; "
          f"{'memory.stat not read during runs (stale cgroup counters)' if args.stale_stats else 'memory.stat read every 20 ms during runs'}\n")
    print(table)


def run(paths, emulated, policy, modes=("random", "around"), fresh: bool = True) -> str:
    rows = [["artifact", "read-ahead", "budget", "bytes", "predicted", "measured", "cold read sim", "cold read real", "err",
             "majflt sim", "majflt real", "err", "read sim", "read real", "err", "p50 sim ms", "p50 real ms", "err"]]
    for fmt, options in CASES:
        if fmt in paths:
            validate(paths[fmt], options, emulated, policy, rows, modes, fresh)
    return render(rows, right=set(range(3, 18)))


if __name__ == "__main__":
    main()
