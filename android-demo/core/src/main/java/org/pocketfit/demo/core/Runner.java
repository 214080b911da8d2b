package org.pocketfit.demo.core;

/** The benchmark loop, the same as `bench-device --local` runs: load, one first run, warm-up,
 *  timed runs. The app gives it a Model over the runtime it links; times are in milliseconds. */
public final class Runner {
    public interface Model {
        void load() throws Exception;
        void run() throws Exception;
    }

    public static final class Timing {
        public final double loadMs;
        public final double firstRunMs;
        public final double[] latenciesMs;

        Timing(double loadMs, double firstRunMs, double[] latenciesMs) {
            this.loadMs = loadMs;
            this.firstRunMs = firstRunMs;
            this.latenciesMs = latenciesMs;
        }
    }

    private Runner() {}

    public static Timing run(Model model, int warmup, int iterations) throws Exception {
        if (iterations < 1 || warmup < 0) throw new IllegalArgumentException("iterations must be at least 1, warmup at least 0");
        long start = System.nanoTime();
        model.load();
        double load = (System.nanoTime() - start) / 1e6;
        start = System.nanoTime();
        model.run();
        double first = (System.nanoTime() - start) / 1e6;
        for (int i = 0; i < warmup; i++) model.run();
        double[] latencies = new double[iterations];
        for (int i = 0; i < iterations; i++) {
            start = System.nanoTime();
            model.run();
            latencies[i] = (System.nanoTime() - start) / 1e6;
        }
        return new Timing(load, first, latencies);
    }
}
