"""The pocketfit command line. Library errors become one line and an exit code here, and only here.

Exit codes: 0 all checks pass · 1 a budget or parity check failed · 2 bad input or usage ·
3 an environment limit · 70 an internal error (a bug: rerun with --verbose and report it).
"""

import json
import logging
import os
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


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--device", "device_refs", multiple=True, required=True, help="Device id or profile .toml (repeatable).")
@click.option("--iterations", default=20, show_default=True, type=click.IntRange(min=1), help="Timed runs.")
@click.option("--seq-len", default=128, show_default=True, type=click.IntRange(min=1), help="Tokens per input.")
@click.option("--threads", type=click.IntRange(min=1), help="Runtime threads (default: the runtime's own).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(artifact: Path, device_refs: tuple[str, ...], iterations: int, seq_len: int, threads: int | None, as_json: bool) -> None:
    """Run ARTIFACT in its runtime in a child process and check it against phones.

    Reports the artifact's size and the measured peak resident memory of the process, and
    whether both fit each device's app memory budget. Exits 1 when one does not fit.

    \b
    pocketfit check out/minilm-int8/model.onnx --device galaxy-a15 --device iphone-15
    """
    from .runtime import devices, fit, measure

    targets = [devices.load(ref) for ref in device_refs]
    m = measure(artifact, iterations=iterations, seq_len=seq_len, threads=threads)
    fits = [fit(m, d) for d in targets]
    if as_json:
        click.echo(json.dumps(_check_json(m, fits), indent=2))
    else:
        click.echo(_check_text(m, fits))
    failing = [f.device.id for f in fits if not f.fits]
    if failing:
        raise errors.CheckFailed(f"{artifact} does not fit: {', '.join(failing)}")


def _check_text(m, fits) -> str:
    from .table import render

    head = (
        f"artifact  {m.artifact} ({mib(m.bytes)})\n"
        f"runtime   {m.runtime}: batch 1 x {m.seq_len} tokens, {m.iterations} runs, "
        f"p50 {m.p50_ms:.1f} ms, p90 {m.p90_ms:.1f} ms (load {m.load_seconds * 1000:.0f} ms)\n"
        f"memory    peak RSS {mib(m.peak_rss)} = {mib(m.baseline_rss)} process before loading "
        f"+ {mib(m.model_rss)} for the model\n"
    )
    rows = [["device", "app budget", "size", "peak RSS", "verdict"]]
    for f in fits:
        budget = f.device.app_budget
        rows.append([
            f"{f.device.name} ({f.device.id})",
            human(budget),
            f"{m.bytes / budget:.0%}",
            f"{f.memory_share:.0%}",
            "fits" if f.fits else "DOES NOT FIT",
        ])
    return head + "\n" + render(rows, right={1, 2, 3})


def _check_json(m, fits) -> dict:
    return {
        "artifact": str(m.artifact),
        "bytes": m.bytes,
        "runtime": m.runtime,
        "seq_len": m.seq_len,
        "iterations": m.iterations,
        "load_seconds": m.load_seconds,
        "first_seconds": m.first_seconds,
        "p50_ms": m.p50_ms,
        "p90_ms": m.p90_ms,
        "baseline_rss": m.baseline_rss,
        "peak_rss": m.peak_rss,
        "model_rss": m.model_rss,
        "devices": [
            {"id": f.device.id, "app_budget": f.device.app_budget, "size_fits": f.size_fits,
             "memory_fits": f.memory_fits, "fits": f.fits}
            for f in fits
        ],
    }


@cli.command(name="devices")
def devices_cmd() -> None:
    """List the built-in phone profiles (pass one's id, or your own .toml, to --device)."""
    from .runtime import devices
    from .table import render

    rows = [["id", "name", "os", "tier", "RAM", "app budget"]]
    for d in devices.builtin().values():
        rows.append([d.id, d.name, d.os.value, d.tier.value, human(d.ram), human(d.app_budget)])
    click.echo(render(rows, right={4, 5}))


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("build/demo"), show_default=True)
def demo(output: Path) -> None:
    """Export the embedded MiniLM to ONNX fp32 and int8, verify, measure, and check every built-in phone."""
    from .demo import run

    click.echo(run(output))


def main() -> None:
    verbose = "--verbose" in sys.argv[1:]
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
