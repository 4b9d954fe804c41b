"""Telling whoever ran ``start`` whether the daemon came up.

A daemonising ``start`` forks; the process left in front waits on a pipe until the detached
daemon reports that it listens (``ready``) or why it could not start (``failed <reason>``), and
exits 0 or 1 with the reason on stderr. With several workers each reports once. In the
foreground there is no pipe: a failure is one line on stderr.
"""

from __future__ import annotations

import os
import select
import sys
import time

STARTUP_TIMEOUT_S = 120.0


class StartupReport:
    """The daemon's end of the pipe (``fd`` None in the foreground)."""

    def __init__(self, program: str, fd: int | None = None) -> None:
        self.program = program
        self.fd = fd

    def ready(self) -> None:
        self._send(f"ready {os.getpid()}")
        self.close()

    def failed(self, reason: str) -> None:
        """Report ``reason`` (one line) to the launcher, or on stderr in the foreground."""
        reason = " ".join(reason.split())
        if self.fd is None:
            print(f"{self.program}: cannot start: {reason}", file=sys.stderr, flush=True)
        self._send(f"failed {reason}")
        self.close()

    def close(self) -> None:
        """Let go of the pipe (e.g. in a supervisor once its workers hold their own ends)."""
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None

    def _send(self, message: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, (message + "\n").encode("utf-8", "replace"))
        except OSError:  # the launcher gave up waiting
            pass


def daemonize(program: str, expected: int, log_hint: str,
              timeout_s: float = STARTUP_TIMEOUT_S) -> StartupReport:
    """Detach (double fork, new session, stdio to /dev/null) and return the report to send.

    The process that called this never returns: it waits for ``expected`` ready lines (or a
    failure, or the daemon's end of the pipe closing) and exits 0 or 1.
    """
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first:
        os.close(write_fd)
        code = _await_report(program, read_fd, expected, log_hint, timeout_s)
        try:
            os.waitpid(first, 0)
        except ChildProcessError:
            pass
        os._exit(code)
    os.close(read_fd)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return StartupReport(program, write_fd)


def _await_report(program: str, fd: int, expected: int, log_hint: str, timeout_s: float) -> int:
    """Read the daemon's reports; print a failure on stderr; the exit code for ``start``."""
    deadline = time.monotonic() + timeout_s
    buffered = b""
    ready = 0
    while ready < expected:
        left = deadline - time.monotonic()
        if left <= 0:
            print(f"{program}: not ready after {timeout_s:.0f} s; it may still be starting "
                  f"(see {log_hint})", file=sys.stderr)
            return 1
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            print(f"{program}: exited during start-up without saying why (see {log_hint})",
                  file=sys.stderr)
            return 1
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            text = line.decode("utf-8", "replace")
            if text.startswith("failed "):
                print(f"{program}: cannot start: {text[len('failed '):]}", file=sys.stderr)
                return 1
            if text.startswith("ready"):
                ready += 1
    os.close(fd)
    return 0


__all__ = ["STARTUP_TIMEOUT_S", "StartupReport", "daemonize"]
