"""The command line as a user meets it: real commands in child processes, exit codes, one-line errors."""

import json
import os

import pytest

from conftest import device_toml, run_cli


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    """The error is one line, the last; anything before it is a progress line of a step that ran."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("pocketfit: "), result.stderr
    assert all(line.lstrip()[0] in "…✓✗" for line in lines[:-1]), result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def test_devices_lists_the_catalog():
    result = run_cli("devices")
    assert result.returncode == 0
    assert "pixel-7a" in result.stdout and "iphone-15" in result.stdout


def test_export_then_check_through_the_cli(tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    exported = run_cli("export", str(tiny_bert_dir), "--format", "onnx", "--quant", "int8", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "Verifying in onnxruntime" in exported.stderr  # the progress display
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
    checked = run_cli("check", str(out / "model.onnx"), "--device", "galaxy-a15", "--device", "iphone-15", "--json", "--iterations", "3")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["bytes"] == (out / "model.onnx").stat().st_size
    assert report["memory"]["peak_rss"] > report["memory"]["baseline_rss"] > 0
    assert [d["id"] for d in report["devices"]] == ["galaxy-a15", "iphone-15"]
    assert all(d["fits"] and d["needed"] == report["memory"]["model_rss"] + d["runtime_footprint"] for d in report["devices"])


def test_check_fails_with_exit_1_when_the_budget_is_too_small(minilm_onnx, tmp_path):
    tiny_phone = tmp_path / "tiny-phone.toml"
    tiny_phone.write_text(device_toml(name="Tiny", ram="1 GiB", app_budget="64 MiB"))
    result = run_cli("check", str(minilm_onnx["int8"].path), "--device", str(tiny_phone), "--iterations", "2")
    assert result.returncode == 1
    assert "DOES NOT FIT" in result.stdout
    assert "does not fit: tiny-phone" in result.stderr


def test_demo_prints_the_table(tmp_path):
    result = run_cli("demo", "-o", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    header, _, fp32, int8 = result.stdout.splitlines()[:4]
    for column in ("format", "quant", "size", "vs fp32", "cosine mean", "peak RSS", "galaxy-a15", "iphone-15", "pixel-7a"):
        assert column in header
    assert fp32.split()[:2] == ["onnx", "none"] and int8.split()[:2] == ["onnx", "int8"]
    assert "fits" in int8


# --- bad input: one line, the right exit code, nothing half written -------------------------

def test_model_path_that_does_not_exist(tmp_path):
    result = run_cli("export", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "not found", "minilm")
    assert not (tmp_path / "out").exists()


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8\xff")
    result = run_cli("export", str(tmp_path / "photos"), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "not a Hugging Face model folder", "config.json")


def test_model_folder_without_tokenizer(tiny_bert_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((tiny_bert_dir / name).read_bytes())
    result = run_cli("export", str(bare), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "no tokenizer")


@pytest.mark.parametrize("option, value", [("--format", "coreml"), ("--quant", "int3"), ("--task", "translation")])
def test_unknown_format_or_quant(option, value, tmp_path):
    result = run_cli("export", "minilm", option, value, "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, option, value)


def test_unknown_device(minilm_onnx):
    result = run_cli("check", str(minilm_onnx["int8"].path), "--device", "nokia-3310")
    assert_one_line_error(result, 2, "unknown device 'nokia-3310'", "pixel-7a")


def test_invalid_device_profile_names_the_field(minilm_onnx, tmp_path):
    profile = tmp_path / "phone.toml"
    profile.write_text(device_toml(ram=None))
    result = run_cli("check", str(minilm_onnx["int8"].path), "--device", str(profile))
    assert_one_line_error(result, 2, "missing field 'ram'")


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_check_refuses_a_broken_onnx(minilm_onnx, tmp_path, damage):
    broken = tmp_path / "model.onnx"
    if damage == "truncated":
        broken.write_bytes(minilm_onnx["int8"].path.read_bytes()[:100_000])
    else:
        broken.write_bytes(os.urandom(100_000))
    result = run_cli("check", str(broken), "--device", "pixel-7a")
    assert_one_line_error(result, 2, str(broken), "not a loadable ONNX model")


def test_check_refuses_a_missing_or_unknown_artifact(tmp_path):
    assert_one_line_error(run_cli("check", str(tmp_path / "gone.onnx"), "--device", "pixel-7a"), 2, "does not exist")
    other = tmp_path / "model.bin"
    other.write_bytes(b"0")
    assert_one_line_error(run_cli("check", str(other), "--device", "pixel-7a"), 2, "unknown artifact type '.bin'")


def test_output_folder_that_cannot_be_written(tiny_bert_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli("export", str(tiny_bert_dir), "-o", str(blocker / "out"))
    assert_one_line_error(result, 2, "cannot create output folder")


def test_weights_that_do_not_match_the_config(tiny_bert_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in tiny_bert_dir.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps(config | {"vocab_size": 100}))
    result = run_cli("export", str(broken), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "could not be loaded by transformers")


def test_tokenizer_that_does_not_match_the_model(tmp_path):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pocketfit.converter.models import minilm_folder

    folder = tmp_path / "mismatched"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_folder()).save_pretrained(folder)
    result = run_cli("export", str(folder), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "tokenizer has 30522 tokens", "only 100")


# --- the converter's options ------------------------------------------------------------------

def test_format_all_writes_one_folder_per_format(tiny_classifier_dir, tmp_path):
    from pocketfit.converter import FORMATS

    out = tmp_path / "all"
    result = run_cli("export", str(tiny_classifier_dir), "--task", "text-classification", "--format", "all", "--quant", "int8", "-o", str(out))
    assert result.returncode == 0, result.stderr
    for name, fmt in FORMATS.items():
        assert (out / name / f"model{fmt.suffix}").is_file()
        assert (out / name / "manifest.json").is_file()
    # Each backend's long stages show as they run, indented under the export, one line each
    # (stderr is not a terminal here: no control characters).
    for stage in ("torch.onnx.export (TorchScript): done in", "quantizing to int8 with onnxruntime: done in",
                  "optimizing and saving as ORT format: done in", "quantizing with torchao: done in",
                  "torch.export: done in", "to_edge and lowering to XNNPACK: done in",
                  "serializing the ExecuTorch program: done in", "converting with litert-torch: done in",
                  "quantizing with ai-edge-quantizer: done in"):
        assert f"\n  … {stage}" in result.stderr, (stage, result.stderr)
    assert "\r" not in result.stderr and "\033" not in result.stderr


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00\x01" * 100, "not UTF-8"),
    (b"one\ntwo\nthree\n", "has 3 non-empty lines"),
    (b"line\x00\n" * 20, "binary data"),
])
def test_corrupt_calibration_file(tiny_classifier_dir, tmp_path, content, message):
    calibration = tmp_path / "calibration.txt"
    calibration.write_bytes(content)
    result = run_cli("export", str(tiny_classifier_dir), "--task", "text-classification", "--quant", "int8-static",
                     "--calibration", str(calibration), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, str(calibration), message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--quant", "int8", "--calibration", "x.txt"], "--calibration applies to --quant int8-static"),
    (["--max-context", "128"], "--max-context applies to --task text-generation"),
])
def test_options_that_do_not_apply(tmp_path, args, message):
    result = run_cli("export", "minilm", *args, "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, message)


def test_max_context_too_small_for_verification(tiny_llama_dir, tmp_path):
    result = run_cli("export", str(tiny_llama_dir), "--task", "text-generation", "--max-context", "8", "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "--max-context 8 is too small")


def test_a_model_that_does_not_fit_the_task(tiny_bert_dir, tmp_path):
    result = run_cli("export", str(tiny_bert_dir), "--task", "text-generation", "-o", str(tmp_path / "out"))
    assert_one_line_error(result, 2, "BertLMHeadModel cannot decode over a static KV cache")
