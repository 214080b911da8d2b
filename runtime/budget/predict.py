"""The one place the budget checks call the flash-paging simulator (runtime/paging/).

Predicted latency and the memory picture at a phone's app budget come from the simulator, fed
with the artifact's layout and the compute time measured on this machine. Without the simulator
a latency check cannot run: it is an error (exit 3), never a pass.
"""

from pathlib import Path

from pocketfit.errors import EnvironmentLimit

from ..devices import Device


def simulate(artifact: Path, device: Device, compute_seconds: float, tokens: int, options: dict) -> dict:
    """The simulator's verdict for `artifact` on `device` at its app budget, as its to_dict():
    {"budget", "footprint", "anonymous", "arena", "kv_cache", "copied_weights", "mapped_weights",
    "fits", "reason", "warm": {"latency_s", ...}, "cold": {...}, "curve": [{"budget", "latency_s"}, ...]}.
    `tokens` > 0 simulates generation: warm latency is then per decoded token."""
    try:
        from pocketfit.runtime.paging import simulate as run
    except ImportError as e:
        raise EnvironmentLimit(f"the flash-paging simulator (pocketfit.runtime.paging) is not available: {e}") from None
    from pocketfit.converter import backends

    path = Path(artifact)
    layout = backends.for_path(path).layout(path, options)
    return run(layout, device, compute_seconds=compute_seconds, tokens=tokens,
               compute_source="measured on this machine by pocketfit check (every weight resident)").to_dict()


def breakdown(sim: dict, footprint: int) -> dict:
    """Where the memory goes at the app budget, from a simulation: copied weights stay resident;
    mapped weights are resident as far as the budget left after anonymous memory allows, the rest
    is paged from flash. (The simulator's budget is the app budget less the runtime's footprint.)"""
    left = max(0, sim["budget"] - sim["anonymous"])
    mapped_resident = min(sim["mapped_weights"], left)
    return {
        "weights_resident": sim["copied_weights"] + mapped_resident,
        "weights_paged": sim["mapped_weights"] - mapped_resident,
        "arena": sim["arena"],
        "kv_cache": sim["kv_cache"],
        "runtime": sim.get("footprint", footprint),
        "source": "simulated",
    }


def curve(sim: dict) -> tuple[dict, ...]:
    """Predicted warm latency against the memory the app gives (the simulator's budget plus the
    runtime's footprint, so the phone's app budget marks the same axis)."""
    return tuple({"budget": p["budget"] + sim.get("footprint", 0), "latency_s": p["latency_s"]} for p in sim.get("curve", ()))
