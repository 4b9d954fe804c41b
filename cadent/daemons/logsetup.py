"""Where a daemon's log lines go, decided by carbon's command line.

In carbon's order of precedence: ``--debug`` → stdout at debug level; ``--syslog`` → the
local syslog socket; ``--logfile F`` → F (``-`` is stdout); ``--nodaemon`` → stdout; else
``console.log`` in the log directory. The operational logs (creates, updates, query) get their
own files beside console.log when the daemon logs to a directory, and join the console output
otherwise. Lines logged before the destination is open (while the ports are bound, before the
switch to ``USER``) are held in memory and written once it is.
"""

from __future__ import annotations

import argparse
import errno
import logging
import logging.handlers
import os
import sys

from cadent.core import oplog

FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
SYSLOG_SOCKET = "/dev/log"


def hold_records() -> None:
    """Also keep every record from now on in memory, for :func:`setup_logging` to write to the
    daemon's log (warnings about the configuration reach both the terminal and the log)."""
    logging.getLogger().addHandler(
        logging.handlers.MemoryHandler(100_000, flushLevel=logging.CRITICAL + 1))


def drop_console() -> None:
    """Stop writing to the terminal (a daemon's stderr is /dev/null); keep holding records."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if not isinstance(handler, logging.handlers.MemoryHandler):
            root.removeHandler(handler)


def _held_records() -> list[logging.LogRecord]:
    held: list[logging.LogRecord] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.handlers.MemoryHandler):
            held.extend(handler.buffer)
            handler.buffer = []
    return held


def setup_logging(args: argparse.Namespace, log_dir: str | None, ident: str) -> list[str]:
    """Install the handlers ``args`` ask for; the paths of the log files opened.

    ``ident`` names the process in syslog (``cadent-relay-a``). Raises OSError when a log
    file cannot be opened or the syslog socket cannot be reached.
    """
    foreground = args.debug or args.nodaemon
    handler: logging.Handler
    opened: list[str] = []
    if args.debug:
        handler = logging.StreamHandler(sys.stdout)
    elif args.syslog:
        handler = logging.handlers.SysLogHandler(SYSLOG_SOCKET)
        if handler.socket.fileno() < 0:  # the handler swallows the connect error
            raise FileNotFoundError(errno.ENOENT, "no syslog listening", SYSLOG_SOCKET)
        handler.ident = f"{ident}[{os.getpid()}]: "
    elif args.logfile and args.logfile != "-":
        handler = logging.handlers.WatchedFileHandler(args.logfile)
        opened.append(os.path.abspath(args.logfile))
    elif foreground or args.logfile == "-":
        handler = logging.StreamHandler(sys.stdout)
    else:
        handler = logging.handlers.WatchedFileHandler(os.path.join(log_dir or ".", "console.log"))
        opened.append(os.path.abspath(handler.baseFilename))
    if log_dir and not foreground and not args.syslog:
        oplog.to_files(log_dir)
        opened += [os.path.join(log_dir, f"{kind}.log") for kind in oplog.KINDS]
    else:
        oplog.to_console()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s" if args.syslog else FORMAT))
    held = _held_records()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.debug else logging.INFO)
    for record in held:
        if record.levelno >= root.level:
            handler.handle(record)
    return opened


__all__ = ["FORMAT", "SYSLOG_SOCKET", "drop_console", "hold_records", "setup_logging"]
