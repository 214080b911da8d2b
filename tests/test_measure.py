"""Measuring real artifacts in a child process; the child's failures become outcomes."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import run_cli
from pocketfit.errors import BadInput
from pocketfit.runtime import measure

pytestmark = pytest.mark.xdist_group("minilm-onnx")


def test_measures_memory_latency_and_faults(minilm_onnx):
    fp32 = measure(minilm_onnx["none"].path, iterations=5, seq_len=32)
    int8 = measure(minilm_onnx["int8"].path, iterations=5, seq_len=32)
    for m in (fp32, int8):
        assert m.ok and m.runtime.startswith("onnxruntime ")
        assert m.peak_rss > m.baseline_rss > 20 * 2**20  # an interpreter with onnxruntime loaded
        assert 0 < m.p50_ms <= m.p90_ms <= m.p99_ms
        assert m.sampled > 0  # the parent sampled the child's memory while it ran
        assert m.faults("warm", "end")["majflt"] == 0  # warm runs read nothing from storage
    # onnxruntime reads an .onnx file into its own memory: the weights are anonymous, not mapped.
    assert fp32.weights == "copied" and fp32.model_mapped == 0
    assert fp32.model_anon >= 0.9 * fp32.bytes
    assert int8.model_rss < fp32.model_rss


def test_a_hung_child_is_an_outcome(minilm_onnx):
    m = measure(minilm_onnx["int8"].path, iterations=100_000, timeout=3)
    assert m.outcome == "hung" and not m.ok and "3 s" in m.detail


def _parent(pid: str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), None)


def _kill_child_when_it_appears(sig: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"pocketfit.runtime._child" in cmdline and b'"probe"' not in cmdline and _parent(pid) == os.getpid():
                # only this test's own child: another xdist worker's measurement is not ours to kill
                time.sleep(1.0)  # let it load the model and start running
                os.kill(int(pid), sig)
                return
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_a_killed_child_is_an_outcome(minilm_onnx, sig):
    killer = threading.Thread(target=_kill_child_when_it_appears, args=(sig,))
    killer.start()
    try:
        m = measure(minilm_onnx["int8"].path, iterations=100_000, timeout=120)
    finally:
        killer.join()
    assert m.outcome == f"killed by {sig.name}" and not m.ok
    assert m.peak_rss > 0  # the sampler saw it even though it never reported


def test_profile_cli_reports_json_and_exit_codes(minilm_onnx):
    result = run_cli("profile", str(minilm_onnx["int8"].path), "--iterations", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outcome"] == "ok" and report["memory"]["weights"] == "copied"
    assert set(report["faults"]) == {"load", "first_inference", "timed_inferences"}
    assert report["latency_ms"]["p50"] > 0
    hung = run_cli("profile", str(minilm_onnx["int8"].path), "--iterations", "100000", "--timeout", "2")
    assert hung.returncode == 1 and "outcome   hung" in hung.stdout
    assert hung.stderr.strip().splitlines()[-1].startswith("pocketfit: ") and "hung" in hung.stderr


def test_unknown_runtime_option_names_the_runtime_options(minilm_onnx, tmp_path):
    with pytest.raises(BadInput, match="unknown runtime option 'xnnpack'; this runtime's options: none"):
        measure(minilm_onnx["int8"].path, options={"xnnpack": "off"})
    result = run_cli("profile", str(minilm_onnx["int8"].path), "--option", "xnnpack")
    assert result.returncode == 2 and "write KEY=VALUE" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--budget", "64MiB"], "--budget applies with --emulate DEVICE only"),
    (["--emulate", "galaxy-a15", "--budget", "64 mb"], "size '64 mb' is not understood"),
    (["--madvise", "sideways"], "'sideways' is not one of"),
])
def test_profile_refuses_bad_budget_and_advice(minilm_onnx, args, message):
    result = run_cli("profile", str(minilm_onnx["int8"].path), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1



def _state(pid: int) -> str | None:
    """The process's state letter (Z: a zombie, dead), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            pass
    return found


def test_the_measuring_child_dies_with_the_harness(minilm_onnx):
    """Even a harness killed with SIGKILL (no cleanup at all) leaves no measuring child behind."""
    harness = subprocess.Popen([sys.executable, "-m", "pocketfit", "profile", str(minilm_onnx["int8"].path), "--iterations", "100000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (children := _children_of(harness.pid)) and time.time() < deadline:
        time.sleep(0.1)
    assert children, "the harness never started its child"
    time.sleep(1)  # past its start-up
    harness.kill()
    harness.wait()
    deadline = time.time() + 10
    while any(_state(c) not in (None, "Z") for c in children) and time.time() < deadline:
        time.sleep(0.1)
    assert all(_state(c) in (None, "Z") for c in children), [(c, _state(c)) for c in children]
