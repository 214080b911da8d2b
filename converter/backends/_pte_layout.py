"""Where an ExecuTorch program keeps its constants: the constant segment's tensors, which the
portable and quantized kernels read from the mapped file, and the named data the XNNPACK
delegate loads (and repacks) at load. Used by pte.layout."""

import dataclasses

import numpy as np

from ..layout import COPIED, MAPPED, Weight
from . import _layout

# op (after its namespace) -> the argument holding the indices of an embedding lookup
_EMBEDDINGS = {"embedding": 1, "embedding_byte": 5, "embedding_4bit": 5, "embedding_2bit": 5}
_ITEMSIZE = {0: 1, 1: 1, 2: 2, 3: 4, 4: 8, 5: 2, 6: 4, 7: 8, 11: 1, 15: 2}


def _delegate_blob(data: bytes, base: int, segments, program, delegate) -> bytes:
    if delegate.processed.location == 0:  # inline
        return program.backend_delegate_data[delegate.processed.index].data
    segment = segments[delegate.processed.index]
    return data[base + segment.offset:base + segment.offset + segment.size]


def program_weights(file: str, data: bytes, base: int, program, plan) -> tuple[dict[str, Weight], list[str]]:
    """name -> Weight of every constant `plan` reads, and the names in the order its chains read them."""
    from executorch.exir.schema import DelegateCall, KernelCall
    from executorch.exir.schema import Tensor as PteTensor

    segments, offsets = program.segments, program.constant_segment.offsets
    constant_at = base + segments[program.constant_segment.segment_index].offset if offsets else 0
    keys = {e.key: (base + segments[e.segment_index].offset, segments[e.segment_index].size) for e in program.named_data}
    op_names = [o.name.split("::")[-1] for o in plan.operators]
    weights: dict[str, Weight] = {}
    reads: list[str] = []
    producer: dict[int, tuple[str, int]] = {}

    def constant(index: int) -> tuple[str, PteTensor] | None:
        t = plan.values[index].val if 0 <= index < len(plan.values) else None
        if not isinstance(t, PteTensor) or t.allocation_info is not None or not 0 < t.data_buffer_idx < len(offsets):
            return None
        name = f"constant{t.data_buffer_idx}"
        length = int(np.prod(t.sizes, dtype=np.int64)) * _ITEMSIZE.get(int(t.scalar_type), 1)
        weights.setdefault(name, Weight(name, file, constant_at + offsets[t.data_buffer_idx], length, MAPPED, locked=True))
        return name, t

    for chain in plan.chains:
        for instruction in chain.instructions:
            call = instruction.instr_args
            if isinstance(call, KernelCall):
                op, args = op_names[call.op_index], list(call.args)
                if args:
                    producer[args[-1]] = (op, args[0])  # out-variant kernels write their last argument
                ids_at = _EMBEDDINGS.get(op, -1)
                for position, arg in enumerate(args):
                    if (found := constant(arg)) is None:
                        continue
                    name, tensor = found
                    reads.append(name)
                    if position < ids_at < len(args) and _layout.token_table(args[ids_at], set(plan.inputs), producer):
                        weights[name] = dataclasses.replace(weights[name], rows=int(tensor.sizes[0]))
            elif isinstance(call, DelegateCall):
                blob = _delegate_blob(data, base, segments, program, plan.delegates[call.delegate_index])
                for key, (offset, length) in keys.items():
                    if key.encode() in blob:  # a delegate names the data it loads by its key
                        weights.setdefault(key, Weight(key, file, offset, length, COPIED))
                        reads.append(key)
    for key, (offset, length) in keys.items():  # named data no delegate of the plan names: still in the file
        weights.setdefault(key, Weight(key, file, offset, length, COPIED))
    return weights, reads
