"""pocketfit beside its peers, optimum-onnx and optimum-executorch, in one run on this machine:
export wall time and peak RSS, artifact bytes, latency in the artifact's runtime and parity with
eager torch, one row per tool × recipe, with ratios to the best peer.

    make bench-peers                      # creates the peers' venvs once, then runs this
    .venv/bin/python benchmarks/peers.py [--output build/bench-peers] [--only pocketfit,optimum-onnx]
        [--tasks feature-extraction,text-classification,text-generation]

Three jobs, each on a model every tool reads from the same folder, made once per run under the
output folder (nothing is downloaded): MiniLM as it ships (feature-extraction; fill-mask for
optimum-executorch, under a seeded MLM head), MiniLM as a 3-class classifier whose last two
layers and head are fitted once (seeded, 20 steps) to tell statements, questions and exclamations
apart (text-classification), and a tiny random-weight Llama (text-generation: one decode step at
context 32 over a KV cache).

Every export (pocketfit's too) runs as a command in a child process: its wall time, and the
peak RSS of the largest process of its tree (wait4's ru_maxrss, which covers the waited-for
descendants). An export that takes under a minute runs three times, from an empty output folder
each time, and its median time is reported: one run of a few seconds moves by ±15% here. Every
artifact then runs in benchmarks/_peer_harness.py, in the venv holding its runtime: batch 1, 32
tokens (for a decoder: the 32nd token, after 31 fed one by one), 2 threads, and the fixed
sentences against eager torch fp32. Around each latency measurement the machine's load is read
(runtime/machine_load.py: the CPU time other processes took); a measurement others loaded is
taken again, up to three times, and a row never measured quiet is flagged BUSY in the table.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / ".peers"
MAIN = ROOT / ".venv" / "bin"
HARNESS = ROOT / "benchmarks" / "_peer_harness.py"
SEQUENCE, THREADS = 32, 2
TASKS = ("feature-extraction", "text-classification", "text-generation")
EXPORT_RUNS, REPEAT_BELOW = 3, 60.0  # exports shorter than REPEAT_BELOW seconds report the median of EXPORT_RUNS
QUIET_TRIES = 3  # a latency measured while others loaded the CPU is taken again, up to this many times in all
MAX_CONTEXT = 256  # text-generation: the static KV cache of pocketfit's and optimum-executorch's programs (pocketfit's default)


# The model each kind of comparison runs on (keys of main's `models`).
MODEL_OF = {"embedding": "minilm", "logits": "fill-mask", "labels": "classifier", "decode": "decoder"}


class Failed(Exception):
    """An export or a measurement of one row failed."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail or message  # the failing command's own last error line


@dataclass
class Row:
    tool: str
    task: str
    recipe: str
    runtime: str  # onnxruntime | executorch
    steps: list[list[str]] = field(default_factory=list)  # commands, run one after the other
    artifact: str = ""  # glob under the row's folder
    compare: str = "embedding"  # embedding | logits | labels | decode: see _peer_harness.py
    note: str = ""  # set instead of steps: the tool cannot do this job
    venv: Path = MAIN
    result: dict = field(default_factory=dict)
    # The job a row stands in for, when its task differs (optimum-executorch's fill-mask for
    # feature-extraction): ratios are taken within a job, and --tasks selects by it.
    stands_for: str = ""
    # The steps are expected to fail: they show that the tool has no such task, and its own
    # last error line becomes the note. (Should they succeed, the row is measured as any other.)
    probe: bool = False
    reason: str = ""  # a probe's note, before the tool's own error line

    @property
    def job_task(self) -> str:
        return self.stands_for or self.task

    @property
    def job(self) -> str:
        return f"{self.job_task}/{self.runtime}/{'fp32' if self.recipe in ('none', 'fp32') else 'quantized'}"


