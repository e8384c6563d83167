"""One progress line while the bench runs: rewritten in place on a terminal, else a line every
few seconds (CI logs stay short)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

QUIET_INTERVAL_S = 5.0


class Progress:
    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._started = time.monotonic()
        self._part = ""
        self._last_plain = 0.0
        self._width = 0

    def part(self, name: str) -> None:
        self._part = name
        self._last_plain = 0.0
        self.show("starting")

    def __call__(self, text: str) -> None:
        self.show(text)

    def show(self, text: str, *, force: bool = False) -> None:
        elapsed = time.monotonic() - self._started
        line = f"[{elapsed:5.0f} s] {self._part}: {text}"
        if self._tty:
            pad = max(0, self._width - len(line))
            self._stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            now = time.monotonic()
            if not force and now - self._last_plain < QUIET_INTERVAL_S and self._last_plain:
                return
            self._last_plain = now
            self._stream.write(line + "\n")
        self._stream.flush()

    def done(self, text: str) -> None:
        """A line that stays (the part's summary)."""
        self.show(text, force=True)
        if self._tty:
            self._stream.write("\n")
            self._width = 0
            self._stream.flush()
