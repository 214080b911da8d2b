"""`fit`: the search, start to end. Every candidate gets an estimate; those that cannot fit by it
are never exported; the rest are exported, verified, measured and judged on held-out text,
simplest first, by an executor (this process, worker processes, or Ray tasks), until the rules
in frontier.py leave nothing worth exporting. Each result is cached as it arrives, so a killed
search restarted on the same output folder redoes nothing it finished.
"""

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from pocketfit.converter import texts
from pocketfit.converter.backends import FORMATS
from pocketfit.converter.shrinking.objectives import OBJECTIVES
from pocketfit.converter.tasks import spec
from pocketfit.errors import BadInput
from pocketfit.files import ensure_dir, write_text_atomic
from pocketfit.progress import Progress, Silent
from pocketfit.runtime import devices, runtimes

from . import estimate as _estimate
from .evaluate import Job, _teacher
from .executors import executor as _executor
from .frontier import Estimate, Goal, Knobs, Search
from .quality import MEASURES
from .space import grid, tokens_used

MIN_TEXT_LINES = 50  # a fifth is held out to judge quality on: ten lines at the least
_HELD_OUT_MAX = 1000


@dataclass(frozen=True)
class Floor:
    """The quality a candidate must keep, in its task's measure (quality.MEASURES)."""

    value: float

    def check(self, task) -> None:
        m = MEASURES[task]
        if m.higher_is_better and not 0 < self.value <= 1:
            raise BadInput(f"a {m.name} floor of {self.value:g} can never be met: it lies in (0, 1], and the unshrunk model scores 1")
        if not m.higher_is_better and self.value < 0:
            raise BadInput(f"a {m.name} of at most {self.value:g} can never be met: the unshrunk model's own increase is 0")


@dataclass
class Outcome:
    """What a search found: the state of every candidate, each one's figures, and the choice."""

    search: Search
    results: dict[Knobs, dict]  # evaluated: the figures evaluate() returned
    cached: set[Knobs]  # of those, the ones a previous run had finished
    device: object
    task: object
    floor: Floor
    memory: int  # what the model and its runtime may hold on the phone
    held_out_lines: int
    chosen: Knobs | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """considered = skipped by prediction + ruled out + below in torch + exported + failed to
        export; from_cache and evaluated_here split the last three by which run did them."""
        s, results = self.search, self.results.values()
        predicted = sum(1 for why in s.skipped.values() if why.startswith("predicted"))
        failed = sum(1 for r in results if "error" in r)
        torch = sum(1 for r in results if "torch_quality" in r)
        return {"considered": len(s.estimates), "skipped_by_prediction": predicted, "ruled_out": len(s.skipped) - predicted - failed,
                "below_in_torch": torch, "exported": len(self.results) - torch - failed, "failed_to_export": failed,
                "from_cache": len(self.cached), "evaluated_here": len(self.results) - len(self.cached)}


def memory_for(budget: str | float, device) -> int:
    """The bytes the model and its runtime may hold on the phone."""
    from pocketfit.units import parse_bytes

    text = str(budget).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:  # a size, or refused with the forms a size takes
        return parse_bytes(text)
    if not 0 < share <= 1:
        raise BadInput(f"budget share {text!r}: a share of the app budget lies in (0, 1]; or give a size (64 MiB)")
    return int(device.app_budget * share)