def rows(models: dict[str, Path], out: Path) -> list[Row]:
    minilm, fill_mask = models["minilm"], models["fill-mask"]
    onnx_venv, et_venv = PEERS / "optimum-onnx" / "bin", PEERS / "optimum-executorch" / "bin"
    pf = str(MAIN / "pocketfit")
    o_fp32 = out / "optimum-onnx-fp32"
    minilm_rows = [
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
        # Its tasks: fill-mask, text-generation, ASR, image classification, seq2seq, image-text-to-text;
        # run, not assumed, as for text-classification below.
        Row("optimum-executorch", "feature-extraction", "8da8w", "executorch",
            [[str(et_venv / "optimum-cli"), "export", "executorch", "-m", str(minilm), "--task", "feature-extraction",
              "--recipe", "xnnpack", "--qlinear", "8da8w", "-o", str(out / "optimum-et-fe-8da8w")]],
            "*.pte", venv=et_venv, probe=True, reason="no such task in optimum-executorch 1.1.0 (see fill-mask below); its export exits 1"),
        Row("optimum-executorch", "fill-mask", "8da4w + 8w emb", "executorch",
            [[str(et_venv / "optimum-cli"), "export", "executorch", "-m", str(fill_mask), "--task", "fill-mask",
              "--recipe", "xnnpack", "--qlinear", "8da4w", "--qembedding", "8w", "-o", str(out / "optimum-et-8da4w")]],
            "*.pte", "logits", venv=et_venv),
        Row("optimum-executorch", "fill-mask", "8da8w", "executorch",
            [[str(et_venv / "optimum-cli"), "export", "executorch", "-m", str(fill_mask), "--task", "fill-mask",
              "--recipe", "xnnpack", "--qlinear", "8da8w", "-o", str(out / "optimum-et-8da8w")]],
            "*.pte", "logits", venv=et_venv),
    ]
    # fill-mask is the stand-in for feature-extraction on executorch (see above)
    for row in minilm_rows[-2:]:
        row.stands_for = "feature-extraction"
    return minilm_rows + classification_rows(models["classifier"], out) + generation_rows(models["decoder"], out)


def _optimum_onnx(model: Path, task: str, out: Path, name: str, quantize: bool) -> list[list[str]]:
    """optimum-onnx's commands for one row: export, and for int8 `onnxruntime quantize --avx2 --per_channel`."""
    cli = str(PEERS / "optimum-onnx" / "bin" / "optimum-cli")
    export = out / (f"{name}-src" if quantize else name)
    steps = [[cli, "export", "onnx", "-m", str(model), "--task", task, "--library-name", "transformers", str(export)]]
    if quantize:
        steps.append([cli, "onnxruntime", "quantize", "--onnx_model", str(export), "--avx2", "--per_channel", "-o", str(out / name)])
    return steps


def classification_rows(classifier: Path, out: Path) -> list[Row]:
    onnx_venv, et_venv = PEERS / "optimum-onnx" / "bin", PEERS / "optimum-executorch" / "bin"
    pf, task = str(MAIN / "pocketfit"), "text-classification"

    def pocketfit(fmt: str, quant: str) -> list[list[str]]:
        return [[pf, "export", str(classifier), "--task", task, "--format", fmt, "--quant", quant,
                 "-o", str(out / f"pocketfit-cls-{fmt}-{quant}")]]

    return [
        Row("pocketfit", task, "none", "onnxruntime", pocketfit("onnx", "none"), "model.onnx", "labels"),
        Row("optimum-onnx", task, "fp32", "onnxruntime", _optimum_onnx(classifier, task, out, "optimum-onnx-cls-fp32", False),
            "model.onnx", "labels", venv=onnx_venv),
        Row("pocketfit", task, "int8", "onnxruntime", pocketfit("onnx", "int8"), "model.onnx", "labels"),
        Row("optimum-onnx", task, "int8 (avx2, per-channel)", "onnxruntime",
            _optimum_onnx(classifier, task, out, "optimum-onnx-cls-int8", True), "model_quantized.onnx", "labels", venv=onnx_venv),
        Row("pocketfit", task, "int8", "executorch", pocketfit("pte", "int8"), "model.pte", "labels"),
        # Run, not assumed: its task registry has no such task (`--task` help lists transformers' tasks, not
        # its own), and the row carries the export's own error line.
        Row("optimum-executorch", task, "8da8w", "executorch",
            [[str(et_venv / "optimum-cli"), "export", "executorch", "-m", str(classifier), "--task", task,
              "--recipe", "xnnpack", "--qlinear", "8da8w", "-o", str(out / "optimum-et-cls-8da8w")]],
            "*.pte", "labels", venv=et_venv, probe=True,
            # It registers fill-mask, text-generation, text2text-generation, automatic-speech-recognition,
            # image-classification and image-text-to-text; the export looks the task up and calls None.
            reason="no such task in optimum-executorch 1.1.0; its export exits 1"),
    ]


