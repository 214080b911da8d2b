"""Linux cgroups for one emulated run: a memory limit, a read-bandwidth throttle and a CPU set,
enforced by the kernel. Version 1 (a hierarchy per controller) and version 2 (one unified
hierarchy) are both handled; groups are made under the ones this process is in, and always removed.
"""

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from pocketfit.errors import EnvironmentLimit

ROOT = Path(os.environ.get("POCKETFIT_CGROUP_ROOT", "/sys/fs/cgroup"))  # overridable to test its absence


@dataclass(frozen=True)
class Limits:
    memory: int  # bytes the group's processes may hold, page cache included
    read_bps: int  # bytes/s the group may read from `block_device`
    read_iops: int
    block_device: str  # "MAJOR:MINOR" of the disk that holds the artifact
    cpus: str  # cpuset list, e.g. "0-1"


def _own_paths() -> dict[str, str]:
    """controller (or "" for v2's unified hierarchy) -> this process's cgroup path."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    return paths


def version() -> int:
    """1 when the memory controller has a hierarchy of its own, 2 when it is in the unified one."""
    if (ROOT / "memory").is_dir() and "memory" in _own_paths():
        return 1
    controllers = ROOT / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split():
        return 2
    raise EnvironmentLimit(f"no memory cgroup controller under {ROOT}: emulation needs Linux cgroups (v1 or v2) with the memory controller")


@dataclass
class Group:
    """The child cgroups of one run; a context manager that creates and removes them."""

    name: str
    limits: Limits
    dirs: list[Path] = field(default_factory=list)

    def __enter__(self) -> "Group":
        reap()
        try:
            (self._make_v1 if version() == 1 else self._make_v2)()
        except OSError as e:
            self.__exit__(None, None, None)
            raise EnvironmentLimit(f"cannot set up cgroups for emulation ({e.filename}: {e.strerror}); run as root or in a delegated cgroup") from e
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _make_v1(self) -> None:
        own = _own_paths()
        memory = self._mkdir(ROOT / "memory" / own["memory"].lstrip("/") / self.name)
        _write(memory / "memory.limit_in_bytes", self.limits.memory)
        if (memory / "memory.memsw.limit_in_bytes").exists():  # no swap: the limit is the limit
            _write(memory / "memory.memsw.limit_in_bytes", self.limits.memory)
        blkio = self._mkdir(ROOT / "blkio" / own.get("blkio", "/").lstrip("/") / self.name)
        _write(blkio / "blkio.throttle.read_bps_device", f"{self.limits.block_device} {self.limits.read_bps}")
        _write(blkio / "blkio.throttle.read_iops_device", f"{self.limits.block_device} {self.limits.read_iops}")
        parent = ROOT / "cpuset" / own.get("cpuset", "/").lstrip("/")
        cpuset = self._mkdir(parent / self.name)
        _write(cpuset / "cpuset.cpus", self.limits.cpus)
        _write(cpuset / "cpuset.mems", (parent / "cpuset.mems").read_text().strip())

    def _make_v2(self) -> None:
        parent = ROOT / _own_paths()[""].lstrip("/")
        for controller in ("memory", "io", "cpuset"):
            if controller not in (parent / "cgroup.subtree_control").read_text().split():
                _write(parent / "cgroup.subtree_control", f"+{controller}")
        group = self._mkdir(parent / self.name)
        _write(group / "memory.max", self.limits.memory)
        _write(group / "memory.swap.max", 0)
        _write(group / "io.max", f"{self.limits.block_device} rbps={self.limits.read_bps} riops={self.limits.read_iops}")
        _write(group / "cpuset.cpus", self.limits.cpus)

    def _mkdir(self, path: Path) -> Path:
        path.mkdir()
        self.dirs.append(path)
        return path

    def wrap(self, command: list[str]) -> list[str]:
        """`command`, started by a shell that first moves itself into every group, then execs it.
        (A preexec_fn would run Python between fork and exec, which is unsafe when the parent
        has threads: torch, JAX and the runtimes start them.)"""
        moves = "; ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in self.dirs)
        return ["/bin/sh", "-c", f"{moves} && exec \"$@\"", "pocketfit-handset", *command]

    def oom_kills(self) -> int:
        for d in self.dirs:
            for name in ("memory.oom_control", "memory.events"):  # v1, v2
                if (d / name).exists():
                    for line in (d / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
        return 0

    def memory_peak(self) -> int:
        for d in self.dirs:
            for name in ("memory.max_usage_in_bytes", "memory.peak"):  # v1, v2
                if (d / name).exists():
                    return int((d / name).read_text())
        return 0

    def __exit__(self, *exc) -> None:
        """Remove the groups, newest first. A group empties a moment after its last process
        exits; anything still inside is moved to the parent group first."""
        for d in reversed(self.dirs):
            for _ in range(50):
                try:
                    for pid in (d / "cgroup.procs").read_text().split():
                        (d.parent / "cgroup.procs").write_text(pid)
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        self.dirs.clear()


def leftovers(prefix: str = "pocketfit-") -> list[Path]:
    """Groups a pocketfit run left behind (there should never be any)."""
    own = _own_paths()
    found = []
    for controller in ("memory", "blkio", "cpuset"):
        base = ROOT / controller / own.get(controller, "/").lstrip("/")
        if base.is_dir():
            found += [p for p in base.iterdir() if p.is_dir() and p.name.startswith(prefix)]
    if "" in own and (ROOT / own[""].lstrip("/")).is_dir():
        found += [p for p in (ROOT / own[""].lstrip("/")).iterdir() if p.is_dir() and p.name.startswith(prefix)]
    return found


def reap() -> list[Path]:
    """Remove the empty groups of pocketfit processes that no longer exist (a run killed with
    SIGKILL, or a script without pocketfit's SIGTERM handling, cannot clean up after itself)."""
    removed = []
    for path in leftovers():
        pid = path.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            try:
                path.rmdir()  # fails, and is left alone, while a process is still inside
                removed.append(path)
            except OSError:
                pass
    return removed


def _write(path: Path, value) -> None:
    path.write_text(str(value))
