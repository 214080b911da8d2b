"""android-demo's Android module cannot be built here (no Android SDK, no Google Maven): these
check what can be checked without it. Its dependencies are the runtimes pocketfit exports with,
and the intent it reads is the one `bench-device` sends."""

import re
from pathlib import Path

from pocketfit.runtime.ondevice import adb

DEMO = Path(__file__).resolve().parent.parent / "android-demo"
LOCK = Path(__file__).resolve().parent.parent / "requirements" / "lock.txt"


def _lock() -> dict[str, str]:
    pins = (line.split("==") for line in LOCK.read_text().splitlines() if "==" in line and not line.startswith("#"))
    return {name.strip().lower(): version.strip() for name, version in pins}


def test_the_app_pins_the_runtimes_pocketfit_exports_with():
    props = dict(line.split("=", 1) for line in (DEMO / "gradle.properties").read_text().splitlines()
                 if "=" in line and not line.startswith("#"))
    lock = _lock()
    assert props["executorchVersion"] == lock["executorch"]
    assert props["onnxruntimeVersion"] == lock["onnxruntime"]
    assert props["litertVersion"] == lock["ai-edge-litert"]
    gradle = (DEMO / "app" / "build.gradle").read_text()
    for coordinate in ("org.pytorch:executorch-android:${executorchVersion}",
                       "com.microsoft.onnxruntime:onnxruntime-android:${onnxruntimeVersion}",
                       "com.google.ai.edge.litert:litert:${litertVersion}"):
        assert coordinate in gradle


def test_the_activity_reads_the_intent_bench_device_sends():
    source = (DEMO / "app" / "src" / "main" / "java" / "org" / "pocketfit" / "demo" / "BenchActivity.java").read_text()
    read = set(re.findall(r'get(?:String|Int)Extra\("(\w+)"', source)) | set(re.findall(r'hasExtra\("(\w+)"', source))
    sent = set(re.findall(r"--e[si] (\w+)", Path(adb.__file__).read_text()))
    assert sent == read == {"artifact", "iterations", "warmup", "seq_len", "threads", "result"}
    manifest = (DEMO / "app" / "src" / "main" / "AndroidManifest.xml").read_text()
    assert adb.ACTIVITY == "org.pocketfit.demo/.BenchActivity" and 'android:name=".BenchActivity"' in manifest
    assert 'android:exported="true"' in manifest  # am start from the shell needs it
    assert 'namespace "org.pocketfit.demo"' in (DEMO / "app" / "build.gradle").read_text()
    # The error file the app writes when it cannot benchmark is the one bench-device looks for.
    assert 'result + ".error"' in source and "result.json.error" in Path(adb.__file__).read_text()


def test_every_runtime_format_has_a_model_in_the_app():
    source = (DEMO / "app" / "src" / "main" / "java" / "org" / "pocketfit" / "demo" / "Models.java").read_text()
    from pocketfit.converter import FORMATS

    assert set(re.findall(r'case "(\w+)":', source)) >= set(FORMATS)
