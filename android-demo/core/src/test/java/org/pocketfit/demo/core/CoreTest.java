package org.pocketfit.demo.core;

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
}
