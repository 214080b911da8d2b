"""The emulated handset: a phone's memory, flash and CPU limits enforced by the kernel (cgroups).

CI runs as root, where these run; elsewhere they skip, unless POCKETFIT_REQUIRE_CGROUPS=1
(set by .ci/run) makes a missing cgroup a failure instead.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import device_toml, run_cli
from pocketfit.errors import EnvironmentLimit
from pocketfit.runtime import cgroups, devices, measure

pytestmark = pytest.mark.xdist_group("minilm-onnx")  # shares MiniLM's ONNX export, and runs one at a time


def _usable() -> bool:
    try:
        cgroups.version()
    except (EnvironmentLimit, OSError):
        return False
    return os.geteuid() == 0


if os.environ.get("POCKETFIT_REQUIRE_CGROUPS") != "1" and not _usable():
    pytest.skip("needs root and Linux cgroups (POCKETFIT_REQUIRE_CGROUPS=1 fails instead)", allow_module_level=True)


@pytest.fixture(scope="module")
def phones(tmp_path_factory):
    """A phone with a 64 MiB app budget, and one with 512 MiB; both read flash at 1 GB/s."""
    folder = tmp_path_factory.mktemp("phones")
    made = {}
    for name, budget in (("small-phone", "64 MiB"), ("roomy-phone", "512 MiB")):
        (folder / f"{name}.toml").write_text(device_toml(name=name, ram="1 GiB", app_budget=budget))
        made[name] = devices.load(str(folder / f"{name}.toml"))
    return made


@pytest.fixture(scope="module")
def mapped_model(tmp_path_factory):
    """A 3-layer BERT-base-width encoder as .tflite: 85 MB of linear weights read by every
    inference. LiteRT without XNNPACK reads them straight from the mapped file."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pocketfit.converter import NoQuant, Tflite, export, load
    from pocketfit.converter.models import minilm_folder

    folder = tmp_path_factory.mktemp("bert-base-3")
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=3, num_attention_heads=12)).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_folder()).save_pretrained(folder)
    return export(load(folder), folder / "out", Tflite(), NoQuant()).path


def test_mapped_weights_larger_than_the_budget_thrash(mapped_model, phones):
    linear_weights = 3 * (4 * 768 * 768 + 2 * 768 * 3072) * 4
    small = measure(mapped_model, iterations=3, warmup=1, options={"xnnpack": "off"}, emulate=phones["small-phone"])
    assert small.ok and small.emulation.oom_killed is False
    reread = small.faults("warm", "end")
    assert reread["majflt"] > 0
    assert reread["read_bytes"] / small.iterations > 0.2 * linear_weights, reread  # pages dropped and read again, every run
    assert small.emulation.memory_peak <= small.emulation.memory_limit

    roomy = measure(mapped_model, iterations=3, warmup=1, options={"xnnpack": "off"}, emulate=phones["roomy-phone"])
    assert roomy.ok
    warm = roomy.faults("warm", "end")
    assert warm["majflt"] == 0 and warm["read_bytes"] == 0, warm  # after warm-up, everything stays resident
    cold = roomy.faults("baseline", "first")
    assert cold["read_bytes"] > 0.5 * linear_weights  # a cold start: the weights came from storage



def test_madvise_random_reads_one_page_per_fault(mapped_model, phones):
    """With MADV_RANDOM on the runtime's mapping, the kernel's read-around is off: every major
    fault reads exactly one page, so faults per inference are the weight pages re-read."""
    linear_weights = 3 * (4 * 768 * 768 + 2 * 768 * 3072) * 4
    m = measure(mapped_model, iterations=2, warmup=1, options={"xnnpack": "off"}, emulate=phones["small-phone"], advice="random")
    assert m.ok and m.advice == "random"
    warm = m.faults("warm", "end")
    assert warm["majflt"] / m.iterations > 0.2 * linear_weights / 4096, warm
    assert abs(warm["read_bytes"] - 4096 * warm["majflt"]) <= 0.02 * warm["read_bytes"], warm

