"""The one error every config reader raises for a bad file."""

from __future__ import annotations


class ConfigError(Exception):
    """A config file problem located at ``filename:line``, or at setting ``key`` when no line
    is known (a default, a command-line value, a cross-check of several settings); with
    neither (line 0, no key) it concerns the file as a whole."""

    def __init__(self, filename: str, line: int, reason: str, key: str | None = None) -> None:
        super().__init__(filename, line, reason)
        self.filename = filename
        self.line = line
        self.reason = reason
        self.key = key

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}" if self.line else self.filename
        return f"{where}: {self.key}: {self.reason}" if self.key else f"{where}: {self.reason}"


__all__ = ["ConfigError"]
