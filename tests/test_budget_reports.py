"""The budget report formats: golden bytes for JSON, JUnit and Markdown (timing fields
normalised), the JSON against its schema, the JUnit file through a real JUnit parser.

Renderers are pure functions of a Results, so these feed them fixed results; the end-to-end
tests in test_budget.py run the real command. Regenerate the golden files after an intended
change with POCKETFIT_REGEN_GOLDEN=1.
"""

import json
import re
import os
from pathlib import Path

import jsonschema
import pytest

from pocketfit.runtime.budget import Cell, Check, Results, Status, render

GOLDEN = Path(__file__).parent / "golden"
MiB = 2**20


def fixed_results(started: str = "2026-11-29T12:00:00+00:00", seconds: float = 42.0) -> Results:
    """Two models on two phones: passes, a broken memory limit, a size that grew past the
    baseline, and a check that could not run (no cgroups)."""
    def cell(model, tier, device, name, budget, checks, breakdown, curve=()):
        return Cell(model=model, tier=tier, device=device, device_name=name, artifact=f"build/{model}/model.onnx",
                    format="onnx", app_budget=budget, checks=tuple(checks), breakdown=breakdown, curve=tuple(curve))

    size = Check("size", Status.PASS, 23484938, 25 * MiB, "bytes", "22.4 MiB of 25.0 MiB, 90%", "", "manifest")
    grown = Check("size_growth", Status.FAIL, 23484938, 22000000.0, "bytes",
                  "22.4 MiB vs 20.0 MiB in the baseline: +11.9%, at most +5%",
                  "size grew +11.9% over the baseline (20.0 MiB -> 22.4 MiB), more than the allowed +5%", "baseline")
    breakdown = {"weights_resident": 30 * MiB, "weights_paged": 0, "arena": 12 * MiB, "kv_cache": 0, "runtime": 37643878,
                 "source": "measured on this machine"}
    curve = [{"budget": 60 * MiB, "latency_s": 0.031}, {"budget": 80 * MiB, "latency_s": 0.018}, {"budget": 100 * MiB, "latency_s": 0.0152}]
    cells = [
        cell("minilm-onnx-int8", "entry", "galaxy-a04e", "Samsung Galaxy A04e (3 GB)", 590558003, [
            size,
            Check("memory", Status.FAIL, 82 * MiB, 64 * MiB, "bytes", "82.0 MiB of 64.0 MiB, 128%",
                  "memory 82.0 MiB exceeds the limit of 64.0 MiB by 18.0 MiB", "measured"),
            Check("emulated_memory", Status.ERROR, None, 64 * MiB, "bytes", "could not run",
                  "no memory cgroup: run as root on Linux with cgroups", "emulated", 3),
            grown,
        ], breakdown),
        cell("minilm-onnx-int8", "flagship", "pixel-7a", "Google Pixel 7a", 3758096384, [
            size,
            Check("memory", Status.PASS, 82 * MiB, 896 * MiB, "bytes", "82.0 MiB of 896.0 MiB, 9%", "", "measured"),
            Check("latency_p50", Status.PASS, 0.0152, 0.04, "seconds", "15.2 ms of 40.0 ms, 38%", "", "simulated"),
            grown,
        ], breakdown, curve),
        cell("minilm-tflite-int8", "flagship", "pixel-7a", "Google Pixel 7a", 3758096384, [
            Check("parity", Status.PASS, 0.9791, 0.95, "ratio", "cosine_mean 0.9975 >= 0.99, cosine_min 0.9791 >= 0.95", "", "manifest"),
        ], {}),
    ]
    return Results(config="examples/release-gate/pocketfit.toml", cells=tuple(cells), started=started, seconds=seconds,
                   tool="pocketfit 0.1.0", baseline="examples/release-gate/baseline.json",
                   notes=("minilm-onnx-int8: reused build/minilm-onnx-int8/model.onnx (its manifest matches the recipe)",))


def normalised(text: str, results: Results) -> str:
    """The rendered bytes with the timing fields (start time, duration) replaced by fixed marks."""
    parts = re.split(r"(<svg.*?</svg>)", text, flags=re.S)  # a plot's coordinates may read 1.5 too: left alone
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace(results.started, "<STARTED>").replace(f"{results.seconds:.1f}", "<SECONDS>").replace(
            json.dumps(results.seconds), "<SECONDS>")
    return "".join(parts)


@pytest.mark.parametrize("fmt, suffix", [("json", "json"), ("junit", "xml"), ("markdown", "md")])
def test_golden(fmt, suffix):
    results = fixed_results(started="2026-11-29T20:31:07+00:00", seconds=87.3)  # timing differs from run to run
    got = normalised(render(fmt, results), results)
    golden = GOLDEN / f"budget-report.{suffix}"
    if os.environ.get("POCKETFIT_REGEN_GOLDEN") == "1":
        golden.write_text(got, encoding="utf-8")
    assert got == golden.read_text(encoding="utf-8"), f"{fmt} output differs from {golden}; regenerate if intended"


def test_rendering_is_pure_and_timing_is_all_that_varies():
    a, b = fixed_results(), fixed_results(started="2027-01-01T00:00:00+00:00", seconds=1.5)
    for fmt in ("json", "junit", "markdown", "table", "html"):
        assert render(fmt, a) == render(fmt, a)
        assert normalised(render(fmt, a), a) == normalised(render(fmt, b), b), fmt


def test_json_matches_its_schema_and_round_trips():
    from importlib import resources

    schema = json.loads(resources.files("pocketfit").joinpath("schemas/budget-report.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    results = fixed_results()
    document = json.loads(render("json", results))
    jsonschema.validate(document, schema)
    assert document["summary"] == {"pass": 5, "fail": 3, "error": 1, "exit_code": 3}
    assert render("json", Results.from_dict(document)) == render("json", results)


def test_junit_parses_with_a_junit_library(tmp_path):
    from junitparser import Error, Failure, JUnitXml

    path = tmp_path / "report.xml"
    path.write_text(render("junit", fixed_results()), encoding="utf-8")
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert [s.name for s in suites] == ["minilm-onnx-int8 on galaxy-a04e", "minilm-onnx-int8 on pixel-7a", "minilm-tflite-int8 on pixel-7a"]
    cases = [(s.name, c.name, [type(r) for r in c.result]) for s in suites for c in s]
    assert len(cases) == 9  # one testcase per model x device x limit
    assert ("minilm-onnx-int8 on galaxy-a04e", "memory", [Failure]) in cases
    assert ("minilm-onnx-int8 on galaxy-a04e", "emulated_memory", [Error]) in cases
    assert ("minilm-onnx-int8 on pixel-7a", "latency_p50", []) in cases
    failure = next(r for s in suites for c in s for r in c.result if c.name == "memory")
    assert failure.message == "memory 82.0 MiB exceeds the limit of 64.0 MiB by 18.0 MiB"
    assert (suites[0].tests, suites[0].failures, suites[0].errors) == (4, 2, 1)


def test_an_error_outranks_a_failure_and_never_passes():
    results = fixed_results()
    assert results.exit_code == 3
    only_fail = Results(results.config, results.cells[1:], results.started, results.seconds, results.tool)
    assert only_fail.exit_code == 1
    assert results.cells[0].status is Status.ERROR and results.cells[2].status is Status.PASS
