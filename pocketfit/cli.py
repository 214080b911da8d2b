"""The pocketfit command line. Library errors become one line and an exit code here, and only here.

Exit codes: 0 all checks pass · 1 a budget or parity check failed · 2 bad input or usage ·
3 an environment limit · 70 an internal error (a bug: rerun with --verbose and report it).
"""

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
@click.option("--max-context", type=click.IntRange(min=1), help="text-generation: positions in the static KV cache [default: 256].")
@click.option("--calibration", type=click.Path(path_type=Path), help="int8-static: a text file, one calibration text per line.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder.")
def export(model: str, task: str, format_: str, quant: str, max_context: int | None, calibration: Path | None, output: Path) -> None:
    """Export MODEL (a local Hugging Face folder, or `minilm`) and verify it in its runtime.

    Writes OUTPUT/model.<format> and OUTPUT/manifest.json (with --format all, one subfolder per
    format; a format that cannot export the task is skipped with its reason). Exits 1 when an
    artifact's parity with the torch model falls below the recipe's floor.

    \b
    pocketfit export minilm --format onnx --quant int8 -o out/minilm-int8
    pocketfit export ./my-llama --task text-generation --format pte --quant int4 --max-context 512 -o out/llama
    """
    from .converter import check_supported, export as run_export, load
    from .converter.models import resolve
    from .files import ensure_dir
    from .progress import Console

    the_task = Task(task)
    if calibration is not None and quant != "int8-static":
        raise click.UsageError("--calibration applies to --quant int8-static only")
    if max_context is not None and the_task is not Task.TEXT_GENERATION:
        raise click.UsageError("--max-context applies to --task text-generation only")
    recipe = RECIPES[quant](calibration=calibration) if calibration else RECIPES[quant]()
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
    with progress.step(f"Loading {model} for {task}"):
        loaded = load(model, the_task)
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
    if failed:
        raise errors.CheckFailed(f"parity below the {quant} floor: {'; '.join(failed)} (artifacts kept for inspection)")


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1), help="How many of the largest tensors to list.")
def inspect(artifact: Path, top: int) -> None:
    """Print what ARTIFACT holds: format, size, constants by dtype, the largest tensors,
    operators, and format-specific facts (for .pte: the planned arena per method and which
    operators run in the XNNPACK delegate).

    \b
    pocketfit inspect out/minilm-int8/model.onnx
    """
    from .converter import inspect as read

    click.echo(read(artifact).render(top))


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
@click.option("--cold", is_flag=True, help="Drop the artifact from the page cache first (always so with --emulate).")
@click.option("--device", "device_refs", multiple=True, help="Also judge the result against this phone (repeatable).")
def profile(artifact: Path, emulate_ref: str | None, cold: bool, device_refs: tuple[str, ...], **options) -> None:
    """Measure ARTIFACT in its own runtime, in a child process: load time, latency, peak memory
    split into anonymous and file-backed, page faults and bytes read — what the model costs apart
    from the process measuring it. Exits 1 when the run crashed, hung or was OOM-killed, or when it
    does not fit a --device.

    \b
    pocketfit profile out/model.tflite --option xnnpack=off
    pocketfit profile out/model.pte --emulate galaxy-a15
    """
    from .runtime import devices

    phones = [devices.load(ref) for ref in device_refs]
    emulated = devices.load(emulate_ref) if emulate_ref else None
    if emulated and emulated not in phones:
        phones.insert(0, emulated)
    _measure_and_judge(artifact, phones, emulated, cold, **options)


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--device", "device_refs", multiple=True, required=True, help="Device id or profile .toml (repeatable).")
@_measurement_options
def check(artifact: Path, device_refs: tuple[str, ...], **options) -> None:
    """Run ARTIFACT in its runtime in a child process and check it against phones: the model's
    own memory plus the runtime's footprint on the phone, against each app budget. Exits 1 when
    one does not fit.

    \b
    pocketfit check out/minilm-int8/model.onnx --device galaxy-a15 --device iphone-15
    """
    from .runtime import devices

    _measure_and_judge(artifact, [devices.load(ref) for ref in device_refs], None, False, **options)


def _measure_and_judge(artifact, phones, emulated, cold, iterations, warmup, seq_len, threads, runtime_options, timeout, as_json):
    from .runtime import fit, measure, report

    parsed = {}
    for item in runtime_options:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"--option {item!r}: write KEY=VALUE, e.g. xnnpack=off")
        parsed[key] = value
    m = measure(artifact, iterations=iterations, warmup=warmup, seq_len=seq_len, threads=threads, options=parsed,
                timeout=timeout, emulate=emulated, cold=cold)
    fits = [fit(m, d) for d in phones]
    click.echo(json.dumps(report.document(m, fits), indent=2) if as_json else report.text(m, fits))
    if not m.ok:
        raise errors.CheckFailed(f"{artifact}: {m.outcome}" + (f" ({m.detail})" if m.detail else ""))
    failing = [f.device.id for f in fits if not f.fits]
    if failing:
        raise errors.CheckFailed(f"{artifact} does not fit: {', '.join(failing)}")


@cli.command(name="devices")
def devices_cmd() -> None:
    """List the built-in phone profiles (pass one's id, or your own .toml, to --device or
    --emulate). Every figure's source is in its file under runtime/devices/."""
    from .runtime import devices
    from .table import render

    rows = [["id", "name", "os", "tier", "RAM", "app budget", "page", "storage", "flash read", "DRAM", "big cores"]]
    for d in devices.builtin().values():
        budget = human(d.app_budget) + (f" ({human(d.app_budget_extended)})" if d.app_budget_extended else "")
        rows.append([d.id, d.name, d.os.value, d.tier.value, human(d.ram), budget, human(d.page_size), d.storage,
                     f"{d.flash_read_bandwidth / 1e9:.2f} GB/s", f"{d.dram} {d.dram_bandwidth / 1e9:.0f} GB/s", str(d.big_cores)])
    click.echo(render(rows, right={4, 5, 6, 8, 10}))
    click.echo("\napp budget: what one foreground app can hold before lmkd/jetsam kills it (with iOS's increased-memory-limit entitlement)")


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("build/demo"), show_default=True)
def demo(output: Path) -> None:
    """Export the embedded MiniLM to ONNX fp32 and int8, verify, measure, and check every built-in phone."""
    from .demo import run

    click.echo(run(output))


def _terminate(signum, frame) -> None:
    # SIGTERM unwinds like Ctrl-C, so cleanup (cgroups, staged files, the measuring child) runs.
    raise SystemExit(128 + signum)


def main() -> None:
    verbose = "--verbose" in sys.argv[1:]
    signal.signal(signal.SIGTERM, _terminate)
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
