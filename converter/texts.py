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
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise BadInput(f"calibration file {path}: {e.strerror}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"calibration file {path} is not UTF-8 text (byte {e.start}): give one sentence per line") from e
    if "\x00" in text:
        raise BadInput(f"calibration file {path} holds binary data: give one sentence per line")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < MIN_CALIBRATION_TEXTS:
        raise BadInput(
            f"calibration file {path} has {len(lines)} non-empty lines; give at least {MIN_CALIBRATION_TEXTS}, one text per line"
        )
    return lines
