"""pocketfit.runtime.paging: predict what paging a model's mapped weights from flash costs on a phone.

    from pocketfit.runtime.paging import simulate, Readahead
    sim = simulate(layout, devices.load("galaxy-a15"), compute_seconds=0.012, policy="lru")
    print(sim.render()); sim.to_dict()            # every latency labelled simulated, with its device

trace.py builds the access trace from a Layout, policies.py holds the page-cache policies (one
registry), readahead.py the kernel's read-around (folios.py replays it page by page for weights
read out of order, those whose layout sets Weight.tile), flash.py the flash cost, plot.py the curve.
"""

from .policies import POLICIES, Lru, Pinned, TwoList
from .readahead import Readahead
from .simulate import Point, Run, Simulation, simulate
from .trace import Trace, build

__all__ = ["POLICIES", "Lru", "Pinned", "Point", "Readahead", "Run", "Simulation", "Trace", "TwoList", "build", "simulate"]
