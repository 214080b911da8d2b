"""How fast the paging simulator is on a large trace: a synthetic 7B-parameter int4 decoder
(Llama-2-7B shapes: 32 layers x q, k, v, o, gate, up, down, a 32000-row embedding table and an
lm_head; 4-bit weights with an fp16 scale per group of 32, 3.6 GB), 4 KiB pages, a 128-token
prompt then 256 decoded tokens, every weight mapped. The issue's bar: the curve in under 5 s.

    .venv/bin/python benchmarks/simulator_speed.py
"""

import time

from pocketfit.converter.layout import MAPPED, Layout, Weight
from pocketfit.runtime import devices
from pocketfit.runtime.paging import Readahead, simulate, trace
from pocketfit.table import render

HIDDEN, FFN, LAYERS, VOCAB = 4096, 11008, 32, 32000
INT4 = 17 / 32  # bytes per weight: 4 bits, plus a 2-byte scale per group of 32


def decoder() -> Layout:
    shapes = [("embed", VOCAB, HIDDEN, VOCAB)]
    for layer in range(LAYERS):
        shapes += [(f"layers.{layer}.{n}", HIDDEN, HIDDEN, 0) for n in ("q", "k", "v", "o")]
        shapes += [(f"layers.{layer}.{n}", FFN, HIDDEN, 0) for n in ("gate", "up", "down")]
    shapes.append(("lm_head", VOCAB, HIDDEN, 0))
    weights, offset = [], 4096  # a header page, as every format has one
    for name, rows, cols, table_rows in shapes:
        length = round(rows * cols * INT4)
        weights.append(Weight(name, "model.bin", offset, length, MAPPED, table_rows))
        offset += length
    return Layout(format="pte", files={"model.bin": offset}, weights=tuple(weights), order=tuple(range(len(weights))),
                  arena=64 * 2**20, notes=("synthetic 7B int4 decoder, every weight mapped",))


def main() -> None:
    layout = decoder()
    device = devices.load("pixel-7a")
    prompt = tuple(range(1000, 1128))
    rows = [["policy", "read-ahead", "accesses", "segments", "curve points", "seconds", "warm ms/token at budget"]]
    timings = {}
    for policy, readahead in (("lru", Readahead()), ("lru", Readahead(None)), ("pinned", Readahead()), ("two-list", Readahead())):
        start = time.perf_counter()
        sim = simulate(layout, device, compute_seconds=0.1, compute_source="a stated 100 ms (benchmark)",
                       policy=policy, readahead=readahead, tokens=256, ids=prompt, kv_cache=256 * 2**20,
                       grid=48 if policy != "two-list" else 12)
        seconds = time.perf_counter() - start
        timings.setdefault(policy, seconds)
        t = trace.build(layout, device.page_size, ids=prompt, tokens=256)
        rows.append([policy, readahead.label, str(len(t.seg)), str(len(t.pages)), str(len(sim.curve)), f"{seconds:.2f}",
                     f"{sim.warm.latency_s * 1e3:.1f}"])
    print(f"synthetic decoder: {layout.held_bytes(MAPPED) / 1e9:.2f} GB mapped, {device.page_size // 1024} KiB pages, "
          f"256 decoded tokens, on {device.id} (simulated)")
    print(render(rows, right={2, 3, 4, 5, 6}))
    verdict = "meets" if timings["lru"] < 5 else "MISSES"
    print(f"lru, the whole simulation with its curve and the pinning advice: {timings['lru']:.2f} s ({verdict} the 5 s bar)")


if __name__ == "__main__":
    main()
