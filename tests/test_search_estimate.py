"""A candidate's estimate before export: parameters by arithmetic match what shrinking leaves
(exactly, or from below where a bias is not cut), and its bytes are a floor under the real
artifact's in every recipe, close enough to rank by."""

import pytest

from pocketfit.converter import (CapSequence, DropLayers, Int4Weight, Int8Dynamic, NoQuant, Onnx, PruneFfn, PruneHeads, Task,
                                 TrimVocab, export, load, shrink, texts)
from pocketfit.runtime import devices
from pocketfit.runtime.search import Knobs
from pocketfit.runtime.search.estimate import phone_latency_ms, shape_of, sizes


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "app.txt"
    path.write_text("\n".join(texts.calibration()) + "\n", encoding="utf-8")
    return path


def test_parameters_by_arithmetic_are_what_shrinking_leaves(models, text):
    bert = models("tiny-bert")  # 1 layer, 2 heads, hidden 64, FFN 128
    s = sizes(bert.module)
    assert s.parameters(Knobs("onnx")) == bert.parameters
    assert s.parameters(Knobs("onnx", seq=128)) == shrink(bert, CapSequence(128)).parameters
    trimmed = shrink(bert, TrimVocab(text))
    assert s.parameters(Knobs("onnx", vocab=trimmed.tokenizer.vocab_size)) == trimmed.parameters
    for step, knobs in ((PruneFfn(keep=0.5), Knobs("onnx", ffn=0.5)), (PruneHeads(keep=1), Knobs("onnx", heads=0.5))):
        real = shrink(bert, step, text=text).parameters
        assert real - 64 <= s.parameters(knobs) <= real  # the output projection's bias stays whole
    llama = models("tiny-llama")  # an untied output head: its rows go with the vocabulary
    s = sizes(llama.module)
    assert s.untied_head and s.parameters(Knobs("onnx")) == llama.parameters
    assert s.parameters(Knobs("onnx", layers=1)) == shrink(llama, DropLayers(keep=1)).parameters


@pytest.mark.parametrize("recipe, name", [(NoQuant(), "none"), (Int8Dynamic(), "int8"), (Int4Weight(), "int4"),
                                          (Int4Weight(group_size=64, embeddings=4), "int4-emb4")])
def test_bytes_are_a_floor_under_the_artifact(models, tmp_path, recipe, name):
    bert = models("tiny-bert")
    artifact = export(bert, tmp_path, Onnx(), recipe)
    floor = sizes(bert.module).bytes(Knobs("onnx", name))
    assert 0.85 * artifact.manifest.bytes <= floor <= artifact.manifest.bytes, (floor, artifact.manifest.bytes)


def test_the_phone_latency_of_a_shape_is_the_latency_model_of_its_artifact(minilm_onnx):
    from pocketfit.runtime.cost import phone_figures

    minilm = load("minilm", Task.FEATURE_EXTRACTION)
    s, knobs, phone = sizes(minilm.module), Knobs("onnx"), devices.load("galaxy-a15")
    by_shape = phone_latency_ms(shape_of(s, minilm.module, knobs), knobs, phone)
    by_artifact = phone_figures(minilm_onnx["none"].path, phone, seq_len=128)["p50_ms"]
    assert 0.75 * by_artifact <= by_shape <= 1.25 * by_artifact
    assert phone_latency_ms(shape_of(s, minilm.module, knobs), knobs, devices.load("iphone-15")) is None  # no [compute]