def test_copied_weights_larger_than_the_budget_are_oom_killed(minilm_onnx, phones):
    m = measure(minilm_onnx["none"].path, iterations=3, emulate=phones["small-phone"])
    assert m.outcome == "oom-killed" and m.emulation.oom_killed
    assert m.model_anon > 0  # the sampler saw the copy grow before the kill
    assert m.emulation.memory_peak >= 0.9 * m.emulation.memory_limit  # killed at the phone's limit, not before
    fine = measure(minilm_onnx["none"].path, iterations=3, emulate=phones["roomy-phone"])
    assert fine.ok and fine.model_anon >= 0.9 * fine.bytes


def test_limits_are_the_phones(mapped_model, phones):
    m = measure(mapped_model, iterations=1, warmup=0, options={"xnnpack": "off"}, emulate=phones["roomy-phone"])
    e = m.emulation
    assert e.memory_limit == e.budget - e.footprint + e.host_baseline == e.model_budget + e.host_baseline
    # the probe's anonymous baseline: a separate process of the same runtime, so about the measuring child's
    assert abs(e.host_baseline - m.phases["baseline"].rss_anon) <= 0.05 * e.host_baseline
    assert e.read_bps == 10**9 and e.read_iops == 40000
    assert e.cpus == ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:2])
    assert cgroups.leftovers(f"pocketfit-{os.getpid()}-") == []  # this process's own (other tests may run beside it)


def test_an_explicit_budget_replaces_the_phones(mapped_model, phones):
    m = measure(mapped_model, iterations=1, warmup=0, options={"xnnpack": "off"}, emulate=phones["roomy-phone"], budget=48 * 2**20)
    assert m.ok and m.emulation.model_budget == 48 * 2**20
    assert m.emulation.memory_limit == 48 * 2**20 + m.emulation.host_baseline


def test_no_cgroups_is_exit_3_not_an_unconstrained_run(minilm_onnx):
    env = os.environ | {"POCKETFIT_CGROUP_ROOT": "/nonexistent"}
    result = subprocess.run([sys.executable, "-m", "pocketfit", "profile", str(minilm_onnx["int8"].path), "--emulate", "galaxy-a15"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "pocketfit: no memory cgroup controller under /nonexistent: emulation needs Linux cgroups (v1 or v2) with the memory controller")
    assert "outcome" not in result.stdout


def test_an_artifact_off_any_disk_is_exit_3(minilm_onnx):
    shm = Path("/dev/shm") / f"pocketfit-test-{os.getpid()}.onnx"
    shm.write_bytes(minilm_onnx["int8"].path.read_bytes())
    try:
        result = run_cli("profile", str(shm), "--emulate", "galaxy-a15")
    finally:
        shm.unlink()
    assert result.returncode == 3 and "is not on a block device" in result.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cgroups_are_removed_when_interrupted(minilm_onnx, phones, sig, code):
    command = [sys.executable, "-m", "pocketfit", "profile", str(minilm_onnx["int8"].path), "--iterations", "100000",
               "--emulate", str(phones["roomy-phone"].path)]
    # A shell's background job (`pytest … &`) ignores SIGINT, and its children inherit that: give
    # this one the default, as a terminal's Ctrl-C would find it.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    its_own = f"pocketfit-{process.pid}-"  # groups are named after the pid that makes them
    deadline = time.time() + 120
    while not cgroups.leftovers(its_own) and time.time() < deadline:
        time.sleep(0.1)
    assert cgroups.leftovers(its_own), "the run never set up its cgroups"
    while not any((g / "cgroup.procs").read_text().strip() for g in cgroups.leftovers(its_own)) and time.time() < deadline:
        time.sleep(0.1)  # until the measuring child is inside them
    time.sleep(1)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert cgroups.leftovers(its_own) == []
    assert "Traceback" not in err


def test_groups_of_dead_runs_are_reaped():
    """A run killed with SIGKILL cannot remove its groups; the next run removes them (empty ones only)."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    own = cgroups._own_paths()
    stale = cgroups.ROOT / "memory" / own["memory"].lstrip("/") / f"pocketfit-{dead.pid}-0"
    stale.mkdir()
    try:
        assert stale in cgroups.leftovers(f"pocketfit-{dead.pid}-")
        assert stale in cgroups.reap()
        assert cgroups.leftovers(f"pocketfit-{dead.pid}-") == []
    finally:
        if stale.exists():
            stale.rmdir()
