"""Run one artifact in its own runtime and report latency and quality, as JSON on stdout.

Runs inside whichever virtual environment holds the artifact's runtime (pocketfit's, or a
peer's under benchmarks/.peers/), so it imports nothing but numpy and that runtime. Every
artifact, pocketfit's and the peers', goes through this same code:

    python _peer_harness.py REQUEST.json

REQUEST: {"artifact", "runtime": "onnxruntime"|"executorch", "threads", "iterations", "warmup",
"timing": {"input_ids": [[...]], "attention_mask": [[...]]} (batch 1, the timed length),
"reference": NPZ with per sentence `ids_i`, `mask_i` and the eager torch output `ref_i`,
"compare": one of
  "embedding"  the sentence embedding (mean-pooled over the mask when the artifact gives hidden
               states): cosine;
  "logits"     per-token logits (fill-mask): top-1 agreement and cosine per token;
  "labels"     one row of class logits per sentence (text-classification): label agreement and
               cosine of the logits;
  "decode"     a decoder, fed one token at a time over its KV cache: at every position its
               next-token logits against eager torch on the same prefix (teacher-forced), top-1
               agreement and cosine; the timed call is the decode step of the last timing token
               after the ones before it were fed (context = the timing length)}.

Decoders are driven through their artifact's own interface: pocketfit's .onnx (input_ids,
position, key_cache, value_cache -> logits and the updated caches), optimum-onnx's
with-past .onnx (input_ids, attention_mask, position_ids, past_key_values.* -> logits,
present.*), and a .pte taking (input_ids, position) with the cache inside the program
(pocketfit's and optimum-executorch's alike).
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


def _executorch_program(path: str, threads: int):
    import executorch.kernels.quantized  # noqa: F401 - quantized embedding kernels, before the program loads
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    try:  # optimum-executorch's custom SDPA and KV-cache ops, where the runtime ships them
        from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401
    except ImportError:
        pass
    portable_lib._unsafe_reset_threadpool(threads)  # the Python runtime's one process-wide pool
    return Runtime.get().load_program(path)


class PteRunner:
    def __init__(self, path: str, threads: int):
        import torch

        self.torch = torch
        self.method = _executorch_program(path, threads).load_method("forward")

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = self.method.execute([self.torch.from_numpy(ids), self.torch.from_numpy(mask)])
        return out[0].numpy()


class OnnxDecoder:
    """One token per call; the KV cache is carried from each call's outputs to the next's inputs."""

    def __init__(self, path: str, threads: int):
        self.runner = OnnxRunner(path, threads)
        self.inputs = {i.name: i for i in self.runner.session.get_inputs()}
        self.outputs = [o.name for o in self.runner.session.get_outputs()]
        self.optimum = any(n.startswith("past_key_values.") for n in self.inputs)
        self.reset()

    def reset(self) -> None:
        if self.optimum:  # past of length 0: (batch, kv heads, 0, head dim)
            self.cache = {n: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32)
                          for n, i in self.inputs.items() if n.startswith("past_key_values.")}
        else:  # pocketfit: fixed-size caches, (layers, batch, kv heads, max context, head dim)
            self.cache = {n: np.zeros(self.inputs[n].shape, np.float32) for n in ("key_cache", "value_cache")}

    def step(self, token: int, position: int, commit: bool = True) -> np.ndarray:
        ids = np.array([[token]], np.int64)
        if self.optimum:
            feeds = {"input_ids": ids, "attention_mask": np.ones((1, position + 1), np.int64),
                     "position_ids": np.array([[position]], np.int64)}
        else:
            feeds = {"input_ids": ids, "position": np.array([position], np.int64)}
        got = dict(zip(self.outputs, self.runner.session.run(None, feeds | self.cache)))
        if commit:
            if self.optimum:
                self.cache = {n: got[n.replace("past_key_values.", "present.")] for n in self.cache}
            else:
                self.cache = {n: got[f"{n}_out"] for n in self.cache}
        return got["logits"].reshape(-1, got["logits"].shape[-1])[-1]


class PteDecoder:
    """One token per call at its position; the cache is a mutable buffer inside the program, and a
    step writes only its own position, so repeating the last step times it without moving on."""

    def __init__(self, path: str, threads: int):
        import torch

        self.torch = torch
        self.program = _executorch_program(path, threads)
        self.reset()

    def reset(self) -> None:
        self.method = self.program.load_method("forward")

    def step(self, token: int, position: int, commit: bool = True) -> np.ndarray:
        out = self.method.execute([self.torch.tensor([[token]]), self.torch.tensor([position])])[0].numpy()
        return out.reshape(-1, out.shape[-1])[-1]


def _time(call, request) -> list[float]:
    for _ in range(request["warmup"]):
        call()
    times = []
    for _ in range(request["iterations"]):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _cosines(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    return (ref * out).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(out, axis=-1))


def main() -> None:
    request = json.loads(open(sys.argv[1]).read())
    reference = np.load(request["reference"])
    count = len([k for k in reference.files if k.startswith("ref_")])
    ids = np.array(request["timing"]["input_ids"], dtype=np.int64)
    mask = np.array(request["timing"]["attention_mask"], dtype=np.int64)
    cosines, agree, compared = [], 0, 0

    if request["compare"] == "decode":
        decoder = (OnnxDecoder if request["runtime"] == "onnxruntime" else PteDecoder)(request["artifact"], request["threads"])
        tokens = ids[0].tolist()
        for position, token in enumerate(tokens[:-1]):  # the context before the timed step
            decoder.step(token, position)
        times = _time(lambda: decoder.step(tokens[-1], len(tokens) - 1, commit=False), request)
        for i in range(count):
            decoder.reset()
            sentence, ref = reference[f"ids_{i}"][0].tolist(), reference[f"ref_{i}"].astype(np.float64)
            out = np.stack([decoder.step(token, position) for position, token in enumerate(sentence)]).astype(np.float64)
            agree += int((ref.argmax(-1) == out.argmax(-1)).sum())
            compared += len(sentence)
            cosines.extend(_cosines(ref, out))
    else:
        runner = (OnnxRunner if request["runtime"] == "onnxruntime" else PteRunner)(request["artifact"], request["threads"])
        times = _time(lambda: runner.run(ids, mask), request)
        for i in range(count):
            ids_i, mask_i, ref = reference[f"ids_{i}"], reference[f"mask_{i}"], reference[f"ref_{i}"].astype(np.float64)
            out = runner.run(ids_i, mask_i)[0].astype(np.float64)
            if request["compare"] == "embedding":
                if out.ndim == 2:  # hidden states (sequence, hidden): the sentence embedding is their masked mean
                    weights = mask_i[0].astype(np.float64)[:, None]
                    out = (out * weights).sum(0) / max(weights.sum(), 1e-9)
                cosines.append(float(_cosines(ref, out)))
            else:  # "logits": (sequence, vocab); "labels": (classes,)
                agree += int((ref.argmax(-1) == out.argmax(-1)).sum())
                compared += 1 if ref.ndim == 1 else ref.shape[0]
                cosines.extend(np.atleast_1d(_cosines(ref, out)))
    result = {"p50_ms": float(np.percentile(times, 50)), "p90_ms": float(np.percentile(times, 90)),
              "cosine_mean": float(np.mean(cosines)), "cosine_min": float(np.min(cosines))}
    if compared:
        result["top1_agreement"] = agree / compared
        result["compared"] = compared
    print(json.dumps(result))


if __name__ == "__main__":
    main()
