"""A handset over adb (adbutils, which ships its own adb): find it, read its facts, run the
android-demo app on an artifact and pull its result.

Written against adb's documented commands and the app's intent contract (android-demo/README.md).
The finding and the failing are tested here against a real adb server; the run on a handset is not,
as no handset is attached to the machine this was built on.
"""

import subprocess
import time
from pathlib import Path

from pocketfit.errors import InvalidResult, NoHandset

from . import facts

PACKAGE = "org.pocketfit.demo"
ACTIVITY = f"{PACKAGE}/.BenchActivity"
REMOTE = "/data/local/tmp/pocketfit"
ADDRESS = "127.0.0.1:5037"


def _client():
    import adbutils

    # adbutils starts a missing server itself, and lets adb print "* daemon started" on our
    # stdout; start it here with the output kept, so a user sees one line at most.
    try:
        subprocess.run([adbutils.adb_path(), "start-server"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NoHandset(f"cannot start the adb server ({adbutils.adb_path()}): {e}") from e
    return adbutils.AdbClient()


def find(serial: str | None = None):
    """The one ready handset (or the one with `serial`), or NoHandset saying what adb saw."""
    import adbutils

    client = _client()
    try:
        version = client.server_version()
        listed = client.list()
    except adbutils.AdbError as e:
        raise NoHandset(f"no handset: the adb server at {ADDRESS} did not answer ({e}); "
                        "without one, `pocketfit profile ARTIFACT --emulate DEVICE` measures inside a phone's limits") from e
    ready = [d for d in listed if d.state == "device"]
    others = ", ".join(f"{d.serial} ({d.state})" for d in listed if d.state != "device")
    if serial:
        ready = [d for d in ready if d.serial == serial]
    if not ready:
        looked = f"handset {serial!r}" if serial else "a handset"
        seen = f"it lists {len(listed)} device(s){': ' + others if others else ''}" if listed else "it lists no device"
        raise NoHandset(f"no handset: looked for {looked} on the adb server at {ADDRESS} (adb protocol {version}), {seen}; "
                        "attach one with USB debugging on, or measure without one: pocketfit profile ARTIFACT --emulate DEVICE")
    if len(ready) > 1:
        raise NoHandset(f"{len(ready)} handsets attached ({', '.join(d.serial for d in ready)}): pick one with --serial")
    return client.device(serial=ready[0].serial)


def read_facts(device) -> facts.Facts:
    props = facts.getprop(device.shell("getprop"))
    mem = facts.meminfo(device.shell("cat /proc/meminfo"))
    text = device.shell("cat /proc/cpuinfo")
    khz = {}
    for line in device.shell("for c in /sys/devices/system/cpu/cpu[0-9]*; do echo ${c##*cpu} $(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null); done").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            khz[int(parts[0])] = int(parts[1])
    clusters, features = facts.cpuinfo(text, khz)
    page = device.shell("getconf PAGE_SIZE").strip()
    return facts.android(props, mem, clusters, features, int(page) if page.isdigit() else 4096)


def run(device, artifact: Path, iterations: int, warmup: int, threads: int | None, seq_len: int, apk: Path | None,
        out: Path, progress, timeout: float = 900) -> Path:
    """Push the artifact and its manifest, start the app's benchmark, wait for its result, pull it."""
    if apk is not None:
        with progress.step(f"installing {apk.name}"):
            device.install(str(apk), nolaunch=True)
    if PACKAGE not in device.list_packages():
        raise NoHandset(f"the android-demo app ({PACKAGE}) is not installed on {device.serial}: "
                        "build it (android-demo/README.md) and pass it with --apk")
    remote = f"{REMOTE}/{artifact.name}"
    with progress.step(f"pushing {artifact.name} to {device.serial}"):
        device.shell(f"mkdir -p {REMOTE} && rm -f {REMOTE}/result.json {REMOTE}/result.json.error")
        device.sync.push(str(artifact), remote)
        manifest = artifact.with_name("manifest.json")
        if manifest.exists():
            device.sync.push(str(manifest), f"{REMOTE}/manifest.json")
    extras = f"--es artifact {remote} --ei iterations {iterations} --ei warmup {warmup} --ei seq_len {seq_len}"
    extras += f" --ei threads {threads}" if threads else ""
    with progress.step(f"running {iterations} iterations in the app"):
        device.shell(f"am start -W -n {ACTIVITY} {extras} --es result {REMOTE}/result.json")
        deadline = time.monotonic() + timeout
        while (state := device.shell(f"if [ -f {REMOTE}/result.json ]; then echo done; elif [ -f {REMOTE}/result.json.error ]; "
                                     "then echo failed; fi").strip()) != "done":
            if state == "failed":  # the app's one line on why it wrote no result
                why = device.shell(f"cat {REMOTE}/result.json.error").strip()
                raise InvalidResult(f"the app could not benchmark {artifact.name} on {device.serial}: {why}")
            if time.monotonic() > deadline:
                raise InvalidResult(f"the app wrote no result in {timeout:.0f} s ({REMOTE}/result.json); see `adb logcat -s pocketfit`")
            time.sleep(1)
    device.sync.pull(f"{REMOTE}/result.json", str(out))
    return out
