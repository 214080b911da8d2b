"""The distribution: one import package `pocketfit`, its folders mapped in, a console script."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_one_top_level_package_and_its_data(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("pocketfit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"pocketfit", "pocketfit-0.1.0.dist-info"}
    for needed in (
        "pocketfit/converter/__init__.py",
        "pocketfit/converter/backends/onnx.py",
        "pocketfit/converter/data/sentences.txt",
        "pocketfit/runtime/__init__.py",
        "pocketfit/runtime/devices/pixel-7a.toml",
        "pocketfit/runtime/cores.toml",
        "pocketfit/runtime/calibration/published.toml",
        "pocketfit/runtime/cost/model.py",
        "pocketfit/schemas/manifest.schema.json",
    ):
        assert needed in names

    # Installed plainly (not editable) into a folder of its own, it imports from there.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    probe = "import pocketfit.converter as c, pocketfit.runtime as r; print(c.__file__); print(r.devices.builtin()['pixel-7a'].name)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, check=True).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert out[1] == "Google Pixel 7a"


def test_no_top_level_converter_or_runtime(tmp_path):
    for name in ("converter", "runtime"):
        result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, cwd=tmp_path)
        assert result.returncode != 0, f"a top-level package {name!r} is importable"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "pocketfit"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "0.1.0" in result.stdout


def test_runtime_side_does_not_import_torch():
    """The measuring child loads only the runtime it needs: onnxruntime, never torch."""
    probe = (
        "import sys; from pocketfit.converter import backends; from pocketfit import runtime, cli; "
        "backends.for_path(__import__('pathlib').Path('m.onnx')).runtime_version(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
