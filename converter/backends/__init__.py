"""Export backends, one module per format, each offering the same names:

- ``FORMAT``: the format's config dataclass (its ``name``, file ``suffix`` and ``runtime``);
- ``RECIPES``: the shrink recipe types it implements;
- ``CACHE``: where a decoder's KV cache lives in its artifacts (tasks.CacheStyle);
- ``UNSUPPORTED_TASKS``: tasks it cannot export, each with the reason;
- ``refuse(recipe) -> str | None``: why it cannot apply a supported recipe with these settings;
- ``train_as(module, recipe) -> restore | None``: make the module's linear layers compute with
  the weights as this format will round them under ``recipe`` (a quantization-aware heal);
  ``restore()`` puts plain layers back with the trained float weights. None: not emulated;
- ``export(graph, fmt, recipe, path, progress) -> dict``: write the artifact to ``path``; return
  facts for the manifest; each long stage (tracing, quantizing, lowering, serializing) runs in a
  ``progress.step`` so the user sees it as it happens;
- ``OPTIONS``: runtime options ``open`` takes (name -> allowed values), e.g. LiteRT's xnnpack;
- ``open(path, threads=None, options=None)``: load the artifact in the format's own runtime, giving a runner
  with ``inputs``/``outputs`` (TensorSpec, named as the graph's) and ``run(feeds) -> list``
  (arrays in the graph's output order);
- ``runtime_version()``: import the runtime and name it;
- ``inspect(path) -> Inspection``: what the file holds, read without the source model;
- ``layout(path, options=None) -> Layout``: where each constant lies in the file(s) (file,
  offset, length), whether the runtime under ``options`` keeps it mapped or copies it, and the
  order one inference reads them (../layout.py), read without the source model;
- ``ops(path, seq_len, context) -> Work``: every operator the runtime will run, with its
  arithmetic, the bytes it reads and its kernel's precision (../work.py), for the latency model.

Core code looks a backend up here and never branches on the format. Backends import their
runtime lazily, so the measuring child process pays only for the runtime it needs.
"""

from pathlib import Path
from types import ModuleType

from pocketfit.errors import InvalidArtifact

from . import onnx, ort, pte, tflite
from ._util import check_options  # noqa: F401 - part of the backends' interface

_BACKENDS: dict[type, ModuleType] = {m.FORMAT: m for m in (onnx, ort, pte, tflite)}
FORMATS: dict[str, type] = {f.name: f for f in _BACKENDS}


def backend(fmt: object) -> ModuleType:
    return _BACKENDS[type(fmt)]


def for_path(path: Path) -> ModuleType:
    """The backend whose runtime reads this file, chosen by its suffix."""
    for fmt, module in _BACKENDS.items():
        if path.suffix == fmt.suffix:
            return module
    known = ", ".join(f.suffix for f in _BACKENDS)
    raise InvalidArtifact(f"{path}: unknown artifact type {path.suffix or '(no suffix)'!r}; pocketfit reads {known}")
