"""ExecuTorch .pte: torch.export, shrunk with torchao / pt2e, lowered to the XNNPACK delegate,
run back through ExecuTorch's own runtime."""

import contextlib
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pocketfit.errors import ExportFailed, InvalidArtifact
from pocketfit.manifest import TensorSpec
from pocketfit.progress import Progress, Silent

from ..inspection import Inspection, Tensor
from ..layout import Layout
from ..recipes import Fp16, Int4Weight, Int8Dynamic, Int8Static, NoQuant
from ..tasks import CacheStyle
from . import _layout, _pte_layout, _rounding
from ._util import check_options, quiet, reason


@dataclass(frozen=True)
class Pte:
    name: ClassVar[str] = "pte"
    suffix: ClassVar[str] = ".pte"
    runtime: ClassVar[str] = "executorch"
    # The sequence axis is dynamic up to this bound; ExecuTorch plans the arena for the bound.
    max_sequence: int = 128


FORMAT = Pte
RECIPES = (NoQuant, Fp16, Int8Dynamic, Int8Static, Int4Weight)
CACHE = CacheStyle.STATE  # mutable buffers: the KV cache is planned in the method's arena
UNSUPPORTED_TASKS: dict = {}
OPTIONS: dict = {}
WEIGHTS = ("ExecuTorch maps the program file; XNNPACK repacks the weights it runs into its own memory when the method "
           "loads (anonymous, not pageable), while tables left on portable or quantized kernels, such as quantized "
           "embeddings, are read from the mapped file and can page.")
_SIGNATURE = "pocketfit_signature"  # a constant method holding input and output names as JSON
_TRACE_SEQUENCE = 32
_PAGE = 4096  # segment alignment: Android's default page (the catalog's iPhones page 16 KiB; 4x the padding)


def refuse(recipe) -> str | None:
    if isinstance(recipe, Int4Weight) and recipe.embeddings == 4:
        return "4-bit embedding tables are ONNX and ORT only for now (onnxruntime's GatherBlockQuantized): use embeddings=8"
    return None  # torchao groups any size that divides a layer's input width


