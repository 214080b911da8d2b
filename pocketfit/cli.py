"""The pocketfit command line. Library errors become one line and an exit code here, and only here.

Exit codes: 0 all checks pass · 1 a budget or parity check failed · 2 bad input or usage ·
3 an environment limit · 70 an internal error (a bug: rerun with --verbose and report it).
"""

import contextlib
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path

import click

from . import errors
from .converter.backends import FORMATS
from .converter.recipes import RECIPES
from .converter.tasks import Task
from .runtime.budget.formats import names as _report_formats
from .runtime.paging.policies import POLICIES
from .units import human, mib

EXIT_CODES = [
    (errors.CheckFailed, 1),
    (errors.MeasurementFailed, 1),
    (errors.BadInput, 2),
    (errors.ExportFailed, 2),
    (errors.EnvironmentLimit, 3),
]
INTERNAL_ERROR = 70


def _quiet_third_party() -> None:
    """torch, torchao and transformers log advice meant for their own developers; a pocketfit
    user sees pocketfit's progress lines instead (--verbose shows everything)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("torchao", "torch.utils._pytree", "torch.onnx", "onnxruntime", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _recipe(quant: str, options: tuple[str, ...], calibration: Path | None):
    """The recipe with its --quant-option fields, each value read as its field's type."""
    import dataclasses

    kind = RECIPES[quant]
    fields = {f.name: f.default for f in dataclasses.fields(kind) if f.name != "calibration"}
    values: dict = {"calibration": calibration} if calibration else {}
    for spec in options:
        key, sep, value = (part.strip() for part in spec.partition("="))
        if not sep or key not in fields:
            offered = ", ".join(f"{k}=" for k in fields) or "no options"
            raise click.UsageError(f"--quant-option {spec!r}: --quant {quant} takes {offered}")
        if isinstance(fields[key], bool):
            if value.lower() not in ("true", "false"):
                raise click.UsageError(f"--quant-option {spec!r}: {key} is true or false")
            values[key] = value.lower() == "true"
        else:
            try:
                values[key] = int(value)
            except ValueError:
                raise click.UsageError(f"--quant-option {spec!r}: {key} is a whole number") from None
    return kind(**values)


@contextlib.contextmanager
def _made_to_last():
    """Loading a model imports torch and transformers: about a million objects that live as long
    as the process. Every full collection during the import walks all of them (0.3 s of a 6 s
    export), so collection waits until they are made, and they are frozen, which later
    collections skip."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pocketfit")
@click.option("--verbose", is_flag=True, help="Show third-party logs and full tracebacks.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Will this transformer model fit on that phone, and how fast will it run there?

    \b
    pocketfit export minilm --quant int8 -o out/
    pocketfit check out/model.onnx --device pixel-7a
    """
    ctx.obj = {"verbose": verbose}
    if not verbose:
        _quiet_third_party()


@cli.command()
@click.argument("model")
@click.option("--task", type=click.Choice([t.value for t in Task]), default=Task.FEATURE_EXTRACTION.value, show_default=True,
              help="What the exported graph computes.")
@click.option("--format", "format_", type=click.Choice(sorted(FORMATS) + ["all"]), default="onnx", show_default=True,
              help="Artifact format; `all` writes one subfolder per format.")
@click.option("--quant", type=click.Choice(list(RECIPES)), default="none", show_default=True, help="Shrink recipe.")
@click.option("--quant-option", "quant_options", multiple=True, metavar="KEY=VALUE",
              help="A field of the recipe (repeatable): int4 takes group_size=32|64|128 and embeddings=8|4 (4: ONNX/ORT only); "
                   "int8 and int8-static take per_channel=true|false.")
@click.option("--max-context", type=click.IntRange(min=1), help="text-generation: positions in the static KV cache [default: 256].")
@click.option("--calibration", type=click.Path(path_type=Path), help="int8-static: a text file, one calibration text per line.")
@click.option("--shrink", "shrink_specs", multiple=True, metavar="KEY=VALUE",
              help="Remove weights before export (repeatable, applied in order, heal last): layers=N or layers=I,J,..., "
                   "ffn=FRACTION|N, heads=FRACTION|N, vocab=FILE or vocab=FILE:N, seq=TOKENS, heal=STEPS or heal=SECONDSs; "
                   "or start from a fresh smaller model (first, healed): shape=layers:N,ffn:N,heads:N.")
@click.option("--text", type=click.Path(path_type=Path),
              help="With --shrink: the app's own text, one passage per line, that ffn, heads and heal measure and train on.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder.")
