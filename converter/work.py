"""Work: what one call of an artifact computes, op by op, as one neutral list for every format.

Each backend reads its own file (`backend.ops(path, seq_len, context)`) and names, for every
operator its runtime runs, the operands' shapes and which are constants, the precision of the
kernel and one of the cost rules below. The rules turn shapes into arithmetic and bytes, the
same way for every format, so that the latency model (runtime/cost) never sees a format.

The rules, exactly (a multiply-add counts 2):
- matmul: 2 x output elements x k, where k is the first operand's last dimension;
- attention (a fused kernel): 4 x heads x queries x keys x head_dim for scores and the weighted
  sum, plus 5 per score for its softmax (max, subtract, exp, sum, divide);
- softmax: 5 per element; norm (layer / RMS norm, fused residual add included): 8 per element;
  elementwise: `per` operations per output element (1 unless the backend says);
  quantize (dynamic activation quantization): 3 per element (range, scale, round);
- gather (an embedding lookup): no arithmetic; reads only the rows its indices select (of a
  block-quantized table, those rows' codes, scales and zero points);
- movement (transpose, concat, slices, copies, cache writes): bytes only;
- metadata (shape arithmetic on a handful of integers, and views such as a reshape, which move
  no data): nothing but the call itself.
"""

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pocketfit.errors import BadInput
from pocketfit.table import render
from pocketfit.units import human

PRECISIONS = ("fp32", "fp16", "int8", "int4")
KINDS = ("matmul", "attention", "softmax", "norm", "elementwise", "quantize", "gather", "movement", "metadata")
_PER_ELEMENT = {"softmax": 5, "norm": 8, "quantize": 3, "elementwise": 1}


class NoCostRule(BadInput):
    """An operator pocketfit cannot price: predicting without it would be a silent zero."""


@dataclass(frozen=True)
class Operand:
    shape: tuple[int, ...]
    itemsize: float  # bytes per element; 0.5 for int4
    constant: bool = False  # a weight stored in the artifact

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    @property
    def bytes(self) -> int:
        return int(self.elements * self.itemsize)


@dataclass(frozen=True)
class Op:
    name: str  # the node's name or index in the runtime's graph
    op_type: str  # the runtime's own name for it: MatMulIntegerToFloat, XNNFullyConnected, FULLY_CONNECTED
    kind: str  # the cost rule that priced it (KINDS)
    precision: str  # of the kernel that runs it (PRECISIONS)
    flops: int
    weight_bytes: int  # constants it reads
    act_bytes: int  # activations it reads and writes

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.act_bytes


