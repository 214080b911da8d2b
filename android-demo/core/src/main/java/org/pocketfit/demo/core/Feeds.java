package org.pocketfit.demo.core;

/** What the loop feeds each input, by the rule of pocketfit's measuring child (feeds() in
 *  runtime/_child.py), so that the app and `bench-device --local` time the same work: batch 1,
 *  `seqLen` tokens, token id 1 and a mask of ones (latency does not depend on which ids), zeros
 *  for floats, and a decoder's step at position seqLen - 1 within its cache. */
public final class Feeds {
    private Feeds() {}

    public static long[] shape(Manifest.Input input, int seqLen) {
        long[] out = new long[input.shape.size()];
        for (int i = 0; i < out.length; i++) {
            Object d = input.shape.get(i);
            out[i] = d instanceof Long ? (Long) d : (i == 0 ? 1 : seqLen);
        }
        return out;
    }

    public static long elements(long[] shape) {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    /** The value every element of the input holds. */
    public static double value(Manifest.Input input, int seqLen, Long maxContext) {
        if (input.name.equals("position")) return Math.min(seqLen, maxContext == null ? seqLen : maxContext) - 1;
        return input.dtype.contains("int") ? 1 : 0;
    }
}
