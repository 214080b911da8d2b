"""verify --arch arm64: the artifact in the aarch64 build of its runtime under qemu, in the arm64
root that `make arm64-root` caches outside the clone. Where that root is not cached (a fresh CI
machine), the run on arm64 skips and says why; its refusals are tested everywhere."""

import json
import os
import subprocess
import sys

import pytest

from conftest import run_cli
from pocketfit.errors import EnvironmentLimit, UnsupportedCombination
from pocketfit.runtime import arm64


@pytest.fixture(scope="module")
def tiny_onnx_int8(tiny_bert_dir, tmp_path_factory):
    from pocketfit.converter import Int8Dynamic, Onnx, export, load

    return export(load(tiny_bert_dir), tmp_path_factory.mktemp("arm64-tiny"), Onnx(), Int8Dynamic()).path


@pytest.fixture(scope="module")
def tiny_pte_int8(tiny_bert_dir, tmp_path_factory):
    from pocketfit.converter import Int8Dynamic, Pte, export, load

    return export(load(tiny_bert_dir), tmp_path_factory.mktemp("arm64-tiny-pte"), Pte(), Int8Dynamic()).path


@pytest.mark.parametrize("artifact", ["tiny_onnx_int8", "tiny_pte_int8"])
def test_verify_on_arm64_against_torch_and_x86(artifact, request):
    why = arm64.ready()
    if why:
        pytest.skip(f"arm64 root not usable here: {why}")
    path = request.getfixturevalue(artifact)
    # a64fx: SVE without i8mm. Under qemu 7.2 the `max` CPU's int8 path gives wrong results (docs/export.md).
    r = run_cli("verify", str(path), "--arch", "arm64", "--cpu", "a64fx", "--json", timeout=900)
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["torch_parity"]) == {"x86_64", "arm64"} and doc["arm64_runtime"] == doc["x86_runtime"]
    x86, arm = doc["torch_parity"]["x86_64"], doc["torch_parity"]["arm64"]
    assert abs(arm["cosine_mean"] - x86["cosine_mean"]) < 0.01 and doc["arm64_vs_x86"]["cosine_min"] > 0.99
    assert doc["inputs"] == 40 and doc["seconds"]["arm64"] > 0


def test_verify_without_the_arm64_root_is_one_line_and_exit_3(tiny_onnx_int8, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("as a non-root user the refusal names root instead; covered where CI runs as root")
    env = os.environ | {"POCKETFIT_ARM64_ROOT": str(tmp_path / "no-root")}
    r = subprocess.run([sys.executable, "-m", "pocketfit", "verify", str(tiny_onnx_int8), "--arch", "arm64"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 3 and r.stderr.strip().splitlines() == [
        f"pocketfit: no arm64 root at {tmp_path / 'no-root'}: build it once with `make arm64-root` (debootstrap and the locked "
        "aarch64 wheels, about 3 minutes, 660 MB)"]


def test_verify_refuses_a_file_without_its_manifest_and_an_unknown_format(tiny_onnx_int8, tmp_path):
    lone = tmp_path / "model.onnx"
    lone.write_bytes(tiny_onnx_int8.read_bytes())
    r = run_cli("verify", str(lone), "--arch", "arm64")
    assert r.returncode == 2 and "no manifest.json beside" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(UnsupportedCombination, match=r"runs \.pte, \.onnx, \.ort, \.tflite files, not \.bin"):
        arm64.Arm64(tmp_path / "model.bin", x86=None)


def test_a_root_built_before_pte_support_is_told_to_rebuild(tmp_path):
    root = tmp_path / "old-root"
    (root / arm64.PYTHON.lstrip("/")).parent.mkdir(parents=True)
    (root / arm64.PYTHON.lstrip("/")).write_text("")
    why = arm64.ready(root)
    if why:
        pytest.skip(f"the check runs after the machine's own: {why}")
    with pytest.raises(EnvironmentLimit, match="built before .pte support: rebuild it with `make arm64-root`"):
        arm64.Arm64(tmp_path / "model.pte", x86=None, root=root)
