"""The demo: the embedded MiniLM exported to ONNX fp32 and int8, verified, measured, and checked
against every built-in phone — the whole first path in one table."""

from pathlib import Path

from .converter import Int8Dynamic, NoQuant, Onnx, export, load
from .progress import Console
from .runtime import cost, devices, fit, measure
from .table import render
from .units import mib


def run(output: Path) -> str:
    progress = Console()
    with progress.step("Loading minilm (all-MiniLM-L6-v2, embedded)"):
        model = load("minilm")
    phones = list(devices.builtin().values())
    rows = [["format", "quant", "size", "vs fp32", "cosine mean", "peak RSS", "model RSS", "p50"] + [d.id for d in phones]]
    fp32_bytes = None
    for recipe in (NoQuant(), Int8Dynamic()):
        artifact = export(model, output / f"onnx-{recipe.name}", Onnx(), recipe, progress=progress)
        with progress.step(f"Measuring {artifact.path} in a child process"):
            m = measure(artifact.path)
        fp32_bytes = fp32_bytes or m.bytes
        predicted = {d.id: cost.phone_figures(artifact.path, d, seq_len=m.seq_len) for d in phones}
        rows.append([
            artifact.manifest.format,
            recipe.name,
            mib(m.bytes),
            f"{m.bytes / fp32_bytes:.2f}x",
            f"{artifact.manifest.parity.metrics['cosine_mean']:.4f}",
            mib(m.peak_rss),
            mib(m.model_rss),
            f"{m.p50_ms:.1f} ms",
        ] + [("fits" if fit(m, d).fits else "DOES NOT FIT") + _predicted(predicted[d.id]) for d in phones])
    notes = (
        f"\nParity: against torch fp32 on {artifact.manifest.parity.inputs} fixed sentences, run in onnxruntime.\n"
        f"Peak RSS: the measuring process's high-water mark (Python, numpy, onnxruntime and the model); "
        f"model RSS: what the model added to it.\n"
        f"Latency: p50 is batch 1 x {m.seq_len} tokens measured on this machine. Under each phone, after the verdict: the p50 "
        f"PREDICTED there by the latency model (pocketfit profile --device D prints its band and basis; '?' where a profile "
        f"lacks CPU facts).\n"
        f"Verdict: model RSS plus onnxruntime's own footprint on a phone within each app budget (pocketfit devices).\n"
        f"Artifacts and manifests: {output}/"
    )
    return render(rows, right={2, 3, 4, 5, 6, 7}) + "\n" + notes


def _predicted(figure: dict) -> str:
    return f", ~{figure['p50_ms']:.3g} ms" if figure["predicted"] else ", ? ms"
