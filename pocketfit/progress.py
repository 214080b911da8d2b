"""Progress for long steps. The library reports steps; the CLI decides how they look."""

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Protocol, TextIO


class Progress(Protocol):
    def step(self, label: str) -> contextlib.AbstractContextManager[None]: ...


class Silent:
    """The library default: steps happen, nothing is shown."""

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        yield


class Console:
    """One line per step on a stream: a ticking clock on a terminal, start and end lines otherwise."""

    def __init__(self, stream: TextIO = sys.stderr):
        self.live = stream.isatty()
        try:
            # A stream of our own on the terminal: libraries that silence their C++ logging by
            # redirecting file descriptor 2 must not silence the progress display with it.
            self.stream = os.fdopen(os.dup(stream.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):  # not backed by a file descriptor
            self.stream = stream

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        start = time.perf_counter()
        done = threading.Event()
        ticker = None
        if self.live:
            ticker = threading.Thread(target=self._tick, args=(label, start, done), daemon=True)
            ticker.start()
        else:
            print(f"… {label}", file=self.stream, flush=True)
        ok = False
        try:
            yield
            ok = True
        finally:
            done.set()
            if ticker:
                ticker.join()
            mark = "✓" if ok else "✗"
            end = "\r\033[K" if self.live else ""
            print(f"{end}{mark} {label} ({time.perf_counter() - start:.1f} s)", file=self.stream, flush=True)

    def _tick(self, label: str, start: float, done: threading.Event) -> None:
        spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
        i = 0
        while not done.wait(0.1):
            elapsed = time.perf_counter() - start
            print(f"\r\033[K{spinner[i % len(spinner)]} {label} ({elapsed:.0f} s)", end="", file=self.stream, flush=True)
            i += 1
