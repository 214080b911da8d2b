"""The progress display: steps nest, show as they happen, and stay plain text off a terminal."""

import io
import os
import select
import time

import pytest

from pocketfit.progress import Console


def _run(console):
    with console.step("Exporting"):
        with console.step("torch.export"):
            time.sleep(0.5)
        with console.step("lowering"):
            pass
    with pytest.raises(ValueError), console.step("Verifying"):
        with console.step("running"):
            raise ValueError


def test_plain_stream_writes_one_line_per_stage_as_it_starts():
    stream = io.StringIO()
    console = Console(stream)
    with console.step("Exporting"), console.step("torch.export"):
        # While a stage runs its line is already in the log, unfinished.
        assert stream.getvalue() == "… Exporting\n  … torch.export"
    lines = Console(stream := io.StringIO())
    _run(lines)
    got = stream.getvalue().splitlines()
    assert got[0] == "… Exporting"
    assert got[1].startswith("  … torch.export: done in 0.") and got[1].endswith(" s")
    assert got[2].startswith("  … lowering: done in 0.0 s")
    assert got[3].startswith("✓ Exporting (0.")
    assert got[4] == "… Verifying"
    assert got[5].startswith("  … running: failed after")
    assert got[6].startswith("✗ Verifying (")
    assert len(got) == 7 and "\r" not in stream.getvalue() and "\033" not in stream.getvalue()


def test_terminal_ticks_the_innermost_stage_and_keeps_each_result():
    reader, writer = os.openpty()
    try:
        stream = os.fdopen(writer, "w")
        console = Console(stream)
        assert console.live
        _run(console)
        stream.flush()
        # A pty hands its buffer over in pieces: read until it has stayed empty a while.
        chunks = []
        while select.select([reader], [], [], 0.5)[0]:
            chunks.append(os.read(reader, 1 << 16))
        text = b"".join(chunks).decode().replace("\r\n", "\n")
    finally:
        os.close(reader)
    # Every step ends on a line of its own with its mark and time; the spinner redrew the
    # stage that was running (torch.export slept 0.5 s, past several 0.1 s ticks) in place.
    finished = [line.rsplit("\r\033[K", 1)[-1] for line in text.split("\n") if line]
    assert [f.split(" (")[0] for f in finished] == [
        "… Exporting", "  ✓ torch.export", "  ✓ lowering", "✓ Exporting", "… Verifying", "  ✗ running", "✗ Verifying"]
    assert "\r\033[K  ⠋ torch.export (0 s)" in text


def test_a_counted_step_shows_its_count_and_eta():
    stream = io.StringIO()
    console = Console(stream)
    with console.step("Healing"):
        console.advance(1, 4, "loss 0.5")
        time.sleep(0.01)
        console.advance(4, 4, "loss 0.1")
        console.advance(5, 0, "10 s left", unit="steps")  # a time budget: no total, no ETA
    lines = stream.getvalue().splitlines()
    assert lines[0] == "… Healing"
    assert lines[1].startswith("  1/4, loss 0.5, ETA ") and lines[2] == "  4/4, loss 0.1"
    assert lines[3].startswith("✓ Healing (") and len(lines) == 4
