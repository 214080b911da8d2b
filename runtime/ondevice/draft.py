"""A device profile drafted from what a handset said about itself, for its owner to complete.

What the handset knows (RAM, page size, its CPU clusters and clocks, the SoC's name) is filled
in, with the command it came from as the source. What it cannot tell (the app budget lmkd leaves,
the flash's speed, the DRAM's bandwidth) is left as a TODO that the profile parser refuses, so a
draft never passes for a finished profile. docs/phones.md says how to finish one.
"""

import datetime
import math
import re

from .facts import Facts

GIB = 2**30


def slug(model: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "handset"


def draft(f: Facts) -> str:
    known = [c for c in f.clusters if not re.match(r"^(arm|0x)", c.core) and c.max_ghz]
    when = datetime.date.today().isoformat()
    said = f"read from the handset over adb by pocketfit bench-device, {when}"
    ram = math.ceil(f.mem_total / GIB)  # MemTotal is what is left after the kernel's reservations
    lines = [
        f"# {f.manufacturer or ''} {f.model}: DRAFTED by pocketfit bench-device from the handset's own facts, {when}.",
        "# Fill every TODO with a figure and its source (docs/phones.md, \"Adding a phone\"), then move it to",
        "# runtime/devices/<id>.toml or pass it as --device FILE. Until then pocketfit refuses it, by design.",
        f'name = "{(f.manufacturer + " " + f.model) if f.manufacturer else f.model}"',
        'os = "android"',
        'tier = "TODO: low-end, mid-range or flagship"',
        f'ram = "{ram} GiB"',
        'app_budget = "TODO: what lmkd leaves one foreground app"',
        f'page_size = "{f.page_size // 1024} KiB"',
        'storage = "TODO: UFS 3.1, eMMC 5.1, ..."',
        'flash_read_bandwidth = "TODO: GB/s"',
        'flash_read_latency = "TODO: us"',
        'flash_read_iops = "TODO"',
        'dram = "TODO: LPDDR5X, ..."',
        'dram_bandwidth = "TODO: GB/s"',
        f"big_cores = {sum(c.cores for c in f.clusters if c.max_ghz and c.max_ghz >= max(k.max_ghz or 0 for k in f.clusters) * 0.75) or 'TODO'}",
    ]
    if known:
        lines += ["", "[compute]", "clusters = ["]
        lines += [f'  {{ cores = {c.cores}, core = "{c.core}", ghz = {c.max_ghz:g} }},' for c in sorted(known, key=lambda c: -c.max_ghz)]
        lines += ["]", f'soc = "{f.soc or "TODO"}"']
    unknown = [c.core for c in f.clusters if c not in known]
    lines += ["", "[sources]",
              f'ram = "MemTotal {f.mem_total} bytes from /proc/meminfo, {said}, rounded up to whole GiB as phones are sold"',
              f'page_size = "getconf PAGE_SIZE, {said}"',
              'app_budget = "TODO"', 'storage = "TODO"', 'flash_read_bandwidth = "TODO"', 'flash_read_latency = "TODO"',
              'flash_read_iops = "TODO"', 'dram = "TODO"', 'dram_bandwidth = "TODO"',
              f'big_cores = "the clusters within 75% of the top clock, from /proc/cpuinfo and cpuinfo_max_freq, {said}"']
    if known:
        lines += [f'"compute.clusters" = "CPU part numbers in /proc/cpuinfo and cpuinfo_max_freq per CPU, {said}'
                  + (f"; left out, not in runtime/cores.toml: {', '.join(unknown)}" if unknown else "") + '"',
                  f'"compute.soc" = "getprop ro.soc.model / ro.board.platform, {said}"']
    return "\n".join(lines) + "\n"
