"""android-demo's platform-free core (plain Java): compiled with the JDK and its JUnit tests run,
and the result it writes validated against the contract that pocketfit reads.

Needs javac and Debian's junit4 (`make test` installs it); without them these skip, except under
POCKETFIT_REQUIRE_CGROUPS=1 (CI), where a missing JDK or JUnit fails them.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pocketfit.runtime.ondevice import result

CORE = Path(__file__).resolve().parent.parent / "android-demo" / "core"
JUNIT = [Path("/usr/share/java/junit4.jar"), Path("/usr/share/java/hamcrest-core.jar")]

if not shutil.which("javac") or not all(p.exists() for p in JUNIT):
    missing = "javac" if not shutil.which("javac") else "junit4 (/usr/share/java/junit4.jar)"
    if os.environ.get("POCKETFIT_REQUIRE_CGROUPS") == "1":
        pytest.fail(f"{missing} is missing: `make test` installs junit4 (apt-get install junit4) beside JDK 17", pytrace=False)
    pytest.skip(f"needs {missing} (make test installs junit4; CI fails instead of skipping)", allow_module_level=True)


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("android-core")
    main, test = out / "main", out / "test"
    sources = sorted(str(p) for p in (CORE / "src" / "main").rglob("*.java"))
    subprocess.run(["javac", "-Xlint:all", "-Werror", "-d", str(main), *sources], check=True, capture_output=True, text=True)
    tests = sorted(str(p) for p in (CORE / "src" / "test").rglob("*.java"))
    subprocess.run(["javac", "-Xlint:all", "-cp", f"{main}:{JUNIT[0]}", "-d", str(test), *tests], check=True,
                   capture_output=True, text=True)
    return out


def test_the_java_core_compiles_and_its_junit_tests_pass(classes):
    cp = ":".join(map(str, [classes / "main", classes / "test", *JUNIT]))
    r = subprocess.run(["java", "-cp", cp, "org.junit.runner.JUnitCore", "org.pocketfit.demo.core.CoreTest"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "OK (" in r.stdout, r.stdout + r.stderr


def test_what_the_java_writer_writes_is_the_contract(classes, minilm_onnx, tmp_path):
    manifest = minilm_onnx["int8"].path.with_name("manifest.json")
    out = tmp_path / "result.json"
    subprocess.run(["java", "-cp", str(classes / "main"), "org.pocketfit.demo.core.ContractCheck", str(manifest), str(out)],
                   check=True, capture_output=True, text=True, timeout=120)
    doc = result.load(out)
    assert doc["runtime"] == {"name": "onnxruntime", "version": json.loads(manifest.read_text())["toolchain"]["onnxruntime"]}
    assert doc["memory"]["pss"] > 0 and doc["memory"]["vm_hwm"] >= doc["memory"]["rss_anon"]
    latencies = doc["timing"]["latencies_ms"]
    for q in (50, 90, 99):  # the app's percentiles are numpy's, so app and --local agree
        assert doc["timing"][f"p{q}_ms"] == pytest.approx(float(np.percentile(latencies, q)), rel=1e-12)


def test_the_apps_cpu_description_is_pocketfits(classes, minilm_onnx, tmp_path):
    """The app names a core by implementer and part; through runtime/cores.toml that is the
    cluster pocketfit's own parser makes of the same real /proc/cpuinfo (a Pixel 8's)."""
    from pocketfit.runtime.ondevice import facts

    cpuinfo = Path(__file__).parent / "fixtures" / "device" / "pixel-8.cpuinfo"
    out = tmp_path / "result.json"
    subprocess.run(["java", "-cp", str(classes / "main"), "org.pocketfit.demo.core.ContractCheck",
                    str(minilm_onnx["int8"].path.with_name("manifest.json")), str(out), str(cpuinfo)],
                   check=True, capture_output=True, text=True, timeout=120)
    cpu = result.load(out)["device"]["cpu"]

    clusters, features = facts.cpuinfo(cpuinfo.read_text())
    assert [(c["cores"], facts.core_name(c["core"]), c["max_ghz"]) for c in cpu["clusters"]] == [(c.cores, c.core, c.max_ghz) for c in clusters]
    assert tuple(cpu["features"]) == features and len(clusters) == 3
