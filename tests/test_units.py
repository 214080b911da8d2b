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


@pytest.mark.parametrize("text, expected", [
    ("512MiB", 512 * 2**20), ("512 MiB", 512 * 2**20), ("0.5GiB", 2**29), ("500MB", 500_000_000), ("500 MB", 500_000_000),
    ("64 kB", 64_000), ("64 KiB", 65536),
])
def test_parse_bytes_accepts_the_common_forms(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text, binary, decimal", [
    ("512 mb", "512 MiB", "512 MB"), ("512m", "512 MiB", "512 MB"), ("2G", "2 GiB", "2 GB"), ("64 kb", "64 KiB", "64 kB"),
    ("1.5 gib", "1.5 GiB", "1.5 GB"),
])
def test_an_ambiguous_unit_is_refused_with_both_spellings_that_say_which(text, binary, decimal):
    with pytest.raises(BadInput) as e:
        parse_bytes(text)
    assert f"is ambiguous: write '{binary}' for 1024-based or '{decimal}' for 1000-based" in str(e.value)
    assert "B, kB, KB, MB, GB, TB, KiB, MiB, GiB, TiB" in str(e.value)
