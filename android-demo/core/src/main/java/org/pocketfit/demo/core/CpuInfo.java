package org.pocketfit.demo.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/** The CPU as an arm64 /proc/cpuinfo describes it, grouped as pocketfit's facts.cpuinfo groups it:
 *  consecutive processors of one design and one top clock make a cluster; the Features of the
 *  first processor. A design is named by its implementer and part ("arm:0xd4b"): the app carries
 *  no table of core names, and pocketfit resolves the pair with runtime/cores.toml. */
public final class CpuInfo {
    public final List<Map<String, Object>> clusters;
    public final List<String> features;

    /** maxKhz: each CPU's cpufreq/cpuinfo_max_freq by processor number, where readable (may be empty). */
    public CpuInfo(String text, Map<Integer, Long> maxKhz) {
        List<Map<String, Object>> found = new ArrayList<>();
        List<String> first = null;
        for (String block : text.trim().split("\\n\\s*\\n")) {
            String processor = null, implementer = "0", part = "0", flags = null;
            for (String line : block.split("\\n")) {
                int colon = line.indexOf(':');
                if (colon < 0) continue;
                String key = line.substring(0, colon).trim(), value = line.substring(colon + 1).trim();
                switch (key) {
                    case "processor": processor = value; break;
                    case "CPU implementer": implementer = value; break;
                    case "CPU part": part = value; break;
                    case "Features": flags = value; break;
                    default: break;
                }
            }
            if (processor == null || !processor.matches("\\d+")) continue;
            if (first == null && flags != null && !flags.isEmpty()) first = Arrays.asList(flags.split("\\s+"));
            int impl = Integer.decode(implementer), p = Integer.decode(part);
            String core = (impl == 0x41 ? "arm" : "0x" + Integer.toHexString(impl)) + ":0x" + Integer.toHexString(p);
            Long khz = maxKhz.get(Integer.parseInt(processor));
            Double ghz = khz == null ? null : Math.round(khz / 1e3) / 1e3;
            Map<String, Object> last = found.isEmpty() ? null : found.get(found.size() - 1);
            if (last != null && last.get("core").equals(core) && java.util.Objects.equals(last.get("max_ghz"), ghz)) {
                last.put("cores", (Long) last.get("cores") + 1);
            } else {
                found.add(BenchResult.map("cores", 1L, "core", core, "max_ghz", ghz));
            }
        }
        clusters = Collections.unmodifiableList(found);
        features = first == null ? List.of() : Collections.unmodifiableList(first);
    }
}