def export(model: str, task: str, format_: str, quant: str, quant_options: tuple[str, ...], max_context: int | None,
           calibration: Path | None, shrink_specs: tuple[str, ...], text: Path | None, output: Path) -> None:
    """Export MODEL (a local Hugging Face folder, or `minilm`) and verify it in its runtime.

    Writes OUTPUT/model.<format> and OUTPUT/manifest.json (with --format all, one subfolder per
    format; a format that cannot export the task is skipped with its reason). Exits 1 when an
    artifact's parity with the torch model falls below the recipe's floor.

    \b
    pocketfit export minilm --format onnx --quant int8 -o out/minilm-int8
    pocketfit export ./my-llama --task text-generation --format pte --quant int4 --max-context 512 -o out/llama
    pocketfit export minilm --shrink layers=3 --shrink vocab=app.txt --shrink heal=300 --text app.txt --quant int8 -o out/small
    """
    import dataclasses

    from .converter import check_supported, export as run_export, load, texts
    from .converter import shrinking
    from .converter.models import resolve
    from .files import ensure_dir
    from .progress import Console

    the_task = Task(task)
    # A fresh shape builds the model the others cut, a heal trains what they left: first and last
    steps = sorted((shrinking.parse(s) for s in shrink_specs),
                   key=lambda s: -1 if isinstance(s, shrinking.FreshShape) else isinstance(s, shrinking.Heal))
    if text is not None and not steps:
        raise click.UsageError("--text applies with --shrink only")
    needing = next((s for s in steps if getattr(s, "needs_text", False)), None)
    if needing is not None and text is None:
        raise click.UsageError(f"--shrink {needing.name}=... measures or trains on the app's text: give it with --text FILE")
    if text is not None:
        texts.lines(text, "text file")  # a bad file fails now, not after the model loads
    for step in steps:
        if isinstance(step, shrinking.TrimVocab):
            texts.lines(step.corpus, "vocabulary corpus")
    checkpoint = output / ".heal-checkpoint.pt"  # a killed export resumes its heal from here
    steps = [dataclasses.replace(s, checkpoint=checkpoint) if isinstance(s, shrinking.Heal) else s for s in steps]
    if calibration is not None and quant != "int8-static":
        raise click.UsageError("--calibration applies to --quant int8-static only")
    if max_context is not None and the_task is not Task.TEXT_GENERATION:
        raise click.UsageError("--max-context applies to --task text-generation only")
    recipe = _recipe(quant, quant_options, calibration)
    formats = [FORMATS[f]() for f in (sorted(FORMATS) if format_ == "all" else [format_])]
    plan, skipped = [], []
    for fmt in formats:  # every refusal happens here, in one line, before anything slow starts
        try:
            check_supported(fmt, recipe, the_task)
            plan.append(fmt)
        except errors.UnsupportedCombination as e:
            if format_ != "all":
                raise
            skipped.append(str(e))
    resolve(model)
    ensure_dir(output)
    progress = Console()
    with progress.step(f"Loading {model} for {task}"), _made_to_last():
        loaded = load(model, the_task)
    if steps:
        with progress.step(f"Shrinking {model}: {', '.join(s.name for s in steps)}"):
            before = loaded.parameters
            # One format: the heal trains under that format's rounding of the recipe. Several:
            # each rounds differently, and healing for one grid costs the others quality.
            export_as = (plan[0], recipe) if len(plan) == 1 else None
            loaded = shrinking.shrink(loaded, *steps, text=text, progress=progress, export_as=export_as)
        heal = next((r for r in loaded.shrunk if r["step"] == "heal"), None)
        if heal is not None and recipe.name != "none":
            if heal.get("rounding"):
                click.echo(f"healed under the export's rounding ({heal['rounding']})")
            else:
                why = "each format rounds differently" if len(plan) != 1 else f"{plan[0].name} does not emulate {recipe.name}"
                click.echo(f"healed in float, not under the export's rounding: {why}")
        for record in loaded.shrunk:
            if "held_out" in record:
                h = record["held_out"]
                click.echo(f"vocabulary: {record['tokens']['before']:,} tokens to {record['tokens']['after']:,}; on {h['lines']} "
                           f"held-out lines, {h['words_split_differently']:.1%} of words split differently, "
                           f"{h['unk_rate']:.2%} of tokens [UNK]")
        click.echo(f"shrunk {model}: {before:,} parameters to {loaded.parameters:,} ({loaded.parameters / before:.1%})")
    failed = []
    for fmt in plan:
        folder = output / fmt.name if format_ == "all" else output
        artifact = run_export(loaded, folder, fmt, recipe, max_context=max_context, progress=progress)
        m = artifact.manifest
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in m.parity.metrics.items())
        click.echo(f"{artifact.path}  {mib(m.bytes)}  parity over {m.parity.inputs} inputs: {metrics}")
        if not m.parity.passed:
            below = ", ".join(f"{k} {m.parity.metrics[k]:.4f} < {f}" for k, f in m.parity.floors.items() if m.parity.metrics[k] < f)
            failed.append(f"{fmt.name}: {below}")
    for reason in skipped:
        click.echo(f"skipped: {reason}")
    checkpoint.unlink(missing_ok=True)
    if failed:
        raise errors.CheckFailed(f"parity below the {quant} floor: {'; '.join(failed)} (artifacts kept for inspection)")


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1), help="How many of the largest tensors to list.")
@click.option("--layout", "show_layout", is_flag=True, help="Instead: where each weight lies in the file(s), mapped or copied, in reading order.")
@click.option("--option", "runtime_options", multiple=True, metavar="KEY=VALUE",
              help="With --layout: a runtime option, e.g. xnnpack=off for .tflite (repeatable).")
@click.option("--ops", "show_ops", is_flag=True,
              help="Instead: the work of one call, op by op: arithmetic, weight and activation bytes, kernel precision.")
