"""The one error every config reader raises for a bad file."""

from __future__ import annotations


class ConfigError(Exception):
    """A config file problem located at ``filename:line`` (line 0 = the file as a whole)."""

    def __init__(self, filename: str, line: int, reason: str) -> None:
        super().__init__(filename, line, reason)
        self.filename = filename
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.reason}"


__all__ = ["ConfigError"]
