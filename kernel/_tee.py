"""Printed output, line by line: echoed to a terminal when asked, and sent to a run's log stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO


class LineTee:
    """A text stream for ``sys.stdout``/``sys.stderr`` that hands whole lines to ``sink``.

    Lines are echoed whole and at once, so the lines of processes printing side by side never mix.
    """

    def __init__(self, sink: Callable[[str], None], echo: TextIO | None) -> None:
        self._sink, self._echo, self._buf = sink, echo, ""

    def write(self, s: str) -> int:
        self._buf += s
        if "\n" in self._buf:
            *lines, self._buf = self._buf.split("\n")
            if self._echo is not None:
                self._echo.write("".join(line + "\n" for line in lines))
                self._echo.flush()
            for line in lines:
                self._sink(line)
        return len(s)

    def flush(self) -> None:
        """Also ends a pending partial line."""
        if self._buf:
            self.write("\n")
        if self._echo is not None:
            self._echo.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        if self._echo is None:
            raise OSError("no file descriptor")
        return self._echo.fileno()
