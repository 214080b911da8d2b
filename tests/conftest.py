"""Shared fixtures: real models, real exports, made once per test session in temporary folders."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm():
    from pocketfit.converter import load

    return load("minilm")


@pytest.fixture(scope="session")
def minilm_onnx(minilm, tmp_path_factory):
    """MiniLM exported to ONNX fp32 and int8: {"none": Artifact, "int8": Artifact}."""
    from pocketfit.converter import Int8Dynamic, NoQuant, Onnx, export

    root = tmp_path_factory.mktemp("minilm-onnx")
    return {r.name: export(minilm, root / r.name, Onnx(), r) for r in (NoQuant(), Int8Dynamic())}


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT with random weights, built from a transformers config, with MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pocketfit.converter.models import minilm_folder

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    BertModel(config).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_folder()).save_pretrained(folder)
    return folder


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `pocketfit` command in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "pocketfit", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )
