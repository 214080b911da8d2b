"""pocketfit beside its peers, optimum-onnx and optimum-executorch, in one run on this machine:
export wall time and peak RSS, artifact bytes, latency in the artifact's runtime and parity with
eager torch, one row per tool × recipe, with ratios to the best peer.

    make bench-peers                      # creates the peers' venvs once, then runs this
    .venv/bin/python benchmarks/peers.py [--output build/bench-peers] [--only pocketfit,optimum-onnx]

Every export (pocketfit's too) runs as a command in a child process: its wall time, and the
peak RSS of the largest process of its tree (wait4's ru_maxrss, which covers the waited-for
descendants). Every artifact then runs in benchmarks/_peer_harness.py, in the venv holding its
runtime: batch 1, 32 tokens, 2 threads, and the fixed sentences against eager torch fp32.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / ".peers"
MAIN = ROOT / ".venv" / "bin"
HARNESS = ROOT / "benchmarks" / "_peer_harness.py"
SEQUENCE, THREADS = 32, 2


class Failed(Exception):
    """An export or a measurement of one row failed."""


@dataclass
class Row:
    tool: str
    task: str
    recipe: str
    runtime: str  # onnxruntime | executorch
    steps: list[list[str]] = field(default_factory=list)  # commands, run one after the other
    artifact: str = ""  # glob under the row's folder
    compare: str = "embedding"  # embedding | logits
    note: str = ""  # set instead of steps: the tool cannot do this job
    venv: Path = MAIN
    result: dict = field(default_factory=dict)

    @property
    def job(self) -> str:
        return f"{self.runtime}/{'fp32' if self.recipe in ('none', 'fp32') else 'quantized'}"


def rows(minilm: Path, fill_mask: Path, out: Path) -> list[Row]:
    onnx_venv, et_venv = PEERS / "optimum-onnx" / "bin", PEERS / "optimum-executorch" / "bin"
    pf = str(MAIN / "pocketfit")
    o_fp32 = out / "optimum-onnx-fp32"
    return [
        Row("pocketfit", "feature-extraction", "none", "onnxruntime",
            [[pf, "export", "minilm", "--format", "onnx", "--quant", "none", "-o", str(out / "pocketfit-onnx-none")]], "model.onnx"),
        Row("optimum-onnx", "feature-extraction", "fp32", "onnxruntime",
            [[str(onnx_venv / "optimum-cli"), "export", "onnx", "-m", str(minilm), "--task", "feature-extraction",
              "--library-name", "transformers", str(o_fp32)]], "model.onnx", venv=onnx_venv),
        Row("pocketfit", "feature-extraction", "int8", "onnxruntime",
            [[pf, "export", "minilm", "--format", "onnx", "--quant", "int8", "-o", str(out / "pocketfit-onnx-int8")]], "model.onnx"),
        # The same job as pocketfit's int8: from the model folder to a quantized file.
        Row("optimum-onnx", "feature-extraction", "int8 (avx2, per-channel)", "onnxruntime",
            [[str(onnx_venv / "optimum-cli"), "export", "onnx", "-m", str(minilm), "--task", "feature-extraction",
              "--library-name", "transformers", str(out / "optimum-onnx-int8-src")],
             [str(onnx_venv / "optimum-cli"), "onnxruntime", "quantize", "--onnx_model", str(out / "optimum-onnx-int8-src"),
              "--avx2", "--per_channel", "-o", str(out / "optimum-onnx-int8")]], "model_quantized.onnx", venv=onnx_venv),
        Row("pocketfit", "feature-extraction", "int8", "executorch",
            [[pf, "export", "minilm", "--format", "pte", "--quant", "int8", "-o", str(out / "pocketfit-pte-int8")]], "model.pte"),
        Row("optimum-executorch", "feature-extraction", "-", "executorch",
            # Its tasks: fill-mask, text-generation, ASR, image classification, seq2seq, image-text-to-text.
            note="no such task in optimum-executorch 1.1.0; see fill-mask below"),
        Row("optimum-executorch", "fill-mask", "8da4w + 8w emb", "executorch",
            [[str(et_venv / "optimum-cli"), "export", "executorch", "-m", str(fill_mask), "--task", "fill-mask",
              "--recipe", "xnnpack", "--qlinear", "8da4w", "--qembedding", "8w", "-o", str(out / "optimum-et-8da4w")]],
            "*.pte", "logits", venv=et_venv),
        Row("optimum-executorch", "fill-mask", "8da8w", "executorch",
            [[str(et_venv / "optimum-cli"), "export", "executorch", "-m", str(fill_mask), "--task", "fill-mask",
              "--recipe", "xnnpack", "--qlinear", "8da8w", "-o", str(out / "optimum-et-8da8w")]],
            "*.pte", "logits", venv=et_venv),
    ]


def timed(command: list[str], env: dict, log: Path) -> tuple[float, int]:
    """Run `command`; return its wall seconds and the peak RSS (bytes) of its process tree."""
    with log.open("ab") as sink:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise Failed(f"{' '.join(Path(c).name for c in command[:3])} ... exited {child.returncode}; see {log}")
    return seconds, usage.ru_maxrss * 1024


def references(minilm: Path, fill_mask: Path, out: Path) -> dict[str, Path]:
    """Eager torch fp32 outputs on the fixed sentences, and the 32-token input that is timed."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    from pocketfit.converter.texts import sentences

    tokenizer = AutoTokenizer.from_pretrained(minilm)
    files = {}
    for name, folder, load in (("embedding", minilm, AutoModel), ("logits", fill_mask, AutoModelForMaskedLM)):
        model = load.from_pretrained(folder).eval()
        arrays = {}
        for i, text in enumerate(sentences()):
            enc = tokenizer(text, return_tensors="np")
            ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
            with torch.no_grad():
                got = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
            if name == "embedding":  # sentence-transformers' mean pooling, as pocketfit's graph computes it
                hidden, weights = got.last_hidden_state[0].numpy(), mask[0][:, None]
                ref = (hidden * weights).sum(0) / weights.sum()
            else:
                ref = got.logits[0].numpy()
            arrays |= {f"ids_{i}": ids, f"mask_{i}": mask, f"ref_{i}": ref}
        files[name] = out / f"reference-{name}.npz"
        np.savez(files[name], **arrays)
    long = " ".join(sentences())
    enc = tokenizer(long, truncation=True, max_length=SEQUENCE, return_tensors="np")
    files["timing"] = {"input_ids": enc["input_ids"].tolist(), "attention_mask": enc["attention_mask"].tolist()}
    return files


def fill_mask_model(minilm: Path, folder: Path) -> Path:
    """MiniLM's encoder under a masked-LM head, seeded: the checkpoint has no head, and both the
    peer's export and the eager reference must read the same weights."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    torch.manual_seed(0)
    AutoModelForMaskedLM.from_pretrained(minilm).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(folder)
    return folder


def measure(row: Row, folder: Path, refs: dict, iterations: int, log: Path) -> dict:
    artifact = next(folder.glob(row.artifact), None)
    if artifact is None:
        raise Failed(f"no {row.artifact} in {folder}")
    request = {"artifact": str(artifact), "runtime": row.runtime, "threads": THREADS, "iterations": iterations,
               "warmup": 10, "timing": refs["timing"], "reference": str(refs[row.compare]), "compare": row.compare}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(request, f)
    try:
        done = subprocess.run([str(row.venv / "python"), str(HARNESS), f.name], capture_output=True, text=True,
                              env=os.environ | {"OMP_NUM_THREADS": str(THREADS)})
    finally:
        os.unlink(f.name)
    with log.open("a") as sink:
        sink.write(done.stderr)
    if done.returncode != 0:
        raise Failed(f"the harness failed on {artifact.name}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"bytes": artifact.stat().st_size}


def table(all_rows: list[Row]) -> list[list[str]]:
    header = ["tool", "task", "recipe", "runtime", "export s", "peak RSS", "bytes", "p50 ms", "p90 ms", "quality",
              "export x", "bytes x", "p50 x"]
    best: dict[str, dict[str, float]] = {}
    for row in all_rows:
        if row.tool != "pocketfit" and row.result:
            group = best.setdefault(row.job, {})
            for key in ("seconds", "bytes", "p50_ms"):
                group[key] = min(group.get(key, float("inf")), row.result[key])
    lines = [header]
    for row in all_rows:
        if not row.result:
            lines.append([row.tool, row.task, row.recipe, row.runtime, "-", "-", "-", "-", "-", row.note, "", "", ""])
            continue
        r, peer = row.result, best.get(row.job, {})
        quality = f"cos {r['cosine_mean']:.4f} (min {r['cosine_min']:.4f})"
        if "top1_agreement" in r:
            quality = f"top-1 {r['top1_agreement']:.3f}, logit cos {r['cosine_mean']:.4f}"
        ratio = lambda key: f"{r[key] / peer[key]:.2f}" if key in peer else "-"  # noqa: E731
        lines.append([row.tool, row.task, row.recipe, row.runtime, f"{r['seconds']:.1f}", f"{r['peak_rss'] / 2**20:.0f} MiB",
                      f"{r['bytes'] / 1e6:.2f} MB", f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}", quality,
                      ratio("seconds"), ratio("bytes"), ratio("p50_ms")])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "bench-peers")
    parser.add_argument("--only", help="comma-separated tools to run (default: all)")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    from pocketfit.converter.models import resolve
    from pocketfit.table import render

    out = args.output.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    log = out / "log.txt"
    minilm = resolve("minilm")[0]
    fill_mask = fill_mask_model(minilm, out / "minilm-fill-mask")
    refs = references(minilm, fill_mask, out)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    selected = [r for r in rows(minilm, fill_mask, out) if not args.only or r.tool in args.only.split(",")]
    for row in selected:
        if row.note:
            continue
        print(f"… {row.tool} {row.recipe} ({row.runtime})", file=sys.stderr, flush=True)
        seconds, peak = 0.0, 0
        try:
            for command in row.steps:
                s, p = timed(command, env, log)
                seconds, peak = seconds + s, max(peak, p)
            row.result = {"seconds": seconds, "peak_rss": peak} | measure(row, Path(row.steps[-1][-1]), refs, args.iterations, log)
        except Failed as e:  # the row says so in the table; the other tools still run
            row.note = f"FAILED: {e}"
            print(f"✗ {row.tool} {row.recipe}: {e}", file=sys.stderr, flush=True)
            continue
        print(f"✓ {row.tool} {row.recipe}: {json.dumps(row.result)}", file=sys.stderr, flush=True)
    print(f"MiniLM (all-MiniLM-L6-v2), {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()}, {_cpu()}, Python {platform.python_version()}; latency: batch 1 x {SEQUENCE} tokens, "
          f"{THREADS} threads, {args.iterations} runs after 10 warm-up; x = ratio to the best peer doing the same job "
          f"(same runtime, fp32 or quantized)\n")
    print(render(table(selected), right={4, 5, 6, 7, 8, 10, 11, 12}))


def _cpu() -> str:
    with open("/proc/cpuinfo") as f:
        name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown CPU")
    return f"{name} ({len(os.sched_getaffinity(0))} cores)"


if __name__ == "__main__":
    main()
