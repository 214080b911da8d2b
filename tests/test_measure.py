"""Measuring real artifacts in a child process; the child's failures become verdicts."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from pocketfit.errors import MeasurementFailed
from pocketfit.runtime import devices, fit, measure


def test_measures_memory_and_latency(minilm_onnx):
    fp32 = measure(minilm_onnx["none"].path, iterations=5, seq_len=32)
    int8 = measure(minilm_onnx["int8"].path, iterations=5, seq_len=32)
    for m in (fp32, int8):
        assert m.peak_rss > m.baseline_rss > 20 * 2**20  # an interpreter with onnxruntime loaded
        assert 0 < m.p50_ms <= m.p90_ms
        assert m.runtime.startswith("onnxruntime ")
    # onnxruntime reads an .onnx file into its own memory: the model's growth covers the file.
    assert fp32.model_rss >= 0.9 * fp32.bytes
    assert int8.model_rss < fp32.model_rss


def test_fit_compares_with_the_app_budget(minilm_onnx):
    m = measure(minilm_onnx["int8"].path, iterations=2, seq_len=16)
    phone = devices.load("galaxy-a15")
    verdict = fit(m, phone)
    assert verdict.fits == (m.peak_rss <= phone.app_budget and m.bytes <= phone.app_budget)
    assert verdict.memory_share == pytest.approx(m.peak_rss / phone.app_budget)


def test_a_hung_child_is_a_verdict(minilm_onnx):
    with pytest.raises(MeasurementFailed, match="hung"):
        measure(minilm_onnx["int8"].path, iterations=100_000, timeout=3)


def _kill_child_when_it_appears(sig: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"pocketfit.runtime._child" in cmdline:
                time.sleep(1.0)  # let it load the model and start running
                os.kill(int(pid), sig)
                return
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_a_killed_child_is_a_verdict(minilm_onnx, sig):
    killer = threading.Thread(target=_kill_child_when_it_appears, args=(sig,))
    killer.start()
    try:
        with pytest.raises(MeasurementFailed, match=f"killed by {sig.name}"):
            measure(minilm_onnx["int8"].path, iterations=100_000, timeout=120)
    finally:
        killer.join()
