package org.pocketfit.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.Test;

public class CoreTest {
    @Test
    public void percentilesInterpolateAsNumpyDoes() {
        double[] v = {5, 1, 4, 2, 3};
        assertEquals(3.0, Stats.percentile(v, 50), 1e-12);
        assertEquals(4.6, Stats.percentile(v, 90), 1e-12);  // numpy.percentile([1..5], 90) == 4.6
        assertEquals(4.96, Stats.percentile(v, 99), 1e-12);
        assertEquals(7.0, Stats.percentile(new double[] {7}, 99), 1e-12);
        assertThrows(IllegalArgumentException.class, () -> Stats.percentile(new double[0], 50));
    }

    @Test
    public void statusAndRollupFieldsAreBytes() {
        String status = "Name:\tjava\nVmHWM:\t  105472 kB\nRssAnon:\t   41472 kB\nRssFile:\t   56320 kB\nThreads:\t23\n";
        Map<String, Long> f = ProcFiles.kilobyteFields(status);
        assertEquals(105472L * 1024, (long) f.get("VmHWM"));
        assertEquals(41472L * 1024, (long) f.get("RssAnon"));
        assertNull(f.get("Threads"));
        Map<String, Long> r = ProcFiles.kilobyteFields("5607d5d98000-7ffeeadeb000 ---p 00000000 00:00 0 [rollup]\nPss:  800 kB\nPrivate_Dirty:   112 kB\n");
        assertEquals(800L * 1024, (long) r.get("Pss"));
        assertEquals(112L * 1024, (long) r.get("Private_Dirty"));
    }

    @Test
    public void faultsAreCountedAfterACommandNameWithSpacesAndParentheses() {
        String stat = "1234 (my (odd) app) S 1 1234 1234 0 -1 4194560 5170 0 7 0 12 3 0 0 20 0 1 0 100 0 0";
        long[] f = ProcFiles.faults(stat);
        assertEquals(5170, f[0]);  // minflt, field 10
        assertEquals(7, f[1]);     // majflt, field 12
    }

    @Test
    @SuppressWarnings("unchecked")
    public void jsonRoundTripsWhatTheAppWrites() {
        Map<String, Object> value = BenchResult.map("s", "a \"quoted\"\\ line\n", "n", 3L, "d", 2.5, "none", null,
                "list", List.of(1L, 2.0, "x"), "yes", true);
        String text = Json.write(value);
        Map<String, Object> back = (Map<String, Object>) Json.read(text);
        assertEquals(value, back);
        assertThrows(IllegalArgumentException.class, () -> Json.read("{\"a\": 1} trailing"));
        assertThrows(IllegalArgumentException.class, () -> Json.write(Double.NaN));
    }

    @Test
    public void theManifestNamesTheRuntimeAndItsVersion() {
        Manifest m = new Manifest("{\"format\": \"pte\", \"file\": \"model.pte\", \"bytes\": 23139840, \"sha256\": \"ab\","
                + " \"toolchain\": {\"torch\": \"2.13.0+cpu\", \"executorch\": \"1.5.1\"}}");
        assertEquals("executorch", m.runtime);
        assertEquals("1.5.1", m.runtimeVersion);
        assertEquals(23139840L, m.bytes);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Manifest("{\"format\": \"gguf\","
                + " \"file\": \"m\", \"bytes\": 1, \"sha256\": \"ab\"}"));
        assertTrue(e.getMessage().contains("gguf"));
    }

    @Test
    public void theLoopRunsLoadOnceFirstOnceThenWarmupAndTimedRuns() throws Exception {
        int[] calls = new int[2];
        Runner.Timing t = Runner.run(new Runner.Model() {
            public void load() { calls[0]++; }
            public void run() { calls[1]++; }
        }, 3, 5);
        assertEquals(1, calls[0]);
        assertEquals(1 + 3 + 5, calls[1]);
        assertEquals(5, t.latenciesMs.length);
        assertTrue(t.loadMs >= 0 && t.firstRunMs >= 0);
    }

    @Test
    public void feedsFollowTheMeasuringChildsRule() {
        Manifest m = new Manifest("{\"format\": \"pte\", \"file\": \"model.pte\", \"bytes\": 1, \"sha256\": \"ab\","
                + " \"inputs\": [{\"name\": \"input_ids\", \"dtype\": \"int64\", \"shape\": [\"batch\", \"sequence\"]},"
                + " {\"name\": \"position\", \"dtype\": \"int64\", \"shape\": [1]},"
                + " {\"name\": \"scale\", \"dtype\": \"float32\", \"shape\": [1, 4]}],"
                + " \"details\": {\"kv_cache\": {\"max_context\": 64}}}");
        assertEquals(3, m.inputs.size());
        assertEquals(64L, (long) m.maxContext);
        assertArrayEquals(new long[] {1, 128}, Feeds.shape(m.inputs.get(0), 128));
        assertEquals(1.0, Feeds.value(m.inputs.get(0), 128, m.maxContext), 0);
        assertEquals(63.0, Feeds.value(m.inputs.get(1), 128, m.maxContext), 0);  // within the cache
        assertEquals(31.0, Feeds.value(m.inputs.get(1), 32, m.maxContext), 0);
        assertArrayEquals(new long[] {1, 4}, Feeds.shape(m.inputs.get(2), 128));
        assertEquals(0.0, Feeds.value(m.inputs.get(2), 128, null), 0);
        assertEquals(512, Feeds.elements(Feeds.shape(m.inputs.get(0), 512)));
    }

    @Test
    public void cpuinfoMakesClustersOfConsecutiveCoresOfOneDesignAndClock() {
        String text = "processor\t: 0\nFeatures\t: fp asimd i8mm\nCPU implementer\t: 0x41\nCPU part\t: 0xd46\n\n"
                + "processor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd46\n\n"
                + "processor\t: 2\nCPU implementer\t: 0x41\nCPU part\t: 0xd4d\n\n"
                + "processor\t: 3\nCPU implementer\t: 0x51\nCPU part\t: 0x001\n\nHardware\t: Example\n";
        CpuInfo c = new CpuInfo(text, Map.of(0, 1800000L, 1, 1800000L, 2, 2850000L));
        assertEquals(List.of("fp", "asimd", "i8mm"), c.features);
        assertEquals(3, c.clusters.size());
        assertEquals(BenchResult.map("cores", 2L, "core", "arm:0xd46", "max_ghz", 1.8), c.clusters.get(0));
        assertEquals(BenchResult.map("cores", 1L, "core", "arm:0xd4d", "max_ghz", 2.85), c.clusters.get(1));
        assertEquals(BenchResult.map("cores", 1L, "core", "0x51:0x1", "max_ghz", null), c.clusters.get(2));
    }
}
