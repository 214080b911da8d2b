"""cost: how long an artifact takes on a phone, predicted from its work and the phone's CPU.

    from pocketfit.runtime import cost, devices
    p = cost.predict_artifact("out/model.pte", devices.load("oneplus-12"))
    p.ms, p.low * 1e3, p.high * 1e3, p.bounds()

A prediction is labelled as one: the peaks come from the profile's [compute] table, the
efficiencies from published on-device results (calibrate.py), the band from how far the model
missed results it was not fitted on.
"""

from dataclasses import dataclass
from pathlib import Path

from .model import RUNTIMES, NoComputeFacts, Params, Peaks, Prediction, default_threads, phone_peaks, predict  # noqa: F401


def params() -> Params:
    from .calibrate import calibrated

    return calibrated()


def predict_artifact(path, device, threads: int | None = None, seq_len: int = 128, context: int | None = None,
                     fitted: Params | None = None) -> Prediction:
    """One call of the artifact at `path` on `device`: an encoder's inference over `seq_len`
    tokens, or a decoder's step at `context` positions."""
    from pocketfit.converter.reading import work

    peaks = phone_peaks(device, threads)  # refuses a device without compute facts before reading the artifact
    done = work(Path(path), seq_len=seq_len, context=context)
    return predict(done, peaks, RUNTIMES[done.format], fitted or params())


@dataclass(frozen=True)
class DecoderRates:
    """A decoder on a phone: prompt tokens per second fed one step at a time (as pocketfit's
    artifacts take a prompt), and generated tokens per second at a context."""

    prompt: int
    context: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    decode: Prediction
    band: tuple[float, float]

    def describe(self) -> str:
        low, high = self.band
        return (f"prefill {self.prefill_tokens_per_s:.3g} tok/s over {self.prompt} prompt tokens "
                f"({self.prefill_tokens_per_s / (1 + high):.3g}-{self.prefill_tokens_per_s / (1 + low):.3g}), "
                f"decode {self.decode_tokens_per_s:.3g} tok/s at context {self.context} "
                f"({self.decode_tokens_per_s / (1 + high):.3g}-{self.decode_tokens_per_s / (1 + low):.3g})")


def decoder_rates(path, device, prompt: int = 128, context: int | None = None, threads: int | None = None,
                  fitted: Params | None = None) -> DecoderRates:
    """Each step's cost is linear in its context (ExecuTorch's SDPA reads the positions in use;
    the others attend the whole cache), so a prompt fed step by step costs P x t(1) plus
    the growth between t(1) and t(P), summed over the steps."""
    fitted = fitted or params()
    first = predict_artifact(path, device, threads, context=1, fitted=fitted)
    last = predict_artifact(path, device, threads, context=prompt, fitted=fitted)
    slope = (last.seconds - first.seconds) / max(1, prompt - 1)
    total = prompt * first.seconds + slope * prompt * (prompt - 1) / 2
    at = predict_artifact(path, device, threads, context=context or prompt, fitted=fitted)
    return DecoderRates(prompt, context or prompt, prompt / total, 1 / at.seconds, at, fitted.band)


def phone_figures(path, device, seq_len: int = 128, threads: int | None = None) -> dict:
    """What `profile --device` and the reports print for one phone: the predicted p50 (and, for
    a decoder, prefill and decode tokens/s over a `seq_len` prompt) with band and basis, or
    why there is none."""
    from pocketfit.errors import BadInput

    try:
        fitted = params()
        p = predict_artifact(path, device, threads, seq_len=seq_len, context=seq_len, fitted=fitted)
        doc = {"device": device.id, "predicted": True, "p50_ms": round(p.ms, 4), "low_ms": round(p.low * 1e3, 4),
               "high_ms": round(p.high * 1e3, 4), "threads": p.peaks.threads, "runtime": p.runtime,
               "bounds": {k: round(v, 3) for k, v in p.bounds().items()}, "basis": p.peaks.basis,
               "calibration": f"efficiencies fitted on {fitted.fitted_on} published results from {len(fitted.sources)} sources; "
                              f"band = 10th-90th percentile of leave-one-source-out errors",
               "phase": p.work.phase}
        if p.work.phase == "decode":
            rates = decoder_rates(path, device, prompt=seq_len, context=seq_len, threads=threads, fitted=fitted)
            doc |= {"prefill_tokens_per_s": round(rates.prefill_tokens_per_s, 3), "decode_tokens_per_s": round(rates.decode_tokens_per_s, 3),
                    "prompt": seq_len, "context": seq_len, "rates": rates.describe()}
        return doc
    except BadInput as e:
        return {"device": device.id, "predicted": False, "missing": str(e)}
