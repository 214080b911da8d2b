package org.pocketfit.demo.core;

import java.util.Map;

/** What the app needs from the manifest.json pocketfit writes beside every artifact. */
public final class Manifest {
    public final String format;
    public final String file;
    public final long bytes;
    public final String sha256;
    public final String runtime;
    public final String runtimeVersion;

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
    }

    private static String require(Map<String, Object> m, String key) {
        Object v = m.get(key);
        if (!(v instanceof String)) throw new IllegalArgumentException("manifest field '" + key + "' is missing or not a string");
        return (String) v;
    }
}
