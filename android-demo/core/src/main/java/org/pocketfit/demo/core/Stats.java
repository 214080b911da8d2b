package org.pocketfit.demo.core;

import java.util.Arrays;

/** Percentiles of the timed runs, interpolated as numpy's default does, so the app and
 *  `bench-device --local` report the same p50 for the same latencies. */
public final class Stats {
    private Stats() {}

    public static double percentile(double[] values, double q) {
        if (values.length == 0) throw new IllegalArgumentException("no timed runs");
        if (q < 0 || q > 100) throw new IllegalArgumentException("percentile " + q + " is outside 0-100");
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        double rank = q / 100.0 * (sorted.length - 1);
        int low = (int) Math.floor(rank);
        int high = Math.min(low + 1, sorted.length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
    }
}
