"""The phone catalog: built-in profiles load, round-trip, and bad profiles name their field."""

import pytest

from pocketfit.errors import InvalidDeviceProfile, UnknownDevice
from pocketfit.runtime import devices
from pocketfit.runtime.devices import OS, Tier

GOOD = """
name = "Test Phone"
os = "android"
tier = "low-end"
ram = "4 GiB"
app_budget = "1.5 GiB"
[sources]
ram = "https://example.org/spec"
app_budget = "https://example.org/measurement"
"""


def test_builtin_catalog_spans_the_tiers():
    catalog = devices.builtin()
    assert len(catalog) >= 3
    assert {d.os for d in catalog.values()} == {OS.ANDROID, OS.IOS}
    assert {Tier.LOW_END, Tier.MID_RANGE} <= {d.tier for d in catalog.values()}


@pytest.mark.parametrize("device_id", sorted(devices.builtin()))
def test_every_figure_has_a_source_and_round_trips(device_id):
    device = devices.load(device_id)
    for name in ("ram", "app_budget"):
        assert device.sources[name].strip()
    assert "http" in device.sources["ram"] and "http" in device.sources["app_budget"]
    assert devices.parse(device.to_toml(), device.id) == device


def test_user_profile_by_path(tmp_path):
    path = tmp_path / "my-phone.toml"
    path.write_text(GOOD)
    device = devices.load(str(path))
    assert device.id == "my-phone" and device.app_budget == 3 * 2**29


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(UnknownDevice, match="known: .*pixel-7a"):
        devices.load("nokia-3310")


@pytest.mark.parametrize("edit, field", [
    (lambda t: t.replace('ram = "4 GiB"\n', ""), "'ram'"),
    (lambda t: t.replace('tier = "low-end"', 'tier = "cheap"'), "'tier'"),
    (lambda t: t.replace('app_budget = "1.5 GiB"', 'app_budget = "9 GiB"'), "app_budget"),
    (lambda t: t.replace('app_budget = "1.5 GiB"', 'app_budget = "1.5 gigs"'), "'app_budget'"),
    (lambda t: t.replace('app_budget = "https://example.org/measurement"', ""), "'app_budget' has no entry in \\[sources\\]"),
    (lambda t: t.replace('name = "Test Phone"', 'name = "Test Phone"\nram_gb = 4'), "'ram_gb'"),
    (lambda t: t.replace('os = "android"', 'os = "android"\napp_budget_extended = "2 GiB"'), "app_budget_extended"),
])
def test_bad_profile_names_the_field(tmp_path, edit, field):
    with pytest.raises(InvalidDeviceProfile, match=field):
        devices.parse(edit(GOOD), "bad")
