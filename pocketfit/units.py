"""Byte sizes: parse the forms people write ("512 MiB", "3.5GB") and print them one way."""

import re

from .errors import BadInput

# Case matters: "mb" could mean megabits, so only these spellings are accepted.
_UNITS = {
    "B": 1,
    "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*$")


def parse_bytes(text: str | int) -> int:
    """`"3.5 GiB"` -> 3758096384. A bare integer is a count of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise BadInput(f"size {text} is negative")
        return text
    match = _SIZE.match(str(text))
    if not match or match.group(2) not in _UNITS:
        forms = ", ".join(_UNITS)
        hint = ""
        if match and match.group(2).lower().rstrip("b") in _AMBIGUOUS:
            number, prefix = match.group(1), _AMBIGUOUS[match.group(2).lower().rstrip("b")]
            hint = f" ({match.group(2)!r} is ambiguous: write '{number} {prefix}iB' for 1024-based or '{number} {'k' if prefix == 'K' else prefix}B' for 1000-based)"
        raise BadInput(f"size {text!r} is not understood{hint}: write a number and one of {forms} (e.g. '512 MiB', '512MiB', '0.5 GiB', '500 MB')")
    return round(float(match.group(1)) * _UNITS[match.group(2)])


# Lower-case or one-letter units ("512 mb", "512m", "2g") could mean bits or bytes, 1000 or 1024:
# refused, with the two spellings that say which.
_AMBIGUOUS = {"k": "K", "m": "M", "g": "G", "t": "T", "ki": "K", "mi": "M", "gi": "G", "ti": "T"}


def mib(n: int) -> str:
    """Bytes as MiB with one decimal, the unit every report prints."""
    return f"{n / 2**20:.1f} MiB"


def human(n: int) -> str:
    """Bytes in the largest binary unit that keeps the figure at or above 1, one decimal."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)/s\s*$")
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ns|us|µs|ms|s)\s*$")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_rate(text: str) -> int:
    """`"2.1 GB/s"` -> 2100000000 bytes per second."""
    match = _RATE.match(str(text))
    if not match or match.group(2) not in _UNITS:
        raise BadInput(f"rate {text!r} is not understood: write a size per second, e.g. '2.1 GB/s' or '800 MB/s'")
    return round(float(match.group(1)) * _UNITS[match.group(2)])


def parse_duration(text: str) -> float:
    """`"90 us"` -> 9e-05 seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise BadInput(f"duration {text!r} is not understood: write a number and one of ns, us, ms, s (e.g. '90 us')")
    return round(float(match.group(1)) * _SECONDS[match.group(2)], 12)  # 90 us and 90000 ns compare equal
