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
        raise BadInput(f"size {text!r} is not understood: write a number and one of {forms} (e.g. '512 MiB')")
    return round(float(match.group(1)) * _UNITS[match.group(2)])


def mib(n: int) -> str:
    """Bytes as MiB with one decimal, the unit every report prints."""
    return f"{n / 2**20:.1f} MiB"


def human(n: int) -> str:
    """Bytes in the largest binary unit that keeps the figure at or above 1, one decimal."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
