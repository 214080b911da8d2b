package org.pocketfit.demo.core;

import java.util.HashMap;
import java.util.Map;

/** The kernel's own accounting of this process, parsed from the text of /proc/self files:
 *  status (VmHWM, RssAnon, RssFile), smaps_rollup (Pss, Private_Dirty), stat (faults). Bytes. */
public final class ProcFiles {
    private ProcFiles() {}

    /** "Key:   123 kB" lines, in bytes; lines without a kB figure are skipped. */
    public static Map<String, Long> kilobyteFields(String text) {
        Map<String, Long> out = new HashMap<>();
        for (String line : text.split("\n")) {
            int colon = line.indexOf(':');
            if (colon < 0) continue;
            String[] words = line.substring(colon + 1).trim().split("\\s+");
            if (words.length == 2 && words[1].equals("kB")) {
                try {
                    out.put(line.substring(0, colon).trim(), Long.parseLong(words[0]) * 1024L);
                } catch (NumberFormatException ignored) {
                    // a field that is not a number of kB is not one of ours
                }
            }
        }
        return out;
    }

    /** minflt and majflt from /proc/self/stat: fields 10 and 12, counted after the ")" that ends
     *  the command name (which may itself hold spaces and parentheses). */
    public static long[] faults(String stat) {
        int close = stat.lastIndexOf(')');
        if (close < 0) throw new IllegalArgumentException("not a /proc/PID/stat line: " + stat);
        String[] rest = stat.substring(close + 2).trim().split("\\s+");
        // rest[0] is field 3 (state): field N is rest[N - 3]
        return new long[] {Long.parseLong(rest[10 - 3]), Long.parseLong(rest[12 - 3])};
    }
}
