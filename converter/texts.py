"""The texts pocketfit feeds models: the fixed verification sentences and calibration sets."""

from importlib import resources
from pathlib import Path

from pocketfit.errors import BadInput

MIN_CALIBRATION_TEXTS = 8  # fewer gives activation ranges that the next sentence exceeds


def _packaged(name: str) -> list[str]:
    text = resources.files("pocketfit.converter").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def sentences() -> list[str]:
    """The fixed English sentences every artifact is verified on (converter/data/sentences.txt)."""
    return _packaged("sentences.txt")


def calibration(path: Path | None = None) -> list[str]:
    """Representative texts for static quantization: one per line in `path`, or the built-in set,
    which shares no sentence with the verification set."""
    if path is None:
        return _packaged("calibration.txt")
    return lines(path, "calibration file", MIN_CALIBRATION_TEXTS)


def lines(path: Path, what: str = "text file", minimum: int = 1) -> list[str]:
    """The non-empty lines of a UTF-8 text file the user gave, refused in one line when it is
    missing, binary, not UTF-8 or has fewer than `minimum` lines."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise BadInput(f"{what} {path}: {e.strerror}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"{what} {path} is not UTF-8 text (byte {e.start}): give one text per line") from e
    if "\x00" in text:
        raise BadInput(f"{what} {path} holds binary data: give one text per line")
    found = [line.strip() for line in text.splitlines() if line.strip()]
    if len(found) < minimum:
        raise BadInput(f"{what} {path} has {len(found)} non-empty lines; give at least {minimum}, one text per line")
    return found
