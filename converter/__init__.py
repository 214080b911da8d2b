"""pocketfit.converter: load a model, export it to a phone format, verify it in that format's runtime.

    from pocketfit.converter import load, export, Onnx, Int8Dynamic
    artifact = export(load("minilm"), "out/", Onnx(), Int8Dynamic())

Names load on first use, so a process that only runs artifacts never imports torch.
"""

import importlib

_PUBLIC = {
    "load": ".models",
    "Model": ".models",
    "DEFAULT_MODEL": ".models",
    "export": ".pipeline",
    "check_supported": ".pipeline",
    "Artifact": ".pipeline",
    "Task": ".tasks",
    "NoQuant": ".recipes",
    "Fp16": ".recipes",
    "Int8Dynamic": ".recipes",
    "Int8Static": ".recipes",
    "Int4Weight": ".recipes",
    "RECIPES": ".recipes",
    "Onnx": ".backends.onnx",
    "Ort": ".backends.ort",
    "Pte": ".backends.pte",
    "Tflite": ".backends.tflite",
    "FORMATS": ".backends",
    "inspect": ".reading",
    "Inspection": ".inspection",
    "weight_layout": ".reading",
    "work": ".reading",
    "Work": ".work",
    "Layout": ".layout",
    "sentences": ".texts",
    "shrink": ".shrinking",
    "DropLayers": ".shrinking",
    "PruneFfn": ".shrinking",
    "PruneHeads": ".shrinking",
    "TrimVocab": ".shrinking",
    "CapSequence": ".shrinking",
    "Heal": ".shrinking",
    "FreshShape": ".shrinking",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