@click.option("--seq-len", default=128, show_default=True, type=click.IntRange(min=1), help="With --ops: an encoder's tokens.")
@click.option("--context", type=click.IntRange(min=1), help="With --ops: the positions a decoder's step attends [default: --seq-len].")
@click.option("--json", "as_json", is_flag=True, help="With --ops: print every op as JSON.")
def inspect(artifact: Path, top: int, show_layout: bool, runtime_options: tuple[str, ...], show_ops: bool, seq_len: int,
            context: int | None, as_json: bool) -> None:
    """Print what ARTIFACT holds: format, size, constants by dtype, the largest tensors,
    operators, and format-specific facts (for .pte: the planned arena per method and which
    operators run in the XNNPACK delegate). With --layout: each weight's file, offset, length,
    whether the runtime keeps it mapped (pageable) or copies it, in the order one inference reads them.

    \b
    pocketfit inspect out/minilm-int8/model.onnx
    pocketfit inspect out/model.tflite --layout --option xnnpack=off
    pocketfit inspect out/model.pte --ops --json
    """
    from .converter import inspect as read, weight_layout

    if runtime_options and not show_layout:
        raise click.UsageError("--option applies to --layout only")
    if show_ops and show_layout:
        raise click.UsageError("--ops and --layout are two views: choose one")
    if (as_json or context) and not show_ops:
        raise click.UsageError("--json and --context apply to --ops only")
    if show_ops:
        from .converter.reading import work

        done = work(artifact, seq_len=seq_len, context=context)
        click.echo(json.dumps(done.to_dict(), indent=2) if as_json else done.render(top))
    elif show_layout:
        click.echo(weight_layout(artifact, _parse_options(runtime_options)).render())
    else:
        click.echo(read(artifact).render(top))


def _parse_options(items: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"--option {item!r}: write KEY=VALUE, e.g. xnnpack=off")
        parsed[key] = value
    return parsed


def _measurement_options(f):
    for option in reversed([
        click.option("--iterations", default=20, show_default=True, type=click.IntRange(min=1), help="Timed runs."),
        click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0), help="Untimed runs before them."),
        click.option("--seq-len", default=128, show_default=True, type=click.IntRange(min=1), help="Tokens per input."),
        click.option("--threads", type=click.IntRange(min=1), help="Runtime threads (default: the runtime's own)."),
        click.option("--option", "runtime_options", multiple=True, metavar="KEY=VALUE",
                     help="A runtime option, e.g. xnnpack=off for .tflite (repeatable)."),
        click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(min=1), help="Seconds before a hung run is killed."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]):
        f = option(f)
    return f


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@_measurement_options
@click.option("--emulate", "emulate_ref", metavar="DEVICE", help="Run inside this phone's memory, flash and CPU limits (cgroups; needs root).")
@click.option("--budget", "budget_text", metavar="SIZE", help="With --emulate: the model's memory budget instead of the phone's (e.g. 64MiB).")
@click.option("--madvise", "advice", type=click.Choice(["normal", "random", "sequential"]),
              help="madvise the runtime's mapping of the artifact after load, as an app can (random: no read-around).")
@click.option("--cold", is_flag=True, help="Drop the artifact from the page cache first (always so with --emulate).")
@click.option("--device", "device_refs", multiple=True, help="Also judge the result against this phone (repeatable).")
def profile(artifact: Path, emulate_ref: str | None, budget_text: str | None, advice: str | None, cold: bool, device_refs: tuple[str, ...], **options) -> None:
    """Measure ARTIFACT in its own runtime, in a child process: load time, latency, peak memory
    split into anonymous and file-backed, page faults and bytes read — what the model costs apart
    from the process measuring it. Exits 1 when the run crashed, hung or was OOM-killed, or when it
    does not fit a --device.

    \b
    pocketfit profile out/model.tflite --option xnnpack=off
    pocketfit profile out/model.pte --emulate galaxy-a15
    """
    from .runtime import devices

    from .units import parse_bytes

    phones = [devices.load(ref) for ref in device_refs]
    emulated = devices.load(emulate_ref) if emulate_ref else None
    if budget_text and not emulated:
        raise click.UsageError("--budget applies with --emulate DEVICE only")
    if emulated and emulated not in phones and not budget_text:
        phones.insert(0, emulated)
    budget = parse_bytes(budget_text) if budget_text else None
    _measure_and_judge(artifact, phones, emulated, cold, budget=budget, advice=advice, **options)


_REPORT_FORMATS = _report_formats()


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path), required=False)
@click.option("--device", "device_refs", multiple=True, help="With ARTIFACT: a device id or profile .toml (repeatable).")
@click.option("--config", "config", type=click.Path(path_type=Path),
              help="The budget file [default: ./pocketfit.toml, or [tool.pocketfit] in ./pyproject.toml].")
@click.option("--baseline", type=click.Path(path_type=Path), help="Compare growth limits against this recorded baseline (JSON).")
@click.option("--update-baseline", is_flag=True, help="Rewrite the baseline (atomically) with this run's figures.")
@click.option("--format", "report_formats", multiple=True, type=click.Choice(_REPORT_FORMATS),
              help="Report format [default: table]; repeat together with --output to write several.")
