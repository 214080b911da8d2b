"""Shared by the backends: quieting exporters, and turning their errors into one line."""

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_options(allowed: dict[str, tuple[str, ...]], options: dict | None) -> dict:
    """Refuse a runtime option the backend does not have, or a value it does not take."""
    from pocketfit.errors import BadInput

    for key, value in (options or {}).items():
        if key not in allowed:
            offered = ", ".join(f"{k}={'|'.join(v)}" for k, v in allowed.items()) or "none"
            raise BadInput(f"unknown runtime option {key!r}; this runtime's options: {offered}")
        if value not in allowed[key]:
            raise BadInput(f"runtime option {key}={value!r}: use one of {', '.join(allowed[key])}")
    return dict(options or {})


def reason(e: BaseException) -> str:
    """The useful line of an exporter or runtime error: its first line, and that of its root
    cause when it wraps one (torch.onnx wraps the torch.export error that says what failed)."""

    def first_line(err: BaseException) -> str:
        lines = [line.strip() for line in _ANSI.sub("", str(err)).splitlines() if line.strip()]
        return lines[0] if lines else type(err).__name__

    root = e
    while root.__cause__ is not None:
        root = root.__cause__
    if root is e:
        return first_line(e)
    stage = first_line(e).split(". ")[0].rstrip(".")  # the wrapper's sentence naming the failed step
    return f"{stage}: {type(root).__name__}: {first_line(root)}"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Exporters, quantizers and runtimes print progress and advice meant for their own
    developers, from Python and from C++ alike: both are swallowed, at the file-descriptor
    level. The reason for a failure travels in the exception instead."""
    # Records below ERROR are dropped, whatever logger or stream they go to: one global switch,
    # where setting each library's loggers costs a sweep of every logger's cache per call
    # (a quarter of a second with torch's and transformers' loaded).
    disabled = logging.root.manager.disable
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(max(disabled, logging.WARNING))
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)
        logging.disable(disabled)
