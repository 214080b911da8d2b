"""Which pages of an artifact's files one inference really touches, and how much anonymous memory
loading it costs: the measurement that every `held` rule of the backends' layout() is checked
against. Run in a child process: python tests/layout_probe.py ARTIFACT '{"options": {}, "ids": [5, 9]}'

After a first inference, every mapping of the artifact's files is unmapped page by page
(MADV_DONTNEED: the pages stay in the file, the process's page-table entries go), read-around
is turned off (MADV_RANDOM) and the file dropped from the page cache, so that a second inference
faults in exactly the pages it reads; /proc/self/pagemap then says which those are. Mappings with
copy-on-write (anonymous) pages are left alone: dropping them would lose what the runtime wrote;
mlock()ed ones cannot be dropped, and are reported as `locked` with their resident pages.
"""

import ctypes
import json
import mmap
import os
import sys
from pathlib import Path

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")
_libc = ctypes.CDLL(None, use_errno=True)


def _mappings(folder: Path) -> list[dict]:
    found = []
    with open("/proc/self/smaps") as f:
        current = None
        for line in f:
            parts = line.split(None, 5)
            if len(parts) >= 5 and "-" in parts[0] and not parts[0].endswith(":"):
                current = None
                if len(parts) == 6 and Path(parts[5].strip()).parent == folder:
                    start, end = (int(x, 16) for x in parts[0].split("-"))
                    current = {"file": Path(parts[5].strip()).name, "start": start, "end": end, "perms": parts[1],
                               "offset": int(parts[2], 16), "private_dirty": 0, "anonymous": 0, "locked": 0}
                    found.append(current)
            elif current is not None and line.startswith(("Private_Dirty:", "Anonymous:", "Locked:")):
                current[{"Private_Dirty:": "private_dirty", "Anonymous:": "anonymous", "Locked:": "locked"}[line.split()[0]]] += int(line.split()[1]) * 1024
    return found


def _present(m: dict) -> list[int]:
    """File page indices of the mapping's pages that are in the process's page table."""
    count = (m["end"] - m["start"]) // PAGE
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(m["start"] // PAGE * 8)
        entries = np.frombuffer(f.read(count * 8), dtype=np.uint64)
    first = m["offset"] // PAGE
    return [first + i for i in np.nonzero(entries >> np.uint64(63))[0].tolist()]


def _anon() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))


def main() -> None:
    from pocketfit.converter import backends
    from pocketfit.runtime._child import feeds

    path, request = Path(sys.argv[1]).resolve(), json.loads(sys.argv[2])
    for file in path.parent.iterdir():  # a freshly written file's dirty pages could not be dropped
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    backend = backends.for_path(path)
    backend.runtime_version()
    before = _anon()
    runner = backend.open(path, options=request.get("options") or {})
    arrays = feeds(runner.inputs, request.get("seq_len", 16))
    ids = request.get("ids", [1])
    for spec in runner.inputs:
        if "ids" in spec.name:
            flat = arrays[spec.name].reshape(-1)
            flat[:] = np.resize(np.array(ids, dtype=flat.dtype), flat.size)
    runner.run(arrays)
    anon = _anon() - before
    maps = _mappings(path.parent)
    locked = {}
    for m in maps:
        if m["locked"]:  # mlock()ed by the runtime: resident for good, cannot be dropped
            locked.setdefault(m["file"], []).extend(_present(m))
        if m["anonymous"] or m["locked"]:
            continue
        address, length = ctypes.c_void_p(m["start"]), ctypes.c_size_t(m["end"] - m["start"])
        for advice in (mmap.MADV_RANDOM, mmap.MADV_DONTNEED):
            if _libc.madvise(address, length, advice) != 0:
                raise OSError(ctypes.get_errno(), "madvise")
    for name in {m["file"] for m in maps}:
        fd = os.open(path.parent / name, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    runner.run(arrays)
    touched: dict[str, list[int]] = {}
    for m in maps:
        if not (m["anonymous"] or m["locked"]):
            touched.setdefault(m["file"], []).extend(_present(m))
    print(json.dumps({"anon": anon, "touched": {k: sorted(set(v)) for k, v in touched.items()},
                      "locked": {k: sorted(set(v)) for k, v in locked.items()},
                      "mappings": [{k: m[k] for k in ("file", "perms", "offset", "private_dirty")} | {"bytes": m["end"] - m["start"]}
                                   for m in maps]}))


if __name__ == "__main__":
    main()
