package org.pocketfit.demo.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/** What the app needs from the manifest.json pocketfit writes beside every artifact. */
public final class Manifest {
    public final String format;
    public final String file;
    public final long bytes;
    public final String sha256;
    public final String runtime;
    public final String runtimeVersion;
    /** The graph's inputs in order; a dimension is a number or the name of a symbolic one. */
    public final List<Input> inputs;
    /** A decoder's KV-cache positions (details.kv_cache.max_context), else null. */
    public final Long maxContext;

    public static final class Input {
        public final String name;
        public final String dtype;
        public final List<Object> shape;

        Input(String name, String dtype, List<Object> shape) {
            this.name = name;
            this.dtype = dtype;
            this.shape = shape;
        }
    }

    private static final Map<String, String> RUNTIMES = Map.of(
            "pte", "executorch", "onnx", "onnxruntime", "ort", "onnxruntime", "tflite", "ai-edge-litert");

    @SuppressWarnings("unchecked")
    public Manifest(String json) {
        Object parsed = Json.read(json);
        if (!(parsed instanceof Map)) throw new IllegalArgumentException("a manifest is a JSON object");
        Map<String, Object> m = (Map<String, Object>) parsed;
        format = require(m, "format");
        file = require(m, "file");
        sha256 = require(m, "sha256");
        Object size = m.get("bytes");
        if (!(size instanceof Long)) throw new IllegalArgumentException("manifest field 'bytes' is not an integer");
        bytes = (Long) size;
        runtime = RUNTIMES.get(format);
        if (runtime == null) throw new IllegalArgumentException("manifest format '" + format + "' is none of pte, onnx, ort, tflite");
        Object toolchain = m.get("toolchain");
        Object version = toolchain instanceof Map ? ((Map<String, Object>) toolchain).get(runtime) : null;
        runtimeVersion = version == null ? "unknown" : String.valueOf(version);
        List<Input> found = new ArrayList<>();
        Object listed = m.get("inputs");
        if (listed instanceof List) {
            for (Object o : (List<Object>) listed) {
                if (!(o instanceof Map)) throw new IllegalArgumentException("manifest field 'inputs' holds a non-object");
                Map<String, Object> in = (Map<String, Object>) o;
                Object shape = in.get("shape");
                if (!(shape instanceof List)) throw new IllegalArgumentException("manifest input without a 'shape' list");
                found.add(new Input(require(in, "name"), require(in, "dtype"), (List<Object>) shape));
            }
        }
        inputs = Collections.unmodifiableList(found);
        Object details = m.get("details");
        Object kv = details instanceof Map ? ((Map<String, Object>) details).get("kv_cache") : null;
        Object context = kv instanceof Map ? ((Map<String, Object>) kv).get("max_context") : null;
        maxContext = context instanceof Long ? (Long) context : null;
    }

    private static String require(Map<String, Object> m, String key) {
        Object v = m.get(key);
        if (!(v instanceof String)) throw new IllegalArgumentException("manifest field '" + key + "' is missing or not a string");
        return (String) v;
    }
}