def export(graph, fmt: Pte, recipe, path: Path, progress: Progress = Silent()) -> dict:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower

    sample = graph.sample({"batch": 1, "sequence": _TRACE_SEQUENCE})
    sequence = torch.export.Dim("sequence", min=1, max=fmt.max_sequence)
    dynamic = {name: ({i: sequence for i, a in enumerate(spec.axes) if a == "sequence"} or None) for name, spec in graph.inputs.items()}
    signature = {"inputs": [[n, s.dtype, [a if isinstance(a, int) else (1 if a == "batch" else a) for a in s.axes]] for n, s in graph.inputs.items()],
                 "outputs": list(graph.outputs)}
    module = copy.deepcopy(graph.module)  # recipes quantize in place; the graph serves the next recipe
    try:
        with quiet(), torch.no_grad():
            # Encoders in operators XNNPACK takes (attention as 3-D bmm, LayerNorm as GEMMs): a
            # few large partitions instead of ~60 joined by portable kernels. fp16 keeps its fp32
            # norms (_fp16). Decoders step in ExecuTorch's LLM operators (_pte_decoder) where
            # those compute their attention, else in transformers' own over the static cache.
            from . import _pte_encoder  # imports torch: only exports pay for it

            rewrites = _pte_encoder.rewrite(module) if graph.kv_cache is None and not isinstance(recipe, Fp16) else []
            if graph.kv_cache is not None:
                from . import _pte_decoder

                if _pte_decoder.supports(module.model.config, graph.kv_cache):
                    module = _pte_decoder.DecodeOps(module.model, graph.kv_cache)
                    rewrites = ["decode step: KV cache and attention in ExecuTorch's llama::update_cache and llama::custom_sdpa"]
            with progress.step(_SHRINK_STAGE[type(recipe)]) if type(recipe) in _SHRINK_STAGE else contextlib.nullcontext():
                module, fuse_embeddings = _shrink(graph, recipe, module, sample, dynamic)
            with progress.step("torch.export"):
                program = torch.export.export(module, (), kwargs=sample, dynamic_shapes=dynamic, strict=False)
            # The edge-dialect verifier re-runs for every partition and costs a third of the export;
            # the program is checked instead by running it in ExecuTorch's runtime right after.
            with progress.step("to_edge and lowering to XNNPACK"):  # one call in ExecuTorch's API
                lowered = to_edge_transform_and_lower(program, transform_passes=[_inferred_view_sizes, _unit_axis_permutes],
                                                      partitioner=[XnnpackPartitioner()],
                                                      compile_config=EdgeCompileConfig(_check_ir_validity=False),
                                                      constant_methods={_SIGNATURE: json.dumps(signature)})
            # Quant fusion turns dequantize -> embedding into ExecuTorch's quantized embedding
            # kernels (the table stays int8 in the file). Reinplacing writes a decoder's KV cache
            # in place: without it every step makes a second, cache-sized copy in the arena.
            # Segments on page boundaries: ExecuTorch's mmap loader mlock()s a segment's size from
            # the page its data starts in, so a segment starting mid-page left its last bytes unlocked.
            with progress.step("serializing the ExecuTorch program"):
                et = lowered.to_executorch(ExecutorchBackendConfig(do_quant_fusion_and_const_prop=fuse_embeddings,
                                                                   run_reinplace_pass=graph.kv_cache is not None,
                                                                   segment_alignment=_PAGE))
                with path.open("wb") as f:  # (`open` here is the backend verb)
                    et.write_to_file(f)
    except Exception as e:  # torch.export, torchao and the lowering raise many types
        raise ExportFailed(f"ExecuTorch export failed: {reason(e)}") from e
    facts = {"planned_memory": {p.name: list(p.non_const_buffer_sizes) for p in et.executorch_program.execution_plan
                                if p.name != _SIGNATURE}}
    if any("sequence" in s.axes for s in graph.inputs.values()):
        facts["sequence"] = {"dynamic": True, "max": fmt.max_sequence}
    if rewrites:
        facts["xnnpack_rewrites"] = rewrites
    return facts


def _inferred_view_sizes(module):
    """Views whose new shape holds the dynamic sequence length as a symbol: XNNPACK's reshape
    takes one inferred (-1) size but no symbol, so each such view split the delegate (60 in
    MiniLM). When one size of the result is symbolic the others are known, and -1 says the same."""
    from executorch.exir.dialects._ops import ops as exir_ops
    from executorch.exir.pass_base import PassResult

    changed = False
    for node in module.graph.nodes:
        if node.op != "call_function" or node.target != exir_ops.edge.aten.view_copy.default:
            continue
        sizes = node.meta["val"].shape  # the view's result: ints, and symbols for dynamic sizes
        shape = [size if isinstance(size, int) else -1 for size in sizes]
        if shape.count(-1) == 1 and any(not isinstance(size, int) for size in node.args[1]):
            node.args = (node.args[0], shape, *node.args[2:])
            changed = True
    if changed:
        module.graph.eliminate_dead_code()
        module.recompile()
    return PassResult(module, changed)


def _unit_axis_permutes(module):
    """Permutes that only move axes of size 1 keep the memory order: views. A decode step's
    (1, heads, 1, head_dim) <-> (1, 1, heads, head_dim) transposes were 24 XNNPACK transpose
    copies (a tenth of the tiny Llama's step); a view is free."""
    from executorch.exir.dialects._ops import ops as exir_ops
    from executorch.exir.pass_base import PassResult

    changed = False
    for node in module.graph.nodes:
        if node.op != "call_function" or node.target != exir_ops.edge.aten.permute_copy.default:
            continue
        source = node.args[0].meta["val"].shape
        moved = [axis for axis in node.args[1] if not (isinstance(source[axis], int) and source[axis] == 1)]
        if moved != sorted(moved):
            continue
        shape = [size if isinstance(size, int) else -1 for size in node.meta["val"].shape]
        if shape.count(-1) > 1:
            continue
        node.target, node.args = exir_ops.edge.aten.view_copy.default, (node.args[0], shape)
        changed = True
    if changed:
        module.recompile()
    return PassResult(module, changed)


