"""Running as carbon.conf's ``USER``: resolved before start-up, switched to after binding.

carbon (through twistd) binds its ports as root, then takes the user's uid, gid and
supplementary groups before its service opens any data file; the log directory it creates is
handed to that user first. :func:`resolve_user` checks the name up front (an unknown user is a
start-up error, not a surprise later) and :func:`drop_privileges` does the switch.
"""

from __future__ import annotations

import importlib
import os
import pwd
from dataclasses import dataclass


class StartupError(Exception):
    """A start-up failure with an operator-readable, one-line reason."""


@dataclass(frozen=True)
class RunAs:
    """The account the daemon switches to."""

    name: str
    uid: int
    gid: int
    home: str


def resolve_user(name: str, *, switching: bool = True) -> RunAs | None:
    """The account ``name`` names, or None when there is nothing to switch (empty, or already
    that user). StartupError when it does not exist or, if ``switching``, when only root
    could switch to it."""
    name = (name or "").strip()
    if not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise StartupError(f"USER = {name}: no such user") from None
    if entry.pw_uid == os.getuid() and entry.pw_gid == os.getgid():
        return None
    if switching and os.geteuid() != 0:
        raise StartupError(f"USER = {name}: switching users needs root "
                           f"(running as uid {os.geteuid()})")
    return RunAs(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid,
                 home=entry.pw_dir or "/")


def make_dir_for(path: str, run_as: RunAs | None) -> None:
    """Create directory ``path`` (and parents); a directory created here is handed to
    ``run_as``, so the daemon can still write in it after switching users (as carbon does
    with its log directory)."""
    missing = []
    head = os.path.abspath(path)
    while head and not os.path.isdir(head):
        missing.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    os.makedirs(path, exist_ok=True)
    if run_as is not None:
        for created in missing:
            os.chown(created, run_as.uid, run_as.gid)


def hand_over(paths: list[str], run_as: RunAs | None) -> None:
    """Give files opened before the switch (the supervisor's logs) to ``run_as``."""
    if run_as is None:
        return
    for path in paths:
        os.chown(path, run_as.uid, run_as.gid)


# Standard modules the running daemons import only on first use. USER may not be able to read
# the interpreter's tree (a Python installed under /root), so they are loaded while still root:
# ``encodings.idna`` encodes every host name a sender or health check connects to.
_LOADED_BEFORE_SWITCHING = ("encodings.idna",)


def drop_privileges(run_as: RunAs | None) -> None:
    """Become ``run_as`` for good: supplementary groups, gid, uid, then HOME/USER/LOGNAME."""
    if run_as is None:
        return
    for module in _LOADED_BEFORE_SWITCHING:
        importlib.import_module(module)
    os.initgroups(run_as.name, run_as.gid)
    os.setresgid(run_as.gid, run_as.gid, run_as.gid)
    os.setresuid(run_as.uid, run_as.uid, run_as.uid)
    os.environ.update(HOME=run_as.home, USER=run_as.name, LOGNAME=run_as.name)


__all__ = ["RunAs", "StartupError", "drop_privileges", "hand_over", "make_dir_for",
           "resolve_user"]
