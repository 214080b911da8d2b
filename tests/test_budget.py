"""`pocketfit check` with a budget file, through the real command: bad input in one line with
its location (exit 2), a real run on a tiny artifact with every report format, baselines, and
the emulated-memory limit under cgroups."""

import json
import os
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from conftest import device_toml, run_cli
from pocketfit.errors import EnvironmentLimit
from pocketfit.runtime import budget, cgroups

EXAMPLE = Path(__file__).parent.parent / "examples" / "release-gate" / "pocketfit.toml"


@pytest.fixture(scope="module")
def tiny_onnx(tiny_bert_dir, tmp_path_factory) -> Path:
    """The 1-layer random BERT as ONNX fp32 (7.9 MB: MiniLM's vocabulary at width 64)."""
    from pocketfit.converter import NoQuant, Onnx, export, load

    return export(load(tiny_bert_dir), tmp_path_factory.mktemp("budget-tiny"), Onnx(), NoQuant()).path


def write(folder: Path, text: str, name: str = "pocketfit.toml") -> Path:
    (folder / "small-phone.toml").write_text(device_toml(name="small phone", ram="1 GiB", app_budget="64 MiB"))
    path = folder / name
    path.write_text(text)
    return path


def gate(artifact: Path, extra: str = "", limits: str = 'size = "20 MiB"\nparity = true') -> str:
    return f"""# a test gate
[measure]
iterations = 3
warmup = 1
seq_len = 32

[limits]
{limits}

[models.tiny]
artifact = "{artifact}"

[tiers.roomy]
devices = ["pixel-7a"]

[tiers.small]
devices = ["small-phone.toml"]
{extra}"""


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


# --- bad input: one line, its location, exit 2 -------------------------------------------------


@pytest.fixture
def placeholder(tmp_path) -> Path:
    """A file where an artifact should be: a bad budget file is refused before anything reads it."""
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not read")
    return path