_SHRINK_STAGE = {Fp16: "casting to fp16", Int8Dynamic: "quantizing with torchao", Int4Weight: "quantizing with torchao",
                 Int8Static: "calibrating and quantizing with pt2e"}


def _shrink(graph, recipe, module, sample, dynamic):
    """Apply `recipe` to a copy of the module. Returns it and whether embeddings were quantized."""
    import torch

    if isinstance(recipe, NoQuant):
        return module, False
    if isinstance(recipe, Fp16):
        return _float32_out(_fp16(module)), False
    _quantize_embeddings(module)
    if isinstance(recipe, Int8Dynamic):
        _quantize_linears(module, torch.int8, None if recipe.per_channel else 0)
    elif isinstance(recipe, Int4Weight):
        _quantize_linears(module, torch.int4, recipe.group_size)
    elif isinstance(recipe, Int8Static):
        module = _static(graph, recipe, module, sample, dynamic)
    return module, True


def _float32_out(module):
    """The app reads float32 whatever the recipe: a hook, traced with the module, casts fp16
    outputs back."""

    def cast(_module, _inputs, out):
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()

    module.register_forward_hook(cast)
    return module


def _fp16(module):
    """Half precision, LayerNorm excepted: ExecuTorch 1.5.1's portable fp16 layer_norm kernel is
    wrong (errors up to ~6 on randn input) and XNNPACK does not take LayerNorm, so an fp16
    BERT gives NaN; the norms compute in fp32 between casts."""
    import torch

    class Fp32LayerNorm(torch.nn.Module):
        def __init__(self, norm: torch.nn.LayerNorm):
            super().__init__()
            self.shape, self.eps = norm.normalized_shape, norm.eps
            self.weight = torch.nn.Parameter(norm.weight.detach().float(), requires_grad=False)
            self.bias = torch.nn.Parameter(norm.bias.detach().float(), requires_grad=False) if norm.bias is not None else None

        def forward(self, x):
            return torch.nn.functional.layer_norm(x.float(), self.shape, self.weight, self.bias, self.eps).to(x.dtype)

    module = module.half()
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.LayerNorm):
                setattr(parent, name, Fp32LayerNorm(child))
    return module


def _quantize_embeddings(module) -> None:
    """int8 embedding tables, one scale per row, for ExecuTorch's quantized embedding kernel."""
    import torch
    from torchao.quantization import IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerAxis

    for m in module.modules():
        if isinstance(m, torch.nn.Embedding):
            # The fusion into the quantized kernel matches embedding(table, ids) only; padding_idx
            # adds an argument, and matters only for gradients.
            m.padding_idx = None
    quantize_(module, IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
              lambda m, fqn: isinstance(m, torch.nn.Embedding))


