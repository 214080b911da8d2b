"""Writing files so that a failure never leaves half a file under the final name."""

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputNotWritable


def ensure_dir(path: Path) -> Path:
    """Create an output folder, or say in one line why it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputNotWritable(f"cannot create output folder {path}: {e.strerror}") from e
    if not path.is_dir():
        raise OutputNotWritable(f"output {path} exists and is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputNotWritable(f"output folder {path} is not writable")
    return path


@contextlib.contextmanager
def staged(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; it becomes `final` only if the block succeeds.

    The temporary name sits in the same folder so the rename is atomic.
    """
    # The temporary name keeps the suffix: runtimes pick a file's format by it (onnxruntime: .ort).
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".partial{final.suffix}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists() and tmp_path.stat().st_mode & 0o777 == 0o600:
            # mkstemp makes the file private; what the user gets is what any new file gets (umask)
            tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask, read without changing it (os.umask can only set it)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        return 0o022


def write_text_atomic(path: Path, text: str) -> None:
    with staged(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
