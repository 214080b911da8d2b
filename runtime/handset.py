"""The emulated handset: a measurement run inside one phone's limits, enforced by the kernel.

- memory: a memory cgroup capped at the phone's app budget (page cache included, so mapped
  weights compete for it as on the phone), less the runtime's on-device footprint, plus the
  anonymous memory the measuring process itself holds before the model loads (interpreter,
  numpy, the runtime's Python bindings: a phone app does not pay for those). Its file-backed
  pages (shared libraries) were brought into the page cache by the probe, outside the group, so
  they are not charged to it and are not added;
- flash: reads from the disk holding the artifact throttled to the phone's sequential bandwidth
  and random-read IOPS (where this machine's disk is slower, it stays slower);
- CPU: pinned to as many cores as the phone has big cores (at most this machine's);
- a cold start: the artifact's pages are dropped from the page cache first.
"""

import itertools
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pocketfit.errors import EnvironmentLimit

from . import cgroups, child, procfs, runtimes
from .devices import Device

_RUNS = itertools.count()


@dataclass(frozen=True)
class Emulation:
    device: str
    cgroup_version: int
    memory_limit: int  # = model_budget + host_baseline
    budget: int  # the phone's app budget
    model_budget: int  # what the model may hold: budget - footprint unless set explicitly
    footprint: int  # the runtime's own cost on the phone (runtime/runtimes.toml)
    host_baseline: int  # the measuring process's anonymous memory before the model loads, which the phone does not pay
    read_bps: int
    read_iops: int
    block_device: str
    cpus: str
    oom_killed: bool
    memory_peak: int  # the cgroup's own high-water mark, page cache included

    def to_dict(self) -> dict:
        return asdict(self)


class Handset:
    """A context manager: cgroups set up on entry, removed on exit (Ctrl-C and failures included)."""

    def __init__(self, device: Device, artifact: Path, budget: int | None = None):
        # budget: the model's own memory (default: the app budget less the runtime's footprint)
        self.device, self.artifact, self.budget = device, Path(artifact), budget

    def __enter__(self) -> "Handset":
        block = block_device(self.artifact)
        cgroups.version()  # fail before the probe when there are no cgroups at all
        self.runtime, self.baseline = child.probe(self.artifact)
        baseline = self.baseline
        self.footprint = runtimes.footprint_of(self.runtime).footprint
        self.host = baseline.rss_anon
        budget = self.budget if self.budget is not None else self.device.app_budget - self.footprint
        limit = budget + self.host
        available = sorted(os.sched_getaffinity(0))
        cpus = ",".join(str(c) for c in available[: max(1, min(self.device.big_cores, len(available)))])
        self.limits = cgroups.Limits(memory=limit, read_bps=self.device.flash_read_bandwidth,
                                     read_iops=self.device.flash_read_iops, block_device=block, cpus=cpus)
        self.group = cgroups.Group(f"pocketfit-{os.getpid()}-{next(_RUNS)}", self.limits).__enter__()
        procfs.evict(self.artifact)
        return self

    def wrap(self, command: list[str]) -> list[str]:
        """The measuring child's command, started inside the phone's cgroups."""
        return self.group.wrap(command)

    def result(self) -> Emulation:
        return Emulation(
            device=self.device.id, cgroup_version=cgroups.version(), memory_limit=self.limits.memory,
            budget=self.device.app_budget,
            model_budget=self.limits.memory - self.host, footprint=self.footprint, host_baseline=self.host,
            read_bps=self.limits.read_bps, read_iops=self.limits.read_iops, block_device=self.limits.block_device,
            cpus=self.limits.cpus, oom_killed=self.group.oom_kills() > 0, memory_peak=self.group.memory_peak(),
        )

    def __exit__(self, *exc) -> None:
        self.group.__exit__(*exc)


def block_device(path: Path) -> str:
    """MAJOR:MINOR of the whole disk that holds `path` (throttles apply to disks, not partitions)."""
    dev = os.stat(path).st_dev
    node = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if os.major(dev) == 0 or not node.exists():
        raise EnvironmentLimit(
            f"{path} is not on a block device (tmpfs or overlay?): the flash throttle needs one; put the artifact on a disk-backed folder"
        )
    if (node / "partition").exists():
        node = node.resolve().parent
    return (node / "dev").read_text().strip()