def _linear_config(dtype, group_size: int | None):
    """Weights in `dtype` (per channel, or in groups), activations int8 per token at run time:
    the form XNNPACK's integer GEMMs take (8da8w / 8da4w)."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig
    from torchao.quantization.granularity import PerAxis, PerGroup, PerTensor

    granularity = PerGroup(group_size) if group_size else (PerTensor() if group_size == 0 else PerAxis(0))
    return Int8DynamicActivationIntxWeightConfig(weight_dtype=dtype, weight_granularity=granularity)


def _quantize_linears(module, dtype, group_size: int | None) -> None:
    import torch
    from torchao.quantization import quantize_

    quantize_(module, _linear_config(dtype, group_size), lambda m, fqn: isinstance(m, torch.nn.Linear))


def train_as(module, recipe):
    """Emulate the rounding `recipe` gets here, for a quantization-aware heal: torchao's own
    fake quantizers for the config _quantize_linears applies (_rounding.py)."""
    import torch

    if isinstance(recipe, Int4Weight):
        return _rounding.torchao_qat(module, _linear_config(torch.int4, recipe.group_size))
    if isinstance(recipe, Int8Dynamic):
        return _rounding.torchao_qat(module, _linear_config(torch.int8, None if recipe.per_channel else 0))
    return None


def _static(graph, recipe: Int8Static, module, sample, dynamic):
    """pt2e with calibrated int8 activations on the linear layers; the FFN down-projections take
    theirs at run time (their post-activation inputs have the outliers a fixed scale clips)."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from ..texts import calibration

    quantizer = _safe_scalars_quantizer()
    quantizer.set_module_type(torch.nn.Linear, get_symmetric_quantization_config(is_per_channel=recipe.per_channel))
    dynamic_config = get_symmetric_quantization_config(is_per_channel=recipe.per_channel, is_dynamic=True)
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.Linear) and graph.intermediate_size and m.in_features == graph.intermediate_size:
            quantizer.set_module_name(name, dynamic_config)
    prepared = prepare_pt2e(torch.export.export(module, (), kwargs=sample, dynamic_shapes=dynamic, strict=False).module(), quantizer)
    for feeds in graph.calibration(calibration(recipe.calibration)):
        prepared(**feeds)
    return convert_pt2e(prepared)


def _safe_scalars_quantizer():
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from torchao.quantization.pt2e.utils import get_new_attr_name_with_prefix

    class SafeScalars(XNNPACKQuantizer):
        """XNNPACKQuantizer turns every scalar of add/mul into a float buffer, integer index
        arithmetic in transformers' mask code included (IndexError on BERT with a mask): this
        one converts only the scalars of floating-point nodes."""

        def transform_for_annotation(self, model):
            for node in list(model.graph.nodes):
                value = node.meta.get("val")
                if node.op != "call_function" or node.target not in (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor):
                    continue
                if not isinstance(value, torch.Tensor) or not value.dtype.is_floating_point:
                    continue
                args = []
                for arg in node.args:
                    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
                        name = get_new_attr_name_with_prefix("_tensor_constant_")(model)
                        model.register_buffer(name, torch.tensor(float(arg)))
                        with model.graph.inserting_before(node):
                            attr = model.graph.create_node("get_attr", name, (), {})
                            attr.meta["val"] = value.fake_mode.from_tensor(torch.tensor(float(arg)), static_shapes=True)
                        args.append(attr)
                    else:
                        args.append(arg)
                node.args = tuple(args)
            model.recompile()
            return model

    return SafeScalars()


# c10::ScalarType codes, as the runtime's TensorInfo and the program's tensors give them.
_DTYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64", 11: "bool", 15: "bfloat16"}