def _refused(path: Path) -> str:
    result = run_cli("check", "--config", str(path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def test_a_typo_names_the_key_path_line_and_the_close_key(tmp_path, placeholder):
    path = write(tmp_path, gate(placeholder, extra='[tiers.small.limits]\nmemory = "40 MiB"\nsise = "1 MiB"\n'))
    assert _refused(path) == (f"pocketfit: {path}:{line_of(path, 'sise')}: tiers.small.limits.sise: unknown key 'sise'; did you mean 'size'? "
                              "(known here: context, emulated_memory, latency_growth, latency_p50, latency_p90, max_latency_ms, memory, memory_growth, "
                              "parity, parity_floors, size, size_growth, tokens_per_second)")


def test_an_ambiguous_unit_is_refused_with_the_accepted_forms(tmp_path, placeholder):
    path = write(tmp_path, gate(placeholder, limits='size = "20 MiB"\nmemory = "512 mb"'))
    message = _refused(path)
    assert message.startswith(f"pocketfit: {path}:{line_of(path, '512 mb')}: limits.memory: size '512 mb' is not understood "
                              "('mb' is ambiguous: write '512 MiB' for 1024-based or '512 MB' for 1000-based)")
    assert "KiB, MiB, GiB" in message


def test_a_missing_artifact_names_where_it_was_looked_for(tmp_path):
    path = write(tmp_path, gate(Path("build/missing/model.onnx")))
    assert _refused(path) == (f"pocketfit: {path}:{line_of(path, 'artifact =')}: models.tiny.artifact: build/missing/model.onnx does not exist "
                              f"(looked for {tmp_path}/build/missing/model.onnx); build it first or give an [models.tiny.export] recipe")


def test_an_unknown_device_is_named_with_the_known_ones(tmp_path, placeholder):
    path = write(tmp_path, gate(placeholder).replace('"pixel-7a"', '"pixel-7z"'))
    message = _refused(path)
    assert message.startswith(f"pocketfit: {path}:{line_of(path, 'pixel-7z')}: tiers.roomy.devices[0]: unknown device 'pixel-7z'; known: ")
    assert "pixel-7a" in message


def test_a_pyproject_table_reports_lines_in_the_pyproject(tmp_path, placeholder):
    text = "[project]\nname = 'app'\n\n" + re.sub(r"^\[", "[tool.pocketfit.", gate(placeholder), flags=re.M)
    path = write(tmp_path, text.replace('parity = true', 'parity = "yes"'), name="pyproject.toml")
    assert _refused(path) == f"pocketfit: {path}:{line_of(path, 'parity =')}: limits.parity: must be true or false, not 'yes'"


def test_artifact_mode_and_budget_mode_do_not_mix(tmp_path, placeholder):
    result = run_cli("check", str(placeholder), "--config", "x.toml")
    assert result.returncode == 2 and "drop ARTIFACT" in result.stderr


# --- the budget file itself --------------------------------------------------------------------


def test_the_schema_is_valid_and_the_example_follows_it():
    import tomllib

    schema = budget.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(tomllib.loads(EXAMPLE.read_text()), schema)
    plan = budget.load(EXAMPLE)  # resolves devices and recipes; builds nothing
    assert [m.name for m in plan.models] == ["minilm-onnx-int8", "minilm-tflite-int8"]
    assert [t.name for t in plan.tiers] == ["entry", "mid", "flagship", "ios"]
    assert {d.tier.value for t in plan.tiers for d in t.devices} == {"low-end", "mid-range", "flagship"}


def test_limits_merge_from_general_to_specific(tmp_path, placeholder):
    extra = ('[tiers.small.limits]\nmemory = "50%"\n\n[models.tiny.limits]\nsize = "4 MiB"\n\n'
             '[models.tiny.tiers.small]\nmemory = "10 MiB"\nparity_floors = { cosine_mean = 0.999 }\n')
    plan = budget.load(write(tmp_path, gate(placeholder, extra=extra)))
    roomy, small = plan.limits_for("tiny", "roomy"), plan.limits_for("tiny", "small")
    assert roomy.set() == {"size": 4 * 2**20, "parity": True}
    assert small.set() == {"size": 4 * 2**20, "parity": True, "memory": 10 * 2**20, "parity_floors": {"cosine_mean": 0.999}}


# --- the real command on a tiny artifact -------------------------------------------------------


def test_a_real_run_writes_every_format_and_exits_1_on_a_broken_limit(tmp_path, tiny_onnx):
    extra = ('[tiers.roomy.limits]\nmemory = "25%"\nlatency_p50 = "10 s"\n\n'
             '[tiers.small.limits]\nmemory = "1 MiB"   # broken on purpose\n')
    path = write(tmp_path, gate(tiny_onnx, extra=extra))
    out = {fmt: tmp_path / f"report.{fmt}" for fmt in ("json", "junit", "markdown", "html")}
    args = [a for fmt, file in out.items() for a in ("--format", fmt, "--output", str(file))]
    result = run_cli("check", "--config", str(path), "--jobs", "2", *args)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "pocketfit: 1 of 7 checks did not pass (tiny on small-phone: memory)"
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("tiny ")]
    verdicts = {(r[2], r[3]): r[4] for r in rows}
    assert verdicts == {("pixel-7a", "size"): "pass", ("pixel-7a", "memory"): "pass", ("pixel-7a", "parity"): "pass",
                        ("pixel-7a", "latency_p50"): "pass", ("small-phone", "size"): "pass",
                        ("small-phone", "memory"): "FAIL", ("small-phone", "parity"): "pass"}
    assert re.search(r"small-phone\s+memory\s+FAIL\s+\d+\.\d MiB of 1\.0 MiB, \d+%", result.stdout)

    document = json.loads(out["json"].read_text())
    schema = json.loads(resources.files("pocketfit").joinpath("schemas/budget-report.schema.json").read_text())
    jsonschema.validate(document, schema)
    assert document["summary"] == {"pass": 6, "fail": 1, "error": 0, "exit_code": 1}
    roomy = next(c for c in document["cells"] if c["device"] == "pixel-7a")
    assert roomy["curve"] and roomy["breakdown"]["runtime"] > 0  # the simulator's curve and the measured breakdown
    latency = next(c for c in roomy["checks"] if c["limit"] == "latency_p50")
    assert latency["source"] == "simulated" and 0 < latency["value"] < 10

    from junitparser import Failure, JUnitXml

    cases = [(s.name, c.name, [type(r) for r in c.result]) for s in JUnitXml.fromfile(str(out["junit"])) for c in s]
    assert len(cases) == 7 and ("tiny on small-phone", "memory", [Failure]) in cases
    assert "| tiny | small-phone | memory | ❌ fail |" in out["markdown"].read_text()
    assert '<svg id="memory-breakdown"' in out["html"].read_text()


def test_baseline_growth_fails_naming_both_numbers_and_update_rewrites_it_atomically(tmp_path, tiny_onnx):
    path = write(tmp_path, gate(tiny_onnx, limits='size_growth = "5%"'))
    recorded = tmp_path / "baseline.json"
    result = run_cli("check", "--config", str(path), "--baseline", str(recorded), "--update-baseline")
    assert result.returncode == 0, result.stderr
    size = tiny_onnx.stat().st_size
    assert json.loads(recorded.read_text())["models"]["tiny"]["size"] == size

    smaller = int(size / 1.2)  # the last release was 20% smaller: the artifact grew past 5%
    recorded.write_text(json.dumps({"version": 1, "models": {"tiny": {"size": smaller}}}))
    result = run_cli("check", "--config", str(path), "--baseline", str(recorded), "--format", "json")
    assert result.returncode == 1, result.stderr
    growth = json.loads(result.stdout)["cells"][0]["checks"][0]
    assert growth["limit"] == "size_growth" and growth["status"] == "fail"
    from pocketfit.units import human

    assert growth["message"] == f"size grew +20.0% over the baseline ({human(smaller)} -> {human(size)}), more than the allowed +5%"
    assert growth["value"] == size and growth["limit_value"] == pytest.approx(smaller * 1.05)

    before = recorded.stat().st_ino
    result = run_cli("check", "--config", str(path), "--baseline", str(recorded), "--update-baseline")
    assert result.returncode == 1  # this run still judges against the old baseline...
    assert recorded.stat().st_ino != before  # ...then replaces it by a rename, never in place
    assert json.loads(recorded.read_text())["models"]["tiny"]["size"] == size
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []
    assert run_cli("check", "--config", str(path), "--baseline", str(recorded)).returncode == 0


def test_growth_limits_without_a_baseline_are_bad_input(tmp_path, placeholder):
    path = write(tmp_path, gate(placeholder, limits='size_growth = "5%"'))
    result = run_cli("check", "--config", str(path))
    assert result.returncode == 2
    assert "need a baseline file: pass --baseline FILE" in result.stderr


def _cgroups_usable() -> bool:
    try:
        cgroups.version()
    except (EnvironmentLimit, OSError):
        return False
    return os.geteuid() == 0


def test_emulated_memory_runs_under_the_phones_cgroup_or_is_an_error(tmp_path, tiny_onnx):
    path = write(tmp_path, gate(tiny_onnx, limits='emulated_memory = "90%"').replace('devices = ["small-phone.toml"]', 'devices = ["pixel-7a"]'))
    text = path.read_text().replace("[tiers.small]\ndevices = [\"pixel-7a\"]\n", "")
    path.write_text(text)
    result = run_cli("check", "--config", str(path), "--format", "json")
    document = json.loads(result.stdout)
    check = document["cells"][0]["checks"][0]
    if _cgroups_usable() or os.environ.get("POCKETFIT_REQUIRE_CGROUPS") == "1":
        assert result.returncode == 0, result.stderr
        assert check["status"] == "pass" and check["source"] == "emulated" and 0 < check["value"] < check["limit_value"]
    else:  # no cgroups: an error and exit 3, never a pass
        assert result.returncode == 3 and check["status"] == "error" and check["exit_code"] == 3


def test_a_built_artifact_is_reused_only_while_it_matches_its_recipe(tmp_path, tiny_onnx, tiny_bert_dir):
    import shutil

    from pocketfit.runtime.budget.checks import _matches
    from pocketfit.runtime.budget.config import Export, Model

    folder = tmp_path / "built"
    shutil.copytree(tiny_onnx.parent, folder)
    artifact = folder / tiny_onnx.name

    def model(**recipe):
        spec = {"model": str(tiny_bert_dir), "format": "onnx"} | recipe
        return Model("tiny", artifact, Export(**spec), {}, "test")

    assert _matches(model())
    assert not _matches(model(quant="int8"))
    assert not _matches(model(format="onnx", task="text-classification"))
    with artifact.open("r+b") as f:  # the file changed since its manifest was written
        f.seek(100)
        f.write(b"\0\1\2\3")
    assert not _matches(model())


def test_the_docs_document_every_key_of_the_budget_file():
    page = (Path(__file__).parent.parent / "docs" / "release-gate.md").read_text()
    section = page[page.index("## Every key of the budget file"):page.index("## The gate in GitHub Actions")]
    schema = budget.schema()
    keys = set(schema["properties"]) - {"models", "tiers", "measure", "limits"}
    for part in ("measure", "export", "model", "tier", "limits"):
        keys |= set(schema["$defs"][part]["properties"]) - {"limits", "tiers", "export"}
    missing = sorted(k for k in keys if f"`{k}`" not in section)
    assert missing == [], f"docs/release-gate.md's budget-file section does not document {missing}"
