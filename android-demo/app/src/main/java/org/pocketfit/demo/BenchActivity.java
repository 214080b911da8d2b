package org.pocketfit.demo;

import android.app.Activity;
import android.content.Intent;
import android.os.Build;
import android.os.Bundle;
import android.os.Debug;
import android.system.Os;
import android.system.OsConstants;
import android.util.Log;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.Map;
import org.pocketfit.demo.core.BenchResult;
import org.pocketfit.demo.core.CpuInfo;
import org.pocketfit.demo.core.Json;
import org.pocketfit.demo.core.Manifest;
import org.pocketfit.demo.core.ProcFiles;
import org.pocketfit.demo.core.Runner;

/** Runs one artifact from an `am start` intent (android-demo/README.md has the contract) and writes
 *  its result, or RESULT.error with one line saying why not, then finishes. The loop runs off
 *  the main thread, so the system does not kill a long benchmark as unresponsive. */
public final class BenchActivity extends Activity {
    private static final String TAG = "pocketfit";

    @Override
    protected void onCreate(Bundle saved) {
        super.onCreate(saved);
        Intent intent = getIntent();
        String artifact = intent.getStringExtra("artifact");
        String result = intent.getStringExtra("result");
        int iterations = intent.getIntExtra("iterations", 20);
        int warmup = intent.getIntExtra("warmup", 3);
        int seqLen = intent.getIntExtra("seq_len", 128);
        Integer threads = intent.hasExtra("threads") ? intent.getIntExtra("threads", 0) : null;
        new Thread(() -> {
            try {
                if (artifact == null || result == null) throw new IllegalArgumentException("the intent needs --es artifact and --es result");
                write(result, Json.write(bench(artifact, iterations, warmup, seqLen, threads)) + "\n");
                Log.i(TAG, "wrote " + result);
            } catch (Throwable t) {
                Log.e(TAG, "benchmark failed", t);
                if (result != null) {
                    try {
                        write(result + ".error", t.getClass().getSimpleName() + ": " + t.getMessage() + "\n");
                    } catch (IOException e) {
                        Log.e(TAG, "could not write " + result + ".error", e);
                    }
                }
            } finally {
                runOnUiThread(this::finish);
            }
        }, "pocketfit-bench").start();
    }

    private static Map<String, Object> bench(String artifact, int iterations, int warmup, int seqLen, Integer threads) throws Exception {
        Manifest manifest = new Manifest(read(new File(new File(artifact).getParentFile(), "manifest.json").getPath()));
        Long baseline = ProcFiles.kilobyteFields(read("/proc/self/status")).get("VmRSS");
        String statBefore = read("/proc/self/stat");
        Runner.Timing timing = Runner.run(Models.open(artifact, manifest, seqLen, threads), warmup, iterations);
        String status = read("/proc/self/status"), rollup = read("/proc/self/smaps_rollup"), statAfter = read("/proc/self/stat");
        return BenchResult.build("android-demo", manifest, timing, threads, warmup, seqLen, status, rollup, statBefore, statAfter,
                Debug.getNativeHeapAllocatedSize(), baseline, device());
    }

    /** The handset's facts in the contract's device section. */
    private static Map<String, Object> device() throws IOException {
        Map<Integer, Long> maxKhz = new HashMap<>();
        File[] cpus = new File("/sys/devices/system/cpu").listFiles((dir, name) -> name.matches("cpu\\d+"));
        for (File cpu : cpus == null ? new File[0] : cpus) {
            try {
                maxKhz.put(Integer.parseInt(cpu.getName().substring(3)), Long.parseLong(read(cpu + "/cpufreq/cpuinfo_max_freq").trim()));
            } catch (IOException | NumberFormatException unreadable) {
                // some kernels hide cpufreq from apps: the cluster then has no clock
            }
        }
        CpuInfo info = new CpuInfo(read("/proc/cpuinfo"), maxKhz);
        String soc = Build.VERSION.SDK_INT >= 31 ? Build.SOC_MANUFACTURER + " " + Build.SOC_MODEL : Build.HARDWARE;
        return BenchResult.map("model", Build.MODEL, "manufacturer", Build.MANUFACTURER, "soc", soc,
                "os", "Android " + Build.VERSION.RELEASE + " (SDK " + Build.VERSION.SDK_INT + ")",
                "abi", Build.SUPPORTED_ABIS[0], "page_size", Os.sysconf(OsConstants._SC_PAGESIZE),
                "mem_total", ProcFiles.kilobyteFields(read("/proc/meminfo")).get("MemTotal"),
                "cpu", BenchResult.map("clusters", info.clusters, "features", info.features));
    }

    private static String read(String path) throws IOException {
        return new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.UTF_8);
    }

    /** Beside its final name, then renamed: pocketfit polls for the file and must never see half of it. */
    private static void write(String path, String text) throws IOException {
        Path target = Paths.get(path), partial = Paths.get(path + ".partial");
        Files.write(partial, text.getBytes(StandardCharsets.UTF_8));
        Files.move(partial, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