@click.option("--output", "outputs", multiple=True, type=click.Path(path_type=Path),
              help="Write the report here (atomically) instead of stdout; pairs with --format in order.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1), help="Model x device checks run in parallel.")
@_measurement_options
@click.pass_context
def check(ctx: click.Context, artifact: Path | None, device_refs: tuple[str, ...], config: Path | None, baseline: Path | None,
          update_baseline: bool, report_formats: tuple[str, ...], outputs: tuple[Path, ...], jobs: int, **options) -> None:
    """Check models against the phones a release supports. Without ARTIFACT, run the budget
    file: build what it asks for, then judge every model x device x limit (size, memory measured
    and emulated, predicted latency, parity, growth over a baseline). Prints a table with a
    verdict and margin per check, or writes JSON, JUnit XML, Markdown or HTML. With ARTIFACT,
    judge that one file against each --device's app budget.

    Exits 0 when all pass, 1 when a limit is broken, 2 on a bad budget file or input, 3 when
    the machine lacks what a check needs (cgroups for emulated_memory): a check that cannot run
    is never a pass.

    \b
    pocketfit check --config pocketfit.toml --format junit --output report.xml --format markdown --output summary.md
    pocketfit check --baseline baseline.json --update-baseline
    pocketfit check out/minilm-int8/model.onnx --device galaxy-a15 --device iphone-15
    """
    from .runtime import devices

    budget_mode = (config, baseline, update_baseline, report_formats, outputs, jobs != 1)
    if artifact is not None:
        if any(budget_mode):
            raise click.UsageError("--config, --baseline, --update-baseline, --format, --output and --jobs apply to a budget file; "
                                   "drop ARTIFACT to run one")
        if not device_refs:
            raise click.UsageError("checking ARTIFACT needs at least one --device (or drop ARTIFACT to run the budget file)")
        _measure_and_judge(artifact, [devices.load(ref) for ref in device_refs], None, False, **options)
        return
    if device_refs:
        raise click.UsageError("--device applies to ARTIFACT; a budget file names its devices in [tiers]")
    given = [name for name in options if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if given:
        flag = next(p.opts[-1] for p in ctx.command.params if p.name == given[0])
        raise click.UsageError(f"{flag} applies to ARTIFACT; a budget file sets how it measures in its [measure] table")
    _check_budget(config, baseline, update_baseline, report_formats, outputs, jobs)


def _check_budget(config, baseline, update_baseline, report_formats, outputs, jobs) -> None:
    from .files import write_text_atomic
    from .progress import Console
    from .runtime import budget

    if outputs and len(report_formats) not in (0, len(outputs)) or (not outputs and len(report_formats) > 1):
        raise click.UsageError("give one --format per --output, in the same order (or one --format for stdout)")
    if outputs and not report_formats:
        raise click.UsageError("--output needs a --format (table, json, junit, markdown or html)")
    path = config or budget.find(Path.cwd())
    plan = budget.load(path)
    results = budget.run(plan, jobs=jobs, baseline=baseline, update_baseline=update_baseline, progress=Console(),
                         config_name=str(path))
    for fmt, out in zip(report_formats, outputs):
        try:
            write_text_atomic(out, budget.render(fmt, results))
        except OSError as e:
            raise errors.OutputNotWritable(f"cannot write {out}: {e.strerror}") from e
    if not outputs:
        click.echo(budget.render(report_formats[0] if report_formats else "table", results), nl=False)
    else:
        click.echo(budget.render("table", results), nl=False)
        for fmt, out in zip(report_formats, outputs):
            click.echo(f"wrote {fmt} report: {out}")
    code = results.exit_code
    if code:
        bad = [f"{cell.model} on {cell.device}: {c.limit}" for cell, c in results.checks if c.status is not budget.Status.PASS]
        summary = f"{len(bad)} of {len(results.checks)} checks did not pass ({'; '.join(bad[:3])}{'; ...' if len(bad) > 3 else ''})"
        kind = {1: errors.CheckFailed, 2: errors.BadInput, 3: errors.EnvironmentLimit}[code]
        raise kind(summary)


def _measure_and_judge(artifact, phones, emulated, cold, iterations, warmup, seq_len, threads, runtime_options, timeout, as_json,
                       budget=None, advice=None):
    from .runtime import fit, measure, report

    parsed = _parse_options(runtime_options)
    m = measure(artifact, iterations=iterations, warmup=warmup, seq_len=seq_len, threads=threads, options=parsed,
                timeout=timeout, emulate=emulated, cold=cold, budget=budget, advice=advice)
    fits = [fit(m, d) for d in phones]
    predicted = []
    if m.ok and phones:
        from .runtime import cost

        predicted = [cost.phone_figures(artifact, d, seq_len=seq_len) for d in phones]
    click.echo(json.dumps(report.document(m, fits, predicted), indent=2) if as_json else report.text(m, fits, predicted))
    if not m.ok:
        raise errors.CheckFailed(f"{artifact}: {m.outcome}" + (f" ({m.detail})" if m.detail else ""))
    failing = [f.device.id for f in fits if not f.fits]
    if failing:
        raise errors.CheckFailed(f"{artifact} does not fit: {', '.join(failing)}")


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--device", "device_ref", required=True, help="Device id or profile .toml.")
@click.option("--policy", type=click.Choice(list(POLICIES)), default="lru", show_default=True,
              help="Page-cache policy: plain mmap under LRU, mlock the hottest bytes then LRU, or Linux-like active/inactive lists.")
@click.option("--readahead", default="128", show_default=True, metavar="KB|random",
              help="The kernel's read-around window in KiB, or `random` for MADV_RANDOM.")
@click.option("--option", "runtime_options", multiple=True, metavar="KEY=VALUE",
              help="A runtime option, e.g. xnnpack=off for .tflite: it decides which weights stay mapped (repeatable).")
@click.option("--tokens", default=0, show_default=True, type=click.IntRange(min=0), help="Decode steps after a prefill (0: one inference).")
@click.option("--budget", "budget_text", metavar="SIZE", help="Memory budget instead of the device's app budget less the runtime's footprint, e.g. '600 MiB'.")
@click.option("--latency-target", "latency_ms", type=click.FloatRange(min=0, min_open=True), metavar="MS",
              help="Exit 1 when the warm latency misses it; print the smallest budget that meets it.")
@click.option("--compute-ms", type=click.FloatRange(min=0), metavar="X", help="Compute time per run instead of measuring it on this machine.")
@click.option("--predicted-compute", is_flag=True,
              help="Take the compute time per run from the latency model's prediction for DEVICE instead of measuring it here.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), metavar="FILE", help="Write the result and the curve as JSON.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), metavar="FILE.png", help="Draw the latency-vs-memory curve.")
def simulate(artifact: Path, device_ref: str, policy: str, readahead: str, runtime_options: tuple[str, ...], tokens: int,
             budget_text: str | None, latency_ms: float | None, compute_ms: float | None, predicted_compute: bool,
             json_path: Path | None, plot_path: Path | None) -> None:
    """Simulate ARTIFACT's mapped weights paging from a phone's flash: major faults, bytes read
    and latency at the phone's budget (cold first run, warm steady state), the latency-vs-memory
    curve, and whether pinning beats plain mmap. Every figure is simulated from the device
    profile; compute time is measured on this machine unless --compute-ms gives it. Exits 1
    when it does not fit or misses --latency-target.

    \b
    pocketfit simulate out/model.tflite --device galaxy-a15 --option xnnpack=off --plot curve.png
    pocketfit simulate out/llama/model.pte --device pixel-7a --tokens 256 --policy pinned --json sim.json
    """
    from .converter import backends
    from .runtime import devices
    from .runtime.paging import Readahead, simulate as run_simulation
    from .runtime.paging.plot import write_json, write_png
    from .units import parse_bytes

    device = devices.load(device_ref)
    ahead = Readahead.parse(readahead)
    budget = parse_bytes(budget_text) if budget_text is not None else None
    if not artifact.is_file():
        raise errors.InvalidArtifact(f"artifact {artifact} does not exist")
    parsed = _parse_options(runtime_options)
    backend = backends.for_path(artifact)
    options = backends.check_options(backend.OPTIONS, parsed)
    layout = backend.layout(artifact, options)
    kv_cache = _kv_cache_bytes(artifact)
    heap = 0  # the runtime's own anonymous memory, known only from a measurement
    from .runtime import cost

    if predicted_compute and compute_ms is not None:
        raise click.UsageError("--compute-ms and --predicted-compute both set the compute time: choose one")
    phone = cost.phone_figures(artifact, device)
    if predicted_compute:
        if not phone["predicted"]:
            raise errors.BadInput(phone["missing"])
        compute = phone["p50_ms"] / 1e3
        source = (f"PREDICTED for {device.id} by the latency model ({phone['low_ms']:.3g}-{phone['high_ms']:.3g} ms band; "
                  f"{phone['basis']}); runtime heap not measured")
    elif compute_ms is not None:
        compute, source = compute_ms / 1e3, f"given (--compute-ms {compute_ms:g}; runtime heap not measured)"
    else:
        from .runtime import measure

        m = measure(artifact, iterations=10, warmup=2, options=options)
        if not m.ok:
            raise errors.MeasurementFailed(f"{artifact}: measuring the compute time: {m.outcome}" + (f" ({m.detail})" if m.detail else ""))
        compute = m.p50_ms / 1e3
        heap = max(0, m.model_anon - layout.held_bytes("copied") - layout.arena)
        source = (f"measured on this machine, not scaled to {device.id}: {m.runtime} warm p50 of {m.iterations} runs "
                  f"at {m.seq_len} tokens, weights in memory")
    sim = run_simulation(layout, device, compute_seconds=compute, compute_source=source, policy=policy, readahead=ahead,
                         budget=budget, tokens=tokens, kv_cache=kv_cache, heap=heap,
                         latency_target=latency_ms / 1e3 if latency_ms is not None else None)
    if json_path:
        write_json(sim, json_path)
    if plot_path:
        write_png(sim, plot_path)
    if not sim.fits:
        raise errors.CheckFailed(f"{artifact} on {device.id}: {sim.reason}")
    click.echo(sim.render())
    if not predicted_compute:
        click.echo(f"compute on {device.id}, PREDICTED by the latency model (weights in memory): "
                   + (f"{phone['p50_ms']:.3g} ms per run (band {phone['low_ms']:.3g}-{phone['high_ms']:.3g}); "
                      "--predicted-compute simulates with it" if phone["predicted"] else f"none: {phone['missing']}"))
    if sim.meets_target is False:
        raise errors.CheckFailed(f"{artifact} on {device.id}: warm latency {sim.warm.latency_s * 1e3:.2f} ms (simulated) "
                                 f"misses the target of {latency_ms:g} ms")


def _kv_cache_bytes(artifact: Path) -> int:
    """A decoder's KV cache from the manifest beside the artifact: an input and an output of every
    call (both held by the app), or none when it lives in the planned arena (the layout has it)."""
    manifest = artifact.parent / "manifest.json"
    if not manifest.is_file():
        return 0
    try:
        kv = json.loads(manifest.read_text(encoding="utf-8")).get("details", {}).get("kv_cache")
    except (OSError, ValueError) as e:
        raise errors.InvalidArtifact(f"{manifest}: not readable JSON ({e})") from e
    if not kv or kv.get("style") != "io":
        return 0
    return 2 * int(kv["bytes"])


def _cpu(device) -> str:
    c = device.compute
    if c is None:
        return "no [compute] facts: no latency prediction"
    return f"{c.soc}: " + " + ".join(f"{k.cores}x {k.core.name.removeprefix('Arm ')} {k.ghz:g} GHz" for k in c.clusters)


@cli.command(name="devices")
def devices_cmd() -> None:
    """List the built-in phone profiles (pass one's id, or your own .toml, to --device or
    --emulate). Every figure's source is in its file under runtime/devices/."""
    from .runtime import devices
    from .table import render

    rows = [["id", "name", "os", "tier", "RAM", "app budget", "page", "storage", "flash read", "DRAM", "big cores", "CPU (latency model)"]]
    for d in devices.builtin().values():
        budget = human(d.app_budget) + (f" ({human(d.app_budget_extended)})" if d.app_budget_extended else "")
        rows.append([d.id, d.name, d.os.value, d.tier.value, human(d.ram), budget, human(d.page_size), d.storage,
                     f"{d.flash_read_bandwidth / 1e9:.2f} GB/s", f"{d.dram} {d.dram_bandwidth / 1e9:.0f} GB/s", str(d.big_cores),
                     _cpu(d)])
    click.echo(render(rows, right={4, 5, 6, 8, 10}))
    click.echo("\napp budget: what one foreground app can hold before lmkd/jetsam kills it (with iOS's increased-memory-limit entitlement)")


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--arch", type=click.Choice(["arm64"]), required=True, help="Run it in this architecture's build of its runtime.")
@click.option("--cpu", default="max", show_default=True, metavar="QEMU_CPU",
              help="The CPU qemu emulates (max: every feature qemu has, SVE and i8mm included; cortex-a76, a64fx, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(artifact: Path, arch: str, cpu: str, as_json: bool) -> None:
    """Run ARTIFACT in the aarch64 build of its own runtime under qemu, inside an arm64 Debian
    root (make arm64-root), and report its parity against torch there and on x86, and how far the
    arm64 outputs are from the x86 ones. Exits 1 below the recipe's floors on arm64, 3 without root
    or the arm64 root.

    \b
    pocketfit verify out/model.onnx --arch arm64
    """
    from .progress import Console
    from .runtime import arm64

    if not artifact.is_file():
        raise errors.InvalidArtifact(f"artifact {artifact} does not exist")
    if not artifact.with_name("manifest.json").is_file():
        raise errors.InvalidArtifact(f"no manifest.json beside {artifact}: verify compares with the torch model the manifest names")
    why = arm64.ready()
    if why:
        raise errors.EnvironmentLimit(why)
    doc = arm64.verify(artifact, cpu, Console())
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        rows = [["where", "runtime", *doc["floors"].keys(), "seconds"]]
        for where, metrics in doc["torch_parity"].items():
            names = [k for k in doc["floors"]]
            rows.append([where + (f" (qemu {cpu})" if where == "arm64" else ""), doc["arm64_runtime" if where == "arm64" else "x86_runtime"],
                         *(f"{metrics[k]:.4f}" for k in names), f"{doc['seconds'][where]:.1f}"])
        from .table import render

        click.echo(f"{artifact} ({doc['format']}, {doc['quantization']}), {doc['inputs']} inputs against torch fp32:")
        click.echo(render(rows))
        d = doc["arm64_vs_x86"]
        click.echo(f"arm64 against x86, every output: max |difference| {d['max_abs']:.3g}, lowest cosine {d['cosine_min']:.6f}")
    failing = [k for k, floor in doc["floors"].items() if doc["torch_parity"]["arm64"][k] < floor]
    if failing:
        raise errors.CheckFailed(f"{artifact} on arm64 is below its floors: " + ", ".join(
            f"{k} {doc['torch_parity']['arm64'][k]:.4f} < {doc['floors'][k]}" for k in failing))


@cli.command(name="bench-device")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--serial", help="The handset's adb serial, when several are attached.")
@click.option("--apk", type=click.Path(path_type=Path), help="Install this android-demo APK first.")
@click.option("--local", "local_run", is_flag=True, help="No handset: run the app's loop on this machine, in a child process.")
@click.option("--emulate", "emulate_ref", metavar="DEVICE", help="With --local: inside this phone's memory, flash and CPU limits (root).")
@click.option("--device", "device_ref", metavar="DEVICE",
              help="The profile to predict for (needed with --local; on a handset: the catalog's match, or a draft).")
@click.option("--iterations", default=20, show_default=True, type=click.IntRange(min=1), help="Timed runs.")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0), help="Untimed runs before them.")
@click.option("--threads", type=click.IntRange(min=1), help="Runtime threads (default: the runtime's own).")
@click.option("--seq-len", default=128, show_default=True, type=click.IntRange(min=1), help="Tokens per input.")
@click.option("--results", "results_path", type=click.Path(path_type=Path),
              help="Append the result here [default: $POCKETFIT_RESULTS or ~/.local/share/pocketfit/device-bench.jsonl].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the result and the prediction here.")
