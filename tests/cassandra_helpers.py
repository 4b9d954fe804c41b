"""cqlstub (``shared/tools/cqlstub.py``, a CQL v4 server the real driver talks to) for the tests:
in-process or as a process that can be stopped and restarted on the same port."""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import lru_cache
from pathlib import Path

from tests.peers import LOCALHOST, PeerProcess, free_port
from tests.vectors import REPO_ROOT, shared_dir

SCHEMA_FILE = REPO_ROOT / "conf" / "cassandra-schema.cql"


def cqlstub_path() -> Path:
    return shared_dir() / "tools" / "cqlstub.py"


@lru_cache(maxsize=None)
def cqlstub_module():
    """``cqlstub`` imported from the shared tools folder."""
    spec = importlib.util.spec_from_file_location("cqlstub", cqlstub_path())
    module = importlib.util.module_from_spec(spec)
    sys.modules["cqlstub"] = module
    spec.loader.exec_module(module)
    return module


def started_stub(schema: bool = True):
    """A started in-process ``CqlStub`` on a free port (with cadent's schema when asked)."""
    stub = cqlstub_module().CqlStub(LOCALHOST, 0)
    if schema:
        stub.execute(SCHEMA_FILE.read_text())
    return stub.start()


class CqlStubProcess(PeerProcess):
    """``cqlstub.py`` as a process with cadent's schema preloaded, recording to ``record`` (None:
    nothing recorded);
    ``start()`` again after ``stop()`` serves the same port (its stored rows start empty)."""

    name = "cqlstub"

    def __init__(self, record: Path | None, port: int | None = None, schema: bool = True,
                 **kw) -> None:
        self.port = port or free_port()
        self.record = Path(record) if record is not None else None
        argv = [sys.executable, str(cqlstub_path()), "--host", LOCALHOST, "--port", str(self.port)]
        if self.record is not None:
            argv += ["--record", str(self.record)]
        if schema:
            argv += ["--schema", str(SCHEMA_FILE)]
        super().__init__(argv, wait_ports=[(LOCALHOST, self.port)], **kw)

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def records(self) -> list[dict]:
        """Every statement recorded so far (by this and earlier runs on the same file)."""
        if self.record is None or not self.record.exists():
            return []
        lines = self.record.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def rows_by_bin(records: list[dict], keyspace: str = "metric") -> dict:
    """``{(path, resolution, time): (point, ttl)}``: the last INSERT of every metric row."""
    out = {}
    for rec in records:
        if rec.get("error") or rec.get("table") != "metric" or not rec["cql"].startswith("INSERT"):
            continue
        if rec.get("keyspace") not in (None, keyspace) and f"{keyspace}." not in rec["cql"]:
            continue
        ident, start, point, ttl = rec["values"]
        out[(ident["path"], ident["resolution"], start)] = (point, ttl)
    return out


def index_rows(records: list[dict]) -> tuple[set, set]:
    """(segment rows, path rows) every successful index INSERT wrote."""
    segments, paths = set(), set()
    for rec in records:
        if rec.get("error") or not rec["cql"].startswith("INSERT"):
            continue
        if rec.get("table") == "segment":
            segments.add(tuple(rec["values"]))
        elif rec.get("table") == "path":
            seg, path, length, has_data = rec["values"]
            paths.add(((seg["pos"], seg["segment"]), path, length, has_data))
    return segments, paths


__all__ = ["CqlStubProcess", "SCHEMA_FILE", "cqlstub_module", "cqlstub_path", "index_rows",
           "rows_by_bin", "started_stub"]