class Runner:
    """ExecuTorch's runtime over one program: its `forward` method, with the quantized kernels
    (embedding tables) registered before the program loads."""

    def __init__(self, path: Path, threads: int | None = None, options: dict | None = None):
        import executorch.kernels.quantized  # noqa: F401 - registers quantized_decomposed kernels

        from ._pte_decoder import load_ops

        load_ops()  # decoders' llama::update_cache and llama::custom_sdpa kernels
        from executorch.runtime import Runtime

        try:
            with quiet():
                if threads:  # the Python runtime has one process-wide threadpool, no per-method option
                    from executorch.extension.pybindings import portable_lib

                    portable_lib._unsafe_reset_threadpool(threads)
                program = Runtime.get().load_program(str(path))
                self.method = program.load_method("forward")
        except Exception as e:  # the runtime raises RuntimeError/ValueError with its own text
            raise InvalidArtifact(f"{path} is not a loadable ExecuTorch program: {reason(e)}") from e
        meta = self.method.metadata
        if _SIGNATURE in program.method_names:
            signature = json.loads(program.load_method(_SIGNATURE).execute([])[0])
            names = [n for n, _, _ in signature["inputs"]]
            shapes = [tuple(shape) for _, _, shape in signature["inputs"]]
            outputs = signature["outputs"]
        else:  # a program pocketfit did not write: positional names, the planned (largest) shapes
            names = [f"input_{i}" for i in range(meta.num_inputs())]
            shapes = [tuple(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
            outputs = [f"output_{i}" for i in range(meta.num_outputs())]
        self.inputs = tuple(TensorSpec(n, _dtype(meta.input_tensor_meta(i)), s) for i, (n, s) in enumerate(zip(names, shapes)))
        self.outputs = tuple(TensorSpec(n, _dtype(meta.output_tensor_meta(i)), tuple(meta.output_tensor_meta(i).sizes()))
                             for i, n in enumerate(outputs))

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        return [t.numpy() for t in self.method.execute([torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs])]


def _dtype(info) -> str:
    return _DTYPES.get(int(info.dtype()), f"scalar-type-{int(info.dtype())}")


def open(path: Path, threads: int | None = None, options: dict | None = None) -> Runner:  # noqa: A001 - the backend verb
    return Runner(path, threads, check_options(OPTIONS, options))


def runtime_version() -> str:
    from importlib.metadata import version

    import executorch.runtime  # noqa: F401 - the measurement's baseline includes it (and libtorch)

    return f"executorch {version('executorch')}"


def inspect(path: Path) -> Inspection:
    """The program's methods, memory plan and operators; which calls XNNPACK runs; the constants
    stored outside the delegate with their dtypes, and the delegate's weight bytes."""
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.exir.schema import DelegateCall, KernelCall
    from executorch.exir.schema import Tensor as PteTensor

    data = path.read_bytes()
    try:
        pte = deserialize_pte_binary(data)
    except Exception as e:  # a damaged flatbuffer fails in many ways
        raise InvalidArtifact(f"{path} is not an ExecuTorch program: {reason(e)}") from e
    program = pte.program
    operators: dict[str, int] = {}
    tensors: list[Tensor] = []
    plans, delegated = {}, {}
    for plan in program.execution_plan:
        plans[plan.name] = list(plan.non_const_buffer_sizes)
        names = [f"{o.name}.{o.overload}" if o.overload else o.name for o in plan.operators]
        for chain in plan.chains:
            for instruction in chain.instructions:
                call = instruction.instr_args
                if isinstance(call, KernelCall):
                    operators[names[call.op_index]] = operators.get(names[call.op_index], 0) + 1
                elif isinstance(call, DelegateCall):
                    backend = plan.delegates[call.delegate_index].id
                    delegated[backend] = delegated.get(backend, 0) + 1
                    operators[f"delegate:{backend}"] = operators.get(f"delegate:{backend}", 0) + 1
        for i, value in enumerate(plan.values):
            t = value.val
            if isinstance(t, PteTensor) and t.data_buffer_idx > 0 and t.allocation_info is None:
                storage = program.constant_buffer[t.data_buffer_idx].storage if t.data_buffer_idx < len(program.constant_buffer) else b""
                tensors.append(Tensor(f"{plan.name}.value{i}", _scalar_type(t.scalar_type), tuple(t.sizes), len(storage)))
    if pte.named_data is not None:  # XNNPACK's weights, keyed by hash; described inside the delegate graphs
        described = _xnnpack_constants(program)
        for key, entry in pte.named_data.pte_data.items():
            dtype, shape = described.get(key, ("xnnpack-packed", ()))
            tensors.append(Tensor(f"xnnpack:{key[:12]}", dtype, shape, len(pte.named_data.buffers[entry.buffer_index])))
    details = {
        "methods": ", ".join(p.name for p in program.execution_plan),
        "planned arena (non-constant buffers, bytes)": plans,
        "delegate calls": delegated or "none",
        "portable/quantized kernel calls": sum(v for k, v in operators.items() if not k.startswith("delegate:")),
    }
    return Inspection("pte", path, len(data), tuple(tensors), operators, details)


def _xnnpack_constants(program) -> dict[str, tuple[str, tuple[int, ...]]]:
    """named-data key -> (dtype, shape) of every weight an XNNPACK delegate holds, read from
    each delegate's decoded graph."""
    from ._pte_ops import xnnpack_graphs

    described: dict[str, tuple[str, tuple[int, ...]]] = {}
    for graph in xnnpack_graphs(program).values():
        keys = [c.get("named_key") for c in graph.get("constant_data", [])]
        for value in graph.get("xvalues", []):
            body = value.get("xvalue_union", {})
            tensor = body.get("tensor_value", body)
            index = tensor.get("constant_buffer_idx", 0)
            if not index or index >= len(keys) or not keys[index]:
                continue
            dtype = tensor.get("datatype", "?").replace("xnn_datatype_", "")
            described[keys[index]] = (dtype, tuple(tensor.get("dims", [])))
            params = body.get("quant_params", {}) or {}
            scale = params.get("scale_buffer_idx", 0)
            if scale and scale < len(keys) and keys[scale]:
                described[keys[scale]] = (f"{dtype} scales", ())
    return described


def ops(path: Path, seq_len: int = 128, context: int | None = None):
    """The work of one call: portable kernels and XNNPACK nodes (_pte_ops.py)."""
    from . import _pte_ops

    return _pte_ops.ops(path, seq_len, context)


def _scalar_type(value) -> str:
    return _DTYPES.get(int(value), f"scalar-type-{int(value)}")


def layout(path: Path, options: dict | None = None) -> Layout:
    """Where each constant lies in the .pte (the constant segment's tensors, the delegates' named
    data) and the order `forward`'s instructions read them; the arena is its memory plan."""
    from executorch.exir._serialize._program import _flatbuffer_to_program, _get_extended_header

    options = check_options(OPTIONS, options)
    data = path.read_bytes()
    try:
        header = _get_extended_header(data)
        if header is None or not header.is_valid():
            raise ValueError("no extended header: the constants are not in segments (an old or damaged program)")
        program = _flatbuffer_to_program(data[:header.program_size])
        if any(len(b.storage) for b in program.constant_buffer):
            raise ValueError("its constants are inline in the program flatbuffer (an old layout pocketfit does not read)")
        plans = {p.name: p for p in program.execution_plan}
        plan = plans.get("forward", program.execution_plan[0])
        weights, reads = _pte_layout.program_weights(path.name, data, header.segment_base_offset, program, plan)
    except Exception as e:  # a damaged flatbuffer fails in many ways
        raise InvalidArtifact(f"{path}: cannot read the ExecuTorch program's weight layout: {reason(e)}") from e
    notes = ["order: the `forward` method's chain of instructions; a kernel call's constant arguments in argument order, "
             "and a delegate call's weights (named data it refers to) at the call, though XNNPACK read them once at load.",
             _HELD, "Tables read by embedding/embedding_byte of the token ids (through dim-order copies and views) have "
             "rows set, their per-row scales too: one inference reads only the rows of its ids.",
             "arena: the sum of `forward`'s planned non-constant buffers (its memory plan)."]
    return _layout.build("pte", path, weights.values(), reads, options=options, arena=int(sum(plan.non_const_buffer_sizes)), notes=notes)


_HELD = ("held: ExecuTorch maps the program file; the constants of portable and quantized kernels (embedding tables, "
         "layer norms) are read from the mapping, while the XNNPACK delegate copies and repacks the named data it refers "
         "to into its own memory at load and unmaps it. locked: ExecuTorch's mmap loader mlock()s the constant segment "
         "when it loads it (measured: VmLck = the segment's size, whole and resident after load), so those weights are "
         "mapped but never paged out.")
