"""Progress for long steps. The library reports steps; the CLI decides how they look.

Steps nest: a backend's stages (torch.export, lowering, serialization) run inside the export step,
and show indented under it as they happen."""

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, TextIO

_CLEAR = "\r\033[K"  # back to the line's start and erase it


class Progress(Protocol):
    def step(self, label: str) -> contextlib.AbstractContextManager[None]: ...

    def advance(self, done: int, total: int, note: str = "", unit: str = "") -> None:
        """Inside a step that counts its work (a training loop): how far it has come (total 0 when
        it is not known ahead), with a note such as the loss."""

    def note(self, text: str) -> None:
        """A line of its own under the running step: one finished item of many (a search's candidate)."""


class Silent:
    """The library default: steps happen, nothing is shown."""

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        yield

    def advance(self, done: int, total: int, note: str = "", unit: str = "") -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass
class _Frame:
    label: str
    indent: str
    start: float = field(default_factory=time.perf_counter)
    open_line: bool = False  # its line is on screen, not yet ended by a newline
    detail: str = ""  # its count and ETA, from advance()
    logged: float = 0.0  # when a plain log last had a line of its count


class Console:
    """One line per step on a stream. On a terminal a ticking clock redraws the innermost step's
    line; elsewhere (CI logs) a step's line is written when it starts and finished when it ends,
    so a log shows what is running without any control characters."""

    def __init__(self, stream: TextIO = sys.stderr):
        self.live = stream.isatty()
        try:
            # A stream of our own on the terminal: libraries that silence their C++ logging by
            # redirecting file descriptor 2 must not silence the progress display with it.
            self.stream = os.fdopen(os.dup(stream.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):  # not backed by a file descriptor
            self.stream = stream
        self._lock = threading.Lock()
        self._local = threading.local()  # steps nest per thread (`check --jobs` runs several)

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        stack = self._local.__dict__.setdefault("stack", [])
        frame = _Frame(label, "  " * len(stack))
        with self._lock:
            if stack and stack[-1].open_line:  # the parent's line ends; its stages go below it
                self._write(f"{_CLEAR}{stack[-1].indent}… {stack[-1].label}\n" if self.live else "\n")
                stack[-1].open_line = False
            stack.append(frame)
            if not self.live:
                self._write(f"{frame.indent}… {label}")
            frame.open_line = True
        done = threading.Event()
        ticker = None
        if self.live:
            ticker = threading.Thread(target=self._tick, args=(frame, stack, done), daemon=True)
            ticker.start()
        ok = False
        try:
            yield
            ok = True
        finally:
            done.set()
            if ticker:
                ticker.join()
            seconds = time.perf_counter() - frame.start
            with self._lock:
                stack.pop()
                if frame.open_line and not self.live:
                    self._write(f": {'done in' if ok else 'failed after'} {seconds:.1f} s\n")
                else:
                    mark = "✓" if ok else "✗"
                    self._write(f"{_CLEAR if self.live else ''}{frame.indent}{mark} {label} ({seconds:.1f} s)\n")

    def advance(self, done: int, total: int, note: str = "", unit: str = "") -> None:
        stack = self._local.__dict__.get("stack")
        if not stack:
            return
        frame = stack[-1]
        elapsed = time.perf_counter() - frame.start
        eta = f", ETA {_duration(elapsed / done * (total - done))}" if 0 < done < total else ""
        count = (f"{done}/{total}" if total > 0 else str(done)) + (f" {unit}" if unit else "")  # total 0: not known ahead
        frame.detail = f"{count}{', ' + note if note else ''}{eta}"
        if not self.live and (time.perf_counter() - frame.logged > 30 or done == total):
            frame.logged = time.perf_counter()  # a plain log gets a line now and then, not a stream
            with self._lock:
                self._write(("\n" if frame.open_line else "") + f"{frame.indent}  {frame.detail}\n")
                frame.open_line = False

    def note(self, text: str) -> None:
        stack = self._local.__dict__.get("stack") or []
        indent = (stack[-1].indent + "  ") if stack else ""
        with self._lock:
            if self.live:  # the step's line is redrawn below on the next tick
                self._write(f"{_CLEAR}{indent}{text}\n")
                return
            if stack and stack[-1].open_line:
                self._write("\n")
                stack[-1].open_line = False
            self._write(f"{indent}{text}\n")

    def _tick(self, frame: _Frame, stack: list, done: threading.Event) -> None:
        spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
        i = 0
        while not done.wait(0.1):
            with self._lock:
                if not frame.open_line or stack[-1] is not frame:
                    continue  # a stage inside it is drawing
                elapsed = time.perf_counter() - frame.start
                detail = f", {frame.detail}" if frame.detail else ""
                self._write(f"{_CLEAR}{frame.indent}{spinner[i % len(spinner)]} {frame.label} ({elapsed:.0f} s{detail})")
            i += 1

    def _write(self, text: str) -> None:
        print(text, end="", file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
