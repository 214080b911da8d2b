"""fit: does a measured artifact fit a phone's app memory budget?

What counts is what the phone would hold: the model's own memory, measured as growth over the
measuring process before it loaded the model (anonymous memory plus the artifact's resident
mapped pages), plus the runtime's own footprint on the phone — a stated, sourced figure
(runtime/runtimes.toml) — not the measuring process's Python and bindings.
"""

from dataclasses import dataclass

from . import runtimes
from .devices import Device
from .measure import Measurement


@dataclass(frozen=True)
class Fit:
    device: Device
    measurement: Measurement
    footprint: int  # the runtime on the phone

    @property
    def needed(self) -> int:
        return self.measurement.model_rss + self.footprint

    @property
    def memory_share(self) -> float:
        return self.needed / self.device.app_budget

    @property
    def fits(self) -> bool:
        return self.measurement.ok and self.needed <= self.device.app_budget


def fit(measurement: Measurement, device: Device) -> Fit:
    return Fit(device, measurement, runtimes.footprint_of(measurement.runtime).footprint)
