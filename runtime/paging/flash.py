"""What reading from the phone's flash costs, from its device profile.

One read request of b bytes costs the profile's small-read latency (queue depth 1) plus b over
its sequential bandwidth, and never less than 1 / its random-read IOPS. So throughput depends on
the request size: on a UFS 2.2 profile (50 us, 750 MB/s) a 4 KiB read moves 74 MB/s, a 128 KiB
read-ahead window 580 MB/s. Requests are taken one after another (the faulting thread waits
for each), and flash time adds to compute time: an upper bound. simulate(overlap=True) credits
asynchronous read-ahead running while the model computes: only the faults' own reads stall.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Flash:
    latency: float  # seconds per request, queue depth 1
    bandwidth: float  # bytes/s, large sequential reads
    iops: float  # small random reads per second at depth: the floor on a request's time

    @classmethod
    def of(cls, device) -> "Flash":
        return cls(device.flash_read_latency, device.flash_read_bandwidth, device.flash_read_iops)

    def seconds(self, requests, nbytes):
        """Time for `requests` reads moving `nbytes` in all (arrays or numbers), requests of equal size."""
        requests = np.asarray(requests, dtype=np.float64)
        nbytes = np.asarray(nbytes, dtype=np.float64)
        size = np.divide(nbytes, requests, out=np.zeros_like(nbytes), where=requests > 0)
        return requests * np.maximum(self.latency + size / self.bandwidth, 1.0 / self.iops)
