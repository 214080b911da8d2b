"""inspect reads an artifact from its file alone, in every format."""

import pytest

from conftest import run_cli
from pocketfit.converter import FORMATS, inspect
from pocketfit.errors import InvalidArtifact


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=pytest.mark.xdist_group(f"tiny-classifier-{f}")) for f in sorted(FORMATS)])
def test_inspect_reads_weights_and_operators(exported, fmt):
    fp32 = inspect(exported("tiny-classifier", fmt, "none").path)
    int8 = inspect(exported("tiny-classifier", fmt, "int8").path)
    assert fp32.format == fmt and fp32.bytes == fp32.path.stat().st_size
    assert sum(fp32.operators.values()) > 10
    # The largest constant of a BERT with MiniLM's vocabulary is its word-embedding table.
    assert fp32.largest(1)[0].shape in ((30522, 64), (64, 30522))
    assert 0.9 * 30522 * 64 * 4 < sum(fp32.bytes_by_dtype().values()) < fp32.bytes
    quantized = {d for d in int8.bytes_by_dtype() if "int8" in d}
    assert quantized, int8.bytes_by_dtype()
    assert sum(int8.bytes_by_dtype().values()) < 0.4 * sum(fp32.bytes_by_dtype().values())


@pytest.mark.xdist_group("tiny-classifier-onnx")
def test_inspect_through_the_cli(exported):
    path = exported("tiny-classifier", "onnx", "int8").path
    result = run_cli("inspect", str(path), "--top", "3")
    assert result.returncode == 0, result.stderr
    assert "largest tensors" in result.stdout and "MatMulInteger" in result.stdout


@pytest.mark.parametrize("suffix", [".onnx", ".ort", ".tflite", ".pte"])
def test_inspect_refuses_a_broken_file(tmp_path, suffix):
    if suffix not in {f.suffix for f in FORMATS.values()}:
        pytest.skip(f"no backend reads {suffix}")
    broken = tmp_path / f"model{suffix}"
    broken.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(InvalidArtifact, match=str(broken)):
        inspect(broken)
    result = run_cli("inspect", str(broken))
    assert result.returncode == 2 and result.stderr.startswith("pocketfit: ") and "Traceback" not in result.stderr
