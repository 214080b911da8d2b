"""How a measurement reads: a text report for the terminal and a JSON document for tools."""

from pocketfit.table import render
from pocketfit.units import human

from .fit import Fit
from .measure import Measurement


def text(m: Measurement, fits: list[Fit], phones: list[dict] = ()) -> str:
    lines = [
        f"artifact  {m.artifact} ({human(m.bytes)}), {m.runtime}"
        + (f", options {', '.join(f'{k}={v}' for k, v in m.options.items())}" if m.options else ""),
        f"outcome   {m.outcome}" + (f": {m.detail}" if m.detail else ""),
    ]
    if m.latencies_ms:
        lines.append(
            f"timing    load {m.load_seconds * 1000:.0f} ms, first inference {m.first_seconds * 1000:.1f} ms, "
            f"p50 {m.p50_ms:.2f} / p90 {m.p90_ms:.2f} / p99 {m.p99_ms:.2f} ms over {m.iterations} runs after "
            f"{m.warmup} warm-up (batch 1 x {m.seq_len} tokens{f', {m.threads} threads' if m.threads else ''})"
        )
        if m.machine_load is not None:
            lines.append(f"machine   {m.machine_load.describe()}")
    lines += [
        f"memory    peak RSS {human(m.peak_rss)}: this process before loading {human(m.baseline_rss)}, "
        f"the model {human(m.model_rss)}",
        f"          the model: anonymous {human(m.model_anon)} (arena, heap, copies or repacks of weights) + "
        f"mapped from the file {human(m.model_mapped)} (clean pages the kernel can drop and re-read)",
        f"weights   {m.weights}. {m.weights_advice}",
    ]
    for label, start, end in (("load", "baseline", "loaded"), ("first run", "loaded", "first"), ("timed runs", "warm", "end")):
        f = m.faults(start, end)
        if f:
            per = f" ({f['majflt'] / m.iterations:.1f} major per inference)" if label == "timed runs" else ""
            lines.append(f"faults    {label}: {f['majflt']:,} major, {f['minflt']:,} minor, {human(f['read_bytes'])} read from storage{per}")
    e = m.emulation
    if e:
        lines.append(
            f"emulated  {e.device} (cgroup v{e.cgroup_version}): memory limit {human(e.memory_limit)} = app budget "
            f"{human(e.budget)} - runtime on the phone {human(e.footprint)} + this process before loading "
            f"{human(e.host_baseline)}; cgroup peak {human(e.memory_peak)}; flash reads <= {e.read_bps / 1e9:.2f} GB/s and "
            f"{e.read_iops:,} IOPS on {e.block_device}; CPUs {e.cpus}; cold page cache at start"
        )
    if fits:
        rows = [["device", "app budget", "model + runtime", "share", "verdict"]]
        for f in fits:
            verdict = "fits" if f.fits else ("DOES NOT FIT" if m.ok else m.outcome.upper())
            rows.append([f"{f.device.name} ({f.device.id})", human(f.device.app_budget), human(f.needed), f"{f.memory_share:.0%}", verdict])
        lines += ["", render(rows, right={1, 2, 3})]
    if phones:
        lines.append("")
        lines.append(f"latency   measured above on this machine; on the phones, PREDICTED by the latency model (not measured):")
        for p in phones:
            if not p["predicted"]:
                lines.append(f"  {p['device']}: no prediction: {p['missing']}")
                continue
            what = (f"decode step p50 {p['p50_ms']:.3g} ms (band {p['low_ms']:.3g}-{p['high_ms']:.3g}); {p['rates']}"
                    if p["phase"] == "decode" else f"p50 {p['p50_ms']:.3g} ms (band {p['low_ms']:.3g}-{p['high_ms']:.3g}) at {m.seq_len} tokens")
            bounds = ", ".join(f"{k} {v:.0%}" for k, v in p["bounds"].items())
            lines.append(f"  {p['device']}: {what}; {p['runtime']}, {p['threads']} threads; time {bounds}")
            lines.append(f"    basis: {p['basis']}; {p['calibration']}")
    return "\n".join(lines)


def document(m: Measurement, fits: list[Fit], phones: list[dict] = ()) -> dict:
    return m.to_dict() | {"phone_latency": list(phones)} | {
        "devices": [
            {"id": f.device.id, "app_budget": f.device.app_budget, "runtime_footprint": f.footprint,
             "needed": f.needed, "fits": f.fits}
            for f in fits
        ]
    }
