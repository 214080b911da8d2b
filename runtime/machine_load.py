"""Whether something else used the CPU while a latency was being measured.

A p50 taken while another process loads the cores is wrong without saying so (a peers run read
13.4 ms busy and 4.2 ms quiet minutes later). Around a measurement this reads the kernel's
count of busy CPU time (/proc/stat) and this process's own and its waited-for children's
(os.times): what is left was spent by others.
"""

import os
import time
from dataclasses import dataclass

BUSY_CORES = 0.2  # others using a fifth of a core on average: enough to move a 2-thread p50


@dataclass(frozen=True)
class MachineLoad:
    seconds: float  # wall time watched
    others_cpu_seconds: float  # CPU time spent by processes other than this one and its children
    loadavg: float  # 1-minute load average at the end (it includes the measurement itself)

    @property
    def others_cores(self) -> float:
        return self.others_cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def busy(self) -> bool:
        return self.others_cores > BUSY_CORES

    def describe(self) -> str:
        state = "BUSY: latency figures are unreliable, measure again on a quiet machine" if self.busy else "quiet"
        return f"{state} (other processes used {self.others_cores:.2f} cores on average; load average {self.loadavg:.2f})"

    def to_dict(self) -> dict:
        return {"seconds": round(self.seconds, 3), "others_cpu_seconds": round(self.others_cpu_seconds, 3),
                "others_cores": round(self.others_cores, 3), "loadavg": self.loadavg, "busy": self.busy}


def _busy_seconds() -> float | None:
    """All CPUs' non-idle time since boot, from the first line of /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    # guest time is already inside user; steal is the hypervisor's, not another process here
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Watch:
    """with Watch() as w: ...; w.result is a MachineLoad, or None where /proc/stat is missing."""

    result: MachineLoad | None = None

    def __enter__(self):
        self._start = (time.monotonic(), _busy_seconds(), _own_seconds())
        return self

    def __exit__(self, *exc):
        wall, busy, own = time.monotonic(), _busy_seconds(), _own_seconds()
        if busy is not None and self._start[1] is not None:
            others = max(0.0, (busy - self._start[1]) - (own - self._start[2]))
            self.result = MachineLoad(wall - self._start[0], others, os.getloadavg()[0])
        return False
