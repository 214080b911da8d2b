"""A latency measured while other processes load the CPU says so."""

import os
import subprocess
import sys
import time

from pocketfit.runtime.machine_load import BUSY_CORES, MachineLoad, Watch

BURN = "import time\nend = time.time() + {s}\nwhile time.time() < end: pass"


def test_another_process_burning_a_core_is_seen():
    burner = subprocess.Popen([sys.executable, "-c", BURN.format(s=3)])
    try:
        time.sleep(0.3)  # the burner is running before the watch starts
        with Watch() as watch:
            time.sleep(1.0)  # this process does nothing: all the busy time is someone else's
    finally:
        burner.kill()
        burner.wait()
    load = watch.result
    assert load is not None and load.seconds >= 1.0
    assert load.others_cores > 0.4 and load.busy
    assert load.describe().startswith("BUSY") and load.to_dict()["busy"] is True


def test_own_children_are_not_counted_as_others():
    with Watch() as watch:
        subprocess.run([sys.executable, "-c", BURN.format(s=1)], check=True)
    load = watch.result
    own = 1.0  # the child burned about a second of CPU, waited for inside the watch
    # all the CPUs' time less the child's second is an upper bound only if the child was subtracted
    assert load.others_cpu_seconds < load.seconds * os.cpu_count() - own * 0.8


def test_quiet_reads_quiet():
    quiet = MachineLoad(seconds=2.0, others_cpu_seconds=2.0 * BUSY_CORES / 2, loadavg=0.1)
    assert not quiet.busy and quiet.describe().startswith("quiet")
