import pytest

from pocketfit.errors import BadInput
from pocketfit.units import human, parse_bytes


@pytest.mark.parametrize("text, expected", [
    ("512 MiB", 512 * 2**20),
    ("512MiB", 512 * 2**20),
    ("1.5 GiB", 3 * 2**29),
    ("3.5GB", 3_500_000_000),
    ("100 B", 100),
    (4096, 4096),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["512 mb", "512", "lots", "1.5 gib", "-3 MiB", ""])
def test_parse_bytes_refuses_and_names_the_accepted_forms(text):
    with pytest.raises(BadInput, match="MiB"):
        parse_bytes(text)


def test_human():
    assert human(3 * 2**29) == "1.5 GiB"
    assert human(23_476_549) == "22.4 MiB"
    assert human(12) == "12 B"
