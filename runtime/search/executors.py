"""Where candidates run: this process, worker processes (`--jobs N`), or Ray tasks on an existing
cluster (`--executor ray`). Each offers the same three names, so the search never branches on
which it has: `slots` (how many candidates it takes at once), `submit(job) -> handle`,
`wait(handles) -> [(handle, result)]` (at least one finished), and `close()`.

A candidate that crashes its worker comes back as a result with an `error`, as an export that
fails does: the search goes on without it.
"""

import concurrent.futures
import logging
import multiprocessing

from pocketfit.errors import BadInput, EnvironmentLimit

from .evaluate import evaluate


class Inline:
    """One at a time, here: the teacher and its reference outputs stay loaded between candidates."""

    slots = 1

    def __init__(self):
        self._done: dict[int, dict] = {}

    def submit(self, job) -> int:
        handle = len(self._done)
        self._done[handle] = _result(lambda: evaluate(job))
        return handle

    def wait(self, handles: list) -> list:
        return [(h, self._done.pop(h)) for h in handles]

    def close(self) -> None:
        pass


class Processes:
    """N worker processes, started fresh (spawn: torch and a forked thread pool do not mix); each
    loads the teacher once, for the first candidate it is given."""

    def __init__(self, jobs: int):
        self.slots = jobs
        # a spawned worker starts with default logging: it takes the levels the caller chose
        # (the CLI quiets torch's and torchao's advice to their own developers)
        levels = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
                  if isinstance(logger, logging.Logger) and logger.level}
        self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                                            initializer=_set_levels, initargs=(levels,))

    def submit(self, job):
        return self._pool.submit(evaluate, job)

    def wait(self, handles: list) -> list:
        done, _ = concurrent.futures.wait(handles, return_when=concurrent.futures.FIRST_COMPLETED)
        return [(h, _result(h.result)) for h in done]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class Ray:
    """Ray tasks, one CPU each, on the cluster `ray.init` finds (RAY_ADDRESS, or one started here
    by `ray start`), or at `address`; with none, Ray starts a local one for the search and stops it
    after. Every node needs pocketfit installed and the output folder at the same path."""

    def __init__(self, jobs: int, address: str | None):
        try:
            import ray
        except ImportError as e:
            raise EnvironmentLimit(f"--executor ray needs the ray package (pinned in requirements/lock.txt): {e}") from e
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise EnvironmentLimit(f"--executor ray: cannot start or reach a Ray cluster{f' at {address}' if address else ''}: {e}") from e
        self.slots = jobs if jobs > 1 else max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._task = ray.remote(num_cpus=1, max_retries=0)(evaluate)

    def submit(self, job):
        return self._task.remote(job)

    def wait(self, handles: list) -> list:
        done, _ = self._ray.wait(handles, num_returns=1)
        return [(h, _result(lambda: self._ray.get(h))) for h in done]

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _set_levels(levels: dict[str, int]) -> None:
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _result(get) -> dict:
    try:
        return get()
    except Exception as e:  # the worker died or raised: this candidate cannot be had
        return {"error": f"the worker failed: {type(e).__name__}: {e}"}


EXECUTORS = {"local": None, "ray": Ray}


def executor(name: str, jobs: int, address: str | None = None):
    if name not in EXECUTORS:
        raise BadInput(f"unknown executor {name!r}: pocketfit runs candidates on {', '.join(EXECUTORS)}")
    if name == "ray":
        return Ray(jobs, address)
    return Inline() if jobs <= 1 else Processes(jobs)
