package org.pocketfit.demo.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Just enough JSON for the app: write the result, read the manifest. Objects are Maps (in
 *  insertion order), arrays Lists, numbers Double or Long, and null is null. */
public final class Json {
    private Json() {}

    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out);
        return out.toString();
    }

    private static void write(Object value, StringBuilder out) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof String) {
            quote((String) value, out);
        } else if (value instanceof Double || value instanceof Float) {
            double d = ((Number) value).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) throw new IllegalArgumentException("JSON has no " + d);
            out.append(d);
        } else if (value instanceof Number || value instanceof Boolean) {
            out.append(value);
        } else if (value instanceof Map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                if (!first) out.append(", ");
                first = false;
                quote(String.valueOf(e.getKey()), out);
                out.append(": ");
                write(e.getValue(), out);
            }
            out.append('}');
        } else if (value instanceof List) {
            out.append('[');
            boolean first = true;
            for (Object item : (List<?>) value) {
                if (!first) out.append(", ");
                first = false;
                write(item, out);
            }
            out.append(']');
        } else if (value instanceof double[]) {
            List<Object> list = new ArrayList<>();
            for (double d : (double[]) value) list.add(d);
            write(list, out);
        } else {
            throw new IllegalArgumentException("cannot write " + value.getClass().getName() + " as JSON");
        }
    }

    private static void quote(String s, StringBuilder out) {
        out.append('"');
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
            }
        }
        out.append('"');
    }

    public static Object read(String text) {
        Reader r = new Reader(text);
        Object value = r.value();
        r.blanks();
        if (r.at < text.length()) throw r.error("text after the JSON value");
        return value;
    }

    private static final class Reader {
        final String s;
        int at;

        Reader(String s) { this.s = s; }

        IllegalArgumentException error(String what) {
            return new IllegalArgumentException("not JSON at character " + at + ": " + what);
        }

        void blanks() {
            while (at < s.length() && Character.isWhitespace(s.charAt(at))) at++;
        }

        Object value() {
            blanks();
            if (at >= s.length()) throw error("unexpected end");
            char c = s.charAt(at);
            if (c == '{') return object();
            if (c == '[') return array();
            if (c == '"') return string();
            if (s.startsWith("true", at)) { at += 4; return Boolean.TRUE; }
            if (s.startsWith("false", at)) { at += 5; return Boolean.FALSE; }
            if (s.startsWith("null", at)) { at += 4; return null; }
            return number();
        }

        Map<String, Object> object() {
            Map<String, Object> out = new LinkedHashMap<>();
            at++;
            blanks();
            if (s.charAt(at) == '}') { at++; return out; }
            while (true) {
                blanks();
                String key = string();
                blanks();
                if (s.charAt(at++) != ':') throw error("expected ':'");
                out.put(key, value());
                blanks();
                char c = s.charAt(at++);
                if (c == '}') return out;
                if (c != ',') throw error("expected ',' or '}'");
            }
        }

        List<Object> array() {
            List<Object> out = new ArrayList<>();
            at++;
            blanks();
            if (s.charAt(at) == ']') { at++; return out; }
            while (true) {
                out.add(value());
                blanks();
                char c = s.charAt(at++);
                if (c == ']') return out;
                if (c != ',') throw error("expected ',' or ']'");
            }
        }

        String string() {
            if (s.charAt(at) != '"') throw error("expected a string");
            StringBuilder out = new StringBuilder();
            at++;
            while (true) {
                char c = s.charAt(at++);
                if (c == '"') return out.toString();
                if (c == '\\') {
                    char e = s.charAt(at++);
                    switch (e) {
                        case 'n': out.append('\n'); break;
                        case 't': out.append('\t'); break;
                        case 'r': out.append('\r'); break;
                        case 'b': out.append('\b'); break;
                        case 'f': out.append('\f'); break;
                        case 'u': out.append((char) Integer.parseInt(s.substring(at, at + 4), 16)); at += 4; break;
                        default: out.append(e);
                    }
                } else {
                    out.append(c);
                }
            }
        }

        Object number() {
            int start = at;
            while (at < s.length() && "+-0123456789.eE".indexOf(s.charAt(at)) >= 0) at++;
            String text = s.substring(start, at);
            if (text.isEmpty()) throw error("unexpected '" + s.charAt(start) + "'");
            if (text.matches("-?\\d+")) return Long.parseLong(text);
            return Double.parseDouble(text);
        }
    }
}
