"""The candidates a fit search considers: shrink settings x quantization recipes x formats, each
one pocketfit can export for the task, with its estimate made before anything is exported.

The grid is coarse on purpose: each knob takes a few settings that differ by about as much as a
user would notice (a quarter of the FFN, half the heads), so the search's rules can rule out
whole rows of it with one export. Knobs that measure or train on the app's text (vocabulary,
FFN, heads, heal) are in the grid only when there is text.
"""

from collections import Counter

from pocketfit.converter import Int4Weight, Int8Dynamic, NoQuant, Fp16, check_supported
from pocketfit.converter.backends import FORMATS
from pocketfit.converter.tasks import Task
from pocketfit.errors import UnsupportedCombination

from .frontier import Knobs

# recipe name -> the recipe, as the search exports it
RECIPES = {"none": NoQuant(), "fp16": Fp16(), "int8": Int8Dynamic(), "int4": Int4Weight(),
           "int4-emb4": Int4Weight(group_size=64, embeddings=4)}
FFN = (1.0, 0.75, 0.5)
HEADS = (1.0, 0.5)
VOCAB = (1.0, 0.75, 0.5)  # of the tokens the app's text uses
LAYERS = (1.0, 0.75, 0.5)


def recipes(fmt_name: str, task: Task) -> list[str]:
    """The recipes the format can export the task with."""
    fmt = FORMATS[fmt_name]()
    offered = []
    for name, recipe in RECIPES.items():
        try:
            check_supported(fmt, recipe, task)
        except UnsupportedCombination:
            continue
        offered.append(name)
    return offered


def tokens_used(tokenizer, lines: list[str]) -> int:
    """How many distinct tokens the text uses: what a trimmed vocabulary keeps at most of it."""
    return len(Counter(i for ids in tokenizer(lines, add_special_tokens=False)["input_ids"] for i in ids))


def grid(formats: list[str], task: Task, layers: int, used_tokens: int | None, heal_seconds: float,
         shrinkable: bool = True) -> list[Knobs]:
    """Every candidate: each format's recipes, and where the task can be shrunk, the settings
    of each knob; with heal_seconds, a healed copy of each candidate that cuts weights out."""
    depth = sorted({max(1, round(layers * f)) for f in LAYERS}, reverse=True)
    vocab = [None] + ([max(1, round(used_tokens * f)) for f in VOCAB] if used_tokens else [])
    text = used_tokens is not None
    out = []
    for fmt in formats:
        for recipe in recipes(fmt, task):
            if not shrinkable:
                out.append(Knobs(fmt, recipe))
                continue
            for v in vocab:
                for n in depth:
                    for ffn in FFN if text else (1.0,):
                        for heads in HEADS if text else (1.0,):
                            k = Knobs(fmt, recipe, vocab=v, layers=None if n == layers else n, ffn=ffn, heads=heads)
                            out.append(k)
                            if heal_seconds and text and (k.layers is not None or ffn < 1 or heads < 1):
                                out.append(Knobs(fmt, recipe, vocab=v, layers=k.layers, ffn=ffn, heads=heads,
                                                 heal_seconds=heal_seconds))
    return out
