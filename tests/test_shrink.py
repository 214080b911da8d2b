"""Shrinking: every step removes exactly what it is configured to remove, a step that removes
nothing changes no output, a trimmed vocabulary reads its corpus as before with new ids, healing
is deterministic and resumable, and bad input is refused in one line."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from pocketfit.converter import (CapSequence, DropLayers, FreshShape, Heal, NoQuant, Onnx, PruneFfn, PruneHeads, TrimVocab, export, load, shrink,
                                 texts)
from pocketfit.converter.shrinking import families, fresh, heal, parse, vocab
from pocketfit.errors import BadInput

LAYERS, HIDDEN, HEADS, FFN = 4, 64, 4, 128


@pytest.fixture(scope="module")
def bert4_dir(tmp_path_factory) -> Path:
    """A 4-layer, 4-head BERT with random weights and MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pocketfit.converter.models import minilm_folder

    folder = tmp_path_factory.mktemp("bert4")
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                         intermediate_size=FFN)).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_folder()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert4(bert4_dir):
    return load(bert4_dir)


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "app.txt"
    path.write_text("\n".join(texts.calibration()) + "\n", encoding="utf-8")
    return path


def _embed(model, sentences):
    with torch.no_grad():
        batch = model.tokenizer(sentences, padding=True, return_tensors="pt")
        return heal.pooled(model.module, batch).numpy()


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_dropping_layers_removes_exactly_those_layers(bert4):
    small = shrink(bert4, DropLayers(keep=2))
    per_layer = _params(bert4.module.encoder.layer[0])
    assert _params(bert4.module) - _params(small.module) == 2 * per_layer
    assert small.module.config.num_hidden_layers == 2 and small.shrunk[0]["kept_layers"] == [1, 3]
    assert shrink(bert4, DropLayers(layers=(0, 2))).shrunk[0]["kept_layers"] == [0, 2]
    assert bert4.module.config.num_hidden_layers == LAYERS  # the teacher is untouched


def test_ffn_and_head_pruning_remove_exactly_the_configured_weights(bert4, text):
    ffn = shrink(bert4, PruneFfn(keep=0.25), text=text)
    kept = FFN // 4
    # per layer: the input Linear's rows and biases, the output Linear's columns
    assert _params(bert4.module) - _params(ffn.module) == LAYERS * ((FFN - kept) * HIDDEN * 2 + (FFN - kept))
    assert ffn.module.config.intermediate_size == kept
    heads = shrink(bert4, PruneHeads(keep=1), text=text)
    size = HIDDEN // HEADS
    removed = (HEADS - 1) * size
    assert _params(bert4.module) - _params(heads.module) == LAYERS * (3 * (removed * HIDDEN + removed) + HIDDEN * removed)
    assert heads.module.config.pocketfit_attention_heads == 1
    assert all(len(k) == 1 for k in heads.shrunk[0]["kept_heads"])


def test_a_step_that_keeps_everything_changes_no_output(bert4, text):
    sentences = texts.sentences()[:6]
    same = shrink(bert4, PruneFfn(keep=FFN), PruneHeads(keep=HEADS), CapSequence(512), text=text)
    np.testing.assert_array_equal(_embed(same, sentences), _embed(bert4, sentences))


def test_pruned_model_runs_and_differs(bert4, text):
    sentences = texts.sentences()[:6]
    small = shrink(bert4, PruneFfn(keep=0.5), PruneHeads(keep=0.5), CapSequence(32), text=text)
    got, want = _embed(small, sentences), _embed(bert4, sentences)
    assert got.shape == want.shape and not np.allclose(got, want)
    assert small.module.embeddings.position_embeddings.num_embeddings == 32 and small.tokenizer.model_max_length == 32


