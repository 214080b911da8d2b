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
    if path.endswith(".pte"):
        return _pte(path)
    raise SystemExit(f"no aarch64 runner for {path}")


# ExecuTorch's ScalarType codes (runtime/core/portable_type/scalar_type.h) for the dtypes pocketfit's programs take and give.
_SCALAR = {0: np.uint8, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.int64, 5: np.float16, 6: np.float32, 7: np.float64, 11: np.bool_}
_CODE = {np.dtype(t): c for c, t in _SCALAR.items()}


def _pte(path: str):
    """ExecuTorch's C++ runtime from the executorch wheel's aarch64 libraries, through the small C
    interface in arm64_pte.cpp (the wheel's Python bindings need torch's CUDA build on aarch64)."""
    import ctypes

    lib = ctypes.CDLL("/opt/pocketfit/libpfpte.so")
    lib.pf_open.restype = ctypes.c_void_p
    lib.pf_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.pf_run.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
                           ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_size_t]
    lib.pf_output.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
                              ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64)]
    err = ctypes.create_string_buffer(512)
    handle = lib.pf_open(path.encode(), err, len(err))
    if not handle:
        raise SystemExit(f"{path}: {err.value.decode()}")

    def run(feeds):
        arrays = [np.ascontiguousarray(a) for a in feeds.values()]
        dtypes = (ctypes.c_int * len(arrays))(*[_CODE[a.dtype] for a in arrays])
        ranks = (ctypes.c_int * len(arrays))(*[a.ndim for a in arrays])
        sizes = [d for a in arrays for d in a.shape]
        dims = (ctypes.c_int64 * max(len(sizes), 1))(*sizes)
        data = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        count = lib.pf_run(handle, len(arrays), dtypes, ranks, dims, data, err, len(err))
        if count < 0:
            raise SystemExit(err.value.decode())
        out = []
        for i in range(count):
            dtype, rank, shape = ctypes.c_int(), ctypes.c_int(), (ctypes.c_int64 * 16)()
            pointer, nbytes = ctypes.c_void_p(), ctypes.c_int64()
            if lib.pf_output(handle, i, dtype, rank, shape, pointer, nbytes) != 0:
                raise SystemExit(f"output {i} is not a tensor")
            raw = ctypes.string_at(pointer.value, nbytes.value) if nbytes.value else b""
            out.append(np.frombuffer(raw, _SCALAR[dtype.value]).reshape(tuple(shape[:rank.value])).copy())
        return out

    from importlib.metadata import version  # the installed wheel's, without importing its torch-bound package

    return run, version("executorch")


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
