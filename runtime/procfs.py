"""What the Linux kernel says about a process's memory and I/O, read from /proc."""

import os
import resource
from dataclasses import asdict, dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Snapshot:
    """A process's memory and I/O counters at one moment (bytes and counts since it started)."""

    rss_anon: int  # anonymous resident memory: heaps, arenas, copies of weights
    rss_file: int  # file-backed resident memory: mapped files (libraries, mapped weights)
    hwm: int  # the kernel's high-water mark of total resident memory (VmHWM)
    artifact: int  # resident bytes of the artifact file's mappings
    majflt: int  # page faults that read from storage
    minflt: int
    read_bytes: int  # bytes this process caused to be read from storage (/proc/PID/io)

    def to_dict(self) -> dict:
        return asdict(self)


def status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem in bytes: cheap to read (no walk of the mappings)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    return out


def mapped(path: Path, pid: int | str = "self") -> int:
    """Resident bytes of every mapping of `path` (from smaps: walks the mappings, so not cheap)."""
    target, total, inside = str(Path(path).resolve()), 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 5)
            if len(first) >= 5 and "-" in first[0] and not line.startswith(("Rss", "Pss")):
                inside = len(first) == 6 and first[5].strip() == target
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1]) * 1024
    return total


def read_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return 0


def rollup(pid: int | str = "self") -> dict[str, int]:
    """Pss and Private_Dirty in bytes, from smaps_rollup (Linux 4.14+; {} where it is missing):
    the figures Android's own meminfo reports for an app."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            fields = {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in f) if k in ("Pss", "Private_Dirty")}
    except OSError:
        return {}
    return {"pss": fields.get("Pss"), "private_dirty": fields.get("Private_Dirty")}


def snapshot(artifact: Path | None = None) -> Snapshot:
    """This process's counters now."""
    s = status()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Snapshot(
        rss_anon=s["RssAnon"],
        rss_file=s["RssFile"],
        hwm=s["VmHWM"],
        artifact=mapped(artifact) if artifact else 0,
        majflt=usage.ru_majflt,
        minflt=usage.ru_minflt,
        read_bytes=read_bytes(),
    )


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache, so the next read comes from storage (a cold start)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


ADVICE = {"normal": 0, "random": 1, "sequential": 2}  # MADV_* from <sys/mman.h>


def advise(path: Path, advice: str) -> int:
    """madvise every mapping of `path` in this process (MADV_RANDOM turns off the kernel's read-around
    on page faults: each fault then reads one page). Returns how many mappings it advised."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    target, count = str(Path(path).resolve()), 0
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[5].strip() == target:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if libc.madvise(start, end - start, ADVICE[advice]) != 0:
                    raise OSError(ctypes.get_errno(), f"madvise({advice}) on {target}")
                count += 1
    return count
