"""Standard error for a run's messages and progress bars, which outlives its reader.

After a Ctrl-C the reader of a pipe (`segbench run ... 2>&1 | tee log`) is gone as well, and a progress bar's next
write would end the run with BrokenPipeError before the checkpoint the Ctrl-C asked for is written. Writes to a
reader that has gone are dropped instead.
"""
from __future__ import annotations

import sys


class _Stderr:
    """``sys.stderr`` (looked up at each call: tests and tools replace it), dropping writes its reader cannot take."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (BrokenPipeError, ValueError):  # the reader has gone, or the stream was closed
            return len(text)

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):
            pass

    def __getattr__(self, name):  # isatty, fileno, encoding: what a progress bar asks about its file
        return getattr(sys.stderr, name)


STDERR = _Stderr()


def say(message: str) -> None:
    print(message, file=STDERR, flush=True)
