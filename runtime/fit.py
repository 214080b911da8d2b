"""fit: does a measured artifact fit a phone's app memory budget?"""

from dataclasses import dataclass

from .devices import Device
from .measure import Measurement


@dataclass(frozen=True)
class Fit:
    device: Device
    measurement: Measurement

    @property
    def size_fits(self) -> bool:
        return self.measurement.bytes <= self.device.app_budget

    @property
    def memory_fits(self) -> bool:
        # The whole measuring process is counted — interpreter and runtime library included —
        # so the verdict errs on the side of "does not fit".
        return self.measurement.peak_rss <= self.device.app_budget

    @property
    def fits(self) -> bool:
        return self.size_fits and self.memory_fits

    @property
    def memory_share(self) -> float:
        return self.measurement.peak_rss / self.device.app_budget


def fit(measurement: Measurement, device: Device) -> Fit:
    return Fit(device, measurement)