def generation_rows(decoder: Path, out: Path) -> list[Row]:
    """One decode step over a KV cache. pocketfit and optimum-executorch fix the cache at
    MAX_CONTEXT positions; optimum-onnx's with-past graph takes a past of any length."""
    onnx_venv, et_venv = PEERS / "optimum-onnx" / "bin", PEERS / "optimum-executorch" / "bin"
    pf, task = str(MAIN / "pocketfit"), "text-generation"

    def pocketfit(fmt: str, quant: str) -> list[list[str]]:
        return [[pf, "export", str(decoder), "--task", task, "--format", fmt, "--quant", quant,
                 "--max-context", str(MAX_CONTEXT), "-o", str(out / f"pocketfit-gen-{fmt}-{quant}")]]

    def optimum_et(name: str, *quant: str) -> list[list[str]]:
        # Its own decoder path: custom SDPA and KV-cache ops, the cache fixed at --max_seq_len.
        return [[str(et_venv / "optimum-cli"), "export", "executorch", "-m", str(decoder), "--task", task,
                 "--recipe", "xnnpack", "--use_custom_sdpa", "--use_custom_kv_cache", "--max_seq_len", str(MAX_CONTEXT),
                 *quant, "-o", str(out / name)]]

    return [
        Row("pocketfit", task, "none", "onnxruntime", pocketfit("onnx", "none"), "model.onnx", "decode"),
        Row("optimum-onnx", task, "fp32", "onnxruntime",
            _optimum_onnx(decoder, "text-generation-with-past", out, "optimum-onnx-gen-fp32", False),
            "model.onnx", "decode", venv=onnx_venv),
        Row("pocketfit", task, "int8", "onnxruntime", pocketfit("onnx", "int8"), "model.onnx", "decode"),
        Row("optimum-onnx", task, "int8 (avx2, per-channel)", "onnxruntime",
            _optimum_onnx(decoder, "text-generation-with-past", out, "optimum-onnx-gen-int8", True),
            "model_quantized.onnx", "decode", venv=onnx_venv),
        Row("pocketfit", task, "none", "executorch", pocketfit("pte", "none"), "model.pte", "decode"),
        Row("optimum-executorch", task, "fp32", "executorch", optimum_et("optimum-et-gen-fp32"), "*.pte", "decode", venv=et_venv),
        Row("pocketfit", task, "int8", "executorch", pocketfit("pte", "int8"), "model.pte", "decode"),
        Row("optimum-executorch", task, "8da8w + 8w emb", "executorch",
            optimum_et("optimum-et-gen-8da8w", "--qlinear", "8da8w", "--qembedding", "8w"), "*.pte", "decode", venv=et_venv),
    ]


# Runs the command and reports its wall time and peak RSS. Linux carries a process's peak RSS
# across fork and exec (exec keeps the larger of the child's and the old memory's high-water
# mark), so a command started straight from this process, which holds torch and the reference
# models, would report at least this process's RSS. A fresh small interpreter starts it instead.
_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"seconds": time.perf_counter() - start, "maxrss": usage.ru_maxrss * 1024,
               "returncode": os.waitstatus_to_exitcode(status)}, f)
