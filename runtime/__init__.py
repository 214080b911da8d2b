"""pocketfit.runtime: measure artifacts for real and check them against phones.

    from pocketfit.runtime import measure, fit, devices
    m = measure("out/model.onnx")                                   # a child process
    print(fit(m, devices.load("pixel-7a")).fits)
    m = measure("out/model.tflite", emulate=devices.load("galaxy-a15"))  # inside its limits (cgroups)
"""

from . import devices
from .devices import Device
from .fit import Fit, fit
from .measure import Measurement, measure

__all__ = ["Device", "Fit", "Measurement", "devices", "fit", "measure"]