def split_text(lines: list[str]) -> tuple[list[str], list[str]]:
    """The app's text into what the shrink steps may use and what quality is judged on: a fixed
    shuffle, one line in five held out (at most 1,000), so neither half is one end of the file."""
    order = list(range(len(lines)))
    random.Random(0).shuffle(order)
    count = min(_HELD_OUT_MAX, len(lines) // 5)
    held = set(order[:count])
    return [x for i, x in enumerate(lines) if i not in held], [lines[i] for i in sorted(held)]


def fit(model: str, device_ref: str, *, task, floor: Floor, budget: str = "25%", formats: list[str], text: Path | None = None,
        max_latency_ms: float | None = None, heal_seconds: float = 0.0, output: Path, jobs: int = 1,
        executor: str = "local", ray_address: str | None = None, seq_len: int = 128,
        progress: Progress = Silent()) -> Outcome:
    """Search `model`'s shrink x quantization x format space for what fits the phone within
    `budget` (the model and its runtime: a share of the phone's app budget, "25%" or 0.25, or a
    size, "64 MiB") at `floor`, writing artifacts and the cache under `output`."""
    device = devices.load(device_ref)
    memory = memory_for(budget, device)
    floor.check(task)
    ensure_dir(output)
    train_path, held_out = _texts(text, output)
    with progress.step(f"Loading {model}"):
        teacher = _teacher(str(model), task.value)
    spec(task).graph(teacher)  # a model that cannot be exported for the task at all is refused here, not once per candidate
    sizes = _sizes(teacher, progress)
    used = tokens_used(teacher.tokenizer, texts.lines(train_path)) if train_path and sizes else None
    knobs = grid(formats, task, sizes.layers if sizes else 0, used, heal_seconds, shrinkable=sizes is not None)
    if not knobs:
        raise BadInput(f"none of the formats {', '.join(formats)} can export {task.value}")
    search = Search(Goal(memory, max_latency_ms), {k: _estimate_of(k, sizes, teacher, device, seq_len) for k in knobs})
    key = _keyer(model, task, train_path, held_out, device, seq_len)
    cache = ensure_dir(output / ".cache")
    outcome = Outcome(search, {}, set(), device, task, floor, memory, len(held_out))
    _resume(outcome, knobs, cache, key)

    def job(k: Knobs) -> Job:
        return Job(str(model), task.value, k, device_ref, str(output / "candidates" / key(k)[:16]), tuple(held_out),
                   str(train_path) if train_path else None, seq_len, floor.value)

    with progress.step(f"Searching {len(knobs)} candidates ({len(search.skipped)} cannot fit by prediction)"):
        _drive(outcome, _executor(executor, jobs, ray_address), job, cache, key, progress)
    pareto = search.pareto()
    outcome.chosen = pareto[0] if pareto else None  # the smallest on disk of what fits
    return outcome


def _texts(text: Path | None, output: Path) -> tuple[Path | None, list[str]]:
    """The file the shrink steps may read, and the held-out lines; without text, the built-in
    calibration sentences (never used to verify) judge quality and nothing trims or trains."""
    if text is None:
        return None, texts.calibration()
    train, held_out = split_text(texts.lines(text, "text file", MIN_TEXT_LINES))
    folder = ensure_dir(output / "text")
    write_text_atomic(folder / "app-text.txt", "\n".join(train) + "\n")
    write_text_atomic(folder / "held-out.txt", "\n".join(held_out) + "\n")
    return folder / "app-text.txt", held_out


def _sizes(teacher, progress: Progress):
    """Where the teacher's parameters are, or None when pocketfit cannot shrink it (the task, or
    the family): then the search is over recipes and formats only."""
    if teacher.task not in OBJECTIVES:
        return None
    try:
        return _estimate.sizes(teacher.module)
    except BadInput as e:
        progress.note(f"searching recipes and formats only: {e}")
        return None


def _estimate_of(k: Knobs, sizes, teacher, device, seq_len: int) -> Estimate:
    footprint = runtimes.footprint_of(FORMATS[k.format].runtime).footprint
    if sizes is None:  # where its tables are is not known: every weight at the cheaper of the two rates
        cheapest = min(_estimate.LINEAR[k.recipe], _estimate.TABLE[k.recipe])
        return Estimate(int(teacher.parameters * cheapest), footprint, None)
    latency = _estimate.phone_latency_ms(_estimate.shape_of(sizes, teacher.module, k), k, device, seq_len)
    return _estimate.estimate(sizes, k, footprint, latency)


def _resume(outcome: Outcome, knobs: list[Knobs], cache: Path, key) -> None:
    """What an earlier run of this search finished, recorded as if it had just arrived."""
    for k in knobs:
        path = cache / f"{key(k)}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text(encoding="utf-8"))["result"]
        if "torch_quality" in result and MEASURES[outcome.task].meets(result["torch_quality"], outcome.floor.value):
            continue  # judged in torch against a stricter floor than this one: it is exported this time
        _record(outcome, k, result, outcome.floor)
        outcome.cached.add(k)


def _drive(outcome: Outcome, pool, job, cache: Path, key, progress: Progress) -> None:
    """Hand the executor the next candidates worth exporting until none is left; cache and record
    each result as it arrives."""
    search, running = outcome.search, {}
    try:
        while True:
            while len(running) < pool.slots and (k := search.next()) is not None:
                running[pool.submit(job(k))] = k
            if not running:
                return
            for handle, result in pool.wait(list(running)):
                k = running.pop(handle)
                write_text_atomic(cache / f"{key(k)}.json", json.dumps({"knobs": dataclasses.asdict(k), "result": result}, indent=1) + "\n")
                _record(outcome, k, result, outcome.floor)
                progress.note(_line(outcome, k))
                done = len(outcome.results) - len(outcome.cached)
                progress.advance(done, done + len(running) + _open(search), "exported", "")
    finally:
        pool.close()


def _open(search: Search) -> int:
    """Candidates not yet exported nor ruled out: an upper bound on what is left."""
    return sum(1 for k in search.estimates if not (search.done(k) or k in search.skipped or k in search.pending))


def _record(outcome: Outcome, k: Knobs, result: dict, floor: Floor) -> None:
    search = outcome.search
    outcome.results[k] = result
    if "error" in result:  # it cannot be had: rules nothing out, since nothing was learned about quality
        search.pending.discard(k)
        search.skipped[k] = f"export failed: {result['error']}"
        return
    if "torch_quality" in result:  # its shape missed the floor before export
        search.record_structure(k, result["torch_quality"])
        return
    measured = Estimate(result["bytes"], result["model_rss"] + result["footprint"], result["latency_ms"])
    met = MEASURES[outcome.task].meets(result["quality"], floor.value) and result["parity_passed"]
    search.record(k, result["quality"], met, measured)
    if result["model_rss"] >= result["bytes"]:
        search.holds_its_file(k)


def _line(outcome: Outcome, k: Knobs) -> str:
    r = outcome.results[k]
    measure = MEASURES[outcome.task]
    if "error" in r:
        return f"{k.describe()}: could not be exported: {r['error']}"
    if "torch_quality" in r:
        return f"{k.describe()}: {measure.name} {measure.show(r['torch_quality'])} in torch, before export: below the floor, not exported"
    s = outcome.search
    verdict = ("meets the floor and fits" if k in s.passed else s.over[k] if k in s.over
               else "below the floor" if r["parity_passed"] else "parity below the recipe's floor")
    mib = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
    latency = f", {r['latency_ms']:.1f} ms predicted" if r.get("latency_ms") else ""
    return (f"{k.describe()}: {mib(r['bytes'])}, needs {mib(r['model_rss'] + r['footprint'])}{latency}, "
            f"{MEASURES[outcome.task].name} {MEASURES[outcome.task].show(r['quality'])}: {verdict}")


def _keyer(model, task, train_path, held_out, device, seq_len):
    """A candidate's cache key: everything its figures depend on."""
    from pocketfit.converter.models import resolve

    folder, revision = resolve(model)
    files = sorted((p.name, p.stat().st_size) for p in Path(folder).iterdir() if p.is_file())
    config = (Path(folder) / "config.json").read_bytes() if (Path(folder) / "config.json").exists() else b""
    base = {"model": revision or str(Path(folder).resolve()), "files": files, "config": hashlib.sha256(config).hexdigest(),
            "task": task.value, "text": hashlib.sha256(Path(train_path).read_bytes()).hexdigest() if train_path else None,
            "held_out": hashlib.sha256("\n".join(held_out).encode()).hexdigest(), "device": device.id,
            "seq_len": seq_len, "pocketfit": version("pocketfit")}

    def key(k: Knobs) -> str:
        return hashlib.sha256(json.dumps(base | {"knobs": dataclasses.asdict(k)}, sort_keys=True).encode()).hexdigest()
    return key
