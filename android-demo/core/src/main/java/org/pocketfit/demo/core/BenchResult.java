package org.pocketfit.demo.core;

import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The result in pocketfit's contract (pocketfit/schemas/device-bench.schema.json), built from the
 *  loop's timing, the manifest and the /proc files read after the timed runs. */
public final class BenchResult {
    private BenchResult() {}

    public static Map<String, Object> build(String source, Manifest manifest, Runner.Timing timing, Integer threads, int warmup,
                                            int seqLen, String status, String rollup, String statBefore, String statAfter,
                                            Long nativeHeap, Long baselineRss, Map<String, Object> device) {
        Map<String, Long> st = ProcFiles.kilobyteFields(status);
        Map<String, Long> ro = ProcFiles.kilobyteFields(rollup);
        long[] before = ProcFiles.faults(statBefore);
        long[] after = ProcFiles.faults(statAfter);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("schema", "pocketfit/device-bench/1");
        out.put("source", source);
        out.put("measured_at", Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
        out.put("artifact", map("file", manifest.file, "bytes", manifest.bytes, "sha256", manifest.sha256, "format", manifest.format));
        out.put("runtime", map("name", manifest.runtime, "version", manifest.runtimeVersion));
        out.put("settings", map("threads", threads, "iterations", timing.latenciesMs.length, "warmup", warmup, "seq_len", seqLen));
        List<Object> latencies = new ArrayList<>();
        for (double d : timing.latenciesMs) latencies.add(d);
        out.put("timing", map("load_ms", timing.loadMs, "first_run_ms", timing.firstRunMs,
                "p50_ms", Stats.percentile(timing.latenciesMs, 50), "p90_ms", Stats.percentile(timing.latenciesMs, 90),
                "p99_ms", Stats.percentile(timing.latenciesMs, 99), "latencies_ms", latencies));
        out.put("memory", map("pss", ro.get("Pss"), "private_dirty", ro.get("Private_Dirty"), "native_heap", nativeHeap,
                "vm_hwm", st.getOrDefault("VmHWM", 0L), "rss_anon", st.getOrDefault("RssAnon", 0L),
                "rss_file", st.getOrDefault("RssFile", 0L), "baseline_rss", baselineRss));
        out.put("faults", map("major", after[1] - before[1], "minor", after[0] - before[0]));
        out.put("device", device);
        return out;
    }

    static Map<String, Object> map(Object... pairs) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) out.put((String) pairs[i], pairs[i + 1]);
        return out;
    }
}
