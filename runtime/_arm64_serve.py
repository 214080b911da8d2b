"""Runs inside the arm64 root, under qemu, with only numpy and the artifact's aarch64 runtime:
loads the artifact once, then answers requests on stdin until it closes. A frame is an 8-byte
big-endian length and an .npz: the feeds by input name in, the outputs as out0, out1, ... back,
in the graph's order (as pocketfit's backends return them). Mirrors converter/backends' runners.

    python _arm64_serve.py ARTIFACT
"""

import io
import struct
import sys

import numpy as np


def open_runner(path: str):
    if path.endswith((".onnx", ".ort")):
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda feeds: session.run(None, {n: feeds[n] for n in names}), ort.__version__
    if path.endswith(".tflite"):
        from importlib.metadata import version

        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path, num_threads=2)
        signature = interpreter.get_signature_runner("serving_default")
        details = signature.get_output_details()
        order = sorted(details, key=lambda n: int(n.rsplit("_", 1)[-1]) if n.rsplit("_", 1)[-1].isdigit() else n)
        inputs = list(signature.get_input_details())

        def run(feeds):
            results = signature(**{n: feeds[n] for n in inputs})
            out = []
            for name in order:
                value = np.asarray(results[name])
                scale, zero = details[name]["quantization"]
                if np.issubdtype(value.dtype, np.integer) and scale:
                    value = (value.astype(np.float32) - zero) * scale
                out.append(value)
            return out

        return run, version("ai-edge-litert")
    raise SystemExit(f"no aarch64 runner for {path}")


def read(stream):
    head = stream.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack(">Q", head)
    return stream.read(size)


def write(stream, payload: bytes) -> None:
    stream.write(struct.pack(">Q", len(payload)) + payload)
    stream.flush()


def main() -> None:
    run, version = open_runner(sys.argv[1])
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    write(stdout, version.encode())
    while (frame := read(stdin)) is not None:
        feeds = dict(np.load(io.BytesIO(frame)))
        buffer = io.BytesIO()
        np.savez(buffer, **{f"out{i}": np.asarray(v) for i, v in enumerate(run(feeds))})
        write(stdout, buffer.getvalue())


if __name__ == "__main__":
    main()
