"""What a device says about itself: parsers for the text a handset prints over adb (`getprop`,
`/proc/meminfo`, `/proc/cpuinfo`, `dumpsys meminfo PKG`), and the same facts read from this
machine for `bench-device --local`. Pure functions over text: tests/fixtures/device/ holds real
outputs of real phones (SOURCES.md says whose).
"""

import os
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path

KIB = 1024

# (implementer, part) from /proc/cpuinfo -> the core design as runtime/cores.toml names it.
# Arm's part numbers from its Technical Reference Manuals (MIDR_EL1.PartNum); Qualcomm's Kryo
# 2xx-4xx "Gold"/"Silver" report their own implementer (0x51) for Arm designs underneath.
CORES = {
    (0x41, 0xD03): "cortex-a53", (0x41, 0xD05): "cortex-a55", (0x41, 0xD0A): "cortex-a75",
    (0x41, 0xD0B): "cortex-a76", (0x41, 0xD0D): "cortex-a77", (0x41, 0xD41): "cortex-a78",
    (0x41, 0xD44): "cortex-x1", (0x41, 0xD46): "cortex-a510", (0x41, 0xD47): "cortex-a710",
    (0x41, 0xD48): "cortex-x2", (0x41, 0xD4D): "cortex-a715", (0x41, 0xD4E): "cortex-x3",
    (0x41, 0xD80): "cortex-a520", (0x41, 0xD81): "cortex-a720", (0x41, 0xD82): "cortex-x4",
    (0x51, 0x802): "cortex-a75", (0x51, 0x803): "cortex-a55", (0x51, 0x804): "cortex-a76", (0x51, 0x805): "cortex-a55",
}
# The Features words the latency model's kernels depend on, in the kernel's spelling.
ISA = {"asimddp": "dotprod", "i8mm": "i8mm", "asimdhp": "fp16", "sve": "sve", "sve2": "sve2", "sme": "sme", "bf16": "bf16"}


@dataclass(frozen=True)
class Cluster:
    cores: int
    core: str  # cortex-a76, or "arm:0xd4b" for a part pocketfit does not know
    max_ghz: float | None = None


@dataclass(frozen=True)
class Facts:
    model: str
    manufacturer: str | None
    soc: str | None
    os: str | None
    abi: str
    page_size: int
    mem_total: int
    clusters: tuple[Cluster, ...] = ()
    features: tuple[str, ...] = ()
    emulated: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"model": d["model"], "manufacturer": d["manufacturer"], "soc": d["soc"], "os": d["os"], "abi": d["abi"],
                "page_size": d["page_size"], "mem_total": d["mem_total"], "emulated": d["emulated"],
                "cpu": {"clusters": list(d["clusters"]), "features": list(d["features"])}}

    @property
    def isa(self) -> list[str]:
        """The features that decide which kernels run, by their usual names (dotprod, i8mm, fp16 ...)."""
        return [name for word, name in ISA.items() if word in self.features]


def getprop(text: str) -> dict[str, str]:
    """`[key]: [value]` lines, as `adb shell getprop` prints them (leading blanks ignored)."""
    return dict(re.findall(r"^\s*\[([^\]]+)\]: \[(.*)\]\s*$", text, re.M))


def meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo: every `Key: N kB` line in bytes."""
    return {k: int(v) * KIB for k, v in re.findall(r"^\s*([\w()]+):\s+(\d+) kB", text, re.M)}


def cpuinfo(text: str, max_khz: dict[int, int] | None = None) -> tuple[tuple[Cluster, ...], tuple[str, ...]]:
    """arm64 /proc/cpuinfo: consecutive processors of one design (and one top clock, where
    `max_khz` gives each CPU's cpuinfo_max_freq) make a cluster; Features of the first."""
    cpus, features = [], ()
    for block in re.split(r"\n\s*\n", text.strip()):
        fields = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in block.splitlines()) if _)
        if "processor" not in fields or not fields["processor"].isdigit():
            continue
        if not features and fields.get("Features"):
            features = tuple(fields["Features"].split())
        implementer, part = int(fields.get("CPU implementer", "0"), 16), int(fields.get("CPU part", "0"), 16)
        core = CORES.get((implementer, part), f"{'arm' if implementer == 0x41 else hex(implementer)}:{hex(part)}")
        khz = (max_khz or {}).get(int(fields["processor"]))
        cpus.append((core, round(khz / 1e6, 3) if khz else None))
    clusters: list[list] = []
    for core, ghz in cpus:
        if clusters and clusters[-1][1:] == [core, ghz]:
            clusters[-1][0] += 1
        else:
            clusters.append([1, core, ghz])
    return tuple(Cluster(n, core, ghz) for n, core, ghz in clusters), features


