"""Shrink steps: one typed config per way of removing weights. `shrink()` applies them in order
to a copy of the model; each rewrites the model's config to match, so every backend exports the
smaller model as it exports any other.

    DropLayers(keep=3)               # 3 of MiniLM's 6 layers, evenly spaced, ending at the last
    PruneFfn(keep=0.5)               # half of each layer's FFN neurons, the least important on the text
    TrimVocab(Path("app.txt"))       # the tokens app.txt uses, plus the special tokens
    CapSequence(128)                 # position table and arena for 128 tokens
    Heal(steps=300)                  # distil from the unshrunk model on the text, last
    FreshShape(layers=3)             # first, instead of pruning: a smaller model of random layers
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pocketfit.errors import BadInput


@dataclass(frozen=True)
class DropLayers:
    """Keep `keep` of the encoder's layers, evenly spaced and ending at the last (whose output
    the pooled embedding is made of), or exactly the `layers` given (0-based)."""

    name: ClassVar[str] = "layers"
    keep: int | None = None
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if (self.keep is None) == (self.layers is None):
            raise BadInput("DropLayers takes either keep=N or layers=(i, j, ...), not both or neither")
        if self.keep is not None and (not isinstance(self.keep, int) or isinstance(self.keep, bool) or self.keep < 1):
            raise BadInput(f"layers to keep must be a whole number of at least 1, not {self.keep!r}")
        if self.layers is not None:
            layers = tuple(self.layers)
            if not layers or any(not isinstance(i, int) or i < 0 for i in layers) or len(set(layers)) != len(layers):
                raise BadInput(f"layers must be distinct 0-based layer numbers, not {self.layers!r}")
            object.__setattr__(self, "layers", tuple(sorted(layers)))

    def chosen(self, total: int) -> tuple[int, ...]:
        if self.layers is not None:
            if self.layers[-1] >= total:
                raise BadInput(f"layer {self.layers[-1]} does not exist: the model has {total} (0 to {total - 1})")
            return self.layers
        if self.keep > total:
            raise BadInput(f"cannot keep {self.keep} layers: the model has {total}")
        return tuple(sorted(total - 1 - round(i * total / self.keep) for i in range(self.keep)))


@dataclass(frozen=True)
class PruneFfn:
    """Keep a fraction (0 < keep < 1) or a number of each layer's FFN neurons: those whose output
    contributes most on the text (mean |activation| times the norm of the weights it feeds)."""

    name: ClassVar[str] = "ffn"
    needs_text: ClassVar[bool] = True
    keep: float | int = 0.5

    def __post_init__(self) -> None:
        _check_keep(self.keep, "FFN neurons")

    def count(self, total: int) -> int:
        return _count(self.keep, total, "FFN neurons")


@dataclass(frozen=True)
class PruneHeads:
    """Keep a fraction or a number of each layer's attention heads, the most important on the
    text (the gradient-times-output importance of Michel et al., 2019)."""

    name: ClassVar[str] = "heads"
    needs_text: ClassVar[bool] = True
    keep: float | int = 0.5

    def __post_init__(self) -> None:
        _check_keep(self.keep, "attention heads")

    def count(self, total: int) -> int:
        return _count(self.keep, total, "attention heads")


@dataclass(frozen=True)
class TrimVocab:
    """Keep the tokens `corpus` uses (with `max_tokens`, only that many of the most frequent) and
    the special tokens; with `characters`, every single-character token too, so that words the
    kept tokens cannot spell still split into characters instead of becoming [UNK]. The
    embedding table shrinks; the tokenizer is rewritten with the new ids."""

    name: ClassVar[str] = "vocab"
    corpus: Path = field(default=None)  # type: ignore[assignment]
    characters: bool = True
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.corpus is None:
            raise BadInput("TrimVocab needs a corpus: a text file of the app's own text, one passage per line")
        object.__setattr__(self, "corpus", Path(self.corpus))
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool)
                                            or self.max_tokens < 1):
            raise BadInput(f"max_tokens must be a whole number of at least 1, not {self.max_tokens!r}")


@dataclass(frozen=True)
class CapSequence:
    """Cap inputs at `tokens`: the position table is cut to it, and the tokenizer truncates there."""

    name: ClassVar[str] = "seq"
    tokens: int = 128

    def __post_init__(self) -> None:
        if not isinstance(self.tokens, int) or isinstance(self.tokens, bool) or self.tokens < 8:
            raise BadInput(f"a sequence cap must be a whole number of tokens, at least 8, not {self.tokens!r}")


@dataclass(frozen=True)
class Heal:
    """Distil the shrunk model from the unshrunk one on the text: the student learns to match the
    teacher's sentence embeddings (cosine and mean squared error) and, with `layers`, each layer's
    pooled output that of the teacher layer it came from, for `steps` optimizer steps or
    `seconds`, whichever comes first. Seeded; with `checkpoint`, resumable. When shrink is told
    the format and recipe it will be exported with (`export_as=`), the student trains under that
    format's own rounding of its weights where the backend can emulate it (`rounded=False`: never)."""

    name: ClassVar[str] = "heal"
    needs_text: ClassVar[bool] = True
    steps: int = 300
    seconds: float | None = None
    batch: int = 16
    learning_rate: float = 1e-4
    max_tokens: int = 128
    seed: int = 0
    checkpoint: Path | None = None
    layers: bool = True
    rounded: bool = True

    def __post_init__(self) -> None:
        for key in ("steps", "batch", "max_tokens"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadInput(f"heal {key} must be a whole number of at least 1, not {value!r}")
        if self.seconds is not None and not self.seconds > 0:
            raise BadInput(f"heal seconds must be positive, not {self.seconds!r}")
        if not 0 < self.learning_rate < 1:
            raise BadInput(f"heal learning_rate must be between 0 and 1, not {self.learning_rate!r}")
        if self.checkpoint is not None:
            object.__setattr__(self, "checkpoint", Path(self.checkpoint))


@dataclass(frozen=True)
class FreshShape:
    """Start from a smaller shape instead of the teacher's weights: the teacher's config with
    `layers` layers, `ffn` FFN neurons per layer or `heads` attention heads (each None: the
    teacher's), its layers initialised at random from `seed`, the embeddings copied from the
    teacher. The first step, and nothing without a Heal after it."""

    name: ClassVar[str] = "shape"
    layers: int | None = None
    ffn: int | None = None
    heads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("layers", "ffn", "heads"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise BadInput(f"a fresh shape's {key} must be a whole number of at least 1, not {value!r}")
        if self.layers is None and self.ffn is None and self.heads is None:
            raise BadInput("FreshShape needs at least one of layers=, ffn=, heads= (e.g. shape=layers:3,ffn:768)")


STEPS = (FreshShape, DropLayers, PruneHeads, PruneFfn, TrimVocab, CapSequence, Heal)


def _check_keep(keep, what: str) -> None:
    if isinstance(keep, bool) or not isinstance(keep, (int, float)):
        raise BadInput(f"{what} to keep: a fraction between 0 and 1 or a whole number, not {keep!r}")
    if isinstance(keep, float) and not 0 < keep < 1:
        raise BadInput(f"{what} to keep: a fraction must be between 0 and 1 (exclusive), not {keep}")
    if isinstance(keep, int) and keep < 1:
        raise BadInput(f"{what} to keep: at least 1, not {keep}")


def _count(keep: float | int, total: int, what: str) -> int:
    if isinstance(keep, int):
        if keep > total:
            raise BadInput(f"cannot keep {keep} {what}: each layer has {total}")
        return keep
    return max(1, round(total * keep))


_UNLIMITED = 1 << 40


def parse(spec: str):
    """A step from the command line's KEY=VALUE: layers=3 (or layers=0,2,5), ffn=0.5, heads=0.5,
    vocab=FILE (or vocab=FILE:N, the N most frequent tokens), seq=128, heal=STEPS (or heal=600s,
    as many steps as 600 seconds allow), shape=layers:3,ffn:768,heads:6 (a fresh smaller model)."""
    key, sep, value = spec.partition("=")
    key, value = key.strip(), value.strip()
    names = {s.name: s for s in STEPS}
    if not sep or key not in names or not value:
        raise BadInput(f"--shrink {spec!r}: give KEY=VALUE with KEY one of {', '.join(names)} (e.g. layers=3, ffn=0.5, vocab=app.txt)")
    try:
        if key == "layers":
            return DropLayers(layers=tuple(int(v) for v in value.split(","))) if "," in value else DropLayers(keep=int(value))
        if key in ("ffn", "heads"):
            keep = float(value) if "." in value else int(value)
            return (PruneFfn if key == "ffn" else PruneHeads)(keep=keep)
        if key == "vocab":
            path, colon, count = value.rpartition(":")
            if colon and count.isdigit():
                return TrimVocab(Path(path), max_tokens=int(count))
            return TrimVocab(Path(value))
        if key == "seq":
            return CapSequence(int(value))
        if key == "shape":
            sizes = dict(part.partition(":")[::2] for part in value.split(","))
            if not set(sizes) <= {"layers", "ffn", "heads"} or not all(sizes.values()):
                raise BadInput(f"--shrink {spec!r}: give shape=SIZE:N,... with SIZE one of layers, ffn, heads (e.g. shape=layers:3)")
            return FreshShape(**{k: int(v) for k, v in sizes.items()})
        if value.endswith("s"):  # a time budget: as many steps as fit
            return Heal(steps=_UNLIMITED, seconds=float(value[:-1]))
        return Heal(steps=int(value))
    except ValueError as e:
        raise BadInput(f"--shrink {spec!r}: {value!r} is not a number ({e})") from e