def test_trimmed_vocabulary_reads_its_corpus_as_before_with_new_ids(bert4, text):
    corpus = texts.calibration()
    small = shrink(bert4, TrimVocab(text, characters=False))
    record = small.shrunk[0]
    assert small.module.embeddings.word_embeddings.num_embeddings == record["tokens"]["after"] < 1000
    assert record["tokens"]["after"] == record["used_by_corpus"] + len(set(bert4.tokenizer.all_special_ids))
    for sentence in corpus:
        old, new = bert4.tokenizer(sentence)["input_ids"], small.tokenizer(sentence)["input_ids"]
        assert bert4.tokenizer.convert_ids_to_tokens(old) == small.tokenizer.convert_ids_to_tokens(new)
        assert max(new) < record["tokens"]["after"]
        assert small.tokenizer.decode(new) == bert4.tokenizer.decode(old)
    # The same embeddings: each kept row moved to its new id.
    np.testing.assert_allclose(_embed(small, corpus[:5]), _embed(bert4, corpus[:5]), rtol=0, atol=1e-6)
    held = ["Zebras quarrel about quantum xylophones."]
    c = vocab.coverage(bert4.tokenizer, small.tokenizer, held)
    assert c["words"] == 6 and 0 < c["words_split_differently"] <= 1 and c["unk_rate"] > 0
    spelled = shrink(bert4, TrimVocab(text))  # with single characters, nothing becomes [UNK]
    assert vocab.coverage(bert4.tokenizer, spelled.tokenizer, held)["unk_rate"] == 0
    top = shrink(bert4, TrimVocab(text, characters=False, max_tokens=50)).shrunk[0]
    assert top["kept_from_corpus"] == 50 and top["tokens"]["after"] == 50 + len(set(bert4.tokenizer.all_special_ids))


def test_roberta_shrinks_with_its_position_offset_and_byte_level_vocabulary(text, tmp_path):
    from tokenizers import processors
    from transformers import RobertaConfig, RobertaModel

    from conftest import byte_level_bpe

    lines = texts.lines(text, "text")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = byte_level_bpe(lines, specials, lambda bpe: processors.RobertaProcessing(("</s>", 2), ("<s>", 0)),
                               bos_token="<s>", pad_token="<pad>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                               unk_token="<unk>", mask_token="<mask>")
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=130, pad_token_id=1)).eval().save_pretrained(tmp_path / "r")
    tokenizer.save_pretrained(tmp_path / "r")
    roberta = load(tmp_path / "r")
    capped = shrink(roberta, CapSequence(64))  # 64 positions after padding_idx + 1
    assert capped.module.embeddings.position_embeddings.num_embeddings == 66
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines[:10]) + "\n")
    small = shrink(roberta, TrimVocab(corpus), DropLayers(keep=1), PruneFfn(keep=0.5), PruneHeads(keep=1), CapSequence(64),
                   text=text)
    assert small.module.config.vocab_size < len(tokenizer) and small.module.embeddings.word_embeddings.padding_idx == 1
    mapping = vocab.teacher_ids(small.tokenizer, roberta.tokenizer)
    for line in lines[1:10]:  # <s> ... </s> around the same pieces, under new ids (line 0 is kept back from text=)
        assert mapping[small.tokenizer(line)["input_ids"]].tolist() == roberta.tokenizer(line)["input_ids"]
    full = shrink(roberta, TrimVocab(corpus))
    assert np.allclose(_embed(full, lines[:4]), _embed(roberta, lines[:4]), atol=1e-5)
    artifact = export(small, tmp_path / "out", Onnx(), NoQuant())
    assert artifact.manifest.parity.passed


