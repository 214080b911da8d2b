"""bench-device: the parsers against real handsets' outputs (tests/fixtures/device/SOURCES.md),
the one result contract, `--local` end to end, and no handset against a real adb server."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from pocketfit.errors import InvalidDeviceProfile, InvalidResult
from pocketfit.files import sha256
from pocketfit.runtime import devices, ondevice
from pocketfit.runtime.ondevice import draft, facts, result

FIXTURES = Path(__file__).parent / "fixtures" / "device"
ROOT = Path(__file__).resolve().parent.parent


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def pixel_8(page_size=4096) -> facts.Facts:
    # The clocks of cpu0-4 as the same source's cpufreq files give them; cpu5-8's are not used.
    khz = {0: 1704000, 1: 1704000, 2: 1704000, 3: 1704000, 4: 2367000}
    clusters, features = facts.cpuinfo(read("pixel-8.cpuinfo"), khz)
    return facts.android(facts.getprop(read("pixel-8.getprop")), facts.meminfo(read("galaxy-2gb.meminfo")), clusters, features, page_size)


def test_cpuinfo_of_a_pixel_8_is_its_three_clusters_and_isa():
    clusters, features = facts.cpuinfo(read("pixel-8.cpuinfo"))
    assert [(c.cores, c.core) for c in clusters] == [(4, "cortex-a510"), (4, "cortex-a715"), (1, "cortex-x3")]
    f = pixel_8()
    assert {"dotprod", "i8mm", "fp16", "sve", "sve2"} <= set(f.isa) and "sme" not in f.isa
    # A clock splits a cluster only where it differs: cpu4 has one, cpu5-7 none.
    assert [(c.cores, c.max_ghz) for c in f.clusters] == [(4, 1.704), (1, 2.367), (3, None), (1, None)]


def test_an_unknown_core_keeps_its_part_number():
    text = read("pixel-8.cpuinfo").replace("0xd4e", "0xd99")
    assert facts.cpuinfo(text)[0][-1].core == "arm:0xd99"
    # The app's implementer:part ids resolve to the same names; unknown or malformed ones stay.
    assert facts.core_name("arm:0xd4e") == "cortex-x3" and facts.core_name("0x51:0x804") == "cortex-a76"
    assert facts.core_name("arm:0xd99") == "arm:0xd99" and facts.core_name("jvm:amd64") == "jvm:amd64"


def test_getprop_of_real_handsets():
    p = facts.getprop(read("pixel-8.getprop"))
    assert (p["ro.product.model"], p["ro.product.cpu.abi"], p["ro.build.version.sdk"]) == ("Pixel 8", "arm64-v8a", "34")
    n = facts.getprop(read("nexus-5.getprop"))  # verbatim, with the paste's indentation
    assert len(n) == 27 and n["ro.board.platform"] == "msm8974" and n["ro.build.date"] == "Tue Jan  6 22:40:00 UTC 2015"
    f = pixel_8()
    assert (f.model, f.manufacturer, f.soc, f.os) == ("Pixel 8", "Google", "zuma", "Android 14 (SDK 34)")


def test_meminfo_and_dumpsys_meminfo():
    assert facts.meminfo(read("galaxy-2gb.meminfo"))["MemTotal"] == 2046172 * 1024
    d = facts.dumpsys_meminfo(read("launcher3.dumpsys-meminfo"))
    assert d == {"pss": 105529 * 1024, "private_dirty": 95048 * 1024, "native_heap": 24489 * 1024, "rss": 187052 * 1024}
    # An older layout without the Rss column, and only the App Summary's total: what is there is read.
    older = "\n".join(line for line in read("launcher3.dumpsys-meminfo").splitlines() if "TOTAL" not in line or "PSS" in line)
    assert facts.dumpsys_meminfo(older)["pss"] == 105529 * 1024


def test_a_handset_finds_its_catalog_profile_or_none():
    assert ondevice.match(pixel_8()).id == "pixel-8"
    assert ondevice.match(pixel_8(page_size=16384)).id == "pixel-8-16k"
    unknown = facts.Facts("Phone X9", "Nobody", None, None, "arm64-v8a", 4096, 8 * 2**30)
    assert ondevice.match(unknown) is None


def test_a_drafted_profile_holds_what_the_handset_said_and_is_refused_until_completed():
    text = draft.draft(pixel_8())
    assert 'page_size = "4 KiB"' in text and 'name = "Google Pixel 8"' in text
    assert '{ cores = 1, core = "cortex-a715", ghz = 2.367 }' in text and 'soc = "zuma"' in text
    with pytest.raises(InvalidDeviceProfile, match="tier|TODO"):
        devices.parse(text, "pixel-8-draft")


@pytest.fixture(scope="module")
def tiny_onnx(tiny_bert_dir, tmp_path_factory) -> Path:
    from pocketfit.converter import NoQuant, Onnx, export, load

    return export(load(tiny_bert_dir), tmp_path_factory.mktemp("bench-tiny"), Onnx(), NoQuant()).path


def test_bench_local_writes_the_contract_and_it_round_trips(tiny_onnx, tmp_path):
    doc = ondevice.bench_local(tiny_onnx, iterations=5, warmup=1, seq_len=16)
    assert doc["source"] == "local" and doc["runtime"]["name"] == "onnxruntime" and len(doc["timing"]["latencies_ms"]) == 5
    assert doc["memory"]["vm_hwm"] > 0 and doc["memory"]["pss"] > 0
    assert doc["artifact"]["sha256"] == sha256(tiny_onnx)
    stored = result.append(doc, tmp_path / "results.jsonl")
    result.append(doc, stored)
    assert result.read_all(stored) == [doc, doc]
    broken = json.loads(json.dumps(doc))
    broken["timing"]["p50_ms"] = "fast"
    with pytest.raises(InvalidResult, match="timing/p50_ms"):
        result.validate(broken)


def test_cli_local_prints_the_result_beside_the_prediction(tiny_onnx, tmp_path):
    out, store = tmp_path / "bench.json", tmp_path / "results.jsonl"
    r = run_cli("bench-device", "--local", str(tiny_onnx), "--device", "galaxy-a15", "--iterations", "5", "--seq-len", "16",
                "--json", str(out), "--results", str(store))
    assert r.returncode == 0, r.stderr
    assert "measured  on this machine" in r.stdout and "predicted for galaxy-a15 by the latency model (not measured): p50" in r.stdout
    written = json.loads(out.read_text())
    result.validate(written["result"])
    assert written["predicted"]["predicted"] is True and written["device"] == "galaxy-a15" and written["fits"] is True
    assert result.read_all(store) == [written["result"]]


@pytest.mark.parametrize("args, message", [
    (["--local"], "--local needs --device"),
    (["--emulate", "galaxy-a15"], "--emulate applies with --local only"),
    (["--local", "--device", "no-such-phone"], "no-such-phone"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tiny_onnx, args, message):
    r = run_cli("bench-device", str(tiny_onnx), *args)
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr


def test_a_pulled_result_that_breaks_the_contract_is_refused(tmp_path):
    bad = tmp_path / "result.json"
    bad.write_text("{\"schema\": \"pocketfit/device-bench/1\"}")
    with pytest.raises(InvalidResult, match="result.json: \\(top level\\): 'source' is a required property"):
        result.load(bad)
    bad.write_text("not json")
    with pytest.raises(InvalidResult, match="is not JSON"):
        result.load(bad)


@pytest.fixture()
def adb_server():
    """The real adb server (adbutils' own adb binary), stopped again afterwards."""
    import adbutils

    yield adbutils.adb_path()
    subprocess.run([adbutils.adb_path(), "kill-server"], capture_output=True, timeout=30)


def test_no_handset_is_one_line_and_exit_3_from_the_real_adb_server(tiny_onnx, adb_server):
    listed = subprocess.run([adb_server, "devices"], capture_output=True, text=True, timeout=60)
    if any(line.endswith("\tdevice") for line in listed.stdout.splitlines()):
        pytest.skip("a handset is attached: this test is for a machine without one")
    r = run_cli("bench-device", str(tiny_onnx))
    assert r.returncode == 3, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pocketfit: no handset: looked for a handset on the adb server at 127.0.0.1:5037")
    assert "pocketfit profile ARTIFACT --emulate DEVICE" in lines[0] and r.stdout == ""


def test_make_bench_device_without_a_handset(tiny_onnx, adb_server):
    r = subprocess.run(["make", "-s", "bench-device", f"ARTIFACT={tiny_onnx}", f"BIN={Path(sys.executable).parent}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert "pocketfit: no handset" in r.stderr and "exited 3" in r.stderr and r.returncode != 0, (r.stdout, r.stderr)
