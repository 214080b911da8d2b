"""The phone catalog: built-in profiles load, round-trip, and bad profiles name their field."""

import pytest

from conftest import device_toml
from pocketfit.errors import InvalidDeviceProfile, UnknownDevice
from pocketfit.runtime import devices
from pocketfit.runtime.devices import OS, Tier

GOOD = device_toml()


def test_catalog_spans_low_end_to_flagship_and_three_iphones():
    catalog = list(devices.builtin().values())
    android = [d for d in catalog if d.os is OS.ANDROID]
    iphones = [d for d in catalog if d.os is OS.IOS]
    assert len(android) >= 8 and len(iphones) >= 3
    assert min(d.ram for d in android) <= 4 * 2**30 and max(d.ram for d in android) >= 12 * 2**30
    assert {Tier.LOW_END, Tier.MID_RANGE, Tier.FLAGSHIP} <= {d.tier for d in android}
    assert all(d.page_size == 16384 for d in iphones)
    assert any(d.page_size == 16384 for d in android)  # Android 15's 16 KiB-page devices
    assert all(d.app_budget_extended for d in iphones)


@pytest.mark.parametrize("device_id", sorted(devices.builtin()))
def test_every_figure_has_a_source_and_round_trips(device_id):
    device = devices.load(device_id)
    for name in ("ram", "app_budget", "flash_read_bandwidth", "dram_bandwidth", "big_cores", "page_size"):
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


@pytest.mark.parametrize("text, message", [
    (device_toml(ram=None), "missing field 'ram'"),
    (device_toml(tier="cheap"), "field 'tier' is 'cheap'.*use one of low-end, mid-range, flagship"),
    (device_toml(app_budget="9 GiB"), "'app_budget' exceeds 'ram'"),
    (device_toml(app_budget="1.5 gigs"), "field 'app_budget' is '1.5 gigs'.*MiB"),
    (device_toml(page_size="8 KiB"), "field 'page_size' is '8 KiB', which is not 4 KiB or 16 KiB"),
    (device_toml(flash_read_bandwidth="3 GB"), "field 'flash_read_bandwidth'.*size per second"),
    (device_toml(flash_read_latency="90"), "field 'flash_read_latency'.*'90 us'"),
    (device_toml(dram_bandwidth="1000 GB/s"), "'dram_bandwidth'.*between 1 GB/s and 500 GB/s"),
    (device_toml(big_cores=0), "'big_cores' is 0, which is not between 1 and 16"),
    (device_toml(big_cores="two"), "'big_cores' is 'two': must be a whole number"),
    (device_toml().replace('flash_read_iops = "a test profile"\n', ""), "'flash_read_iops' has no entry in \\[sources\\]"),
    (device_toml().replace("tier = ", "ram_gb = 4\ntier = "), "unknown field 'ram_gb'"),
    (device_toml(app_budget_extended="2 GiB"), "app_budget_extended' is an iOS entitlement"),
    ("name = [", "not valid TOML"),
])
def test_bad_profile_names_the_field(text, message):
    with pytest.raises(InvalidDeviceProfile, match=message):
        devices.parse(text, "bad")