def core_name(core: str) -> str:
    """The design an "implementer:part" id names ("arm:0xd4b", as the android-demo app writes it),
    or the id itself when pocketfit does not know that part."""
    implementer, _, part = core.partition(":")
    try:
        key = (0x41 if implementer == "arm" else int(implementer, 16), int(part, 16))
    except ValueError:
        return core
    return CORES.get(key, core)


def dumpsys_meminfo(text: str) -> dict[str, int | None]:
    """`dumpsys meminfo PKG`: total PSS, private dirty (the TOTAL row) and the native heap's
    allocated bytes (its Heap Alloc column), in bytes. Column positions come from the header, as
    Android 10 and 12 print different columns."""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if re.match(r"^\s+Pss\s", line)), None)
    out: dict[str, int | None] = {"pss": None, "private_dirty": None, "native_heap": None, "rss": None}
    if header is not None:
        names = [f"{a} {b}" for a, b in zip(lines[header].split(), lines[header + 1].split())]
        for line in lines[header + 3:]:
            m = re.match(r"^\s*(\S.*?)\s+(\d[\d\s]*)$", line)
            if not m:
                continue
            label, numbers = m.groups()
            values = dict(zip(names, (int(x) * KIB for x in numbers.split())))
            if label == "Native Heap":
                out["native_heap"] = values.get("Heap Alloc")
            elif label == "TOTAL":
                out["pss"], out["private_dirty"] = values.get("Pss Total"), values.get("Private Dirty")
                out["rss"] = values.get("Rss Total")
                break
    if (m := re.search(r"TOTAL PSS:\s+(\d+)", text)) and out["pss"] is None:
        out["pss"] = int(m.group(1)) * KIB
    return out


def android(props: dict[str, str], mem: dict[str, int], clusters, features, page_size: int) -> Facts:
    soc = " ".join(x for x in (props.get("ro.soc.manufacturer"), props.get("ro.soc.model")) if x) or None
    soc = soc or props.get("ro.board.platform") or props.get("ro.hardware")
    release, sdk = props.get("ro.build.version.release"), props.get("ro.build.version.sdk")
    return Facts(model=props.get("ro.product.model", "unknown Android device"), manufacturer=props.get("ro.product.manufacturer"),
                 soc=soc, os=f"Android {release} (SDK {sdk})" if release else None, abi=props.get("ro.product.cpu.abi", "unknown"),
                 page_size=page_size, mem_total=mem.get("MemTotal", 0), clusters=tuple(clusters), features=tuple(features))


def local(emulated: str | None = None) -> Facts:
    """This machine, described the way a handset is (for `bench-device --local`)."""
    text = Path("/proc/cpuinfo").read_text()
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), platform.machine())
    cores = len(os.sched_getaffinity(0))
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith(("flags", "Features"))), [])
    clusters, features = cpuinfo(text) if platform.machine() == "aarch64" else ((Cluster(cores, f"x86:{name}"),), tuple(flags))
    return Facts(model=name, manufacturer=None, soc=None, os=f"Linux {platform.release()}", abi=platform.machine(),
                 page_size=os.sysconf("SC_PAGE_SIZE"), mem_total=meminfo(Path("/proc/meminfo").read_text())["MemTotal"],
                 clusters=clusters, features=features, emulated=emulated)