def bench_device(artifact: Path, serial, apk, local_run, emulate_ref, device_ref, iterations, warmup, threads, seq_len,
                 results_path, json_path) -> None:
    """Benchmark ARTIFACT on the attached handset with the android-demo app and print it beside
    pocketfit's prediction for that phone; or, with --local, run the app's loop here. Exits 3
    when no handset is attached.

    \b
    pocketfit bench-device out/model.pte
    pocketfit bench-device --local out/model.onnx --device galaxy-a15
    """
    from .files import write_text_atomic
    from .progress import Console
    from .runtime import devices, ondevice
    from .runtime.ondevice import result

    if not artifact.is_file():
        raise errors.InvalidArtifact(f"artifact {artifact} does not exist")
    if emulate_ref and not local_run:
        raise click.UsageError("--emulate applies with --local only (a handset is its own limits)")
    progress = Console()
    if local_run:
        if not device_ref:
            raise click.UsageError("--local needs --device DEVICE: the phone to predict for beside this machine's figures")
        device = devices.load(device_ref)
        emulated = devices.load(emulate_ref) if emulate_ref else None
        with progress.step(f"running {iterations} iterations of {artifact.name} here" + (f", inside {emulated.id}" if emulated else "")):
            doc = ondevice.bench_local(artifact, iterations=iterations, warmup=warmup, threads=threads, seq_len=seq_len, emulate=emulated)
    else:
        import tempfile

        from .runtime.ondevice import adb, draft, facts

        handset = adb.find(serial)
        found = adb.read_facts(handset)
        with tempfile.TemporaryDirectory() as tmp:
            pulled = adb.run(handset, artifact, iterations, warmup, threads, seq_len, apk, Path(tmp) / "result.json", progress)
            doc = result.load(pulled)
        for cluster in doc["device"]["cpu"]["clusters"]:  # the app names cores by implementer:part
            cluster["core"] = facts.core_name(cluster["core"])
        device = devices.load(device_ref) if device_ref else ondevice.match(found)
        if device is None:
            path = Path(f"{draft.slug(found.model)}.toml")
            write_text_atomic(path, draft.draft(found))
            click.echo(f"no catalog profile matches {found.model}: drafted {path} from its facts; fill its TODOs "
                       "(docs/phones.md) and pass it with --device to see the prediction beside this result")
    stored = ondevice.result.append(doc, results_path or ondevice.results_file())
    if device is not None:
        shown = ondevice.beside(doc, device, artifact)
        click.echo(shown.render())
        if json_path:
            write_text_atomic(json_path, json.dumps(shown.to_dict(), indent=2) + "\n")
    elif json_path:
        write_text_atomic(json_path, json.dumps({"result": doc}, indent=2) + "\n")
    click.echo(f"appended to {stored}")


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("build/demo"), show_default=True)
def demo(output: Path) -> None:
    """Export the embedded MiniLM to ONNX fp32 and int8, verify, measure, and check every built-in phone."""
    from .demo import run

    click.echo(run(output))


