"""Shared fixtures: real models (MiniLM's weights, tiny models built from transformers configs)
and real exports, made once per test session in temporary folders."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: torch's OpenMP pool of two threads per worker only contends (its
    # threads spin), so each worker's exports run on one. Latency figures come from benchmarks.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_MAX_CONTEXT = 64  # decoder tests: enough for verification's 32 positions, small to export


def _tokenizer():
    from transformers import AutoTokenizer

    from pocketfit.converter.models import minilm_folder

    return AutoTokenizer.from_pretrained(minilm_folder())


def make_tiny_bert(folder: Path) -> Path:
    """A 1-layer BERT encoder with random weights, with MiniLM's tokenizer (one layer: every
    format's export time grows with depth, ExecuTorch's most)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)).eval().save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return folder


def make_tiny_classifier(folder: Path) -> Path:
    """A 1-layer BERT classifier built from a config and fine-tuned for a few seconds to tell
    statements, questions and exclamations apart by their last mark. Random heads put every
    sentence in one class by a hair, which makes label agreement meaningless; trained, the
    top class wins every fixed sentence by a clear margin, as in a production classifier."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from pocketfit.converter.texts import calibration

    torch.manual_seed(0)
    config = BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128, num_labels=3,
                        id2label={0: "statement", 1: "question", 2: "exclamation"},
                        label2id={"statement": 0, "question": 1, "exclamation": 2})
    model = BertForSequenceClassification(config)
    tokenizer = _tokenizer()
    texts = [text.rstrip(".!?") + mark for text in calibration() for mark in ".?!"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    labels = torch.tensor([i % 3 for i in range(len(texts))])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_tiny_llama(folder: Path) -> Path:
    """A 2-layer Llama decoder (grouped-query attention) with random weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=30522, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return folder


def byte_level_bpe(lines: list[str], specials: list[str], processor=None, **tokens):
    """A byte-level BPE tokenizer (GPT-2's, RoBERTa's, SmolLM2's kind) trained here on `lines`,
    with `specials` first: no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=700, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if processor is not None:
        bpe.post_processor = processor(bpe)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, **tokens)


def make_tiny_gpt2(folder: Path) -> Path:
    """A 2-layer GPT-2 decoder (Conv1D layers, fused query-key-value) with random weights."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=30522, n_embd=64, n_layer=2, n_head=4, n_positions=256, bos_token_id=101, eos_token_id=102)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory) -> Path:
    return make_tiny_classifier(tmp_path_factory.mktemp("tiny-classifier"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    return make_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def models(tiny_bert_dir, tiny_classifier_dir, tiny_llama_dir):
    """Loaded models by name, each loaded once."""
    from pocketfit.converter import Task, load

    refs = {
        "minilm": ("minilm", Task.FEATURE_EXTRACTION),
        "tiny-bert": (tiny_bert_dir, Task.FEATURE_EXTRACTION),
        "tiny-classifier": (tiny_classifier_dir, Task.TEXT_CLASSIFICATION),
        "tiny-llama": (tiny_llama_dir, Task.TEXT_GENERATION),
    }
    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load(*refs[name])
        return loaded[name]

    return get


@pytest.fixture(scope="session")
def exported(models, tmp_path_factory):
    """exported(model, format, recipe) -> Artifact, each combination exported once per session."""
    from pocketfit.converter import FORMATS, RECIPES, export

    root = tmp_path_factory.mktemp("exports")
    done = {}

    def get(model: str, fmt: str, recipe: str):
        key = (model, fmt, recipe)
        if key not in done:
            max_context = TINY_MAX_CONTEXT if model == "tiny-llama" else None
            done[key] = export(models(model), root / "-".join(key), FORMATS[fmt](), RECIPES[recipe](), max_context=max_context)
        return done[key]

    return get


@pytest.fixture(scope="session")
def minilm(models):
    return models("minilm")


@pytest.fixture(scope="session")
def minilm_onnx(exported):
    """MiniLM exported to ONNX fp32 and int8: {"none": Artifact, "int8": Artifact}."""
    return {recipe: exported("minilm", "onnx", recipe) for recipe in ("none", "int8")}


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the real `pocketfit` command in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "pocketfit", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (make test runs two workers), tests that use the same export run on
    one worker, which makes it once: tests reading MiniLM's ONNX artifacts join the matrix's group."""
    for item in items:
        if "minilm_onnx" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group("minilm-onnx"))


DEVICE_FIELDS = {
    "name": "Test phone", "os": "android", "tier": "low-end", "ram": "4 GiB", "app_budget": "1.5 GiB",
    "page_size": "4 KiB", "storage": "UFS 2.2", "flash_read_bandwidth": "1 GB/s", "flash_read_latency": "100 us",
    "flash_read_iops": 40000, "dram": "LPDDR4X", "dram_bandwidth": "17 GB/s", "big_cores": 2,
}


def device_toml(**changes) -> str:
    """A valid phone profile with `changes` applied (a value of None drops the field)."""
    fields = {k: v for k, v in (DEVICE_FIELDS | changes).items() if v is not None}
    lines = [f"{k} = {v if isinstance(v, int) else repr(v).replace(chr(39), chr(34))}" for k, v in fields.items()]
    lines.append("[sources]")
    lines += [f'{k} = "a test profile"' for k in fields if k not in ("name", "os", "tier")]
    return "\n".join(lines) + "\n"
