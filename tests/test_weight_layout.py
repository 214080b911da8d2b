"""inspect --layout: where each weight lies in an artifact's file(s), whether its runtime keeps it
mapped or copies it, and the order one inference reads it — checked against the bytes in the
files and against the pages a real inference faults in (tests/layout_probe.py)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from pocketfit.converter import FORMATS, weight_layout
from pocketfit.converter.layout import COPIED, MAPPED
from pocketfit.errors import InvalidArtifact

PAGE = 4096
IDS = [5, 9]  # token ids the probe feeds: the tables' rows one inference reads
TABLE = "bert.embeddings.word_embeddings.weight"


def _group(fmt: str):
    return pytest.param(fmt, marks=pytest.mark.xdist_group(f"tiny-classifier-{fmt}"))  # shares test_inspect's exports


def _stored(path: Path) -> dict[str, bytes]:
    """Each constant's bytes as the format's own reader gives them, by the layout's names."""
    data = path.read_bytes()
    if path.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        return {t.name: numpy_helper.to_array(t).tobytes() for t in model.graph.initializer}
    if path.suffix == ".ort":
        from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs import InferenceSession

        graph = InferenceSession.InferenceSession.GetRootAs(data, 0).Model().Graph()
        return {graph.Initializers(i).Name().decode(): graph.Initializers(i).RawDataAsNumpy().tobytes()
                for i in range(graph.InitializersLength()) if graph.Initializers(i).RawDataLength()}
    if path.suffix == ".tflite":
        from ai_edge_litert.tools import flatbuffer_utils

        model = flatbuffer_utils.read_model(str(path))
        graph = model.subgraphs[0]
        return {t.name.decode(): bytes(model.buffers[t.buffer].data) for t in reversed(graph.tensors)
                if t.buffer and model.buffers[t.buffer].data is not None}
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte = deserialize_pte_binary(data)
    stored = {f"constant{i}": bytes(b.storage) for i, b in enumerate(pte.program.constant_buffer)}
    if pte.named_data is not None:
        stored |= {k: bytes(pte.named_data.buffers[e.buffer_index]) for k, e in pte.named_data.pte_data.items()}
    return stored