def price(name: str, op_type: str, kind: str, precision: str, inputs: list[Operand], outputs: list[Operand],
          *, per: int = 1, attention: tuple[int, int, int, int] | None = None, rows_read: int | None = None) -> Op:
    """One operator's work by its kind's rule. `attention` is (heads, queries, keys, head_dim)
    for a fused attention kernel; `rows_read` is how many table rows a gather reads."""
    if kind not in KINDS:
        raise ValueError(f"unknown cost rule {kind!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    out = sum(o.elements for o in outputs)
    weights = sum(i.bytes for i in inputs if i.constant)
    acts = sum(i.bytes for i in inputs if not i.constant) + sum(o.bytes for o in outputs)
    if kind == "matmul":
        flops = 2 * out * int(inputs[0].shape[-1])
    elif kind == "attention":
        heads, queries, keys, head_dim = attention
        flops = 4 * heads * queries * keys * head_dim + 5 * heads * queries * keys
    elif kind in _PER_ELEMENT:
        flops = _PER_ELEMENT[kind] * out * (per if kind == "elementwise" else 1)
    else:
        flops = 0
    if kind == "gather" and rows_read is not None:
        # A block-quantized table keeps its scales and zero points row by row beside it: a
        # lookup reads the same share of each.
        tables = [i for i in inputs if i.constant and i.shape]
        rows = tables[0].shape[0] if tables else 0
        weights = sum(int(t.bytes * min(rows_read, rows) / rows) if t.shape[0] == rows else t.bytes for t in tables)
    if kind == "metadata":
        weights = acts = 0
    return Op(name, op_type, kind, precision, int(flops), int(weights), int(acts))


def no_rule(fmt: str, op_type: str, name: str) -> NoCostRule:
    return NoCostRule(f"{fmt} operator {op_type!r} (node {name}) has no cost rule, so no latency can be predicted "
                      f"for this artifact; pocketfit prices the operators its own exports use (converter/work.py)")


@dataclass(frozen=True)
class Work:
    """One call of the artifact: an encoder's forward pass over `tokens`, or a decoder's step
    that decodes one token attending `context` positions."""

    path: Path
    format: str
    phase: str  # "inference" | "decode"
    tokens: int
    context: int | None
    ops: tuple[Op, ...]
    basis: str  # where the shapes were read from
    notes: tuple[str, ...] = field(default=())

    @property
    def flops(self) -> int:
        return sum(o.flops for o in self.ops)

    @property
    def weight_bytes(self) -> int:
        return sum(o.weight_bytes for o in self.ops)

    @property
    def act_bytes(self) -> int:
        return sum(o.act_bytes for o in self.ops)

    def by(self, attr: str) -> dict[str, dict[str, int]]:
        table: dict[str, Counter] = {}
        for o in self.ops:
            row = table.setdefault(getattr(o, attr), Counter())
            row["ops"] += 1
            row["flops"] += o.flops
            row["weight_bytes"] += o.weight_bytes
            row["act_bytes"] += o.act_bytes
        return {k: dict(v) for k, v in sorted(table.items(), key=lambda kv: -kv[1]["flops"])}

    def to_dict(self) -> dict:
        return {
            "artifact": str(self.path), "format": self.format, "phase": self.phase, "tokens": self.tokens,
            "context": self.context, "basis": self.basis, "notes": list(self.notes),
            "totals": {"ops": len(self.ops), "flops": self.flops, "weight_bytes": self.weight_bytes, "act_bytes": self.act_bytes},
            "by_kind": self.by("kind"), "by_precision": self.by("precision"),
            "ops": [asdict(o) for o in self.ops],
        }

    def render(self, top: int = 20) -> str:
        what = (f"one decode step at context {self.context}" if self.phase == "decode" else f"one inference over {self.tokens} tokens")
        lines = [f"{self.path}: {self.format}, {what}",
                 f"total: {len(self.ops)} ops, {self.flops / 1e9:.3f} GFLOP, weights read {human(self.weight_bytes)}, "
                 f"activations moved {human(self.act_bytes)}",
                 f"shapes: {self.basis}"] + [f"note: {n}" for n in self.notes]
        kinds = [["kind", "ops", "GFLOP", "weights", "activations"]]
        kinds += [[k, str(v["ops"]), f"{v['flops'] / 1e9:.4f}", human(v["weight_bytes"]), human(v["act_bytes"])]
                  for k, v in self.by("kind").items()]
        precisions = [["precision", "ops", "GFLOP", "weights"]]
        precisions += [[k, str(v["ops"]), f"{v['flops'] / 1e9:.4f}", human(v["weight_bytes"])] for k, v in self.by("precision").items()]
        heavy = sorted(self.ops, key=lambda o: (o.flops, o.bytes), reverse=True)[:top]
        rows = [["op", "type", "kind", "precision", "MFLOP", "weights", "activations"]]
        rows += [[_short(o.name), o.op_type, o.kind, o.precision, f"{o.flops / 1e6:.2f}", human(o.weight_bytes), human(o.act_bytes)]
                 for o in heavy]
        return ("\n".join(lines) + "\n\n" + render(kinds, right={1, 2, 3, 4}) + "\n\n" + render(precisions, right={1, 2, 3})
                + f"\n\n{len(heavy)} heaviest ops (of {len(self.ops)}; --json lists all)\n" + render(rows, right={4, 5, 6}))


def _short(name: str, width: int = 48) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]