_FLOORS = {  # option -> the task it measures, and its default there
    "min_cosine": (Task.FEATURE_EXTRACTION, 0.95),
    "min_label_agreement": (Task.TEXT_CLASSIFICATION, 0.98),
    "max_perplexity_increase": (Task.TEXT_GENERATION, 0.10),
}


@cli.command("fit")
@click.argument("model")
@click.option("--device", "device_ref", required=True, help="The phone: a built-in id (pocketfit devices) or a profile's .toml.")
@click.option("--task", type=click.Choice([t.value for t in Task]), default=Task.FEATURE_EXTRACTION.value, show_default=True)
@click.option("--format", "format_", default="all", show_default=True, metavar="F[,F...]|all",
              help=f"The formats to search: {', '.join(sorted(FORMATS))}, a comma-separated list, or all.")
@click.option("--min-cosine", type=float, help="feature-extraction: the floor on held-out text [default: 0.95].")
@click.option("--min-label-agreement", type=float, help="text-classification: the floor on held-out text [default: 0.98].")
@click.option("--max-perplexity-increase", metavar="PERCENT",
              help="text-generation: the most perplexity may grow on held-out text, e.g. 10% [default: 10%].")
@click.option("--max-latency-ms", type=click.FloatRange(min=0, min_open=True), help="The most the phone's predicted p50 may be.")
@click.option("--text", type=click.Path(path_type=Path),
              help="The app's own text, one passage per line (at least 50): a fifth is held out to judge quality, the rest "
                   "is what vocabulary trimming, pruning and heals use. Without it, only quantization and layer dropping are tried.")
