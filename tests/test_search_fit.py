"""`pocketfit fit` as a user runs it: refusals in one line (exit 2), "nothing fits" (exit 1 with
the closest candidate), a search to the end whose budget file `pocketfit check` passes, a search
killed with SIGKILL that resumes from its cache, and the Ray executor picking what the local one
picks. The tiny one-layer BERT keeps each export under a second; MiniLM's search is a benchmark
(benchmarks/fit.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import run_cli
from test_cli import assert_one_line_error

from pocketfit.runtime import devices
from pocketfit.runtime.search.run import memory_for, split_text


@pytest.fixture(scope="module")
def app_text(tmp_path_factory):
    from pocketfit.converter import texts

    path = tmp_path_factory.mktemp("fit-text") / "app.txt"
    path.write_text("\n".join(texts.calibration() + texts.sentences()) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("args, fragments", [
    (["--device", "galaxy-nope"], ["unknown device 'galaxy-nope'"]),
    (["--device", "galaxy-a04e", "--min-cosine", "1.5"], ["cosine floor of 1.5 can never be met"]),
    (["--device", "galaxy-a04e", "--min-cosine", "0"], ["can never be met"]),
    (["--device", "galaxy-a04e", "--max-perplexity-increase", "10%"], ["applies to --task text-generation"]),
    (["--device", "galaxy-a04e", "--budget-share", "150%"], ["a share of the app budget lies in (0, 1]"]),
    (["--device", "galaxy-a04e", "--budget-share", "64 mb"], ["is ambiguous"]),
    (["--device", "galaxy-a04e", "--format", "onnx,gguf"], ["the formats are"]),
])
def test_refusals_are_one_line_and_exit_2(tiny_bert_dir, tmp_path, args, fragments):
    result = run_cli("fit", str(tiny_bert_dir), *args, "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, *fragments)
    assert not (tmp_path / "out" / "fit.json").exists()


def test_an_empty_or_short_text_file_is_refused(tiny_bert_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    result = run_cli("fit", str(tiny_bert_dir), "--device", "galaxy-a04e", "--text", str(empty), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "has 0 non-empty lines; give at least 50")
    short = tmp_path / "short.txt"
    short.write_text("one line\nanother\n", encoding="utf-8")
    result = run_cli("fit", str(tiny_bert_dir), "--device", "galaxy-a04e", "--text", str(short), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "has 2 non-empty lines")


def test_a_model_that_cannot_be_exported_for_the_task_is_refused_once(tiny_bert_dir, tmp_path):
    result = run_cli("fit", str(tiny_bert_dir), "--device", "galaxy-a04e", "--task", "text-generation", "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "BertLMHeadModel cannot decode over a static KV cache")
    # and shrinking it says why in one line, where it once raised AttributeError (exit 70)
    shrunk = run_cli("export", str(tiny_bert_dir), "--task", "text-generation", "--shrink", "layers=1", "-o", str(tmp_path / "x"))
    assert_one_line_error(shrunk, 2, "does not know how to shrink a BertLMHeadModel")


def test_nothing_fits_exits_1_naming_the_closest(tiny_bert_dir, tmp_path):
    # 3 MiB for model and runtime: the smallest runtime, LiteRT, alone takes 3.8 MiB on the
    # phone, so every candidate of every format misses by prediction and none is exported
    out = tmp_path / "out"
    result = run_cli("fit", str(tiny_bert_dir), "--device", "galaxy-a04e", "--budget-share", "3 MiB", "-o", str(out))
    assert_one_line_error(result, 1, "nothing fits galaxy-a04e within 3.0 MiB", "closest:", "(tflite), which needs at least",
                          "by prediction", "over")
    found = json.loads((out / "fit.json").read_text())
    assert found["counts"]["exported"] == 0 and found["counts"]["skipped_by_prediction"] == found["counts"]["considered"] > 0
    assert found["chosen"] is None and not (out / "chosen").exists()


def test_a_latency_target_no_candidate_can_meet_is_missed_by_prediction(tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    result = run_cli("fit", str(tiny_bert_dir), "--device", "galaxy-a04e", "--format", "onnx", "--max-latency-ms", "0.001", "-o", str(out))
    assert_one_line_error(result, 1, "nothing fits galaxy-a04e", "ms predicted, over the 0.001 ms target")
    found = json.loads((out / "fit.json").read_text())
    assert found["counts"]["exported"] == 0
    assert all("ms predicted, over the 0.001 ms target" in c["why_not_exported"] for c in found["candidates"])


def test_a_search_to_the_end_whose_budget_file_check_passes(tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    result = run_cli("fit", str(tiny_bert_dir), "--device", "galaxy-a04e", "--format", "onnx,tflite", "-o", str(out))
    assert result.returncode == 0, result.stderr
    found = json.loads((out / "fit.json").read_text())
    counts = found["counts"]
    assert counts["considered"] == sum(counts[k] for k in ("skipped_by_prediction", "ruled_out", "below_in_torch", "exported",
                                                           "failed_to_export"))
    chosen = next(c for c in found["candidates"] if c["status"] == "chosen")
    assert chosen["candidate"] == found["chosen"] == found["pareto"][0]
    assert chosen["measured"]["quality"] >= 0.95 and chosen["measured"]["parity_passed"]
    # the estimate is a floor under what was measured, so a skip on it is never wrong
    for c in found["candidates"]:
        if "measured" in c and "bytes" in c["measured"]:
            m = c["measured"]
            assert c["estimate"]["bytes"] <= m["bytes"] and c["estimate"]["memory"] <= m["model_rss"] + m["footprint"], c
    assert (out / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artifact = out / "chosen" / ("model.onnx" if "(onnx)" in found["chosen"] else "model.tflite")
    assert artifact.exists() and (out / "chosen" / "manifest.json").exists()
    assert f"chosen: {found['chosen']}" in result.stdout
    checked = run_cli("check", "--config", str(out / "pocketfit.toml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("model, task, floor, formats", [
    ("tiny-llama", "text-generation", ["--max-perplexity-increase", "5%"], "onnx,pte"),  # the KV cache as inputs, and as state
    ("tiny-classifier", "text-classification", ["--min-label-agreement", "0.9"], "onnx")])
def test_every_task_has_its_measure_on_held_out_text(tiny_llama_dir, tiny_classifier_dir, tmp_path, model, task, floor, formats):
    folder = {"tiny-llama": tiny_llama_dir, "tiny-classifier": tiny_classifier_dir}[model]
    out = tmp_path / "out"
    result = run_cli("fit", str(folder), "--task", task, *floor, "--device", "galaxy-a15", "--format", formats, "-o", str(out))
    assert result.returncode == 0, result.stderr
    found = json.loads((out / "fit.json").read_text())
    measured = {c["candidate"]: c["measured"]["quality"] for c in found["candidates"] if "measured" in c}
    if task == "text-generation":  # the fp32 artifact's perplexity is the teacher's, token for token
        assert abs(measured["fp32 (onnx)"]) < 1e-3 and abs(measured["fp32 (pte)"]) < 1e-3
        assert any(k.startswith("layers=1") for k in measured)
        assert "perplexity increase <= 5.00%" in result.stdout
    else:  # a classifier is not shrunk: its candidates are the recipes
        assert measured["fp32 (onnx)"] == 1.0 and all("layers" not in k for k in measured)
    assert found["chosen"] is not None


def _cached(out):
    folder = out / ".cache"
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")} if folder.exists() else {}


def test_a_search_killed_with_sigkill_resumes_without_redoing_finished_candidates(tiny_bert_dir, app_text, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "pocketfit", "fit", str(tiny_bert_dir), "--device", "galaxy-a04e", "--format", "onnx", "--text", str(app_text),
            "-o", str(out)]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(_cached(out)) < 3 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)  # the search and its measuring children, at once
    child.wait()
    finished = _cached(out)
    assert len(finished) >= 3, "the search ended before it could be killed"
    assert not (out / "fit.json").exists()
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    found = json.loads((out / "fit.json").read_text())
    reused = [c for c in found["candidates"] if c.get("measured", {}).get("from_cache")]
    assert found["counts"]["from_cache"] == len(reused) >= len(finished)
    after = _cached(out)
    assert all(after[name] == mtime for name, mtime in finished.items())  # not one was evaluated again
    assert found["counts"]["evaluated_here"] == len(after) - len(reused) > 0


def test_a_rerun_with_a_lower_floor_exports_what_the_stricter_one_judged_in_torch(tiny_bert_dir, app_text, tmp_path):
    out = tmp_path / "out"
    args = ("fit", str(tiny_bert_dir), "--device", "galaxy-a04e", "--format", "onnx", "--text", str(app_text), "-o", str(out))
    strict = run_cli(*args, "--min-cosine", "0.999")
    assert strict.returncode in (0, 1), strict.stderr
    first = json.loads((out / "fit.json").read_text())
    judged = {c["candidate"]: c["measured"]["torch_quality"] for c in first["candidates"] if "torch_quality" in c.get("measured", {})}
    assert judged, "nothing was judged in torch at 0.999"
    lower = min(judged.values()) - 0.01
    loose = run_cli(*args, "--min-cosine", f"{lower:.4f}")
    assert loose.returncode == 0, loose.stderr
    second = {c["candidate"]: c for c in json.loads((out / "fit.json").read_text())["candidates"]}
    for name in judged:  # every shape the strict run rejected in torch passes this floor there: each was exported now
        assert "bytes" in second[name]["measured"] and not second[name]["measured"]["from_cache"], second[name]


def test_the_ray_executor_picks_what_the_local_one_picks(tiny_bert_dir, tmp_path):
    pytest.importorskip("ray")
    picked = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        result = run_cli("fit", str(tiny_bert_dir), "--device", "galaxy-a04e", "--format", "onnx", "--executor", executor, "--jobs", "2",
                         "-o", str(out))
        assert result.returncode == 0, result.stderr
        picked[executor] = json.loads((out / "fit.json").read_text())
    assert picked["ray"]["chosen"] == picked["local"]["chosen"] is not None
    assert picked["ray"]["counts"]["evaluated_here"] > 0


def test_the_text_splits_the_same_way_every_time_and_never_overlaps():
    lines = [f"line {i}" for i in range(103)]
    train, held = split_text(lines)
    assert (train, held) == split_text(lines)
    assert len(held) == 20 and not set(train) & set(held) and sorted(train + held) == sorted(lines)


def test_the_budget_is_a_share_or_a_size():
    phone = devices.load("galaxy-a04e")
    assert memory_for("25%", phone) == memory_for("0.25", phone) == int(phone.app_budget * 0.25)
    assert memory_for("64 MiB", phone) == 64 * 2**20
