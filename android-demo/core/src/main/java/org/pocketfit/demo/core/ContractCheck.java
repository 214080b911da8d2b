package org.pocketfit.demo.core;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/** For pocketfit's tests on a machine without Android: the result writer fed with this JVM's own
 *  /proc files and a real manifest, around a loop over plain Java arithmetic (no runtime is
 *  linked here, so the timings are the arithmetic's, not the artifact's; what is checked is the
 *  contract, not a speed). Usage: ContractCheck MANIFEST OUT.json [CPUINFO]: with an arm64
 *  /proc/cpuinfo, the device's CPU is described from it as the app describes a handset's. */
public final class ContractCheck {
    public static void main(String[] args) throws Exception {
        Manifest manifest = new Manifest(Files.readString(Path.of(args[0])));
        String statBefore = Files.readString(Path.of("/proc/self/stat"));
        double[] sink = new double[1];
        Runner.Timing timing = Runner.run(new Runner.Model() {
            public void load() { sink[0] = 0; }
            public void run() { for (int i = 1; i < 200_000; i++) sink[0] += Math.sqrt(i); }
        }, 2, 10);
        Map<String, Object> device = BenchResult.map("model", "contract check on " + System.getProperty("os.arch"),
                "manufacturer", null, "soc", null, "os", System.getProperty("os.name") + " " + System.getProperty("os.version"),
                "abi", System.getProperty("os.arch"), "page_size", 4096, "mem_total",
                ProcFiles.kilobyteFields(Files.readString(Path.of("/proc/meminfo"))).get("MemTotal"),
                "cpu", args.length > 2 ? cpu(new CpuInfo(Files.readString(Path.of(args[2])), Map.of()))
                        : BenchResult.map("clusters", List.of(BenchResult.map("cores", (long) Runtime.getRuntime().availableProcessors(),
                        "core", "jvm:" + System.getProperty("os.arch"))), "features", List.of()));
        Map<String, Object> result = BenchResult.build("local", manifest, timing, null, 2, 128,
                Files.readString(Path.of("/proc/self/status")), Files.readString(Path.of("/proc/self/smaps_rollup")),
                statBefore, Files.readString(Path.of("/proc/self/stat")), null, null, device);
        Files.writeString(Path.of(args[1]), Json.write(result) + "\n");
        if (sink[0] == 42) System.out.println();  // keep the arithmetic from being optimised away
    }

    /** The device section's cpu, as the app writes it. */
    public static Map<String, Object> cpu(CpuInfo info) {
        return BenchResult.map("clusters", info.clusters, "features", info.features);
    }
}
