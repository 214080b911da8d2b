"""Run one artifact in its own runtime and report latency and quality, as JSON on stdout.

Runs inside whichever virtual environment holds the artifact's runtime (pocketfit's, or a
peer's under benchmarks/.peers/), so it imports nothing but numpy and that runtime. Every
artifact, pocketfit's and the peers', goes through this same code:

    python _peer_harness.py REQUEST.json

REQUEST: {"artifact", "runtime": "onnxruntime"|"executorch", "threads", "iterations", "warmup",
"timing": {"input_ids": [[...]], "attention_mask": [[...]]} (batch 1, the timed length),
"reference": NPZ with per sentence `ids_i`, `mask_i` and the eager torch output `ref_i`,
"compare": "embedding" (mean-pooled over the mask when the artifact gives hidden states) or
"logits" (per token: top-1 agreement and cosine)}.
"""

import json
import sys
import time

import numpy as np


class OnnxRunner:
    def __init__(self, path: str, threads: int):
        import onnxruntime as ort

        # The same plain options for every .onnx: what is compared is the artifact.
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self.session.run(None, {n: feeds[n] for n in self.names})[0]


class PteRunner:
    def __init__(self, path: str, threads: int):
        import executorch.kernels.quantized  # noqa: F401 - quantized embedding kernels, before the program loads
        import torch
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        portable_lib._unsafe_reset_threadpool(threads)  # the Python runtime's one process-wide pool
        self.torch = torch
        self.method = Runtime.get().load_program(path).load_method("forward")

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = self.method.execute([self.torch.from_numpy(ids), self.torch.from_numpy(mask)])
        return out[0].numpy()


def main() -> None:
    request = json.loads(open(sys.argv[1]).read())
    runner = (OnnxRunner if request["runtime"] == "onnxruntime" else PteRunner)(request["artifact"], request["threads"])
    ids = np.array(request["timing"]["input_ids"], dtype=np.int64)
    mask = np.array(request["timing"]["attention_mask"], dtype=np.int64)
    for _ in range(request["warmup"]):
        runner.run(ids, mask)
    times = []
    for _ in range(request["iterations"]):
        start = time.perf_counter()
        runner.run(ids, mask)
        times.append((time.perf_counter() - start) * 1000)

    reference = np.load(request["reference"])
    cosines, agree, tokens = [], 0, 0
    for i in range(len([k for k in reference.files if k.startswith("ref_")])):
        ids_i, mask_i, ref = reference[f"ids_{i}"], reference[f"mask_{i}"], reference[f"ref_{i}"].astype(np.float64)
        out = runner.run(ids_i, mask_i)[0].astype(np.float64)
        if request["compare"] == "embedding":
            if out.ndim == 2:  # hidden states (sequence, hidden): the sentence embedding is their masked mean
                weights = mask_i[0].astype(np.float64)[:, None]
                out = (out * weights).sum(0) / max(weights.sum(), 1e-9)
            cosines.append(float(ref @ out / (np.linalg.norm(ref) * np.linalg.norm(out))))
        else:  # logits (sequence, vocab)
            agree += int((ref.argmax(-1) == out.argmax(-1)).sum())
            tokens += ref.shape[0]
            cosines.extend((ref * out).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(out, axis=-1)))
    result = {"p50_ms": float(np.percentile(times, 50)), "p90_ms": float(np.percentile(times, 90)),
              "cosine_mean": float(np.mean(cosines)), "cosine_min": float(np.min(cosines))}
    if tokens:
        result["top1_agreement"] = agree / tokens
    print(json.dumps(result))


if __name__ == "__main__":
    main()