def test_heal_is_deterministic_lowers_its_loss_and_resumes(bert4, text, tmp_path):
    prune = DropLayers(keep=1)
    step = Heal(steps=20, batch=8, learning_rate=3e-4, seed=3)
    straight = shrink(bert4, prune, step, text=text)  # the teacher is bert4, unpruned
    again = shrink(bert4, prune, step, text=text)
    for a, b in zip(straight.module.parameters(), again.module.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert straight.shrunk[-1]["steps"] == 20

    def distance(model):  # the heal's own loss, over the whole text
        lines = texts.calibration()
        got, want = torch.from_numpy(_embed(model, lines)), torch.from_numpy(_embed(bert4, lines))
        return float((1 - torch.nn.functional.cosine_similarity(got, want)).mean() + torch.nn.functional.mse_loss(got, want))

    assert distance(straight) < 0.5 * distance(shrink(bert4, prune))
    checkpoint = tmp_path / "heal.pt"
    shrink(bert4, prune, dataclasses.replace(step, steps=7, checkpoint=checkpoint), text=text)
    resumed = shrink(bert4, prune, dataclasses.replace(step, checkpoint=checkpoint), text=text)
    assert resumed.shrunk[-1]["resumed_at"] == 7 and resumed.shrunk[-1]["steps"] == 20
    for a, b in zip(straight.module.parameters(), resumed.module.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    other = tmp_path / "other.pt"  # a checkpoint of another shape is refused, not loaded
    shrink(bert4, DropLayers(keep=2), dataclasses.replace(step, steps=1, checkpoint=other), text=text)
    with pytest.raises(BadInput, match="does not belong to this shrunk model"):
        shrink(bert4, prune, dataclasses.replace(step, checkpoint=other), text=text)


@pytest.mark.parametrize("fmt", ["onnx", "ort", "pte", "tflite"])
def test_a_shrunk_model_exports_to_every_format_with_parity(bert4, text, tmp_path, fmt):
    from pocketfit.converter import FORMATS, NoQuant

    small = shrink(bert4, TrimVocab(text), DropLayers(keep=2), PruneFfn(keep=0.5), PruneHeads(keep=2), CapSequence(128), text=text)
    artifact = export(small, tmp_path, FORMATS[fmt](), NoQuant())
    assert artifact.manifest.parity.passed, artifact.manifest.parity.metrics
    assert [r["step"] for r in artifact.manifest.shrink] == ["vocab", "layers", "ffn", "heads", "seq"]
    assert artifact.manifest.parameters == small.parameters < bert4.parameters
    tokenizer = tmp_path / "tokenizer"
    assert (tokenizer / "tokenizer.json").exists()
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tokenizer).get_vocab() == small.tokenizer.get_vocab()


def test_a_model_already_exported_still_shrinks_with_gradients(bert4_dir, text, tmp_path):
    from pocketfit.converter import Onnx

    model = load(bert4_dir)
    export(model, tmp_path, Onnx())  # the export turns the module's gradients off
    healed = shrink(model, PruneHeads(keep=2), Heal(steps=2, batch=8), text=text)
    assert healed.shrunk[-1]["steps"] == 2 and not any(p.requires_grad for p in healed.module.parameters())


def test_arm64_verification_refuses_a_shrunk_artifact(bert4, text, tmp_path):
    from pocketfit.converter import Onnx
    from pocketfit.errors import UnsupportedCombination
    from pocketfit.runtime import arm64

    artifact = export(shrink(bert4, DropLayers(keep=1)), tmp_path, Onnx())
    with pytest.raises(UnsupportedCombination, match="was shrunk \\(layers\\)"):
        arm64.verify(artifact.path)


def test_refusals_name_the_problem(bert4, text, tmp_path, tiny_classifier_dir):
    with pytest.raises(BadInput, match="cannot keep 5 attention heads: each layer has 4"):
        shrink(bert4, PruneHeads(keep=5), text=text)
    with pytest.raises(BadInput, match="cannot keep 9 layers: the model has 4"):
        shrink(bert4, DropLayers(keep=9))
    with pytest.raises(BadInput, match="a fraction must be between 0 and 1"):
        PruneFfn(keep=1.5)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(BadInput, match="has 0 non-empty lines"):
        shrink(bert4, TrimVocab(empty))
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\xffabc")
    with pytest.raises(BadInput, match="not UTF-8 text|binary"):
        shrink(bert4, PruneFfn(), text=binary)
    with pytest.raises(BadInput, match="give it with text="):
        shrink(bert4, PruneFfn())
    with pytest.raises(BadInput, match="Heal must be the last step"):
        shrink(bert4, Heal(steps=1), PruneFfn(), text=text)
    from transformers import DistilBertConfig, DistilBertModel

    from pocketfit.converter import Task
    from pocketfit.converter.models import minilm_folder
    from transformers import AutoTokenizer

    distil = tmp_path / "distilbert"
    DistilBertModel(DistilBertConfig(dim=32, hidden_dim=64, n_layers=2, n_heads=2)).save_pretrained(distil)
    AutoTokenizer.from_pretrained(minilm_folder()).save_pretrained(distil)
    with pytest.raises(BadInput, match="does not know how to shrink a distilbert model: it shrinks bert, gpt2, llama"):
        shrink(load(distil), DropLayers(keep=1))
    with pytest.raises(BadInput, match="not text-classification"):
        shrink(load(tiny_classifier_dir, Task.TEXT_CLASSIFICATION), DropLayers(keep=1))


def test_command_line_steps_parse_and_refuse():
    assert parse("layers=3") == DropLayers(keep=3) and parse("layers=0,2") == DropLayers(layers=(0, 2))
    assert parse("ffn=0.5") == PruneFfn(keep=0.5) and parse("heads=2") == PruneHeads(keep=2)
    assert parse("seq=128") == CapSequence(128) and parse("heal=50") == Heal(steps=50)
    assert parse("vocab=app.txt:12000") == TrimVocab(Path("app.txt"), max_tokens=12000)
    assert parse("vocab=C:/a.txt") == TrimVocab(Path("C:/a.txt"))
    timed = parse("heal=90s")
    assert timed.seconds == 90.0 and timed.steps > 10**9
    with pytest.raises(BadInput, match="heal seconds must be positive"):
        parse("heal=0s")
    for bad in ("depth=3", "layers", "ffn=half", "heal=fast"):
        with pytest.raises(BadInput, match="--shrink"):
            parse(bad)


def test_export_with_shrink_on_the_command_line(bert4_dir, text, tmp_path):
    out = tmp_path / "out"
    r = run_cli("export", str(bert4_dir), "--shrink", "layers=2", "--shrink", f"vocab={text}", "--shrink", "ffn=0.5",
                "--shrink", "heal=4", "--text", str(text), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "parameters to" in r.stdout and (out / "tokenizer" / "tokenizer.json").exists()
    assert "held-out lines" in r.stdout and "of words split differently" in r.stdout
    assert not (out / ".heal-checkpoint.pt").exists()
    import json

    steps = [s["step"] for s in json.loads((out / "manifest.json").read_text())["shrink"]]
    assert steps == ["layers", "vocab", "ffn", "heal"]
    # A heal before an int4 export trains under that export's rounding, and says so.
    r = run_cli("export", str(bert4_dir), "--shrink", "layers=2", "--shrink", "heal=3", "--text", str(text), "--quant", "int4",
                "--quant-option", "group_size=64", "--quant-option", "embeddings=4", "-o", str(tmp_path / "int4"))
    assert r.returncode == 0, r.stderr
    assert "healed under the export's rounding (onnx: int4, groups of 64)" in r.stdout
    manifest = json.loads((tmp_path / "int4" / "manifest.json").read_text())
    assert manifest["quantization"]["embeddings"] == "int4, groups of 64 along each row"


@pytest.mark.parametrize("args, message", [
    (["--shrink", "heads=9", "--text", "TEXT"], "cannot keep 9 attention heads"),
    (["--shrink", "vocab=EMPTY"], "has 0 non-empty lines"),
    (["--shrink", "ffn=0.5", "--text", "EMPTY"], "has 0 non-empty lines"),
    (["--shrink", "ffn=0.5"], "give it with --text FILE"),
    (["--shrink", "wings=2"], "--shrink 'wings=2'"),
    (["--shrink", "shape=layers:1"], "end the steps with a Heal"),
    (["--shrink", "shape=heads:3", "--shrink", "heal=1", "--text", "TEXT"], "3 attention heads do not divide the hidden size 64"),
    (["--text", "TEXT"], "--text applies with --shrink only"),
    (["--quant", "int4", "--quant-option", "groups=64"], "--quant int4 takes group_size=, embeddings="),
    (["--quant", "int4", "--quant-option", "group_size=big"], "group_size is a whole number"),
    (["--quant", "int4", "--quant-option", "embeddings=2"], "int4 embeddings: 8 (int8 per row) or 4"),
    (["--quant", "int8", "--quant-option", "per_channel=maybe"], "per_channel is true or false"),
    (["--quant", "int4", "--quant-option", "embeddings=4", "--format", "pte"], "ONNX and ORT only"),
])
def test_bad_shrink_input_is_one_line_and_exit_2(bert4_dir, text, tmp_path, args, message):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    args = [a.replace("TEXT", str(text)).replace("EMPTY", str(empty)) for a in args]
    r = run_cli("export", str(bert4_dir), *args, "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    # One line of error, the last; progress lines of the steps that ran may come before it.
    errors = [line for line in r.stderr.splitlines() if "pocketfit:" in line or "Error" in line]
    assert len(errors) == 1 and message in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_heal_matches_each_layer_with_the_teacher_layer_it_came_from(bert4, text):
    from pocketfit.converter.shrinking import _layer_map

    records = list(shrink(bert4, DropLayers(layers=(0, 1, 3)), DropLayers(layers=(0, 2))).shrunk)
    assert _layer_map(records) == [0, 3] and _layer_map([]) is None
    healed = shrink(bert4, DropLayers(layers=(0, 1, 3)), DropLayers(layers=(0, 2)), Heal(steps=2, batch=8), text=text)
    assert healed.module.config.num_hidden_layers == 2 and healed.shrunk[-1]["steps"] == 2


def test_each_step_records_what_it_cost_on_lines_kept_back(bert4, text):
    lines = texts.lines(text, "text")
    small = shrink(bert4, PruneFfn(keep=FFN), DropLayers(keep=2), Heal(steps=5, batch=8, learning_rate=3e-4), text=text)
    ffn, layers, healed = small.shrunk
    assert ffn["cosine_before"] == 1.0 and ffn["cosine_after"] == pytest.approx(1.0, abs=1e-5)  # kept every neuron
    assert layers["cosine_before"] == ffn["cosine_after"] and layers["cosine_after"] < 0.999
    assert healed["cosine_before"] == layers["cosine_after"] and healed["cosine_after"] > layers["cosine_after"]
    assert ffn["checked_on_lines"] == min(200, len(range(0, len(lines), 10)))
    # Kept back means kept back: the heal trained on the other lines only.
    assert healed["texts"] == len(lines) - ffn["checked_on_lines"]
    assert "cosine_after" not in shrink(bert4, DropLayers(keep=2)).shrunk[0]  # no text, nothing to judge on


def test_heal_trains_under_the_rounding_of_the_export_to_come(bert4, text, tmp_path):
    from pocketfit.converter import Int4Weight, Onnx, Tflite

    step = Heal(steps=4, batch=8, learning_rate=3e-4)
    rounded = shrink(bert4, DropLayers(keep=2), step, text=text, export_as=(Onnx(), Int4Weight()))
    assert rounded.shrunk[-1]["rounding"] == "onnx: int4, groups of 32"
    assert all(type(m) is not torch.nn.Linear or not hasattr(m, "parametrizations") for m in rounded.module.modules())
    plain = shrink(bert4, DropLayers(keep=2), step, text=text)
    assert plain.shrunk[-1]["rounding"] is None
    assert any(not torch.equal(a, b) for a, b in zip(rounded.module.parameters(), plain.module.parameters()))
    assert shrink(bert4, DropLayers(keep=2), step, text=text, export_as=(Tflite(), Int4Weight())).shrunk[-1]["rounding"] is None
    off = dataclasses.replace(step, rounded=False)
    assert shrink(bert4, DropLayers(keep=2), off, text=text, export_as=(Onnx(), Int4Weight())).shrunk[-1]["rounding"] is None
    artifact = export(rounded, tmp_path, Onnx(), Int4Weight())
    assert artifact.manifest.parity.passed and artifact.manifest.shrink[-1]["rounding"] == "onnx: int4, groups of 32"


def test_a_fresh_smaller_shape_has_exactly_its_sizes_and_the_teachers_embeddings(bert4, text, tmp_path):
    """FreshShape: the configured sizes, parameters counted by hand, layers random (seeded),
    everything outside the layers the teacher's; healed, it exports with parity."""
    steps = (FreshShape(layers=2, ffn=32, heads=2), Heal(steps=3, batch=8))
    small = shrink(bert4, *steps, text=text)
    config = small.module.config
    assert (config.num_hidden_layers, config.intermediate_size, config.num_attention_heads) == (2, 32, 2)
    layer = 4 * (HIDDEN * HIDDEN + HIDDEN) + (HIDDEN * 32 + 32) + (32 * HIDDEN + HIDDEN) + 2 * 2 * HIDDEN
    outside = bert4.parameters - LAYERS * _params(bert4.module.encoder.layer[0])
    assert small.parameters == outside + 2 * layer
    record = small.shrunk[0]
    assert record["step"] == "shape" and record["teacher_layers"] == [1, 3]
    assert record["before"] == {"layers": LAYERS, "ffn": FFN, "heads": HEADS} and record["after"] == {"layers": 2, "ffn": 32, "heads": 2}
    built = lambda seed=0: fresh.build(bert4.module, families.of(bert4.module), FreshShape(layers=2, ffn=32, heads=2, seed=seed))[0]  # noqa: E731
    teacher, unhealed = bert4.module.state_dict(), built().state_dict()
    for name in ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight", "embeddings.LayerNorm.weight"):
        assert torch.equal(teacher[name], unhealed[name]), name
    query = "encoder.layer.0.attention.self.query.weight"
    assert unhealed[query].shape == teacher[query].shape and not torch.allclose(unhealed[query], teacher[query])
    assert torch.equal(built().state_dict()[query], unhealed[query])  # seeded
    assert not torch.equal(built(seed=1).state_dict()[query], unhealed[query])
    artifact = export(small, tmp_path, Onnx(), NoQuant())
    assert artifact.manifest.parity.passed and artifact.manifest.parameters == small.parameters
    assert [r["step"] for r in artifact.manifest.shrink] == ["shape", "heal"]


def test_a_fresh_decoder_keeps_whole_key_value_groups(tiny_llama_dir, text, tmp_path):
    from pocketfit.converter import Task

    teacher = load(tiny_llama_dir, Task.TEXT_GENERATION)  # 4 query heads sharing 2 key/value heads
    small = shrink(teacher, FreshShape(layers=1, heads=2), Heal(steps=2, batch=4), text=text)
    config = small.module.config
    assert (config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (1, 2, 2, 16)
    assert small.module.model.layers[0].self_attn.q_proj.out_features == 2 * 16
    artifact = export(small, tmp_path, Onnx(), NoQuant(), max_context=64)
    assert artifact.manifest.parity.passed, artifact.manifest.parity.metrics
    with pytest.raises(BadInput, match="3 attention heads cannot share the model's 2 key/value heads"):
        shrink(teacher, FreshShape(heads=3), Heal(steps=1), text=text)


def test_fresh_shape_refusals(bert4, text):
    with pytest.raises(BadInput, match="FreshShape must be the first step"):
        shrink(bert4, DropLayers(keep=2), FreshShape(layers=1), Heal(steps=1), text=text)
    with pytest.raises(BadInput, match="end the steps with a Heal"):
        shrink(bert4, FreshShape(layers=1))
    with pytest.raises(BadInput, match="3 attention heads do not divide the hidden size 64"):
        shrink(bert4, FreshShape(heads=3), Heal(steps=1), text=text)
    with pytest.raises(BadInput, match="needs at least one of"):
        FreshShape()
    with pytest.raises(BadInput, match="layers must be a whole number"):
        FreshShape(layers=0)
    assert parse("shape=layers:3,ffn:768") == FreshShape(layers=3, ffn=768)
    for bad in ("shape=depth:3", "shape=layers", "shape=layers:x"):
        with pytest.raises(BadInput, match="--shrink"):
            parse(bad)


def test_trimming_reports_the_out_of_vocabulary_rate_on_lines_it_never_saw(bert4, tmp_path):
    """With the app's text, every tenth line is kept back: left out of the trim (the corpus is
    the same file here) and read by the trimmed tokenizer to say what the trim costs."""
    lines = [f"sentence {i} about {word}" for i, word in enumerate(
        ("ships", "harbours", "lighthouses", "captains", "anchors", "sails", "voyages", "islands", "tides", "compasses") * 4)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    small = shrink(bert4, TrimVocab(corpus, characters=False), PruneFfn(keep=0.5), text=corpus)
    record = small.shrunk[0]
    held = lines[::10]
    assert record["held_out"]["lines"] == len(held) == 4 and record["corpus_lines"] == len(lines) - 4
    assert record["held_out"] == {"lines": 4, **{k: round(v, 5) if isinstance(v, float) else v
                                                  for k, v in vocab.coverage(bert4.tokenizer, small.tokenizer, held).items()}}
    assert record["held_out"]["unk_rate"] > 0  # the held-out numbers 0, 10, 20, 30 were never in the trim
    assert "held_out" not in shrink(bert4, TrimVocab(corpus)).shrunk[0]  # no text: nothing kept back


def test_int8_onnx_fuses_a_head_pruned_encoders_attention_with_the_heads_left(bert4, text, tmp_path):
    """The fused attention must split 2 heads of 16, not the config's 4 of 8. Random weights
    attend almost uniformly, so parity alone cannot tell the two apart: the graph must say it."""
    import onnx

    from pocketfit.converter import Int8Dynamic

    artifact = export(shrink(bert4, PruneHeads(keep=2), text=text), tmp_path, Onnx(), Int8Dynamic())
    assert artifact.manifest.parity.passed
    heads = [a.i for n in onnx.load(str(artifact.path)).graph.node if n.op_type == "MultiHeadAttention"
             for a in n.attribute if a.name == "num_heads"]
    assert heads == [2] * LAYERS