def _pages(weight, ids=None) -> set[int]:
    if weight.rows and ids is not None:
        row = weight.length // weight.rows
        return {p for i in ids for p in range((weight.offset + i * row) // PAGE, (weight.offset + (i + 1) * row - 1) // PAGE + 1)}
    return set(range(weight.offset // PAGE, (weight.offset + weight.length - 1) // PAGE + 1)) if weight.length else set()


def _probe(path: Path, options: dict | None = None) -> dict:
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("layout_probe.py")), str(path),
                             json.dumps({"options": options or {}, "ids": IDS})], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_held_as_measured(layout, probe: dict) -> None:
    """The pages one inference faults in are exactly within the mapped weights (only the fed
    ids' rows of a table), and every mapped weight it reads is among them."""
    for file, touched in probe["touched"].items():
        mapped = [w for w in layout.weights if w.file == file and w.held == MAPPED]
        predicted = set().union(*(_pages(w, IDS) for w in mapped))
        assert set(touched) <= predicted, f"{file}: read pages no mapped weight covers: {sorted(set(touched) - predicted)[:10]}"
        read = {layout.weights[i].name for i in layout.order}
        # mlock()ed pages cannot be dropped, so the probe does not see them read again.
        untouched = [w.name for w in mapped if w.name in read and not w.locked and not _pages(w, IDS) & set(touched)]
        assert not untouched, f"{file}: mapped weights one inference never read: {untouched[:5]}"


@pytest.mark.parametrize("fmt", [_group(f) for f in sorted(FORMATS)])
def test_offsets_point_at_each_weights_bytes(exported, tiny_classifier_dir, fmt):
    from safetensors.numpy import load_file

    path = exported("tiny-classifier", fmt, "none").path
    layout = weight_layout(path)
    data = {name: (path.parent / name).read_bytes() for name in layout.files}
    assert layout.files == {name: len(b) for name, b in data.items()}
    stored = _stored(path)
    assert {w.name for w in layout.weights} <= set(stored)
    for w in layout.weights:
        assert data[w.file][w.offset:w.offset + w.length] == stored[w.name][:w.length], w.name
        assert len(stored[w.name]) - w.length < 64, f"{w.name}: {w.length} of {len(stored[w.name])} bytes"  # padding only
    # The word-embedding table is the torch model's own, byte for byte, and a token table.
    table = load_file(str(tiny_classifier_dir / "model.safetensors"))[TABLE]
    (word,) = [w for w in layout.weights if w.length == table.nbytes and w.rows]
    assert word.rows == table.shape[0]
    assert np.array_equal(np.frombuffer(data[word.file], np.float32, table.size, word.offset).reshape(table.shape), table)
    for a, b in zip(layout.weights, layout.weights[1:]):
        assert a.file != b.file or a.offset + a.length <= b.offset, f"{a.name} overlaps {b.name}"
    assert layout.order and all(0 <= i < len(layout.weights) for i in layout.order)
    assert {i for i, w in enumerate(layout.weights) if w.held == MAPPED} <= set(layout.order)
    assert layout.notes and layout.held_bytes(MAPPED) + layout.held_bytes(COPIED) == sum(w.length for w in layout.weights)
    if fmt == "pte":
        assert layout.arena > 0


@pytest.mark.xdist_group("tiny-classifier-tflite")
@pytest.mark.parametrize("recipe", ["none", "int8"])
def test_tflite_held_follows_xnnpack_as_measured(exported, recipe):
    path = exported("tiny-classifier", "tflite", recipe).path
    on, off = weight_layout(path), weight_layout(path, {"xnnpack": "off"})
    # Off, only shapes and axes (read when the kernels prepare) are not read from the mapping.
    assert off.held_bytes(COPIED) < 0.01 * off.held_bytes(MAPPED) < on.held_bytes(COPIED)
    # XNNPACK repacks the linear layers; the token table stays in the file either way.
    assert [w.held for w in on.weights if w.rows] == [MAPPED]
    for layout in (on, off):
        _assert_held_as_measured(layout, _probe(path, layout.options))


@pytest.mark.xdist_group("tiny-classifier-onnx")
def test_onnx_inline_is_copied_and_external_data_is_mapped(exported, tmp_path):
    import onnx

    path = exported("tiny-classifier", "onnx", "none").path
    inline = weight_layout(path)
    assert inline.held_bytes(MAPPED) == 0
    probe = _probe(path)
    assert not probe["touched"] and probe["anon"] > 0.9 * inline.held_bytes(COPIED)

    external = tmp_path / "model.onnx"
    onnx.save(onnx.load(str(path)), str(external), save_as_external_data=True, location="model.onnx.data", size_threshold=1024)
    layout = weight_layout(external)
    assert set(layout.files) == {"model.onnx", "model.onnx.data"}
    arrays = {t.name: onnx.numpy_helper.to_array(t).tobytes() for t in onnx.load(str(external)).graph.initializer}
    blobs = {name: (tmp_path / name).read_bytes() for name in layout.files}
    for w in layout.weights:
        assert blobs[w.file][w.offset:w.offset + w.length] == arrays[w.name], w.name
    (word,) = [w for w in layout.weights if w.rows]
    assert word.file == "model.onnx.data" and word.held == MAPPED
    assert all(w.held == COPIED for w in layout.weights if w.file == "model.onnx")
    _assert_held_as_measured(layout, _probe(external))


@pytest.mark.xdist_group("tiny-classifier-ort")
def test_ort_weights_are_copied_as_measured(exported):
    path = exported("tiny-classifier", "ort", "none").path
    layout = weight_layout(path)
    probe = _probe(path)
    assert layout.held_bytes(MAPPED) == 0 and not probe["mappings"] and probe["anon"] > 0.9 * layout.held_bytes(COPIED)


@pytest.mark.xdist_group("tiny-classifier-pte")
def test_pte_delegate_weights_are_copied_and_the_constant_segment_locked(exported):
    path = exported("tiny-classifier", "pte", "none").path
    layout = weight_layout(path)
    probe = _probe(path)
    locked = set().union(*(_pages(w) for w in layout.weights if w.locked))
    assert locked and locked <= set(probe["locked"]["model.pte"])
    assert all(w.held == COPIED for w in layout.weights if not w.locked)
    _assert_held_as_measured(layout, probe)


@pytest.mark.parametrize("fmt", [_group(f) for f in sorted(FORMATS)])
def test_a_damaged_file_is_refused(exported, tmp_path, fmt):
    path = exported("tiny-classifier", fmt, "none").path
    data = path.read_bytes()
    for damaged in (data[:len(data) // 2], b"\x00garbage" * 1000):
        broken = tmp_path / path.name
        broken.write_bytes(damaged)
        with pytest.raises(InvalidArtifact, match=fmt if fmt != "tflite" else "LiteRT"):
            weight_layout(broken)


@pytest.mark.xdist_group("tiny-classifier-tflite")
def test_inspect_layout_through_the_cli(exported, tmp_path):
    path = exported("tiny-classifier", "tflite", "none").path
    result = run_cli("inspect", str(path), "--layout", "--option", "xnnpack=off")
    assert result.returncode == 0, result.stderr
    assert "held" in result.stdout and "mapped: " in result.stdout and "xnnpack=off" in result.stdout
    broken = tmp_path / "model.tflite"
    broken.write_bytes(path.read_bytes()[:50_000])
    result = run_cli("inspect", str(broken), "--layout")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("pocketfit: ") and len(result.stderr.strip().splitlines()) == 1