"""


def timed(command: list[str], env: dict, log: Path) -> tuple[float, int]:
    """Run `command`; return its wall seconds and the peak RSS (bytes) of its process tree
    (wait4's ru_maxrss: the largest of the waited-for processes)."""
    with log.open("ab") as sink, tempfile.NamedTemporaryFile("r", suffix=".json") as report:
        offset = sink.tell()
        subprocess.run([sys.executable, "-c", _LAUNCHER, report.name, *command], stdout=sink, stderr=subprocess.STDOUT,
                       env=env, check=True)
        result = json.loads(Path(report.name).read_text())
    if result["returncode"] != 0:
        detail = _last_error(log, offset)
        raise Failed(f"{' '.join(Path(c).name for c in command[:3])} ... exited {result['returncode']}: {detail}", detail)
    return result["seconds"], result["maxrss"]


def exported(row: Row, out: Path, env: dict, log: Path, progress) -> tuple[float, int]:
    """Run the row's export steps; return their wall seconds (the median of EXPORT_RUNS runs when
    one run takes under REPEAT_BELOW seconds) and the largest peak RSS of any run. Each run starts
    without the outputs of the one before, so no tool can reuse its own work."""
    runs = []
    while not runs or (len(runs) < EXPORT_RUNS and runs[0][0] < REPEAT_BELOW):
        for command in row.steps:
            target = Path(command[-1])  # every export command names its output last
            if target.is_relative_to(out) and target != out:
                shutil.rmtree(target, ignore_errors=True)
        seconds, peak = 0.0, 0
        for command in row.steps:
            what = " ".join(Path(c).name for c in command[:3] if not c.startswith("-"))
            with progress.step(f"{what} (run {len(runs) + 1})"):
                s, p = timed(command, env, log)
            seconds, peak = seconds + s, max(peak, p)
        runs.append((seconds, peak))
    return sorted(s for s, _ in runs)[len(runs) // 2], max(p for _, p in runs)


def _last_error(log: Path, offset: int) -> str:
    """The command's own last word: its last line that reads as an error, else its last line."""
    with log.open("rb") as f:
        f.seek(offset)
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("pocketfit:") or re.match(r"[\w.]*(Error|Exception)\b", line)]
    return (errors or lines or ["no output"])[-1][:300]


def references(models: dict[str, Path], compares: set[str], out: Path) -> dict:
    """Eager torch fp32 outputs on the fixed sentences, and the 32-token input that is timed."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    from pocketfit.converter.texts import sentences

    tokenizer = AutoTokenizer.from_pretrained(models["minilm"])
    loaders = {"embedding": AutoModel, "logits": AutoModelForMaskedLM, "labels": AutoModelForSequenceClassification,
               "decode": AutoModelForCausalLM}
    files = {}
    for name in sorted(compares):
        model = loaders[name].from_pretrained(models[MODEL_OF[name]]).eval()
        arrays = {}
        for i, text in enumerate(sentences()):
            enc = tokenizer(text, return_tensors="np")
            ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
            with torch.no_grad():
                if name == "decode":  # next-token logits at every position, the whole sentence at once
                    got = model(input_ids=torch.from_numpy(ids))
                else:
                    got = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
            if name == "embedding":  # sentence-transformers' mean pooling, as pocketfit's graph computes it
                hidden, weights = got.last_hidden_state[0].numpy(), mask[0][:, None]
                ref = (hidden * weights).sum(0) / weights.sum()
            else:  # logits: (sequence, vocab) for fill-mask and decode, (classes,) for labels
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


LABELS = {0: "statement", 1: "question", 2: "exclamation"}


def classifier_model(minilm: Path, folder: Path) -> Path:
    """MiniLM under a 3-class sequence-classification head, fitted with a fixed seed to tell
    statements, questions and exclamations apart by their last mark (the idea of the tests'
    fixture, tests/conftest.py make_tiny_classifier, on MiniLM). A random head puts every sentence
    in one class by a hair, which makes label agreement meaningless; fitted, the fixed sentences'
    top class leads by 1.7 or more. Only the last two encoder layers, the pooler and the head
    learn, from the states before them computed once: 20 steps, well under a minute (a head
    alone on the frozen [CLS] state, which MiniLM never trained, gives near ties)."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pocketfit.converter.texts import calibration  # no sentence in common with the fixed ones

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        minilm, num_labels=len(LABELS), id2label=LABELS, label2id={v: k for k, v in LABELS.items()}).eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    texts = [text.rstrip(".!?") + mark for text in calibration() for mark in ".?!"]
    labels = torch.tensor([i % 3 for i in range(len(texts))])
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    trained = model.bert.encoder.layer[-2:]
    with torch.no_grad():
        states = model.bert(**batch, output_hidden_states=True).hidden_states[-3]
    mask = (1.0 - batch["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    optimizer = torch.optim.AdamW([*trained.parameters(), *model.bert.pooler.parameters(), *model.classifier.parameters()], lr=3e-4)
    model.train()
    for _ in range(20):
        hidden = states
        for layer in trained:
            hidden = layer(hidden, attention_mask=mask)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        logits = model.classifier(model.dropout(model.bert.pooler(hidden)))
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def decoder_model(minilm: Path, folder: Path) -> Path:
    """A tiny random-weight Llama (4 layers, hidden 128, grouped-query attention; 8.6 M parameters,
    7.8 M of them in the embedding table and the LM head) with MiniLM's tokenizer. Saved by
    transformers 5; both peers' transformers (4.57, 5.0.0rc1) load it to the same logits."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=30522, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=False)
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(folder)
    return folder


def measure(row: Row, folder: Path, refs: dict, iterations: int, log: Path, progress) -> dict:
    """The harness's figures, with the machine's load around them. A run that others loaded
    (machine_load.BUSY_CORES) is measured up to QUIET_TRIES times in all; if none was quiet, the
    quietest is kept and the row is flagged BUSY in the table."""
    from pocketfit.runtime.machine_load import Watch

    runs = []
    for attempt in range(QUIET_TRIES):
        label = f"measuring in {row.runtime}" + (f" (again: the machine was busy, try {attempt + 1} of {QUIET_TRIES})" if attempt else "")
        with progress.step(label), Watch() as watch:
            result = _harness(row, folder, refs, iterations, log)
        load = watch.result
        runs.append((load.others_cores if load else 0.0, result, load))
        if load is None or not load.busy:
            break
    _, result, load = min(runs, key=lambda run: run[0])
    return result | {"machine_load": load.to_dict() if load else None}


def _harness(row: Row, folder: Path, refs: dict, iterations: int, log: Path) -> dict:
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


def machine(result: dict) -> str:
    """Whether the latency was measured on a quiet machine: BUSY rows' p50 and p90 are not to be trusted."""
    load = result.get("machine_load")
    if load is None:
        return "unknown"
    return f"BUSY {load['others_cores']:.1f} cores" if load["busy"] else "quiet"


def quality(row: Row) -> str:
    r = row.result
    if row.compare == "embedding":
        return f"cos {r['cosine_mean']:.4f} (min {r['cosine_min']:.4f})"
    if row.compare == "labels":
        return f"labels {r['top1_agreement']:.3f} of {r['compared']}, logit cos {r['cosine_mean']:.4f} (min {r['cosine_min']:.4f})"
    if row.compare == "decode":
        return f"next-token {r['top1_agreement']:.3f} of {r['compared']}, logit cos {r['cosine_mean']:.4f}"
    return f"top-1 {r['top1_agreement']:.3f}, logit cos {r['cosine_mean']:.4f}"


def table(all_rows: list[Row]) -> list[list[str]]:
    header = ["tool", "task", "recipe", "runtime", "export s", "peak RSS", "bytes", "p50 ms", "p90 ms", "machine", "quality",
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
            lines.append([row.tool, row.task, row.recipe, row.runtime, "-", "-", "-", "-", "-", "-", row.note, "", "", ""])
            continue
        r, peer = row.result, best.get(row.job, {})
        ratio = lambda key: f"{r[key] / peer[key]:.2f}" if key in peer else "-"  # noqa: E731
        lines.append([row.tool, row.task, row.recipe, row.runtime, f"{r['seconds']:.1f}", f"{r['peak_rss'] / 2**20:.0f} MiB",
                      f"{r['bytes'] / 1e6:.2f} MB", f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}", machine(r), quality(row),
                      ratio("seconds"), ratio("bytes"), ratio("p50_ms")])
    return lines


def _names(value: str | None, known: tuple[str, ...] | set[str], what: str) -> set[str]:
    names = set(value.split(",")) if value else set(known)
    unknown = names - set(known)
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "bench-peers")
    parser.add_argument("--only", help="comma-separated tools to run (default: all)")
    parser.add_argument("--tasks", help=f"comma-separated jobs to run (default: all): {','.join(TASKS)}")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    from pocketfit.converter.models import resolve
    from pocketfit.cli import _quiet_third_party
    from pocketfit.progress import Console
    from pocketfit.table import render

    tools = _names(args.only, ("pocketfit", "optimum-onnx", "optimum-executorch"), "tool")
    tasks = _names(args.tasks, TASKS, "task")
    out = args.output.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    log = out / "log.txt"
    minilm = resolve("minilm")[0]
    models = {"minilm": minilm, "fill-mask": out / "minilm-fill-mask", "classifier": out / "minilm-classifier",
              "decoder": out / "tiny-llama"}
    selected = [r for r in rows(models, out) if r.tool in tools and r.job_task in tasks]
    compares = {r.compare for r in selected if r.steps}
    # Each model once, before any export, so that every tool reads the same weights.
    for compare, make in (("logits", fill_mask_model), ("labels", classifier_model), ("decode", decoder_model)):
        if compare in compares:
            make(minilm, models[MODEL_OF[compare]])
    _quiet_third_party()  # transformers' bars and torch's advice would break the progress lines
    progress = Console()
    with progress.step("the torch references on the fixed sentences"):
        refs = references(models, compares, out)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for row in selected:
        if row.note:
            continue
        try:
            with progress.step(f"{row.tool} {row.task} {row.recipe} ({row.runtime})"):
                seconds, peak = exported(row, out, env, log, progress)
                measured = measure(row, Path(row.steps[-1][-1]), refs, args.iterations, log, progress)
            row.result = {"seconds": seconds, "peak_rss": peak} | measured
        except Failed as e:  # the row says so in the table; the other tools still run
            row.note = f"{row.reason}: {e.detail}" if row.probe else f"FAILED: {e}"
            print(f"✗ {row.tool} {row.task} {row.recipe}: {e}", file=sys.stderr, flush=True)
            continue
        print(f"  {json.dumps(row.result)}", file=sys.stderr, flush=True)
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {_cpu()}, "
          f"Python {platform.python_version()}; {THREADS} threads, {args.iterations} runs after 10 warm-up; "
          f"x = ratio to the best peer doing the same job (same task, runtime, fp32 or quantized)")
    for task in (t for t in TASKS if t in tasks):
        print(f"  {task}: {JOBS[task]}")
    print()
    from pocketfit.runtime.machine_load import BUSY_CORES

    print(render(table(selected), right={4, 5, 6, 7, 8, 11, 12, 13}))
    busy = [r for r in selected if r.result and (r.result.get("machine_load") or {}).get("busy")]
    if busy:
        print(f"\n{len(busy)} row(s) BUSY: other processes used more than {BUSY_CORES} of a core while they were measured "
              f"(and on every one of {QUIET_TRIES} tries); their p50, p90 and p50 x are not to be trusted: run again on a quiet machine")


JOBS = {
    "feature-extraction": f"all-MiniLM-L6-v2, batch 1 x {SEQUENCE} tokens; optimum-executorch's fill-mask stands in",
    "text-classification": f"all-MiniLM-L6-v2 + a fitted 3-class head, batch 1 x {SEQUENCE} tokens; "
                           "label agreement on the 40 fixed sentences",
    "text-generation": f"tiny random Llama (4 x 128), one decode step at context {SEQUENCE} ({SEQUENCE - 1} tokens fed "
                       f"before, KV cache of {MAX_CONTEXT} where fixed); next-token agreement, teacher-forced, "
                       "at every position of the 40 fixed sentences",
}


def _cpu() -> str:
    with open("/proc/cpuinfo") as f:
        name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown CPU")
    return f"{name} ({len(os.sched_getaffinity(0))} cores)"


if __name__ == "__main__":
    main()