@click.option("--budget-share", default="25%", show_default=True,
              help="What the model and its runtime may hold: a share of the phone's app budget (25%, 0.25) or a size (64 MiB).")
@click.option("--heal-seconds", type=click.FloatRange(min=0), default=0, show_default=True,
              help="With --text: also try each pruned candidate healed by distillation for this long (0: never).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Candidates evaluated at once.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine's processes; ray: Ray tasks on the cluster ray.init finds (or a local one).")
@click.option("--ray-address", help="With --executor ray: the cluster's address [default: RAY_ADDRESS, or a local cluster].")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output folder; rerun on the same folder to resume a killed search.")
def fit_cmd(model: str, device_ref: str, task: str, format_: str, text: Path | None, budget_share: str, max_latency_ms: float | None,
            heal_seconds: float, jobs: int, executor: str, ray_address: str | None, output: Path, **floors) -> None:
    """Search MODEL's shrink and quantization recipes and formats for the smallest artifact that
    fits the phone at the quality floor.

    Candidates are ranked by prediction first (bytes and memory by arithmetic, latency by the
    phone's model); those that cannot fit are never exported; the rest are exported, verified,
    measured and judged on held-out text, simplest first, until nothing left can improve the
    Pareto set. Writes OUTPUT/fit.txt, fit.json, fit.png, the chosen artifact in chosen/, and
    pocketfit.toml for `pocketfit check`. Exits 1 when nothing fits, naming the closest.

    \b
    pocketfit fit minilm --device galaxy-a04e --budget-share "64 MiB" --min-cosine 0.95 --text app.txt -o out/fit
    """
    from .converter import texts
    from .converter.models import resolve
    from .progress import Console
    from .runtime.search import Floor, fit
    from .runtime.search import report

    the_task = Task(task)
    given = {name: value for name, value in floors.items() if value is not None}
    for name in given:
        if _FLOORS[name][0] is not the_task:
            raise click.UsageError(f"--{name.replace('_', '-')} applies to --task {_FLOORS[name][0].value}; "
                                   f"{task} takes --{next(n for n, (t, _) in _FLOORS.items() if t is the_task).replace('_', '-')}")
    name = next(n for n, (t, _) in _FLOORS.items() if t is the_task)
    value = given.get(name, _FLOORS[name][1])
    if name == "max_perplexity_increase" and isinstance(value, str):
        raw = value.strip()
        try:
            value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        except ValueError:
            raise click.UsageError(f"--max-perplexity-increase {raw!r}: give a percentage, e.g. 10%") from None
    names = sorted(FORMATS) if format_ == "all" else [f.strip() for f in format_.split(",") if f.strip()]
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise click.UsageError(f"--format {format_!r}: the formats are {', '.join(sorted(FORMATS))}, or all")
    if heal_seconds and text is None:
        raise click.UsageError("--heal-seconds trains on the app's text: give it with --text FILE")
    if text is not None:
        texts.lines(text, "text file", 50)  # a bad file fails now, not after the model loads
    resolve(model)
    progress = Console()
    with _made_to_last():
        found = fit(model, device_ref, task=the_task, floor=Floor(value), budget=budget_share, formats=names, text=text,
                    max_latency_ms=max_latency_ms, heal_seconds=heal_seconds, output=output, jobs=jobs, executor=executor,
                    ray_address=ray_address, progress=progress)
    written = report.write(found, output)
    click.echo(report.summary(found) + "\n")
    click.echo(report.render(report.rows(found)))
    if found.chosen is None:
        raise errors.CheckFailed(f"nothing fits {found.device.id} within {mib(found.memory)} at the floor: {report.closest(found)} "
                                 f"(table: {written['table']})")
    r = found.results[found.chosen]
    click.echo(f"\nchosen: {found.chosen.describe()}: {written['artifact']} ({mib(r['bytes'])}, needs {mib(r['model_rss'] + r['footprint'])} "
               f"on {found.device.id})\nplot: {written['plot']}\nbudget file: {written['budget']} "
               f"(pocketfit check --config {written['budget']})")


def _terminate(signum, frame) -> None:
    # SIGTERM unwinds like Ctrl-C, so cleanup (cgroups, staged files, the measuring child) runs.
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        _main("--verbose" in sys.argv[1:])
    finally:
        # The interpreter's shutdown runs full collections over every object torch and
        # transformers made at import: about 1 s after an export, with nothing left to
        # collect that the exit would not free anyway. Frozen objects are skipped.
        gc.freeze()


def _main(verbose: bool) -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("pocketfit: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"pocketfit: {e.format_message()}", err=True)
        sys.exit(2)
    except errors.PocketfitError as e:
        if verbose:
            raise
        click.echo(f"pocketfit: {e}", err=True)
        sys.exit(next((code for kind, code in EXIT_CODES if isinstance(e, kind)), 2))
    except KeyboardInterrupt:
        click.echo("pocketfit: interrupted", err=True)
        sys.exit(130)
    except Exception as e:
        if verbose:
            raise
        click.echo(f"pocketfit: internal error (a bug): {type(e).__name__}: {e}; rerun with --verbose and report it", err=True)
        sys.exit(INTERNAL_ERROR)
