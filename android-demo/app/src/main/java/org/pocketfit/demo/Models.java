package org.pocketfit.demo;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.google.ai.edge.litert.Accelerator;
import com.google.ai.edge.litert.CompiledModel;
import com.google.ai.edge.litert.TensorBuffer;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.pocketfit.demo.core.Feeds;
import org.pocketfit.demo.core.Manifest;
import org.pocketfit.demo.core.Runner;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;

/** One Runner.Model per runtime, each fed by core's Feeds rule from the manifest's inputs. Written
 *  against each runtime's documented Android API; not compiled where pocketfit is built (no SDK). */
final class Models {
    private Models() {}

    static Runner.Model open(String path, Manifest manifest, int seqLen, Integer threads) {
        switch (manifest.format) {
            case "pte": return executorch(path, manifest, seqLen, threads);
            case "onnx":
            case "ort": return onnxruntime(path, manifest, seqLen, threads);
            case "tflite": return litert(path, manifest, seqLen, threads);
            default: throw new IllegalArgumentException("no runtime for format " + manifest.format);
        }
    }

    private static Runner.Model executorch(String path, Manifest manifest, int seqLen, Integer threads) {
        return new Runner.Model() {
            private Module module;
            private EValue[] inputs;

            public void load() {
                module = Module.load(path, Module.LOAD_MODE_FILE, threads == null ? 0 : threads);
                int error = module.loadMethod("forward");
                if (error != 0) throw new IllegalStateException("ExecuTorch could not load forward: error 0x" + Integer.toHexString(error));
                inputs = new EValue[manifest.inputs.size()];
                for (int i = 0; i < inputs.length; i++) {
                    Manifest.Input in = manifest.inputs.get(i);
                    long[] shape = Feeds.shape(in, seqLen);
                    int n = (int) Feeds.elements(shape);
                    double v = Feeds.value(in, seqLen, manifest.maxContext);
                    Tensor t;
                    switch (in.dtype) {
                        case "int64": { long[] a = new long[n]; Arrays.fill(a, (long) v); t = Tensor.fromBlob(a, shape); break; }
                        case "int32": { int[] a = new int[n]; Arrays.fill(a, (int) v); t = Tensor.fromBlob(a, shape); break; }
                        case "float32": { float[] a = new float[n]; Arrays.fill(a, (float) v); t = Tensor.fromBlob(a, shape); break; }
                        default: throw new IllegalArgumentException("input " + in.name + ": no feed for dtype " + in.dtype);
                    }
                    inputs[i] = EValue.from(t);
                }
            }

            public void run() {
                module.forward(inputs);
            }
        };
    }

    private static Runner.Model onnxruntime(String path, Manifest manifest, int seqLen, Integer threads) {
        return new Runner.Model() {
            private OrtSession session;
            private final Map<String, OnnxTensor> feeds = new HashMap<>();

            public void load() throws Exception {
                OrtEnvironment env = OrtEnvironment.getEnvironment();
                OrtSession.SessionOptions options = new OrtSession.SessionOptions();
                if (threads != null) options.setIntraOpNumThreads(threads);
                session = env.createSession(path, options);
                for (Manifest.Input in : manifest.inputs) {
                    long[] shape = Feeds.shape(in, seqLen);
                    int n = (int) Feeds.elements(shape);
                    double v = Feeds.value(in, seqLen, manifest.maxContext);
                    switch (in.dtype) {
                        case "int64": { long[] a = new long[n]; Arrays.fill(a, (long) v); feeds.put(in.name, OnnxTensor.createTensor(env, LongBuffer.wrap(a), shape)); break; }
                        case "int32": { int[] a = new int[n]; Arrays.fill(a, (int) v); feeds.put(in.name, OnnxTensor.createTensor(env, IntBuffer.wrap(a), shape)); break; }
                        case "float32": { float[] a = new float[n]; Arrays.fill(a, (float) v); feeds.put(in.name, OnnxTensor.createTensor(env, FloatBuffer.wrap(a), shape)); break; }
                        default: throw new IllegalArgumentException("input " + in.name + ": no feed for dtype " + in.dtype);
                    }
                }
            }

            public void run() throws Exception {
                try (OrtSession.Result ignored = session.run(feeds)) {
                    // the outputs are not read: the loop times the run
                }
            }
        };
    }

    // LiteRT's CompiledModel on the CPU: its input buffers are sized by the model, so the
    // artifact must have been exported at seqLen tokens (a .tflite has static shapes). `threads`
    // is not passed on: the documented CPU options name no thread count, so LiteRT picks its own.
    private static Runner.Model litert(String path, Manifest manifest, int seqLen, Integer threads) {
        return new Runner.Model() {
            private CompiledModel model;
            private List<TensorBuffer> inputs;
            private List<TensorBuffer> outputs;

            public void load() {
                model = CompiledModel.create(path, new CompiledModel.Options(Accelerator.CPU), null);
                inputs = model.createInputBuffers();
                outputs = model.createOutputBuffers();
                for (int i = 0; i < inputs.size(); i++) {
                    Manifest.Input in = manifest.inputs.get(i);
                    int n = (int) Feeds.elements(Feeds.shape(in, seqLen));
                    double v = Feeds.value(in, seqLen, manifest.maxContext);
                    switch (in.dtype) {
                        case "int64": { long[] a = new long[n]; Arrays.fill(a, (long) v); inputs.get(i).writeLong(a); break; }
                        case "int32": { int[] a = new int[n]; Arrays.fill(a, (int) v); inputs.get(i).writeInt(a); break; }
                        case "float32": { float[] a = new float[n]; Arrays.fill(a, (float) v); inputs.get(i).writeFloat(a); break; }
                        default: throw new IllegalArgumentException("input " + in.name + ": no feed for dtype " + in.dtype);
                    }
                }
            }

            public void run() {
                model.run(inputs, outputs);
            }
        };
    }
}
